from decimal import Decimal

import pytest

from common.money import DecimalFormatError, format_decimal, from_money, parse_decimal, to_money


@pytest.mark.parametrize(
    "amount,units,nanos",
    [
        (Decimal("1.75"), 1, 750_000_000),
        (Decimal("-1.75"), -1, -750_000_000),
        (Decimal("0.000000001"), 0, 1),
        (Decimal("-0.5"), 0, -500_000_000),
        (Decimal("123456789012.123456789"), 123456789012, 123456789),
    ],
)
def test_money_round_trips_exactly(amount, units, nanos):
    money = to_money(amount, "USD")
    assert (money.units, money.nanos, money.currency_code) == (units, nanos, "USD")
    assert from_money(money) == amount


def test_money_refuses_more_than_nine_places_instead_of_rounding():
    with pytest.raises(ValueError, match="nine decimal places"):
        to_money(Decimal("0.0000000001"), "USD")


def test_money_with_mixed_signs_is_rejected():
    from tollgate.type.v1.money_pb2 import Money

    with pytest.raises(ValueError, match="same sign"):
        from_money(Money(currency_code="USD", units=1, nanos=-5))


@pytest.mark.parametrize("text", ["", "abc", "1e5", "NaN", "inf", "1.2.3", ".", "--1", "0x10"])
def test_parse_decimal_rejects_non_literals(text):
    with pytest.raises(DecimalFormatError):
        parse_decimal(text)


def test_parse_decimal_rejects_negative_when_asked():
    with pytest.raises(DecimalFormatError, match="negative"):
        parse_decimal("-1", allow_negative=False)


def test_format_decimal_is_plain_and_trimmed():
    assert format_decimal(Decimal("1.500")) == "1.5"
    assert format_decimal(Decimal("1E+3")) == "1000"
    assert format_decimal(Decimal("0.000")) == "0"
