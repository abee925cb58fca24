"""Turning metering answers into the domain's ChargeUsage, one query per meter for all customers.

A period close asks metering for each meter ONCE for every customer of the builder (grouped by
customer, plus by bucket where a size-bucket price needs it, plus by the client / workspace / workflow
tags for the usage-by-tag breakdown), all with the same ingestion cutoff, so the invoices can be
re-derived exactly later.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from billing.clients import MeteringClient, UsageAnswer
from billing.domain import ChargeUsage, PlanSpec, SizeBuckets

TAGS = ("client", "workspace", "workflow")
ZERO = Decimal(0)


@dataclass
class MeterNeeds:
    """What one meter must be asked for."""

    by_bucket: bool = False
    by_tags: bool = False


@dataclass
class PeriodUsage:
    """Answers for one period, keyed by meter: totals, buckets and tag rows per customer."""

    totals: dict[str, dict[str, tuple[Decimal, int]]] = field(default_factory=dict)
    buckets: dict[str, dict[str, dict[str, Decimal]]] = field(default_factory=dict)
    # meter -> customer -> tag -> value -> quantity
    tags: dict[str, dict[str, dict[str, dict[str, Decimal]]]] = field(default_factory=dict)


def meter_needs(specs: list[PlanSpec]) -> dict[str, MeterNeeds]:
    needs: dict[str, MeterNeeds] = {}
    for spec in specs:
        for charge in spec.charges:
            need = needs.setdefault(charge.meter_key, MeterNeeds())
            need.by_tags = True
            if isinstance(charge.price, SizeBuckets):
                need.by_bucket = True
            if charge.provider_cost_meter_key:
                needs.setdefault(charge.provider_cost_meter_key, MeterNeeds())
    return needs


async def query_period(
    client: MeteringClient,
    builder_id: str,
    needs: dict[str, MeterNeeds],
    start: datetime,
    end: datetime,
    cutoff: datetime | None,
    customer_id: str = "",
    concurrency: int = 8,
) -> PeriodUsage:
    """Ask metering everything `needs` lists for [start, end) with one cutoff; concurrently, bounded."""
    gate = asyncio.Semaphore(concurrency)
    out = PeriodUsage()

    async def ask(meter: str, **kwargs: Any) -> UsageAnswer:
        async with gate:
            return await client.query_usage(
                builder_id=builder_id,
                meter_key=meter,
                start=start,
                end=end,
                customer_id=customer_id,
                group_by_customer=True,
                cutoff=cutoff,
                **kwargs,
            )

    async def one(meter: str, need: MeterNeeds) -> None:
        jobs = [ask(meter)]
        if need.by_bucket:
            jobs.append(ask(meter, group_by_bucket=True))
        if need.by_tags:
            jobs.append(ask(meter, group_by_tags=TAGS))
        answers = await asyncio.gather(*jobs)
        totals: dict[str, tuple[Decimal, int]] = {}
        for row in answers[0].rows:
            totals[row.customer_id] = (row.value, row.event_count)
        out.totals[meter] = totals
        rest = list(answers[1:])
        if need.by_bucket:
            buckets: dict[str, dict[str, Decimal]] = defaultdict(dict)
            for row in rest.pop(0).rows:
                buckets[row.customer_id][row.bucket] = row.value
            out.buckets[meter] = dict(buckets)
        if need.by_tags:
            # Metering groups by the combination of tag values; each tag's breakdown is the
            # marginal sum, exact for the additive aggregations (COUNT, SUM) plans price.
            tags: dict[str, dict[str, dict[str, Decimal]]] = defaultdict(
                lambda: {t: defaultdict(lambda: ZERO) for t in TAGS}
            )
            for row in rest.pop(0).rows:
                per = tags[row.customer_id]
                for tag in TAGS:
                    per[tag][row.tags.get(tag, "")] += row.value
            out.tags[meter] = {c: {t: dict(v) for t, v in per.items()} for c, per in tags.items()}

    await asyncio.gather(*(one(m, n) for m, n in sorted(needs.items())))
    return out


def charge_usage(spec: PlanSpec, usage: PeriodUsage, customer_id: str) -> dict[str, ChargeUsage]:
    out: dict[str, ChargeUsage] = {}
    for charge in spec.charges:
        value, count = usage.totals.get(charge.meter_key, {}).get(customer_id, (ZERO, 0))
        buckets = (
            usage.buckets.get(charge.meter_key, {}).get(customer_id, {})
            if isinstance(charge.price, SizeBuckets)
            else {}
        )
        cost = ZERO
        if charge.provider_cost_meter_key:
            cost = usage.totals.get(charge.provider_cost_meter_key, {}).get(customer_id, (ZERO, 0))[0]
        workflows = usage.tags.get(charge.meter_key, {}).get(customer_id, {}).get("workflow", {})
        out[charge.key] = ChargeUsage(
            quantity=value,
            bucket_counts=dict(buckets),
            provider_cost=cost,
            request_count=Decimal(count),
            quantity_by_workflow={k: v for k, v in workflows.items() if k and v > 0},
        )
    return out


def usage_by_tag(usage: PeriodUsage, meter_key: str, customer_id: str) -> list[dict[str, str]]:
    per = usage.tags.get(meter_key, {}).get(customer_id, {})
    rows = []
    for tag in TAGS:
        for value, quantity in sorted(per.get(tag, {}).items()):
            rows.append({"tag": tag, "value": value, "quantity": _s(quantity)})
    return rows


def _s(value: Decimal) -> str:
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def usage_to_json(u: ChargeUsage) -> dict[str, Any]:
    return {
        "quantity": _s(u.quantity),
        "bucket_counts": {k: _s(v) for k, v in sorted(u.bucket_counts.items())},
        "provider_cost": _s(u.provider_cost),
        "request_count": _s(u.request_count),
        "quantity_by_workflow": {k: _s(v) for k, v in sorted(u.quantity_by_workflow.items())},
    }


def usage_from_json(d: dict[str, Any]) -> ChargeUsage:
    return ChargeUsage(
        quantity=Decimal(d["quantity"]),
        bucket_counts={k: Decimal(v) for k, v in d["bucket_counts"].items()},
        provider_cost=Decimal(d["provider_cost"]),
        request_count=Decimal(d["request_count"]),
        quantity_by_workflow={k: Decimal(v) for k, v in d["quantity_by_workflow"].items()},
    )
