"""Money rules of payouts, stated once.

1. Amounts are Decimal, stored as NUMERIC(38, 9); nothing here is ever a float.
2. Billing rounds every earnings entry to the currency's minor unit before it reaches the feed, so
   the ledger never rounds: transfers move exact amounts, balances are exact sums. Anything a caller
   sends (a minimum payout) must already be whole minor units; it is refused, never rounded.
3. Output (CSV, statements) shows amounts with exactly the currency's minor-unit places.
"""

from __future__ import annotations

from decimal import Decimal

ZERO = Decimal(0)
# The largest amount a caller may send, in currency units; NUMERIC(38, 9) holds far more.
MAX_AMOUNT = Decimal(10) ** 12

# ISO 4217 minor units where they differ from two.
_MINOR_UNITS = {
    "JPY": 0, "KRW": 0, "VND": 0, "CLP": 0, "ISK": 0, "UGX": 0, "XAF": 0, "XOF": 0,
    "BHD": 3, "KWD": 3, "OMR": 3, "JOD": 3, "TND": 3, "IQD": 3, "LYD": 3,
}  # fmt: skip


def minor_units(currency: str) -> int:
    return _MINOR_UNITS.get(currency, 2)


def is_whole_minor_units(amount: Decimal, currency: str) -> bool:
    return amount == amount.quantize(Decimal(1).scaleb(-minor_units(currency)))


def show(amount: Decimal, currency: str) -> str:
    """The amount with exactly the currency's minor-unit places ("12.50", "-3.00", "1200")."""
    places = minor_units(currency)
    value = amount.quantize(Decimal(1).scaleb(-places)) if places else amount.quantize(Decimal(1))
    if value == 0:
        value = abs(value)
    return format(value, "f")
