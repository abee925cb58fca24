"""The two-phase period close: finalize every invoice of a builder's period."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from billing import metrics, store
from billing.domain import (
    ChargeUsage,
    EarningsParties,
    LateUsage,
    apply_wallet,
    build_invoice,
    earnings_for_payment,
    period_containing,
    plan_from_dict,
)
from billing.domain.proration import Segment, active_share, build_segmented_invoice, prorate_plan
from billing.domain.text import quote
from billing.service._core import (
    EPSILON,
    PROBE_CUSTOMER,
    ServiceCore,
    TimelinePart,
    _new_id,
    _require,
    _stored_line,
    log,
)
from billing.service.alerts import margin_alerts
from billing.service.earnings import _earnings_rows
from billing.service.invoicing import _check_recordable, _jsonb, _line_rows
from billing.service.views import (
    ZERO,
    CloseSummary,
    CurrencyTotal,
    _t,
    from_json,
)
from billing.usage import (
    PeriodUsage,
    charge_usage,
    meter_needs,
    query_period,
    usage_by_tag,
    usage_from_json,
    usage_to_json,
)
from common.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    Unavailable,
)
from common.idempotency import builder_scope, fingerprint


class _StaleCloseInputs(Exception):
    """The customers to invoice need plan versions the close did not read usage for: read again."""


@dataclass(frozen=True)
class _CloseUsage:
    """What phase 1 of a close read from metering, and for which plan versions."""

    keys: frozenset[tuple[str, int]]
    prev_keys: frozenset[tuple[str, int]]
    cutoff: datetime
    usage: PeriodUsage
    prev_usage: PeriodUsage | None
    # Customers whose usage is not the whole period's (cancelled inside it, or a plan changed inside
    # it): their usage ranges with plan versions, and the usage of each range.
    ranged: dict[str, tuple[tuple[tuple[datetime, datetime, tuple[str, int]], ...], tuple[PeriodUsage, ...]]]


def _ranges(parts: list[TimelinePart], period: Any) -> tuple[tuple[datetime, datetime, tuple[str, int]], ...]:
    """The usage ranges of a customer whose usage is not the whole period's; () when it is."""
    if len(parts) == 1 and (parts[0].usage_start, parts[0].usage_end) == (period.start, period.end):
        return ()
    return tuple((p.usage_start, p.usage_end, p.key) for p in parts)


def _record_usage_reads(
    rows: list[dict[str, Any]], windows: list[tuple[datetime, datetime]], cutoff: datetime
) -> None:
    """Record on each usage line the metering read it priced, for ExplainInvoiceLine: its part's usage
    range (`windows`: each timeline part's charges in plan order, as the draft lists its usage lines)
    read at the close's cutoff. Every row gets the columns (COPY needs one shape); others keep theirs."""
    ranges = iter(windows)
    for row in rows:
        if row["kind"] == "usage":
            row["usage_start_time"], row["usage_end_time"] = next(ranges)
            row["ingested_after_time"], row["ingested_before_time"] = None, cutoff
        for column in ("usage_start_time", "usage_end_time", "ingested_after_time", "ingested_before_time"):
            row.setdefault(column, None)


class Closing(ServiceCore):
    """Period closes."""

    async def _settled_cutoff(self, builder_id: str, meter: str, start: datetime, end: datetime) -> datetime:
        """The cutoff T for a close: metering's clock now, waited on until metering calls it settled."""
        first = await self.metering.query_usage(
            builder_id=builder_id, meter_key=meter, start=start, end=end, customer_id=PROBE_CUSTOMER
        )
        cutoff = (first.cutoff or self.clock()) - self.cutoff_lag
        settled = first.settled and not self.cutoff_lag
        if self.cutoff_lag:
            settled = (
                await self.metering.query_usage(
                    builder_id=builder_id,
                    meter_key=meter,
                    start=start,
                    end=end,
                    customer_id=PROBE_CUSTOMER,
                    cutoff=cutoff,
                )
            ).settled
        waited = 0.0
        delay = 0.25
        while not settled:
            if waited >= self.settle_timeout_seconds:
                raise Unavailable("metering's ingestion cutoff did not settle in time; nothing was finalized")
            await asyncio.sleep(delay)
            waited += delay
            delay = min(delay * 2, 2.0)
            answer = await self.metering.query_usage(
                builder_id=builder_id,
                meter_key=meter,
                start=start,
                end=end,
                customer_id=PROBE_CUSTOMER,
                cutoff=cutoff,
            )
            settled = answer.settled
        return cutoff

    @metrics.timed_close
    async def close_period(self, request_id: str, builder_id: str, period_end: datetime) -> CloseSummary:
        """Close a builder's period in two phases, so that waiting on metering holds no connection.

        1. Without a transaction (short reads only): which plan versions the customers still to
           invoice are on; then wait for metering's cutoff to settle and read the usage, holding NO
           database connection (the settle wait lasts seconds; many closes waiting at once must not
           starve other calls of connections).
        2. One short transaction: claim the request id, take the builder's advisory lock, re-read who
           is still to invoice and finalize them with the usage read in phase 1. If a customer on a
           plan version phase 1 did not read appeared meanwhile, the transaction rolls back and
           phase 1 runs again.
        Closes of one builder are also serialized in this process (no connection held while
        queued), and at most `close_concurrency` closes hold a connection at once.
        """
        _require(builder_id, "builder_id")
        _require(request_id, "request_id")
        period = period_containing(period_end - EPSILON)
        if period.end != period_end:
            raise InvalidArgument(
                "period_end_time must be the first of a month at 00:00 UTC", field="period_end_time"
            )
        if period_end > self.clock():
            raise FailedPrecondition(
                f"the period ending {_t(period_end)} has not ended yet", field="period_end_time"
            )
        body = {"builder_id": builder_id, "period_end": _t(period_end)}
        scope = builder_scope("ClosePeriod", builder_id)
        async with self._builder_close_lock(builder_id):
            for _ in range(3):
                async with self._close_slots, self.engine.connect() as conn:
                    prior = await store.peek_idempotency(conn, scope, request_id)
                    if prior is not None:
                        if prior["fingerprint"] != fingerprint(body):
                            raise AlreadyExists(
                                f"request_id {quote(request_id)} was already used with a different request",
                                field="request_id",
                            )
                        if prior["reply"] is not None:
                            return from_json(CloseSummary, prior["reply"])
                    inputs = await self._close_inputs(conn, builder_id, period)
                fetched = await self._read_close_usage(builder_id, period, inputs) if inputs else None

                async def work(conn: AsyncConnection, fetched: _CloseUsage | None = fetched) -> dict:
                    return await self._close(conn, builder_id, period, fetched)

                try:
                    async with self._close_slots:
                        return await self._idempotent(
                            "ClosePeriod", builder_id, request_id, body, work, CloseSummary
                        )
                except _StaleCloseInputs:
                    log.info(
                        "billing.period.close_inputs_changed", builder_id=builder_id, period=period.label
                    )
        raise Unavailable("the builder's subscriptions kept changing during the close; retry it")

    @contextlib.asynccontextmanager
    async def _builder_close_lock(self, builder_id: str) -> AsyncIterator[None]:
        entry = self._close_locks.setdefault(builder_id, (asyncio.Lock(), [0]))
        entry[1][0] += 1
        try:
            async with entry[0]:
                yield
        finally:
            entry[1][0] -= 1
            if entry[1][0] == 0:
                self._close_locks.pop(builder_id, None)

    async def _close_inputs(
        self, conn: AsyncConnection, builder_id: str, period: Any
    ) -> dict[str, Any] | None:
        """Phase 1's short reads: the plan versions in force for the customers still to invoice, and
        those of the previous period's billed usage (for late usage). None when nobody is left."""
        done = await store.invoiced_customers(conn, builder_id, period.start)
        todo = [
            c
            for c in await store.billable_customers(conn, builder_id, period.start, period.end)
            if c["customer_id"] not in done
        ]
        if not todo:
            return None
        prev = period_containing(period.start - EPSILON)
        timelines = {c["customer_id"]: self._timeline(c, period) for c in todo}
        keys = {part.key for parts in timelines.values() for part in parts}
        billed = await store.billed_usage(conn, builder_id, prev.start)
        prev_keys = {(v["plan_id"], v["plan_version"]) for v in billed.values()}
        raw_specs = await store.plan_specs(conn, list(keys | prev_keys))
        ranged = {cid: _ranges(parts, period) for cid, parts in timelines.items() if _ranges(parts, period)}
        return {"keys": keys, "prev_keys": prev_keys, "specs": raw_specs, "ranged": ranged}

    async def _read_close_usage(self, builder_id: str, period: Any, inputs: dict[str, Any]) -> _CloseUsage:
        """The settled cutoff and every meter's usage for the close; holds no database connection."""
        prev = period_containing(period.start - EPSILON)
        specs = {k: plan_from_dict(v) for k, v in inputs["specs"].items()}
        needs = meter_needs([specs[k] for k in inputs["keys"]])
        prev_needs = meter_needs([specs[k] for k in inputs["prev_keys"]])
        first_meter = next(iter(sorted(needs)), None) or next(iter(sorted(prev_needs)), None)
        if first_meter is None:
            cutoff = self.clock()
        else:
            cutoff = await self._settled_cutoff(builder_id, first_meter, period.start, period.end)
        usage, prev_usage = await asyncio.gather(
            query_period(self.metering, builder_id, needs, period.start, period.end, cutoff),
            query_period(self.metering, builder_id, prev_needs, prev.start, prev.end, cutoff)
            if prev_needs
            else asyncio.sleep(0, None),
        )
        ranged = {}
        for cid, ranges in inputs["ranged"].items():
            # Cancelled or changed plan inside the period: each range priced on its own usage only.
            ranged[cid] = (
                ranges,
                tuple(
                    [
                        await query_period(
                            self.metering,
                            builder_id,
                            meter_needs([specs[key]]),
                            lo,
                            hi,
                            cutoff,
                            customer_id=cid,
                        )
                        for lo, hi, key in ranges
                    ]
                ),
            )
        return _CloseUsage(
            frozenset(inputs["keys"]), frozenset(inputs["prev_keys"]), cutoff, usage, prev_usage, ranged
        )

    async def _close(
        self, conn: AsyncConnection, builder_id: str, period: Any, fetched: _CloseUsage | None
    ) -> dict[str, Any]:
        started = self.clock()
        await store.lock_builder(conn, builder_id)
        done = await store.invoiced_customers(conn, builder_id, period.start)
        todo = [
            c
            for c in await store.billable_customers(conn, builder_id, period.start, period.end)
            if c["customer_id"] not in done
        ]
        cutoff: datetime | None = None
        finalized = 0
        if todo:
            if fetched is None:
                raise _StaleCloseInputs()
            cutoff, finalized = await self._finalize(conn, builder_id, period, todo, fetched)
        summary = await store.period_summary(conn, builder_id, period.start)
        if cutoff is None:
            cutoff_row = await store.period_invoices(conn, builder_id, period.start)
            cutoff = next((r["usage_cutoff"] for r in cutoff_row.values()), None)
        log.info(
            "billing.period.closed",
            builder_id=builder_id,
            period=period.label,
            finalized=finalized,
            invoices=sum(r["n"] for r in summary),
            seconds=round((self.clock() - started).total_seconds(), 3),
        )
        return CloseSummary(
            sum(r["n"] for r in summary),
            finalized,
            cutoff,
            tuple(CurrencyTotal(r["currency_code"], r["total"]) for r in summary),
        )

    async def _finalize(
        self,
        conn: AsyncConnection,
        builder_id: str,
        period: Any,
        todo: list[dict[str, Any]],
        fetched: _CloseUsage,
    ) -> tuple[datetime, int]:
        prev = period_containing(period.start - EPSILON)
        timelines = {c["customer_id"]: self._timeline(c, period) for c in todo}
        in_force = {cid: parts[-1].key for cid, parts in timelines.items()}
        billed = await store.billed_usage(conn, builder_id, prev.start)
        prev_versions = {(v["plan_id"], v["plan_version"]) for v in billed.values()}
        part_keys = {part.key for parts in timelines.values() for part in parts}
        if not (part_keys <= fetched.keys and prev_versions <= fetched.prev_keys):
            # A subscription or plan change landed between the phases: read again.
            raise _StaleCloseInputs()
        raw_specs = await store.plan_specs(conn, list(part_keys) + list(prev_versions))
        specs = {k: plan_from_dict(v) for k, v in raw_specs.items()}
        fee = await self._fee_rule(conn, builder_id)
        cutoff, usage, prev_usage = fetched.cutoff, fetched.usage, fetched.prev_usage
        todo_ids = [c["customer_id"] for c in todo]
        balances = await store.lock_wallets(conn, builder_id, todo_ids)
        first_number = await store.take_invoice_numbers(conn, builder_id, len(todo))
        now = self.clock()
        invoice_rows: list[dict] = []
        line_rows: list[dict] = []
        debits: dict[str, Decimal] = {}
        wallet_rows: list[dict] = []
        earnings_rows: list[dict] = []
        negative: list[tuple[str, str, str, list[dict]]] = []
        for offset, c in enumerate(todo):
            cid = c["customer_id"]
            key = in_force[cid]
            spec = specs[key]
            parts = timelines[cid]
            ranges = _ranges(parts, period)
            if ranges and fetched.ranged.get(cid, ((),))[0] != ranges:
                raise _StaleCloseInputs()  # cancelled or changed between the phases: read again
            part_usage = fetched.ranged[cid][1] if ranges else (usage,)
            customer_usage = part_usage[-1]
            by_charge = charge_usage(spec, customer_usage, cid)
            late: list[LateUsage] = []
            usage_json = {k: usage_to_json(v) for k, v in by_charge.items()}
            for (bcid, charge_key), snap in billed.items():
                if bcid != cid or prev_usage is None:
                    continue
                prev_spec = specs[(snap["plan_id"], snap["plan_version"])]
                # The closed period was priced prorated when the subscription started inside it.
                charge = prorate_plan(prev_spec, active_share(prev, c["start_time"], prev.end)).charge(
                    charge_key
                )
                now_usage: ChargeUsage = charge_usage(prev_spec, prev_usage, cid)[charge_key]
                late.append(LateUsage(charge, prev, usage_from_json(snap["usage_snapshot"]), now_usage))
                usage_json[f"late:{charge_key}"] = usage_to_json(now_usage)
            if len(parts) == 1 and active_share(period, parts[0].start, parts[0].end) == 1:
                draft = build_invoice(spec, by_charge, fee, period, late)
            else:
                # Started, cancelled or changed plan inside the period: each part priced by its
                # version under the proration rule (domain/proration.py).
                segments = [
                    Segment(
                        specs[p.key],
                        f"{p.key[0]} v{p.key[1]}",
                        p.start,
                        p.end,
                        charge_usage(specs[p.key], u, cid),
                    )
                    for p, u in zip(parts, part_usage, strict=True)
                ]
                draft = build_segmented_invoice(segments, fee, period, late)
            if len(parts) > 1:
                # A split period keeps no usage snapshot (late usage is not re-read for it) and no
                # per-tag breakdown: both are per charge, and its charges appear once per part.
                usage_json = {k: v for k, v in usage_json.items() if k.startswith("late:")}
            _check_recordable(draft, cid)
            invoice_id = _new_id("inv")
            tags = (
                {}
                if len(parts) > 1
                else {ch.meter_key: usage_by_tag(customer_usage, ch.meter_key, cid) for ch in spec.charges}
            )
            lines = _line_rows(invoice_id, draft.lines, period.start, prev.start, usage_json, tags)
            _record_usage_reads(
                lines, [(p.usage_start, p.usage_end) for p in parts for _ in specs[p.key].charges], cutoff
            )
            applied = apply_wallet(draft.subtotal, balances.get(cid, ZERO)).applied
            if applied > 0:
                debits[cid] = applied
                wallet_rows.append(
                    {
                        "id": _new_id("wtx"),
                        "builder_id": builder_id,
                        "customer_id": cid,
                        "amount": -applied,
                        "invoice_id": invoice_id,
                        "create_time": now,
                    }
                )
            paid = applied == draft.subtotal
            invoice_rows.append(
                {
                    "id": invoice_id,
                    "builder_id": builder_id,
                    "customer_id": cid,
                    "app_id": c["app_id"],
                    "number": first_number + offset,
                    "status": "finalized",
                    "currency_code": spec.currency,
                    "period_start": period.start,
                    "period_end": period.end,
                    "usage_cutoff": cutoff,
                    "plan_id": key[0],
                    "plan_version": key[1],
                    "total": draft.subtotal,
                    "wallet_applied": applied,
                    "credited": ZERO,
                    "amount_paid": ZERO,
                    "paid_time": now if paid else None,
                    "finalize_time": now,
                    "void_time": None,
                    "void_reason": None,
                }
            )
            line_rows.extend(lines)
            negative.append((cid, spec.currency, invoice_id, lines))
            if paid and draft.subtotal > 0:
                parties = EarningsParties(builder_id, c["app_id"], cid, invoice_id)
                entries = earnings_for_payment([_stored_line(r) for r in lines], spec.currency, parties)
                earnings_rows.extend(_earnings_rows(entries, invoice_id))
        await store.bulk_insert(conn, store.invoices, invoice_rows)
        await store.bulk_insert(conn, store.invoice_lines, [_jsonb(r) for r in line_rows])
        await store.debit_wallets(conn, builder_id, debits, wallet_rows)
        await store.append_earnings(conn, earnings_rows)
        # Lines priced below their provider cost: one NEGATIVE_MARGIN alert per (invoice, charge), in
        # the close's transaction (alerts.py; a replayed close finalizes nothing, so raises nothing).
        for cid, currency, invoice_id, lines in negative:
            await margin_alerts(conn, now, builder_id, cid, currency, period.start, invoice_id, lines)
        return cutoff, len(invoice_rows)
