"""Spend leases: AcquireSpendLease, ReportSpendLease and the expiry sweep.

Every change to a control's period goes through its spend_periods row, locked FOR UPDATE in the
transaction that changes it, so spent + held cannot pass the cap whatever the concurrency (the rules:
billing.domain.spend). Lock order, everywhere: the lease row, then its period row (the sweep locks
its due leases SKIP LOCKED, then their periods in (control id, start) order), so no two of these
transactions wait on each other in a cycle.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from billing import store
from billing.domain import spend as rules
from billing.domain.text import quote
from billing.service._core import ServiceCore, _new_id, _require, log
from billing.service.alerts import cap_alert, threshold_alerts
from billing.service.spend_views import (
    CapReachedView,
    LeaseReply,
    SpendLeaseView,
    control_view,
    lease_view,
)
from billing.service.views import _s
from common.errors import InvalidArgument, NotFound

# How many due leases one sweep transaction expires; the sweep repeats until none is left.
SWEEP_BATCH = 500


def _in_currency(amount: Decimal, currency: str, expected: str, path: str, *, zero_currency_ok: bool) -> None:
    if currency != expected and not (zero_currency_ok and amount == 0 and not currency):
        raise InvalidArgument(
            f"{path} must be in the customer's currency {expected}, "
            f"got {quote(currency) if currency else 'none'}",
            field=f"{path}.currency_code",
        )
    if amount < 0:
        raise InvalidArgument(f"{path} must not be negative", field=path)


def _deleted(control_id: str) -> NotFound:
    return NotFound(f"spend control {quote(control_id)} was deleted", field="control_id")


class Leases(ServiceCore):
    """Granting, consuming and expiring leases."""

    async def acquire_spend_lease(
        self,
        request_id: str,
        builder_id: str,
        customer_id: str,
        control_id: str,
        holder: str,
        amount: tuple[Decimal, str],
        minimum: tuple[Decimal, str],
    ) -> LeaseReply:
        _require(builder_id, "builder_id")
        _require(customer_id, "customer_id")
        _require(control_id, "control_id", max_len=64)
        _require(holder, "holder")

        async def work(conn: AsyncConnection) -> LeaseReply:
            control = await store.spend.get_control(conn, builder_id, control_id)
            if control is None or control["customer_id"] != customer_id:
                raise NotFound(
                    f"spend control {quote(control_id)} of customer {quote(customer_id)} not found",
                    field="control_id",
                )
            cur = control["currency_code"]
            _in_currency(amount[0], amount[1], cur, "amount", zero_currency_ok=False)
            _in_currency(minimum[0], minimum[1], cur, "minimum", zero_currency_ok=True)
            if amount[0] == 0:
                raise InvalidArgument("amount must be positive", field="amount")
            if minimum[0] > amount[0]:
                raise InvalidArgument("minimum must not be more than amount", field="minimum")
            now = self.clock()
            period = rules.spend_period(now)
            counters = await store.spend.lock_period(conn, control_id, period.start, period.end)
            if counters is None:
                raise _deleted(control_id)
            spent, held = counters["spent"], counters["held"]
            granted = rules.grant(amount[0], minimum[0], control["hard_cap"], spent, held)
            if granted is None:
                await cap_alert(conn, now, control, period.start, spent)
                log.info("billing.spend.lease_refused", builder_id=builder_id, control_id=control_id)
                return LeaseReply(None, CapReachedView(control_view(control), spent, held, period.end))
            row = await store.spend.insert_lease(
                conn,
                {
                    "id": _new_id("lse"),
                    "builder_id": builder_id,
                    "control_id": control_id,
                    "period_start": period.start,
                    "holder": holder,
                    "granted": granted,
                    "consumed": Decimal(0),
                    "state": rules.ACTIVE,
                    "expire_time": now + timedelta(seconds=self.spend_lease_seconds),
                    "create_time": now,
                    "update_time": now,
                },
            )
            await store.spend.update_period(conn, control_id, period.start, {"held": held + granted})
            return LeaseReply(lease_view(row, cur, period.end), None)

        body = {
            "builder_id": builder_id,
            "customer_id": customer_id,
            "control_id": control_id,
            "holder": holder,
            "amount": [_s(amount[0]), amount[1]],
            "minimum": [_s(minimum[0]), minimum[1]],
        }
        return await self._idempotent("AcquireSpendLease", builder_id, request_id, body, work, LeaseReply)

    async def report_spend_lease(
        self, request_id: str, builder_id: str, lease_id: str, consumed: tuple[Decimal, str], release: bool
    ) -> SpendLeaseView:
        _require(builder_id, "builder_id")
        _require(lease_id, "lease_id", max_len=64)

        async def work(conn: AsyncConnection) -> SpendLeaseView:
            lease = await store.spend.get_lease(conn, builder_id, lease_id, for_update=True)
            if lease is None:
                raise NotFound(f"spend lease {quote(lease_id)} not found", field="lease_id")
            control = await store.spend.get_control(conn, builder_id, lease["control_id"])
            if control is None:  # not while we hold its lease (a delete locks leases first); defensive
                raise _deleted(lease["control_id"])
            cur = control["currency_code"]
            _in_currency(consumed[0], consumed[1], cur, "consumed", zero_currency_ok=True)
            now = self.clock()
            counters = await store.spend.lock_period(
                conn, control["id"], lease["period_start"], rules.spend_period(lease["period_start"]).end
            )
            if counters is None:
                raise _deleted(control["id"])
            change = rules.report(
                rules.Lease(lease["granted"], lease["consumed"], lease["state"]), consumed[0], release
            )
            if change.lease.consumed != lease["consumed"] or change.lease.state != lease["state"]:
                lease = await store.spend.update_lease(
                    conn,
                    lease_id,
                    {"consumed": change.lease.consumed, "state": change.lease.state, "update_time": now},
                )
            spent = counters["spent"] + change.spent_delta
            reached = list(counters["reached_percents"])
            basis = rules.threshold_basis(control["hard_cap"], control["alert_budget"])
            new = rules.crossed(control["threshold_percents"], basis, spent, reached)
            if change.spent_delta or change.held_delta or new:
                await store.spend.update_period(
                    conn,
                    control["id"],
                    lease["period_start"],
                    {
                        "spent": spent,
                        "held": counters["held"] + change.held_delta,
                        "reached_percents": sorted(reached + new),
                    },
                )
            await threshold_alerts(conn, now, control, lease["period_start"], spent, new)
            return lease_view(lease, cur, counters["period_end"])

        body = {
            "builder_id": builder_id,
            "lease_id": lease_id,
            "consumed": [_s(consumed[0]), consumed[1]],
            "release": release,
        }
        return await self._idempotent("ReportSpendLease", builder_id, request_id, body, work, SpendLeaseView)

    async def expire_leases(self) -> int:
        """Mark active leases past their expire_time EXPIRED and free what they held; returns how many.
        Safe to run on every replica at once: each due lease is claimed by one (SKIP LOCKED)."""
        total = 0
        while True:
            async with self.engine.begin() as conn:
                n = await self._expire_batch(conn, self.clock())
            total += n
            if n < SWEEP_BATCH:
                return total

    async def _expire_batch(self, conn: AsyncConnection, now: datetime) -> int:
        due = await store.spend.claim_due_leases(conn, now, SWEEP_BATCH)
        if not due:
            return 0
        keys = sorted({(r["control_id"], r["period_start"]) for r in due})
        periods = await store.spend.lock_periods(conn, keys)
        freed: dict[tuple[str, datetime], Decimal] = {}
        for r in due:
            change = rules.expire(rules.Lease(r["granted"], r["consumed"], r["state"]))
            await store.spend.update_lease(conn, r["id"], {"state": change.lease.state, "update_time": now})
            k = (r["control_id"], r["period_start"])
            freed[k] = freed.get(k, Decimal(0)) + change.held_delta
        for (control_id, start), delta in freed.items():
            row: dict[str, Any] = periods[(control_id, start)]
            await store.spend.update_period(conn, control_id, start, {"held": row["held"] + delta})
        log.info("billing.spend.leases_expired", count=len(due))
        return len(due)
