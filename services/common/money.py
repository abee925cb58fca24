"""Exact conversions between Decimal and the wire types (Money, decimal strings, timestamps).

Money on the wire has nine decimal places (nanos). Converting a Decimal with more places is an
error, never a silent rounding: rounding happens in one stated place in the billing domain.
"""

from __future__ import annotations

import decimal
from datetime import UTC, datetime
from decimal import Decimal

from google.protobuf.timestamp_pb2 import Timestamp

from tollgate.type.v1 import money_pb2

NANO = Decimal("0.000000001")
_BILLION = 1_000_000_000
# Arithmetic context for money: enough digits that sums of NUMERIC(38, 9) values never round.
MONEY_CONTEXT = decimal.Context(prec=50, rounding=decimal.ROUND_HALF_EVEN, traps=[decimal.InvalidOperation])


class DecimalFormatError(ValueError):
    pass


def parse_decimal(text: str, *, allow_negative: bool = True, max_places: int | None = None) -> Decimal:
    """Parse a plain decimal literal ("12", "-0.5", "3.000000125"); no exponents, NaN or infinity."""
    s = text.strip()
    if not s:
        raise DecimalFormatError("is empty")
    body = s[1:] if s[0] in "+-" else s
    if not body or body.count(".") > 1 or not body.replace(".", "").isdigit() or body in (".",):
        raise DecimalFormatError(f"{text!r} is not a decimal number")
    value = Decimal(s)
    if not allow_negative and value < 0:
        raise DecimalFormatError(f"{text!r} is negative")
    if max_places is not None and -value.as_tuple().exponent > max_places:  # type: ignore[operator]
        raise DecimalFormatError(f"{text!r} has more than {max_places} decimal places")
    return value


def format_decimal(value: Decimal) -> str:
    """A plain literal without exponent and without trailing zeros after the point ("1.5", "0", "120")."""
    if value == 0:
        return "0"
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def to_money(amount: Decimal, currency_code: str) -> money_pb2.Money:
    """Decimal -> Money. The amount must have at most nine decimal places."""
    quantized = amount.quantize(NANO, context=MONEY_CONTEXT)
    if quantized != amount:
        raise ValueError(f"{amount} has more than nine decimal places")
    nanos_total = int(quantized.scaleb(9))
    sign = -1 if nanos_total < 0 else 1
    units, nanos = divmod(abs(nanos_total), _BILLION)
    return money_pb2.Money(currency_code=currency_code, units=sign * units, nanos=sign * nanos)


def from_money(money: money_pb2.Money) -> Decimal:
    """Money -> Decimal; raises ValueError when units and nanos disagree in sign or nanos overflow."""
    if not -_BILLION < money.nanos < _BILLION:
        raise ValueError("nanos must be between -999,999,999 and 999,999,999")
    if (money.units > 0 and money.nanos < 0) or (money.units < 0 and money.nanos > 0):
        raise ValueError("units and nanos must have the same sign")
    return (Decimal(money.units) + Decimal(money.nanos).scaleb(-9)).quantize(NANO, context=MONEY_CONTEXT)


def to_timestamp(value: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(value.astimezone(UTC))
    return ts


def from_timestamp(ts: Timestamp) -> datetime:
    return ts.ToDatetime(tzinfo=UTC)
