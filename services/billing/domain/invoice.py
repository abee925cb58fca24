"""Invoice assembly: lines, late-usage adjustments, wallet application and credit notes.

- Lines, in order: the base fee (when the plan has one), one line per charge in plan order (a
  charge without usage is priced at zero usage, so minimum charges still apply), then late-usage
  adjustment lines (kind LATE_USAGE, marked with the closed period they adjust).
- Each line's amount is rounded ONCE to the minor unit, half away from zero (billing.domain.money),
  and split (billing.domain.split). subtotal = sum of rounded lines; nothing is rounded again.
- Late usage: for a charge of a closed period, adjustment = round(price(quantity now))
  - round(price(quantity at close)), and its split = split(now) - split(at close), both under the
  current fee rule. "At close" is the latest usage billed for that period (its own line's, or that
  of its latest adjustment: the service moves it forward), so summed over all the invoices the
  customer pays exactly what one on-time invoice would have charged, to the cent. It may be
  negative (volume tiers, caps). A late line is emitted when its quantity or its amount changed.
- Wallet: `apply_wallet(total, balance)` applies min(total, balance) (never below zero) at
  finalization; amount_due = total - applied.
- Credit notes: the amount must be > 0, whole minor units and at most the invoice's remaining
  creditable amount (total - already credited). It is allocated over every line's remaining split
  parts (provider cost, platform fee, builder margin; remaining = part - credited so far), in
  proportion, by largest remainder in minor units: the allocation sums exactly to the credit, and
  crediting the whole remainder gives back exactly each remaining part. A void after payment is a
  credit of the whole remainder.
"""

from __future__ import annotations

import decimal
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from common.errors import InvalidArgument

from .money import DOMAIN_CONTEXT, ZERO, allocate, has_at_most_places, minor_units, round_line
from .period import BillingPeriod
from .plan import MAX_NAME_CHARS, PlanSpec
from .pricing import Charge, ChargeResult, ChargeUsage, TierLine, price_charge
from .split import ZERO_SPLIT, PlatformFeeRule, Split, split_line


class LineKind(enum.StrEnum):
    BASE_FEE = "base_fee"
    USAGE = "usage"
    LATE_USAGE = "late_usage"


@dataclass(frozen=True)
class LateDetail:
    """What a late-usage line adjusts: the closed period and both sides of the difference."""

    period: BillingPeriod
    quantity_at_close: Decimal
    quantity_now: Decimal
    amount_at_close: Decimal
    amount_now: Decimal
    # The part of the period adjusted, [start, end), when the period was split (an immediate plan
    # change); None for the whole period.
    part: tuple[datetime, datetime] | None = None


@dataclass(frozen=True)
class InvoiceLine:
    """One finalized line. `amount` is rounded; `amount_unrounded` keeps the nine-place value.

    For LATE_USAGE lines the quantities are differences (now - at close) and `late` holds both
    sides. `workflow_quantities` attributes the line to workflows for earnings (may be empty).
    """

    kind: LineKind
    charge_key: str | None
    meter_key: str | None
    display_name: str
    quantity: Decimal
    included_quantity_applied: Decimal
    billable_quantity: Decimal
    unit_price: Decimal | None
    tiers: tuple[TierLine, ...]
    amount_unrounded: Decimal
    amount: Decimal
    split: Split
    minimum_applied: bool = False
    maximum_applied: bool = False
    late: LateDetail | None = None
    workflow_quantities: tuple[tuple[str, Decimal], ...] = ()


@dataclass(frozen=True)
class InvoiceDraft:
    """An invoice before (or at) finalization; `subtotal` is the exact sum of the rounded lines."""

    currency: str
    period: BillingPeriod
    lines: tuple[InvoiceLine, ...]
    subtotal: Decimal
    provider_cost_total: Decimal
    platform_fee_total: Decimal
    builder_margin_total: Decimal

    @property
    def total(self) -> Decimal:
        return self.subtotal


@dataclass(frozen=True)
class LateUsage:
    """Usage of `charge` in the closed `period` that arrived after its invoice was finalized.

    `charge` is the charge as priced by the closed period's plan version. For a period split by an
    immediate plan change, `part` is the part's usage range and `part_label` names it on the line.
    """

    charge: Charge
    period: BillingPeriod
    usage_at_close: ChargeUsage
    usage_now: ChargeUsage
    part: tuple[datetime, datetime] | None = None
    part_label: str = ""


@dataclass(frozen=True)
class WalletApplication:
    applied: Decimal
    amount_due: Decimal


def _workflows(usage: ChargeUsage) -> tuple[tuple[str, Decimal], ...]:
    return tuple(sorted((str(k), Decimal(v)) for k, v in usage.quantity_by_workflow.items()))


def charge_line(charge: Charge, usage: ChargeUsage, fee_rule: PlatformFeeRule, currency: str) -> InvoiceLine:
    """Price, round and split one charge's line."""
    result: ChargeResult = price_charge(charge, usage)
    amount = round_line(result.amount, currency)
    return InvoiceLine(
        kind=LineKind.USAGE,
        charge_key=charge.key,
        meter_key=charge.meter_key,
        display_name=charge.display_name,
        quantity=result.quantity,
        included_quantity_applied=result.included_quantity_applied,
        billable_quantity=result.billable_quantity,
        unit_price=result.unit_price,
        tiers=result.tiers,
        amount_unrounded=result.amount,
        amount=amount,
        split=split_line(amount, result.provider_cost, fee_rule, currency),
        minimum_applied=result.minimum_applied,
        maximum_applied=result.maximum_applied,
        workflow_quantities=_workflows(usage),
    )


def _late_name(late: LateUsage) -> str:
    part = f", {late.part_label}" if late.part_label else ""
    return f"{late.charge.display_name} (late usage for {late.period.label}{part})"[:MAX_NAME_CHARS]


def late_adjustment_line(late: LateUsage, fee_rule: PlatformFeeRule, currency: str) -> InvoiceLine | None:
    """The marked adjustment line for late usage, or None when neither quantity nor amount changed."""
    before = charge_line(late.charge, late.usage_at_close, fee_rule, currency)
    now = charge_line(late.charge, late.usage_now, fee_rule, currency)
    with decimal.localcontext(DOMAIN_CONTEXT):
        quantity = now.quantity - before.quantity
        amount = now.amount - before.amount
        if quantity == 0 and amount == 0 and now.split == before.split:
            return None
        before_wf = dict(before.workflow_quantities)
        workflows = tuple(
            (wf, q - before_wf.get(wf, ZERO))
            for wf, q in now.workflow_quantities
            if q - before_wf.get(wf, ZERO) > 0
        )
        return InvoiceLine(
            kind=LineKind.LATE_USAGE,
            charge_key=late.charge.key,
            meter_key=late.charge.meter_key,
            display_name=_late_name(late),
            quantity=quantity,
            included_quantity_applied=now.included_quantity_applied - before.included_quantity_applied,
            billable_quantity=now.billable_quantity - before.billable_quantity,
            unit_price=None,
            tiers=(),
            amount_unrounded=amount,
            amount=amount,
            split=now.split - before.split,
            late=LateDetail(late.period, before.quantity, now.quantity, before.amount, now.amount, late.part),
            workflow_quantities=workflows,
        )


def base_fee_line(plan: PlanSpec, fee_rule: PlatformFeeRule) -> InvoiceLine | None:
    """The base fee line (no provider cost), or None when the plan has no base fee."""
    if plan.base_fee is None:
        return None
    amount = round_line(plan.base_fee, plan.currency)
    return InvoiceLine(
        kind=LineKind.BASE_FEE,
        charge_key=None,
        meter_key=None,
        display_name=plan.base_fee_display_name,
        quantity=Decimal(1),
        included_quantity_applied=ZERO,
        billable_quantity=Decimal(1),
        unit_price=plan.base_fee,
        tiers=(),
        amount_unrounded=plan.base_fee,
        amount=amount,
        split=split_line(amount, ZERO, fee_rule, plan.currency),
    )


def assemble(currency: str, period: BillingPeriod, lines: Sequence[InvoiceLine]) -> InvoiceDraft:
    """An InvoiceDraft from finished lines: totals are exact sums of the rounded lines and splits."""
    with decimal.localcontext(DOMAIN_CONTEXT):
        split_total = sum((line.split for line in lines), ZERO_SPLIT)
        return InvoiceDraft(
            currency=currency,
            period=period,
            lines=tuple(lines),
            subtotal=sum((line.amount for line in lines), ZERO),
            provider_cost_total=split_total.provider_cost,
            platform_fee_total=split_total.platform_fee,
            builder_margin_total=split_total.builder_margin,
        )


def build_invoice(
    plan: PlanSpec,
    usage_by_charge: Mapping[str, ChargeUsage],
    fee_rule: PlatformFeeRule,
    period: BillingPeriod,
    late_adjustments: Sequence[LateUsage] = (),
) -> InvoiceDraft:
    """The invoice for `period` under `plan` (see the module docstring for the line rules).

    `usage_by_charge` is keyed by charge key; a missing key means zero usage, an unknown key is
    InvalidArgument (field "usage_by_charge[<key>]"): usage is never silently dropped.
    """
    keys = {c.key for c in plan.charges}
    for key in usage_by_charge:
        if key not in keys:
            raise InvalidArgument(
                f"usage for {key!r}, which is not a charge of the plan", field=f"usage_by_charge[{key}]"
            )
    lines: list[InvoiceLine] = []
    base = base_fee_line(plan, fee_rule)
    if base is not None:
        lines.append(base)
    for charge in plan.charges:
        lines.append(
            charge_line(charge, usage_by_charge.get(charge.key, ChargeUsage()), fee_rule, plan.currency)
        )
    for late in late_adjustments:
        line = late_adjustment_line(late, fee_rule, plan.currency)
        if line is not None:
            lines.append(line)
    return assemble(plan.currency, period, lines)


def apply_wallet(total: Decimal, wallet_balance: Decimal) -> WalletApplication:
    """Use the prepaid balance against an invoice total: applied = min(total, balance), floored at 0.

    A negative total (late-usage credits larger than the period's charges) applies nothing and
    leaves a negative amount due: money owed to the customer, which the service may credit.
    """
    applied = max(ZERO, min(total, wallet_balance))
    return WalletApplication(applied=applied, amount_due=total - applied)


def _remaining(lines: Sequence[InvoiceLine], credited: Sequence[Split]) -> list[Split]:
    if credited and len(credited) != len(lines):
        raise ValueError("credited must have one split per invoice line")
    if not credited:
        return [line.split for line in lines]
    return [line.split - done for line, done in zip(lines, credited, strict=True)]


def creditable_amount(lines: Sequence[InvoiceLine], credited: Sequence[Split] = ()) -> Decimal:
    """What can still be credited: the invoice total minus everything credited so far."""
    return sum((r.total for r in _remaining(lines, credited)), ZERO)


def allocate_credit(
    lines: Sequence[InvoiceLine], credited: Sequence[Split], amount: Decimal, currency: str
) -> tuple[Split, ...]:
    """Allocate a credit of `amount` over the invoice's lines; one Split per line, summing to `amount`.

    `credited` holds, per line, the split already credited by earlier credit notes (empty: none).
    InvalidArgument (field "amount") when amount is not positive, has sub-minor-unit digits, or
    exceeds the remaining creditable amount.
    """
    if not isinstance(amount, Decimal) or not amount.is_finite() or amount <= 0:
        raise InvalidArgument(f"must be greater than zero, got {amount}", field="amount")
    if not has_at_most_places(amount, minor_units(currency)):
        raise InvalidArgument(f"must be whole {currency} minor units, got {amount}", field="amount")
    remaining = _remaining(lines, credited)
    creditable = sum((r.total for r in remaining), ZERO)
    if amount > creditable:
        raise InvalidArgument(
            f"credit {amount} {currency} exceeds the remaining creditable amount {creditable} {currency}",
            field="amount",
        )
    weights = [part for r in remaining for part in (r.provider_cost, r.platform_fee, r.builder_margin)]
    parts = allocate(amount, weights, currency)
    return tuple(Split(*parts[i * 3 : i * 3 + 3]) for i in range(len(remaining)))
