"""Currencies, the one rounding rule, and exact allocation of a whole into parts.

THE ROUNDING RULE (quote this one):

    Amounts are computed with nine decimal places (any product with more places, which only
    fractional quantities can produce, is quantized to nine places half away from zero). Each
    invoice line is rounded exactly once, when the line is finalized, to its currency's minor unit
    (USD/EUR/GBP cents, JPY yen, ...) with ROUND_HALF_UP, which in Python's decimal module means
    half AWAY FROM ZERO: 0.005 -> 0.01, 0.015 -> 0.02, -0.005 -> -0.01, JPY 0.5 -> 1. Invoice
    totals are sums of rounded lines and are never rounded again. A line's split rounds its
    provider cost and platform fee with the same rule; the builder margin is the remainder, so the
    three parts sum exactly to the rounded line.

Why half-up and not banker's rounding: a customer checks one line with a calculator and expects the
school rule; banker's rounding only pays off when many already-rounded values are summed, and here
each value is rounded once and sums are exact.

Allocation (credit notes, earnings by workflow) uses the largest-remainder method in minor units, so
the parts always sum exactly to the whole.
"""

from __future__ import annotations

import decimal
from collections.abc import Sequence
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal

from common.errors import InvalidArgument

# Minor units per ISO 4217 code. A small table on purpose: a currency is added here when a builder
# needs it, so an unknown code is a clear error instead of a silent two-decimal guess.
CURRENCY_MINOR_UNITS: dict[str, int] = {
    "USD": 2,
    "EUR": 2,
    "GBP": 2,
    "CHF": 2,
    "CAD": 2,
    "AUD": 2,
    "NZD": 2,
    "SEK": 2,
    "NOK": 2,
    "DKK": 2,
    "PLN": 2,
    "INR": 2,
    "BRL": 2,
    "MXN": 2,
    "SGD": 2,
    "ZAR": 2,
    "JPY": 0,
    "KRW": 0,
    "ISK": 0,
    "BHD": 3,
    "KWD": 3,
    "JOD": 3,
}

# Nine places: the precision of Money on the wire and of NUMERIC(38, 9) in the database.
NINE_PLACES = Decimal("0.000000001")
ZERO = Decimal(0)

# Enough digits that products and sums of NUMERIC(38, 9) values are exact before any quantize.
DOMAIN_CONTEXT = decimal.Context(prec=60, rounding=ROUND_HALF_UP, traps=[decimal.InvalidOperation])


def minor_units(currency: str, *, field: str = "currency") -> int:
    """The number of decimal places of `currency`'s minor unit; InvalidArgument for an unknown code."""
    try:
        return CURRENCY_MINOR_UNITS[currency]
    except (KeyError, TypeError):
        known = ", ".join(sorted(CURRENCY_MINOR_UNITS))
        raise InvalidArgument(f"unknown currency {currency!r}; supported: {known}", field=field) from None


_MINOR_UNIT: dict[str, Decimal] = {code: Decimal(1).scaleb(-n) for code, n in CURRENCY_MINOR_UNITS.items()}


def minor_unit(currency: str) -> Decimal:
    """The size of one minor unit as a Decimal: Decimal("0.01") for USD, Decimal("1") for JPY."""
    unit = _MINOR_UNIT.get(currency) if isinstance(currency, str) else None
    if unit is None:
        minor_units(currency)  # raises the InvalidArgument naming the currency
        raise AssertionError("unreachable")
    return unit


def quantize9(amount: Decimal) -> Decimal:
    """Quantize to nine places, half away from zero: the working precision before a line is final."""
    return amount.quantize(NINE_PLACES, rounding=ROUND_HALF_UP, context=DOMAIN_CONTEXT)


def round_line(amount: Decimal, currency: str) -> Decimal:
    """THE rounding: to `currency`'s minor unit, ROUND_HALF_UP (half away from zero).

    0.005 USD -> 0.01, 0.015 -> 0.02, 0.0149 -> 0.01, -0.005 -> -0.01; 0.5 JPY -> 1.
    """
    return amount.quantize(minor_unit(currency), rounding=ROUND_HALF_UP, context=DOMAIN_CONTEXT)


def has_at_most_places(value: Decimal, places: int) -> bool:
    """True when `value` needs no more than `places` decimal places (trailing zeros do not count)."""
    if not value.is_finite():
        return False
    try:
        return value == value.quantize(Decimal(1).scaleb(-places), context=DOMAIN_CONTEXT)
    except decimal.InvalidOperation:  # more digits than the context holds: far beyond any amount
        return False


def allocate(total: Decimal, weights: Sequence[Decimal], currency: str) -> tuple[Decimal, ...]:
    """Split `total` (already on `currency`'s minor-unit grid) in proportion to `weights`.

    Largest-remainder method in minor units: each part gets the floor of its exact share, then the
    leftover units go one each to the parts with the largest fractional remainders (ties to the
    earlier part). The parts sum exactly to `total`. Weights may have mixed signs (a negative
    margin) as long as they do not sum to zero; when they do, `total` must be zero and every part
    is zero. When `total` equals the sum of the weights and the weights are on the grid, each part
    equals its weight exactly.
    """
    unit = minor_unit(currency)
    if round_line(total, currency) != total:
        raise ValueError(f"{total} is not a whole number of {currency} minor units")
    if not weights:
        if total != 0:
            raise ValueError("cannot allocate a non-zero total over no parts")
        return ()
    with decimal.localcontext(DOMAIN_CONTEXT):
        weight_sum = sum(weights, ZERO)
        if weight_sum == 0:
            if total != 0:
                raise ValueError("cannot allocate a non-zero total over weights that sum to zero")
            return tuple(ZERO for _ in weights)
        total_units = int(total / unit)
        exact = [Decimal(total_units) * w / weight_sum for w in weights]
        floors = [int(e.to_integral_value(rounding=ROUND_FLOOR)) for e in exact]
        leftover = total_units - sum(floors)
        order = sorted(range(len(weights)), key=lambda i: (-(exact[i] - floors[i]), i))
        for i in order[:leftover]:
            floors[i] += 1
        return tuple(Decimal(units) * unit for units in floors)
