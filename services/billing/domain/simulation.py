"""Pricing that changes nothing: a draft plan over real or described usage.

- A simulation prices with the very functions a close uses (`build_invoice`: same lines, same one
  rounding per line, same split), so a draft equal to the plan billed gives the billed invoice to the
  cent. Only late-usage adjustments are left out: they re-price an earlier period, not the draft.
- `Totals` is an invoice's total and its split; the parts sum exactly to the total because each is a
  sum of per-line parts that do (billing.domain.split).
- A described month gives each meter a value, an event count and, for size buckets, events per
  bucket. A charge reads its meter exactly as it reads metering's answer: the value (the provider cost
  for a cost-plus charge), the buckets, the events, and its provider-cost meter's value.
- A scaled month multiplies every quantity of a real month by a factor >= 0 (events and buckets too:
  a projection may hold fractional events; prices take them as they are, then round once per line).
"""

from __future__ import annotations

import decimal
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from common.errors import InvalidArgument

from .invoice import InvoiceDraft
from .money import DOMAIN_CONTEXT, ZERO, has_at_most_places
from .plan import PlanSpec
from .pricing import ChargeUsage, SizeBuckets

MAX_SCALE_FACTOR = Decimal(1_000_000)


@dataclass(frozen=True)
class Totals:
    """An invoice's total and split, in one currency."""

    currency: str
    total: Decimal = ZERO
    provider_cost: Decimal = ZERO
    platform_fee: Decimal = ZERO
    builder_margin: Decimal = ZERO

    def __add__(self, other: Totals) -> Totals:
        if other.currency != self.currency:
            raise ValueError(f"cannot add {other.currency} to {self.currency}")
        with decimal.localcontext(DOMAIN_CONTEXT):
            return Totals(
                self.currency,
                self.total + other.total,
                self.provider_cost + other.provider_cost,
                self.platform_fee + other.platform_fee,
                self.builder_margin + other.builder_margin,
            )


def draft_totals(draft: InvoiceDraft) -> Totals:
    return Totals(
        draft.currency,
        draft.subtotal,
        draft.provider_cost_total,
        draft.platform_fee_total,
        draft.builder_margin_total,
    )


def sum_totals(currency: str, parts: Iterable[Totals]) -> Totals:
    out = Totals(currency)
    for part in parts:
        out = out + part
    return out


@dataclass(frozen=True)
class MeterMonth:
    """One meter over a described month."""

    quantity: Decimal = ZERO
    event_count: Decimal = ZERO
    buckets: Mapping[str, Decimal] = field(default_factory=dict)


def usage_from_meters(spec: PlanSpec, meters: Mapping[str, MeterMonth]) -> dict[str, ChargeUsage]:
    """Each charge's usage from a month described meter by meter (a meter not described is zero)."""
    out: dict[str, ChargeUsage] = {}
    for charge in spec.charges:
        meter = meters.get(charge.meter_key, MeterMonth())
        cost = ZERO
        if charge.provider_cost_meter_key:
            cost = meters.get(charge.provider_cost_meter_key, MeterMonth()).quantity
        buckets = dict(meter.buckets) if isinstance(charge.price, SizeBuckets) else {}
        out[charge.key] = ChargeUsage(
            quantity=meter.quantity,
            bucket_counts=buckets,
            provider_cost=cost,
            request_count=meter.event_count,
        )
    return out


def scale_usage(usage: Mapping[str, ChargeUsage], factor: Decimal) -> dict[str, ChargeUsage]:
    """Every quantity of a real month times `factor` (0 to 1,000,000, at most 9 decimal places)."""
    if not ZERO <= factor <= MAX_SCALE_FACTOR or not has_at_most_places(factor, 9):
        raise InvalidArgument(
            f"the factor must be from 0 to {MAX_SCALE_FACTOR:,} with at most 9 decimal places", field="factor"
        )
    with decimal.localcontext(DOMAIN_CONTEXT):
        return {
            key: ChargeUsage(
                quantity=u.quantity * factor,
                bucket_counts={b: q * factor for b, q in u.bucket_counts.items()},
                provider_cost=u.provider_cost * factor,
                request_count=u.request_count * factor,
                quantity_by_workflow={w: q * factor for w, q in u.quantity_by_workflow.items()},
            )
            for key, u in usage.items()
        }
