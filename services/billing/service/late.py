"""Late usage of closed periods: which periods to re-read, the metering reads, and the adjustments.

THE RULE (services/billing/README.md, "Late usage"): at a close (and in a preview), every closed period
of a customer that metering may still have accepted events for since it was last read is read again at
the close's cutoff; for each (period, charge) whose usage changed, the invoice gets one marked
adjustment line priced under the plan version that period was billed with: round(price(usage now)) -
round(price(latest snapshot)), the marginal price of the late quantity on top of what was billed. The
latest snapshot is the usage recorded by the period's own line or by its latest adjustment line, so an
adjustment, once finalized, moves the snapshot forward and the same events are never billed twice.

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
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from billing import store
from billing.clients import MeteringClient
from billing.domain import BillingPeriod, ChargeUsage, LateUsage, PlanSpec, period_containing
from billing.domain.proration import active_share, prorate_plan
from billing.usage import PeriodUsage, charge_usage, meter_needs, query_period, usage_from_json, usage_to_json

LATE_PREFIX = "late:"


def late_key(period_start: datetime, charge_key: str) -> str:
    """The key of a late line's usage snapshot and read in the close's per-customer maps."""
    return f"{LATE_PREFIX}{period_start.isoformat()}:{charge_key}"


@dataclass(frozen=True)
class Snapshot:
    """The latest usage billed for one (customer, charge, closed period)."""

    customer_id: str
    charge_key: str
    period: BillingPeriod
    usage: ChargeUsage
    # The ingestion cutoff this usage was read with (the cutoff of the invoice that recorded it).
    read_cutoff: datetime
    # The plan version the period was billed with.
    plan_key: tuple[str, int]


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
        out.append(
            Snapshot(
                cid,
                r["charge_key"],
                period,
                usage_from_json(r["usage_snapshot"]),
                r["read_cutoff"],
                (r["plan_id"], r["plan_version"]),
            )
        )
    return out


def plan_keys(snapshots: list[Snapshot]) -> set[tuple[str, int]]:
    return {s.plan_key for s in snapshots}


def periods_to_read(snapshots: list[Snapshot]) -> dict[datetime, set[tuple[str, int]]]:
    """Per closed period (by start), the plan versions its snapshots were billed with."""
    out: dict[datetime, set[tuple[str, int]]] = defaultdict(set)
    for s in snapshots:
        out[s.period.start].add(s.plan_key)
    return dict(out)


async def _changed_periods(
    metering: MeteringClient,
    builder_id: str,
    snapshots: list[Snapshot],
    specs: dict[tuple[str, int], PlanSpec],
    cutoff: datetime | None,
    customer_id: str,
) -> set[datetime]:
    """The periods where some snapshot differs from metering's per-customer monthly totals: one
    windowed query per meter over the whole window, counts and values only."""
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
    totals: dict[tuple[str, datetime, str], tuple[Any, int]] = {}
    for meter, answer in zip(sorted(meters), answers, strict=True):
        for row in answer.rows:
            totals[(meter, row.window_start, row.customer_id)] = (row.value, row.event_count)
    changed: set[datetime] = set()
    for s in snapshots:
        charge = specs[s.plan_key].charge(s.charge_key)
        value, count = totals.get((charge.meter_key, s.period.start, s.customer_id), (0, 0))
        cost = 0
        if charge.provider_cost_meter_key:
            cost = totals.get((charge.provider_cost_meter_key, s.period.start, s.customer_id), (0, 0))[0]
        if (value, count, cost) != (s.usage.quantity, s.usage.request_count, s.usage.provider_cost):
            changed.add(s.period.start)
    return changed


async def read_late_usage(
    metering: MeteringClient,
    builder_id: str,
    snapshots: list[Snapshot],
    specs: dict[tuple[str, int], PlanSpec],
    cutoff: datetime | None,
    customer_id: str = "",
) -> dict[datetime, PeriodUsage]:
    """Metering's usage at `cutoff` of every closed period that changed since its snapshots, by
    period start (a period missing from the answer did not change). Holds no database connection."""
    if not snapshots:
        return {}
    changed = await _changed_periods(metering, builder_id, snapshots, specs, cutoff, customer_id)
    wanted = {p: keys for p, keys in periods_to_read(snapshots).items() if p in changed}
    gate = asyncio.Semaphore(2)

    async def one(start: datetime, keys: set[tuple[str, int]]) -> tuple[datetime, PeriodUsage]:
        period = period_containing(start)
        async with gate:
            usage = await query_period(
                metering,
                builder_id,
                meter_needs([specs[k] for k in sorted(keys)]),
                period.start,
                period.end,
                cutoff,
                customer_id=customer_id,
            )
        return start, usage

    return dict(await asyncio.gather(*(one(p, k) for p, k in sorted(wanted.items()))))


def late_adjustments(
    customer_id: str,
    subscription_start: datetime,
    snapshots: list[Snapshot],
    specs: dict[tuple[str, int], PlanSpec],
    usage: dict[datetime, PeriodUsage],
    cutoff: datetime | None,
) -> tuple[list[LateUsage], dict[str, dict], dict[str, LateRead]]:
    """One customer's late usage (`snapshots` are that customer's), oldest period first and in each
    period's plan order: the domain's LateUsage items, the snapshot each adjustment line records, and
    the read behind each line."""
    mine = [s for s in snapshots if s.period.start in usage]
    order = {
        (s.period.start, s.charge_key): [c.key for c in specs[s.plan_key].charges].index(s.charge_key)
        for s in mine
    }
    late: list[LateUsage] = []
    usage_json: dict[str, dict] = {}
    reads: dict[str, LateRead] = {}
    for s in sorted(mine, key=lambda s: (s.period.start, order[(s.period.start, s.charge_key)])):
        spec = specs[s.plan_key]
        # The period was priced prorated when the subscription started inside it.
        charge = prorate_plan(spec, active_share(s.period, subscription_start, s.period.end)).charge(
            s.charge_key
        )
        now = charge_usage(spec, usage[s.period.start], customer_id)[s.charge_key]
        late.append(LateUsage(charge, s.period, s.usage, now))
        key = late_key(s.period.start, s.charge_key)
        usage_json[key] = usage_to_json(now)
        reads[key] = LateRead(s.period.start, s.period.end, s.read_cutoff, cutoff)
    return late, usage_json, reads
