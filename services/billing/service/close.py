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
    EarningsParties,
    apply_wallet,
    build_invoice,
    earnings_for_payment,
    period_containing,
    plan_from_dict,
)
from billing.domain.proration import Segment, active_share, build_segmented_invoice
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
from billing.service.late import (
    LATE_PREFIX,
    Snapshot,
    by_customer,
    late_adjustments,
    load_snapshots,
    plan_keys,
    read_late_usage,
    record_parts,
)
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
    cutoff: datetime
    usage: PeriodUsage
    # Late usage (service/late.py): the snapshots of the closed periods that may have changed, and
    # metering's usage of those that did, by Snapshot.read.
    snapshots: tuple[Snapshot, ...]
    late_usage: dict[tuple[datetime, datetime | None, str], PeriodUsage]
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
        the snapshots of their closed periods that may have late usage. None when nobody is left."""
        done = await store.invoiced_customers(conn, builder_id, period.start)
        todo = [
            c
            for c in await store.billable_customers(conn, builder_id, period.start, period.end)
            if c["customer_id"] not in done
        ]
        if not todo:
            return None
        timelines = {c["customer_id"]: self._timeline(c, period) for c in todo}
        keys = {part.key for parts in timelines.values() for part in parts}
        snapshots = await load_snapshots(conn, builder_id, period.start, self.late_max_age, set(timelines))
        raw_specs = await store.plan_specs(conn, list(keys | plan_keys(snapshots)))
        ranged = {cid: _ranges(parts, period) for cid, parts in timelines.items() if _ranges(parts, period)}
        return {"keys": keys, "snapshots": snapshots, "specs": raw_specs, "ranged": ranged}

    async def _read_close_usage(self, builder_id: str, period: Any, inputs: dict[str, Any]) -> _CloseUsage:
        """The settled cutoff and every meter's usage for the close; holds no database connection."""
        specs = {k: plan_from_dict(v) for k, v in inputs["specs"].items()}
        needs = meter_needs([specs[k] for k in inputs["keys"]])
        late_needs = meter_needs([specs[k] for k in plan_keys(inputs["snapshots"])])
        first_meter = next(iter(sorted(needs)), None) or next(iter(sorted(late_needs)), None)
        if first_meter is None:
            cutoff = self.clock()
        else:
            cutoff = await self._settled_cutoff(builder_id, first_meter, period.start, period.end)
        usage, late_usage = await asyncio.gather(
            query_period(self.metering, builder_id, needs, period.start, period.end, cutoff),
            read_late_usage(self.metering, builder_id, inputs["snapshots"], specs, cutoff),
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
            frozenset(inputs["keys"]), cutoff, usage, tuple(inputs["snapshots"]), late_usage, ranged
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
        timelines = {c["customer_id"]: self._timeline(c, period) for c in todo}
        in_force = {cid: parts[-1].key for cid, parts in timelines.items()}
        snapshots = await load_snapshots(conn, builder_id, period.start, self.late_max_age, set(timelines))
        part_keys = {part.key for parts in timelines.values() for part in parts}
        if not part_keys <= fetched.keys or tuple(snapshots) != fetched.snapshots:
            # A subscription or plan change, or a void of an invoice holding a snapshot, landed between
            # the phases: read again.
            raise _StaleCloseInputs()
        raw_specs = await store.plan_specs(conn, list(part_keys | plan_keys(snapshots)))
        specs = {k: plan_from_dict(v) for k, v in raw_specs.items()}
        fee = await self._fee_rule(conn, builder_id)
        cutoff, usage = fetched.cutoff, fetched.usage
        snapshots_of = by_customer(snapshots)
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
            usage_json = {k: usage_to_json(v) for k, v in by_charge.items()}
            late, late_json, late_reads = late_adjustments(
                cid, c["start_time"], snapshots_of.get(cid, []), specs, fetched.late_usage, cutoff
            )
            usage_json.update(late_json)
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
                # A split period keeps no per-tag breakdown (per charge, and its charges appear once per
                # part); its usage snapshots are per part (record_parts below).
                usage_json = {k: v for k, v in usage_json.items() if k.startswith(LATE_PREFIX)}
            _check_recordable(draft, cid)
            invoice_id = _new_id("inv")
            tags = (
                {}
                if len(parts) > 1
                else {ch.meter_key: usage_by_tag(customer_usage, ch.meter_key, cid) for ch in spec.charges}
            )
            lines = _line_rows(invoice_id, draft.lines, period.start, usage_json, tags, late_reads)
            # Usage lines: the read each priced (late lines recorded theirs in _line_rows).
            _record_usage_reads(
                lines, [(p.usage_start, p.usage_end) for p in parts for _ in specs[p.key].charges], cutoff
            )
            if len(parts) > 1:
                record_parts(lines, parts, part_usage, specs, cid)
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
