from decimal import Decimal as D

import pytest

from billing.domain import allocate, minor_unit, minor_units, quantize9, round_line
from common.errors import InvalidArgument


@pytest.mark.parametrize(
    "amount,currency,expected",
    [
        ("0.005", "USD", "0.01"),
        ("0.015", "USD", "0.02"),
        ("0.025", "USD", "0.03"),
        ("0.0049999999", "USD", "0.00"),
        ("0.014999999", "USD", "0.01"),
        ("-0.005", "USD", "-0.01"),
        ("-0.015", "EUR", "-0.02"),
        ("-0.0149", "GBP", "-0.01"),
        ("0.5", "JPY", "1"),
        ("1.5", "JPY", "2"),
        ("2.5", "JPY", "3"),
        ("-0.5", "JPY", "-1"),
        ("0.4999", "JPY", "0"),
        ("0.0005", "KWD", "0.001"),
        ("12.345", "USD", "12.35"),
    ],
)
def test_lines_round_half_away_from_zero_to_the_minor_unit(amount, currency, expected):
    rounded = round_line(D(amount), currency)
    assert rounded == D(expected)
    assert str(rounded) == expected


def test_minor_units_come_from_the_currency_table():
    assert (minor_units("USD"), minor_units("EUR"), minor_units("GBP"), minor_units("JPY")) == (2, 2, 2, 0)
    assert minor_unit("USD") == D("0.01") and minor_unit("JPY") == D(1)


@pytest.mark.parametrize("code", ["XYZ", "usd", "", None])
def test_unknown_currency_is_invalid_argument_naming_the_field(code):
    with pytest.raises(InvalidArgument) as err:
        round_line(D("1"), code)
    assert err.value.field == "currency"
    assert "unknown currency" in err.value.message


def test_working_precision_is_nine_places_half_away_from_zero():
    assert quantize9(D("0.0000000005")) == D("0.000000001")
    assert quantize9(D("-0.0000000005")) == D("-0.000000001")
    assert quantize9(D("1.0000000004")) == D("1.000000000")


def test_allocate_gives_leftover_cents_to_the_largest_remainders():
    assert allocate(D("1.00"), [D(1), D(1), D(1)], "USD") == (D("0.34"), D("0.33"), D("0.33"))
    assert allocate(D("0.05"), [D(1), D(2)], "USD") == (D("0.02"), D("0.03"))


def test_allocate_of_the_whole_returns_each_weight_exactly():
    weights = [D("10.01"), D("-3.37"), D("0.36")]
    assert allocate(D("7.00"), weights, "USD") == tuple(weights)


def test_allocate_in_yen_uses_whole_yen():
    parts = allocate(D(100), [D(1), D(1), D(1)], "JPY")
    assert parts == (D(34), D(33), D(33))


def test_allocate_refuses_a_total_with_sub_minor_digits():
    with pytest.raises(ValueError, match="minor units"):
        allocate(D("1.005"), [D(1)], "USD")
