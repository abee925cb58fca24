"""Splitting a rounded invoice line into provider cost, platform fee and builder margin.

Rules (quote these):

- provider_cost = round(cost of the line at nine places), with the one rounding rule (half away
  from zero, to the minor unit).
- margin_before_fee = line - provider_cost (may be negative: priced below cost).
- platform_fee = round(line * percent_of_line / 100 + max(0, margin_before_fee) * percent_of_margin
  / 100): the percent-of-margin part is ZERO when the margin before fee is zero or negative (the
  platform takes no cut of a loss); the percent-of-line part always applies. The two parts are
  added before the single rounding.
- builder_margin = line - provider_cost - platform_fee. It is the remainder, so the three parts
  sum exactly to the line, and it may be negative; it is shown as such, never clamped.
"""

from __future__ import annotations

import decimal
from dataclasses import dataclass
from decimal import Decimal

from common.errors import InvalidArgument

from .money import DOMAIN_CONTEXT, ZERO, has_at_most_places, round_line

HUNDRED = Decimal(100)


@dataclass(frozen=True)
class PlatformFeeRule:
    """The platform's cut, set per builder: percents in [0, 100] (2.5 means 2.5%)."""

    percent_of_line: Decimal = ZERO
    percent_of_margin: Decimal = ZERO

    def validate(self, *, prefix: str = "") -> PlatformFeeRule:
        for name in ("percent_of_line", "percent_of_margin"):
            value = getattr(self, name)
            path = f"{prefix}.{name}" if prefix else name
            if not isinstance(value, Decimal) or not value.is_finite() or not 0 <= value <= HUNDRED:
                raise InvalidArgument(f"must be a percent between 0 and 100, got {value}", field=path)
            if not has_at_most_places(value, 6):
                raise InvalidArgument(f"must have at most 6 decimal places, got {value}", field=path)
        return self


NO_PLATFORM_FEE = PlatformFeeRule()


@dataclass(frozen=True)
class Split:
    """A rounded line's three parts; they sum exactly to the line."""

    provider_cost: Decimal
    platform_fee: Decimal
    builder_margin: Decimal

    @property
    def total(self) -> Decimal:
        return self.provider_cost + self.platform_fee + self.builder_margin

    def __sub__(self, other: Split) -> Split:
        return Split(
            self.provider_cost - other.provider_cost,
            self.platform_fee - other.platform_fee,
            self.builder_margin - other.builder_margin,
        )

    def __add__(self, other: Split) -> Split:
        return Split(
            self.provider_cost + other.provider_cost,
            self.platform_fee + other.platform_fee,
            self.builder_margin + other.builder_margin,
        )


ZERO_SPLIT = Split(ZERO, ZERO, ZERO)


def split_line(
    line_amount_rounded: Decimal, provider_cost: Decimal, fee_rule: PlatformFeeRule, currency: str
) -> Split:
    """Split a finalized line (see the module docstring). `provider_cost` may have nine places."""
    if round_line(line_amount_rounded, currency) != line_amount_rounded:
        raise ValueError(f"line amount {line_amount_rounded} is not rounded to {currency} minor units")
    with decimal.localcontext(DOMAIN_CONTEXT):
        cost = round_line(provider_cost, currency)
        margin_before_fee = line_amount_rounded - cost
        fee_exact = line_amount_rounded * fee_rule.percent_of_line / HUNDRED
        if margin_before_fee > 0:
            fee_exact += margin_before_fee * fee_rule.percent_of_margin / HUNDRED
        fee = round_line(fee_exact, currency)
        return Split(cost, fee, line_amount_rounded - cost - fee)
