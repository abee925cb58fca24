"""Late usage of closed periods: which periods to re-read, the metering reads, and the adjustments.

THE RULE (services/billing/README.md, "Late usage"): at a close (and in a preview), every closed period
of a customer that metering may still have accepted events for since it was last read is read again at
the close's cutoff; for each (period, charge) whose usage changed, the invoice gets one marked
adjustment line priced under the plan version that period was billed with: round(price(usage now)) -
round(price(latest snapshot)), the marginal price of the late quantity on top of what was billed. The
latest snapshot is the usage recorded by the period's own line or by its latest adjustment line, so an
adjustment, once finalized, moves the snapshot forward and the same events are never billed twice.
A period split by an immediate plan change is adjusted per part (its lines' snapshots name the part):
a late event lands on the part its occurred time falls in, priced by that part's version and share.

Which periods may have changed: metering refuses events whose occurred time is older than its
retention (METERING_MAX_EVENT_AGE_DAYS) at ingestion. A period P was last read at the customer's latest
invoice cutoff C; any event of P ingested after C was ingested at some time t > C with
occurred >= t - retention > C - retention, so P can only have changed if P.end > C - retention.
Billing uses its own BILLING_LATE_USAGE_MAX_AGE_DAYS for the retention, which must be at least
metering's (a smaller value would skip periods metering still fills).

Cost: one `query_period` (a handful of QueryUsage calls, every customer at once) per (period, meter)
in the window, and before that ONE windowed QueryUsage per meter (month windows, grouped by customer):
a period whose per-customer event counts and values equal its snapshots cannot have changed (events
are only ever added), and is not read again.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from billing import store
from billing.clients import MeteringClient
from billing.domain import BillingPeriod, ChargeUsage, LateUsage, PlanSpec, period_containing
from billing.domain.proration import active_share, prorate_plan
from billing.usage import (
    ZERO,
    PeriodUsage,
    charge_usage,
    meter_needs,
    query_period,
    usage_from_json,
    usage_to_json,
)

LATE_PREFIX = "late:"


def late_key(period_start: datetime, charge_key: str, part_start: datetime | None = None) -> str:
    """The key of a late line's usage snapshot and read in the close's per-customer maps."""
    part = f"@{part_start.isoformat()}" if part_start is not None else ""
    return f"{LATE_PREFIX}{period_start.isoformat()}{part}:{charge_key}"


@dataclass(frozen=True)
class Part:
    """One part of a period split by an immediate plan change, as its lines priced it: the plan
    version, the active range [start, end) it was prorated by, and the range its usage was read over."""

    plan_key: tuple[str, int]
    start: datetime
    end: datetime
    usage_start: datetime
    usage_end: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "plan_id": self.plan_key[0],
            "plan_version": self.plan_key[1],
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "usage_start": self.usage_start.isoformat(),
            "usage_end": self.usage_end.isoformat(),
        }

    @staticmethod
    def from_json(d: dict[str, Any]) -> Part:
        return Part(
            (d["plan_id"], int(d["plan_version"])),
            datetime.fromisoformat(d["start"]),
            datetime.fromisoformat(d["end"]),
            datetime.fromisoformat(d["usage_start"]),
            datetime.fromisoformat(d["usage_end"]),
        )

    @property
    def label(self) -> str:
        return f"{self.plan_key[0]} v{self.plan_key[1]}, {_stamp(self.start)} to {_stamp(self.end)} UTC"


def _stamp(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def part_snapshot(usage: ChargeUsage, part: Part) -> dict[str, Any]:
    """The snapshot a split period's line records: its usage and the part it priced."""
    return {**usage_to_json(usage), "part": part.to_json()}


def record_parts(
    rows: list[dict[str, Any]],
    parts: list[Any],
    part_usage: tuple[PeriodUsage, ...],
    specs: dict[tuple[str, int], PlanSpec],
    customer_id: str,
) -> None:
    """Give the usage lines of a split period's invoice rows (one per charge of each part, in part and
    plan order, as domain.proration.build_segmented_invoice writes them) the snapshot of their part."""
    snaps = [
        part_snapshot(
            charge_usage(specs[p.key], u, customer_id)[c.key],
            Part(p.key, p.start, p.end, p.usage_start, p.usage_end),
        )
        for p, u in zip(parts, part_usage, strict=True)
        for c in specs[p.key].charges
    ]
    usage_rows = [r for r in rows if r["kind"] == "usage"]
    if len(usage_rows) != len(snaps):
        raise RuntimeError("a split invoice's usage lines do not match its parts' charges")
    for row, snap in zip(usage_rows, snaps, strict=True):
        row["usage_snapshot"] = snap


@dataclass(frozen=True)
class Snapshot:
    """The latest usage billed for one (customer, charge, closed period or part of one)."""

    customer_id: str
    charge_key: str
    period: BillingPeriod
    usage: ChargeUsage
    # The ingestion cutoff this usage was read with (the cutoff of the invoice that recorded it).
    read_cutoff: datetime
    # The plan version the period (or part) was billed with.
    plan_key: tuple[str, int]
    part: Part | None = None

    @property
    def read(self) -> tuple[datetime, datetime | None, str]:
        """What metering read gives its usage now: the whole period for every customer at once, or
        one part of a split period for this customer."""
        if self.part is None:
            return (self.period.start, None, "")
        return (self.period.start, self.part.usage_start, self.customer_id)


@dataclass(frozen=True)
class LateRead:
    """The metering read behind one adjustment line: events of [start, end) ingested in [after, before)."""

    start: datetime
    end: datetime
    after: datetime
    before: datetime | None


def _minus(instant: datetime, age: timedelta) -> datetime:
    try:
        return instant - age
    except OverflowError:
        return datetime.min.replace(tzinfo=instant.tzinfo)


def by_customer(snapshots: list[Snapshot]) -> dict[str, list[Snapshot]]:
    out: dict[str, list[Snapshot]] = defaultdict(list)
    for s in snapshots:
        out[s.customer_id].append(s)
    return dict(out)


async def load_snapshots(
    conn: AsyncConnection,
    builder_id: str,
    before: datetime,
    max_age: timedelta,
    customer_ids: set[str] | None = None,
) -> list[Snapshot]:
    """The latest snapshots of every closed period (starting before `before`) that may have changed
    since its customer's last read (see the module docstring), for `customer_ids` (None: all)."""
    only = next(iter(customer_ids)) if customer_ids is not None and len(customer_ids) == 1 else None
    last = await store.late.last_read_cutoffs(conn, builder_id, before, only)
    if customer_ids is not None:
        last = {c: t for c, t in last.items() if c in customer_ids}
    if not last:
        return []
    since = period_containing(_minus(min(last.values()), max_age)).start
    rows = await store.late.latest_snapshots(conn, builder_id, since, before, only)
    out = []
    for r in rows:
        cid = r["customer_id"]
        if cid not in last:
            continue
        period = period_containing(r["usage_period_start"])
        if period.end <= _minus(last[cid], max_age):
            continue
        raw = r["usage_snapshot"]
        part = Part.from_json(raw["part"]) if raw.get("part") else None
        out.append(
            Snapshot(
                cid,
                r["charge_key"],
                period,
                usage_from_json(raw),
                r["read_cutoff"],
                part.plan_key if part else (r["plan_id"], r["plan_version"]),
                part,
            )
        )
    return out


def plan_keys(snapshots: list[Snapshot]) -> set[tuple[str, int]]:
    return {s.plan_key for s in snapshots}


async def _changed_reads(
    metering: MeteringClient,
    builder_id: str,
    snapshots: list[Snapshot],
    specs: dict[tuple[str, int], PlanSpec],
    cutoff: datetime | None,
    customer_id: str,
) -> set[tuple[datetime, datetime | None, str]]:
    """The reads (Snapshot.read) whose snapshots differ from metering's per-customer monthly totals:
    one windowed query per meter over the whole window, counts and values only. The parts of a split
    period are compared by their sums (they cover the month); any difference re-reads every part."""
    meters: set[str] = set()
    for s in snapshots:
        charge = specs[s.plan_key].charge(s.charge_key)
        meters.add(charge.meter_key)
        if charge.provider_cost_meter_key:
            meters.add(charge.provider_cost_meter_key)
    lo = min(s.period.start for s in snapshots)
    hi = max(s.period.end for s in snapshots)
    answers = await asyncio.gather(
        *(
            metering.query_usage(
                builder_id=builder_id,
                meter_key=meter,
                start=lo,
                end=hi,
                customer_id=customer_id,
                group_by_customer=True,
                monthly=True,
                cutoff=cutoff,
            )
            for meter in sorted(meters)
        )
    )
    totals: dict[tuple[str, datetime, str], tuple[Decimal, int]] = {}
    for meter, answer in zip(sorted(meters), answers, strict=True):
        for row in answer.rows:
            totals[(meter, row.window_start, row.customer_id)] = (row.value, row.event_count)
    # Per (customer, period, charge, whole or parts): what the snapshots say, summed over parts.
    # Grouped by the meters too: parts whose charges read other meters never sum to one meter's total
    # (they are then read again each time, never missed).
    billed: dict[tuple[str, datetime, str, str, str, bool], list[Any]] = {}
    for s in snapshots:
        charge = specs[s.plan_key].charge(s.charge_key)
        key = (
            s.customer_id,
            s.period.start,
            s.charge_key,
            charge.meter_key,
            charge.provider_cost_meter_key or "",
            s.part is not None,
        )
        entry = billed.setdefault(key, [charge, ZERO, ZERO, ZERO])
        entry[1] += s.usage.quantity
        entry[2] += s.usage.request_count
        entry[3] += s.usage.provider_cost
    changed_groups: set[tuple[str, datetime, bool]] = set()
    for (cid, start, *_, parted), (charge, quantity, count, cost) in billed.items():
        value, events = totals.get((charge.meter_key, start, cid), (ZERO, 0))
        now_cost = ZERO
        if charge.provider_cost_meter_key:
            now_cost = totals.get((charge.provider_cost_meter_key, start, cid), (ZERO, 0))[0]
        # Parts: only the count and the cost add up across parts for every aggregation.
        if (count, cost) != (events, now_cost) or (not parted and quantity != value):
            changed_groups.add((cid, start, parted))
    return {
        s.read for s in snapshots if (s.customer_id, s.period.start, s.part is not None) in changed_groups
    }


async def read_late_usage(
    metering: MeteringClient,
    builder_id: str,
    snapshots: list[Snapshot],
    specs: dict[tuple[str, int], PlanSpec],
    cutoff: datetime | None,
    customer_id: str = "",
) -> dict[tuple[datetime, datetime | None, str], PeriodUsage]:
    """Metering's usage at `cutoff` of every closed period (or part) that changed since its snapshots,
    by Snapshot.read (a read missing from the answer did not change). Holds no database connection."""
    if not snapshots:
        return {}
    changed = await _changed_reads(metering, builder_id, snapshots, specs, cutoff, customer_id)
    wanted: dict[tuple[datetime, datetime | None, str], tuple[datetime, datetime, set]] = {}
    for s in snapshots:
        if s.read not in changed:
            continue
        lo, hi = (s.part.usage_start, s.part.usage_end) if s.part else (s.period.start, s.period.end)
        wanted.setdefault(s.read, (lo, hi, set()))[2].add(s.plan_key)
    gate = asyncio.Semaphore(2)

    async def one(read: tuple[datetime, datetime | None, str], lo: datetime, hi: datetime, keys: set) -> Any:
        async with gate:
            usage = await query_period(
                metering,
                builder_id,
                meter_needs([specs[k] for k in sorted(keys)]),
                lo,
                hi,
                cutoff,
                customer_id=read[2] or customer_id,
            )
        return read, usage

    return dict(await asyncio.gather(*(one(r, lo, hi, k) for r, (lo, hi, k) in sorted(wanted.items()))))


def late_adjustments(
    customer_id: str,
    subscription_start: datetime,
    snapshots: list[Snapshot],
    specs: dict[tuple[str, int], PlanSpec],
    usage: dict[tuple[datetime, datetime | None, str], PeriodUsage],
    cutoff: datetime | None,
) -> tuple[list[LateUsage], dict[str, dict], dict[str, LateRead]]:
    """One customer's late usage (`snapshots` are that customer's), oldest period first, its parts in
    order, each in its plan's charge order: the domain's LateUsage items, the snapshot each adjustment
    line records, and the read behind each line."""
    mine = [s for s in snapshots if s.read in usage]

    def order(s: Snapshot) -> tuple:
        charges = [c.key for c in specs[s.plan_key].charges]
        return (s.period.start, s.part.usage_start if s.part else s.period.start, charges.index(s.charge_key))

    late: list[LateUsage] = []
    usage_json: dict[str, dict] = {}
    reads: dict[str, LateRead] = {}
    for s in sorted(mine, key=order):
        spec = specs[s.plan_key]
        now = charge_usage(spec, usage[s.read], customer_id)[s.charge_key]
        key = late_key(s.period.start, s.charge_key, s.part.usage_start if s.part else None)
        if s.part is None:
            # The period was priced prorated when the subscription started inside it.
            share = active_share(s.period, subscription_start, s.period.end)
            late.append(LateUsage(prorate_plan(spec, share).charge(s.charge_key), s.period, s.usage, now))
            usage_json[key] = usage_to_json(now)
            reads[key] = LateRead(s.period.start, s.period.end, s.read_cutoff, cutoff)
        else:
            # A part of a split period: priced as its own lines were, by its version and share.
            share = active_share(s.period, s.part.start, s.part.end)
            charge = prorate_plan(spec, share).charge(s.charge_key)
            span = (s.part.usage_start, s.part.usage_end)
            late.append(LateUsage(charge, s.period, s.usage, now, span, s.part.label))
            usage_json[key] = part_snapshot(now, s.part)
            reads[key] = LateRead(*span, s.read_cutoff, cutoff)
    return late, usage_json, reads
