"""Proration: a period priced by the share of it a subscription was active, and a period split at
an immediate plan change.

THE PRORATION RULE (quote this one):

    By second. A subscription's active share of a period is
        share = active seconds / seconds in the period,
    an exact fraction, where both ends of the active range are cut to the whole second (floored)
    and clipped to the period: a subscription active [10 Mar 00:00, 1 Apr 00:00) in March has
    share 22 * 86400 / (31 * 86400) = 22/31. The base fee and each charge's minimum amount are
    multiplied by the share EXACTLY (as a fraction, no intermediate rounding) and rounded ONCE to
    the currency's minor unit with billing's line rule (ROUND_HALF_UP, half away from zero,
    billing.domain.money): 49.00 * 22/31 = 34.774193... -> 34.77. The prorated base fee is its own
    line, so "rounded once per line" still holds. Each charge's included quantity is multiplied by
    the share exactly and rounded half away from zero to the decimal places the plan wrote it with
    (its precision: 100 documents -> whole documents, 2.5 -> tenths): 100 * 22/31 = 70.96... -> 71.
    A charge's maximum amount is not prorated (it is a cap, never a promise). Usage is never
    prorated: a segment is priced on exactly the usage metered inside it.

Consequences, checked by Hypothesis (tests/billing/domain/test_proration.py): a prorated fee never
exceeds the full fee (share <= 1 and the full fee sits on the grid it is rounded to), a share of 1
changes nothing, and the fees of the segments of a period split at n points sum to the full fee
within one minor unit per split (each of the n + 1 roundings is off by at most half a unit).

A period split at an immediate plan change (or ended by an immediate cancellation) is a sequence
of `Segment`s, each priced by its own plan version over its own sub-range
(`build_segmented_invoice`); every line says which plan version and sub-range it prices.
"""

from __future__ import annotations

import decimal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction

from common.errors import InvalidArgument

from .invoice import InvoiceDraft, InvoiceLine, LateUsage, assemble, build_invoice, late_adjustment_line
from .money import DOMAIN_CONTEXT, minor_units
from .period import BillingPeriod
from .plan import MAX_NAME_CHARS, PlanSpec
from .pricing import ChargeUsage
from .split import PlatformFeeRule

ONE = Fraction(1)


def _whole_second(instant: datetime, field: str) -> int:
    if instant.tzinfo is None:
        raise InvalidArgument("time must be timezone-aware", field=field)
    return int(instant.astimezone(UTC).timestamp() // 1)


def active_share(period: BillingPeriod, start: datetime, end: datetime) -> Fraction:
    """The share of `period` covered by [start, end), by whole seconds, clipped to the period.

    0 when the range misses the period, 1 when it covers it. Exact (a Fraction).
    """
    p_start = _whole_second(period.start, "period.start")
    p_end = _whole_second(period.end, "period.end")
    lo = max(p_start, _whole_second(start, "start"))
    hi = min(p_end, _whole_second(end, "end"))
    if hi <= lo:
        return Fraction(0)
    return Fraction(hi - lo, p_end - p_start)


def _check_share(share: Fraction) -> None:
    if not isinstance(share, Fraction) or not 0 <= share <= 1:
        raise InvalidArgument(f"share must be between 0 and 1, got {share}", field="share")


def _round_half_away(value: Fraction, places: int) -> Decimal:
    """`value` rounded half away from zero to `places` decimals, computed on integers (exact)."""
    scaled = value * 10**places
    units = (abs(scaled.numerator) * 2 + scaled.denominator) // (2 * scaled.denominator)
    if scaled < 0:
        units = -units
    with decimal.localcontext(DOMAIN_CONTEXT):
        return Decimal(units).scaleb(-places)


def _places(value: Decimal) -> int:
    exponent = value.normalize(DOMAIN_CONTEXT).as_tuple().exponent
    return max(0, -int(exponent)) if isinstance(exponent, int) else 0


def prorate_amount(amount: Decimal, share: Fraction, currency: str) -> Decimal:
    """amount * share, exactly, rounded once to `currency`'s minor unit half away from zero."""
    _check_share(share)
    return _round_half_away(Fraction(amount) * share, minor_units(currency))


def prorate_quantity(quantity: Decimal, share: Fraction) -> Decimal:
    """quantity * share, exactly, rounded half away from zero to the places `quantity` is written with."""
    _check_share(share)
    return _round_half_away(Fraction(quantity) * share, _places(quantity))


def prorate_plan(plan: PlanSpec, share: Fraction) -> PlanSpec:
    """The plan as it prices a segment of `share`: base fee, minimums and included quantities prorated.

    A share of 1 returns the plan unchanged.
    """
    _check_share(share)
    if share == ONE:
        return plan
    charges = tuple(
        replace(
            c,
            included_quantity=prorate_quantity(c.included_quantity, share),
            minimum_amount=None
            if c.minimum_amount is None
            else prorate_amount(c.minimum_amount, share, plan.currency),
        )
        for c in plan.charges
    )
    base_fee = None if plan.base_fee is None else prorate_amount(plan.base_fee, share, plan.currency)
    return replace(plan, charges=charges, base_fee=base_fee)


@dataclass(frozen=True)
class Segment:
    """A sub-range [start, end) of a period priced by one plan version on the usage metered in it.

    `plan_label` names the version on its lines (e.g. "plan_pro v2").
    """

    plan: PlanSpec
    plan_label: str
    start: datetime
    end: datetime
    usage_by_charge: Mapping[str, ChargeUsage]


def _stamp(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def segment_label(segment: Segment) -> str:
    """What a segment's lines append to their name: the plan version and the sub-range (UTC)."""
    return f"{segment.plan_label}, {_stamp(segment.start)} to {_stamp(segment.end)} UTC"


def _named(name: str, label: str) -> str:
    """`name (label)`, the name cut so the whole fits a line's name (256 characters)."""
    suffix = f" ({label})"
    return name[: max(0, MAX_NAME_CHARS - len(suffix))] + suffix[:MAX_NAME_CHARS]


def build_segmented_invoice(
    segments: Sequence[Segment],
    fee_rule: PlatformFeeRule,
    period: BillingPeriod,
    late_adjustments: Sequence[LateUsage] = (),
) -> InvoiceDraft:
    """One invoice for `period` from its segments, in order: each segment's lines (base fee, then
    one per charge, as `build_invoice`) under its prorated plan, each line's name followed by the
    segment's plan version and sub-range. Segments must lie inside the period, in order, without
    overlap, and share one currency. A single segment covering the whole period is exactly
    `build_invoice` (with the label added). Late-usage lines (`late_adjustments`, whose charges the
    caller gives as they priced the closed period, prorated or not) follow, as in `build_invoice`."""
    if not segments:
        raise InvalidArgument("an invoice needs at least one segment", field="segments")
    currency = segments[0].plan.currency
    previous_end = period.start
    lines: list[InvoiceLine] = []
    for i, seg in enumerate(segments):
        if seg.plan.currency != currency:
            raise InvalidArgument(
                f"segment {i} is in {seg.plan.currency}, the invoice in {currency}", field=f"segments[{i}]"
            )
        if seg.start < previous_end or seg.end <= seg.start or seg.end > period.end:
            raise InvalidArgument(
                f"segment {i} must lie inside the period after the previous one", field=f"segments[{i}]"
            )
        previous_end = seg.end
        share = active_share(period, seg.start, seg.end)
        draft = build_invoice(prorate_plan(seg.plan, share), seg.usage_by_charge, fee_rule, period)
        label = segment_label(seg)
        lines.extend(replace(line, display_name=_named(line.display_name, label)) for line in draft.lines)
    for late in late_adjustments:
        line = late_adjustment_line(late, fee_rule, currency)
        if line is not None:
            lines.append(line)
    return assemble(currency, period, lines)
