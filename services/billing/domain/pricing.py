"""Price models and pricing one charge for one period.

Rules, in the order they are applied by `price_charge`:

1. Included quantity. `billable = max(0, quantity - included_quantity)`. Tiers, packages and unit
   prices apply to the billable quantity only (a tier's `up_to` counts billable units).
   SIZE_BUCKETS: included events are consumed bucket by bucket IN THE ORDER THE BUCKETS ARE LISTED
   in the charge (for page ranges listed ascending: the smallest documents first).
   COST_PLUS_MARKUP has no included quantity (validation requires 0): pass-through is cost-based.
2. The price model gives the amount before caps, with nine decimal places:
   - PER_UNIT: billable * unit_price.
   - GRADUATED: each unit is priced by the tier it falls in; tier i covers (up_to[i-1], up_to[i]];
     a tier's flat fee is charged once as soon as one billable unit falls in it. Zero billable
     units cost nothing (no flat fee).
   - VOLUME: every billable unit at the unit price of the tier the billable total falls in, plus
     that tier's flat fee; zero billable units cost nothing.
   - PACKAGE: ceil(billable / package_size) * package_price (a started package is a whole one).
   - SIZE_BUCKETS: sum over buckets of (events in bucket after the included ones) * bucket price.
   - COST_PLUS_MARKUP: provider_cost * (1 + markup_percent / 100)
     + request_count * fixed_per_request; the provider cost is the charge's own meter (its
     SUM is `usage.quantity`).
3. Caps: the amount is raised to `minimum_amount` and lowered to `maximum_amount`. A minimum is a
   commitment: it applies every period the charge is on the plan, even with zero usage.
   Caps are whole minor units (validation), so rounding a capped amount never crosses a cap.

Amounts stay at nine decimal places here; rounding to the minor unit happens when the invoice line
is finalized (see billing.domain.money).
"""

from __future__ import annotations

import decimal
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, Decimal

from common.errors import InvalidArgument

from .money import DOMAIN_CONTEXT, ZERO, quantize9

HUNDRED = Decimal(100)


class PriceModelKind(enum.StrEnum):
    """Names used in YAML (`price.model`) and storage."""

    PER_UNIT = "per_unit"
    GRADUATED = "graduated"
    VOLUME = "volume"
    PACKAGE = "package"
    SIZE_BUCKETS = "size_buckets"
    COST_PLUS_MARKUP = "cost_plus"


@dataclass(frozen=True)
class Tier:
    """One tier: billable units up to and including `up_to` (None: no upper bound)."""

    up_to: Decimal | None
    unit_price: Decimal = ZERO
    flat_price: Decimal = ZERO


@dataclass(frozen=True)
class PerUnit:
    unit_price: Decimal
    kind: PriceModelKind = field(default=PriceModelKind.PER_UNIT, init=False)


@dataclass(frozen=True)
class Graduated:
    tiers: tuple[Tier, ...]
    kind: PriceModelKind = field(default=PriceModelKind.GRADUATED, init=False)


@dataclass(frozen=True)
class Volume:
    tiers: tuple[Tier, ...]
    kind: PriceModelKind = field(default=PriceModelKind.VOLUME, init=False)


@dataclass(frozen=True)
class Package:
    package_size: Decimal
    package_price: Decimal
    kind: PriceModelKind = field(default=PriceModelKind.PACKAGE, init=False)


@dataclass(frozen=True)
class BucketPrice:
    """The price of one event whose size falls in the metering bucket `bucket` (e.g. "11-100")."""

    bucket: str
    unit_price: Decimal


@dataclass(frozen=True)
class SizeBuckets:
    """Buckets in the order included events are consumed (list them as the meter lists them)."""

    buckets: tuple[BucketPrice, ...]
    kind: PriceModelKind = field(default=PriceModelKind.SIZE_BUCKETS, init=False)


@dataclass(frozen=True)
class CostPlusMarkup:
    """Provider cost plus `markup_percent` percent (25 means +25%), plus a fee per request."""

    markup_percent: Decimal = ZERO
    fixed_per_request: Decimal = ZERO
    kind: PriceModelKind = field(default=PriceModelKind.COST_PLUS_MARKUP, init=False)


PriceModel = PerUnit | Graduated | Volume | Package | SizeBuckets | CostPlusMarkup


@dataclass(frozen=True)
class Charge:
    """One priced line of a plan.

    `meter_key` is the metering meter giving the period quantity (for SIZE_BUCKETS: its events
    grouped by bucket; for COST_PLUS_MARKUP: the SUM of provider cost, and its event count is the
    request count). `provider_cost_meter_key`, when set, is a meter whose SUM is this line's provider cost
    (must be unset for COST_PLUS_MARKUP, which uses its own meter). Caps are per period, in the
    plan's currency, whole minor units.
    """

    key: str
    meter_key: str
    display_name: str
    price: PriceModel
    included_quantity: Decimal = ZERO
    minimum_amount: Decimal | None = None
    maximum_amount: Decimal | None = None
    provider_cost_meter_key: str | None = None


@dataclass(frozen=True)
class ChargeUsage:
    """What metering says about one charge for one period.

    `quantity`: the meter's value (COST_PLUS_MARKUP: the provider cost). `bucket_counts`: events
    per bucket key (SIZE_BUCKETS; `quantity` is then ignored and taken as their sum).
    `provider_cost`: SUM of `provider_cost_meter_key` (ignored for COST_PLUS_MARKUP). `request_count`:
    events counted (COST_PLUS_MARKUP's fixed fee). `quantity_by_workflow`: the same quantity
    grouped by the workflow tag, used to attribute earnings; optional.
    """

    quantity: Decimal = ZERO
    bucket_counts: Mapping[str, Decimal] = field(default_factory=dict)
    provider_cost: Decimal = ZERO
    request_count: Decimal = ZERO
    quantity_by_workflow: Mapping[str, Decimal] = field(default_factory=dict)


@dataclass(frozen=True)
class TierLine:
    """One row of a line's breakdown: a tier, a bucket, or a cost-plus component."""

    label: str
    quantity: Decimal
    unit_price: Decimal
    flat_price: Decimal
    amount: Decimal


@dataclass(frozen=True)
class ChargeResult:
    """A charge priced for one period; amounts have nine decimal places and are NOT yet rounded.

    `quantity`: total metered; `included_quantity_applied`: how much of the allowance was used;
    `billable_quantity`: quantity - included applied. `unit_price` is set when one unit price
    describes the line (PER_UNIT, VOLUME, PACKAGE's price per package); `tiers` is the breakdown.
    `amount_before_caps` and `amount` (after caps). `provider_cost`: this line's cost at nine
    places (rounded only by the split).
    """

    charge_key: str
    quantity: Decimal
    included_quantity_applied: Decimal
    billable_quantity: Decimal
    unit_price: Decimal | None
    tiers: tuple[TierLine, ...]
    amount_before_caps: Decimal
    amount: Decimal
    provider_cost: Decimal
    minimum_applied: bool
    maximum_applied: bool


def _fmt(value: Decimal) -> str:
    text = format(value.normalize(), "f") if value != 0 else "0"
    return text


def _tier_label(lower: Decimal, up_to: Decimal | None) -> str:
    if up_to is None:
        return f"above {_fmt(lower)}"
    return f"{_fmt(lower)} to {_fmt(up_to)}"


def _graduated(tiers: tuple[Tier, ...], billable: Decimal) -> tuple[Decimal, tuple[TierLine, ...]]:
    rows: list[TierLine] = []
    total = ZERO
    lower = ZERO
    for tier in tiers:
        if billable <= lower:
            break
        upper = billable if tier.up_to is None else min(billable, tier.up_to)
        units = upper - lower
        amount = quantize9(units * tier.unit_price + tier.flat_price)
        rows.append(TierLine(_tier_label(lower, tier.up_to), units, tier.unit_price, tier.flat_price, amount))
        total += amount
        if tier.up_to is None:
            break
        lower = tier.up_to
    return total, tuple(rows)


def _volume_tier(tiers: tuple[Tier, ...], billable: Decimal) -> tuple[Decimal, Tier]:
    lower = ZERO
    for tier in tiers:
        if tier.up_to is None or billable <= tier.up_to:
            return lower, tier
        lower = tier.up_to
    raise ValueError("tiers must end with an open-ended tier")  # excluded by validation


def price_charge(charge: Charge, usage: ChargeUsage) -> ChargeResult:
    """Price `charge` for one period's `usage` (see the module docstring for the rules).

    Raises InvalidArgument when usage is negative or names a bucket the charge does not price
    (field "usage.bucket_counts[<key>]"): usage is never silently dropped.
    """
    with decimal.localcontext(DOMAIN_CONTEXT):
        return _price(charge, usage)


def _check_non_negative(value: Decimal, field_name: str) -> None:
    if not value.is_finite() or value < 0:
        raise InvalidArgument(f"must be a non-negative number, got {value}", field=field_name)


def _price(charge: Charge, usage: ChargeUsage) -> ChargeResult:
    model = charge.price
    _check_non_negative(usage.quantity, "usage.quantity")
    _check_non_negative(usage.provider_cost, "usage.provider_cost")
    _check_non_negative(usage.request_count, "usage.request_count")
    unit_price: Decimal | None = None
    rows: tuple[TierLine, ...] = ()
    provider_cost = quantize9(usage.provider_cost)

    if isinstance(model, SizeBuckets):
        prices = {b.bucket: b.unit_price for b in model.buckets}
        for key, count in usage.bucket_counts.items():
            if key not in prices:
                raise InvalidArgument(
                    f"usage has events in bucket {key!r}, which charge {charge.key!r} does not price",
                    field=f"usage.bucket_counts[{key}]",
                )
            _check_non_negative(count, f"usage.bucket_counts[{key}]")
        quantity = sum((usage.bucket_counts.get(b.bucket, ZERO) for b in model.buckets), ZERO)
        allowance = min(charge.included_quantity, quantity)
        left = allowance
        out: list[TierLine] = []
        amount = ZERO
        for bucket in model.buckets:
            count = usage.bucket_counts.get(bucket.bucket, ZERO)
            free = min(left, count)
            left -= free
            billed = count - free
            row_amount = quantize9(billed * bucket.unit_price)
            amount += row_amount
            out.append(TierLine(bucket.bucket, billed, bucket.unit_price, ZERO, row_amount))
        rows = tuple(out)
        billable = quantity - allowance
    elif isinstance(model, CostPlusMarkup):
        quantity = usage.quantity
        allowance = ZERO
        billable = quantity
        provider_cost = quantize9(quantity)
        factor = 1 + model.markup_percent / HUNDRED
        cost_amount = quantize9(quantity * factor)
        request_amount = quantize9(usage.request_count * model.fixed_per_request)
        rows = (
            TierLine("provider cost plus markup", quantity, factor, ZERO, cost_amount),
            TierLine("requests", usage.request_count, model.fixed_per_request, ZERO, request_amount),
        )
        amount = cost_amount + request_amount
    else:
        quantity = usage.quantity
        allowance = min(charge.included_quantity, quantity)
        billable = quantity - allowance
        if isinstance(model, PerUnit):
            unit_price = model.unit_price
            amount = quantize9(billable * model.unit_price)
        elif isinstance(model, Graduated):
            amount, rows = _graduated(model.tiers, billable)
        elif isinstance(model, Volume):
            if billable == 0:
                amount = ZERO
            else:
                lower, tier = _volume_tier(model.tiers, billable)
                unit_price = tier.unit_price
                amount = quantize9(billable * tier.unit_price + tier.flat_price)
                rows = (
                    TierLine(
                        _tier_label(lower, tier.up_to), billable, tier.unit_price, tier.flat_price, amount
                    ),
                )
        elif isinstance(model, Package):
            packages = (billable / model.package_size).to_integral_value(rounding=ROUND_CEILING)
            unit_price = model.package_price
            amount = quantize9(packages * model.package_price)
            rows = (
                TierLine(
                    f"packages of {_fmt(model.package_size)}", packages, model.package_price, ZERO, amount
                ),
            )
        else:  # pragma: no cover - the union is closed
            raise InvalidArgument(f"unknown price model {model!r}", field="price")

    before_caps = amount
    minimum_applied = maximum_applied = False
    if charge.minimum_amount is not None and amount < charge.minimum_amount:
        amount = quantize9(charge.minimum_amount)
        minimum_applied = True
    if charge.maximum_amount is not None and amount > charge.maximum_amount:
        amount = quantize9(charge.maximum_amount)
        maximum_applied = True
    return ChargeResult(
        charge_key=charge.key,
        quantity=quantity,
        included_quantity_applied=allowance,
        billable_quantity=billable,
        unit_price=unit_price,
        tiers=rows,
        amount_before_caps=before_caps,
        amount=amount,
        provider_cost=provider_cost,
        minimum_applied=minimum_applied,
        maximum_applied=maximum_applied,
    )
