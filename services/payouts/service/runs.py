"""Payout runs, payout states and the bank file.

A run for a period is one transaction under a PostgreSQL advisory lock on the period: concurrent
runs and other replicas queue, then find every payee already paid for the period (a unique
(payee, currency, period) row) and create nothing new. Holds that have ended are released first.
"""

from __future__ import annotations

from typing import Any

import structlog

from common.errors import FailedPrecondition, InvalidArgument, NotFound
from common.paging import decode_token, encode_token, page_size
from payouts import metrics, store
from payouts.domain.ledger import failure_transfer, plan_payout
from payouts.domain.periods import Period
from payouts.domain.statement import BankRow, payout_run_csv
from payouts.service.base import Base, dec, iso, scope
from payouts.service.feed import Feed

log = structlog.get_logger("payouts.runs")


def payout_view(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "payee_id": row["payee_id"],
        "currency_code": row["currency_code"],
        "period": row["period"],
        "amount": dec(row["amount"]),
        "available_consumed": dec(row["available_consumed"]),
        "clawback_offset": dec(row["clawback_offset"]),
        "method_reference": row["method_reference"],
        "state": row["state"],
        "external_reference": row["external_reference"],
        "failure_reason": row["failure_reason"],
        "create_time": iso(row["create_time"]),
        "settle_time": iso(row["settle_time"]),
    }


class Runs(Feed, Base):
    @metrics.timed_run
    async def run_payouts(self, request_id: str, period: Period) -> dict[str, Any]:
        if period.start > self.clock():
            raise InvalidArgument(f"period {period} has not started yet", field="period")
        # Every hold due by now is released (waiting for any sweep releasing one right now) before the
        # run reads the available balances.
        await self.release_due(wait=True)
        name = str(period)

        async def work(conn: Any) -> dict[str, Any]:
            await store.advisory_lock(conn, f"payouts.run:{name}")
            now = self.clock()
            plans = []
            for c in await store.payout_candidates(conn, name):
                plan = plan_payout(
                    period=name,
                    payee_id=c["id"],
                    currency=c["currency_code"],
                    available=c["available"],
                    clawback=c["clawback"],
                    minimum=c["minimum_amount"],
                    when=now,
                )
                if plan is not None:
                    plans.append((plan, c["method_reference"]))
            created = await store.insert_payouts(
                conn,
                [
                    {
                        "id": p.payout_id,
                        "payee_id": p.payee_id,
                        "currency_code": p.currency,
                        "period": name,
                        "amount": p.amount,
                        "available_consumed": p.available_consumed,
                        "clawback_offset": p.clawback_offset,
                        "method_reference": method,
                        "state": "pending",
                        "create_time": now,
                    }
                    for p, method in plans
                ],
            )
            await store.post(conn, [t for p, _ in plans if p.payout_id in created for t in p.transfers])
            count, totals = await store.period_totals(conn, name)
            log.info("payouts.run.done", period=name, created=len(created), payouts=count)
            return {
                "period": name,
                "created_count": len(created),
                "payout_count": count,
                "totals": [{"currency_code": c, "amount": dec(a)} for c, a in totals],
            }

        return await self.idempotent(scope("RunPayouts", "operator"), request_id, {"period": name}, work)

    async def _payout_or_404(self, payout_id: str) -> dict[str, Any]:
        async with self.engine.connect() as conn:
            row = await store.get_payout(conn, payout_id)
        if row is None:
            raise NotFound(f"no payout {payout_id}", field="payout_id")
        return row

    async def mark_payout_paid(
        self, request_id: str, payout_id: str, external_reference: str
    ) -> dict[str, Any]:
        first = await self._payout_or_404(payout_id)

        async def work(conn: Any) -> dict[str, Any]:
            row = await store.get_payout(conn, payout_id, for_update=True)
            if row["state"] == "paid" and row["external_reference"] == external_reference:
                return payout_view(row)
            if row["state"] != "pending":
                raise FailedPrecondition(
                    f"payout {payout_id} is {row['state']}; only a pending payout can be marked paid",
                    field="payout_id",
                )
            row = await store.set_payout_state(
                conn,
                payout_id,
                {"state": "paid", "external_reference": external_reference, "settle_time": self.clock()},
            )
            log.info("payouts.payout.paid", payout_id=payout_id)
            return payout_view(row)

        body = {"payout_id": payout_id, "external_reference": external_reference}
        return await self.idempotent(scope("MarkPayoutPaid", first["payee_id"]), request_id, body, work)

    async def mark_payout_failed(self, request_id: str, payout_id: str, reason: str) -> dict[str, Any]:
        first = await self._payout_or_404(payout_id)

        async def work(conn: Any) -> dict[str, Any]:
            row = await store.get_payout(conn, payout_id, for_update=True)
            if row["state"] == "failed":
                return payout_view(row)
            if row["state"] != "pending":
                raise FailedPrecondition(
                    f"payout {payout_id} is {row['state']}; only a pending payout can fail", field="payout_id"
                )
            now = self.clock()
            await store.post(
                conn, [failure_transfer(payout_id, row["payee_id"], row["currency_code"], row["amount"], now)]
            )
            row = await store.set_payout_state(
                conn, payout_id, {"state": "failed", "failure_reason": reason, "settle_time": now}
            )
            log.info("payouts.payout.failed", payout_id=payout_id)
            return payout_view(row)

        body = {"payout_id": payout_id, "reason": reason}
        return await self.idempotent(scope("MarkPayoutFailed", first["payee_id"]), request_id, body, work)

    async def list_payouts(
        self, *, payee_id: str | None, period: Period | None, state: str | None, size: int, token: str
    ) -> tuple[list[dict[str, Any]], str]:
        limit = page_size(size)
        cursor = decode_token(token)
        filters = [payee_id, period and str(period), state]
        after = None
        if cursor is not None:
            after = cursor.get("a")
            if (
                not isinstance(after, list)
                or len(after) != 3
                or not all(isinstance(x, str) for x in after)
                or cursor.get("f") != filters
            ):
                raise InvalidArgument(
                    "page_token is not a token this service issued for these filters", field="page_token"
                )
            after = tuple(after)
        async with self.engine.connect() as conn:
            rows = await store.list_payouts(
                conn,
                payee_id=payee_id,
                period=str(period) if period else None,
                state=state,
                after=after,
                limit=limit + 1,
            )
        more = len(rows) > limit
        rows = rows[:limit]
        last = rows[-1] if rows else None
        next_token = (
            encode_token({"a": [last["period"], last["payee_id"], last["currency_code"]], "f": filters})
            if more and last
            else ""
        )
        return [payout_view(r) for r in rows], next_token

    async def export_payout_run(self, period: Period) -> tuple[str, int]:
        async with self.engine.connect() as conn:
            rows = await store.payouts_of_period(conn, str(period))
        bank = [
            BankRow(r["payee_id"], r["method_reference"], r["amount"], r["currency_code"], r["id"])
            for r in rows
        ]
        return payout_run_csv(bank), len(bank)
