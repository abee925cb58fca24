from decimal import Decimal as D

import pytest

from billing.domain import NO_PLATFORM_FEE, PlatformFeeRule, Split, split_line
from common.errors import InvalidArgument


def test_without_a_platform_fee_the_margin_is_line_minus_rounded_cost():
    assert split_line(D("10.00"), D("6.123456789"), NO_PLATFORM_FEE, "USD") == Split(
        D("6.12"), D(0), D("3.88")
    )


def test_provider_cost_rounds_half_away_from_zero():
    assert split_line(D("1.00"), D("0.125"), NO_PLATFORM_FEE, "USD").provider_cost == D("0.13")


def test_fee_as_percent_of_line():
    split = split_line(D("100.00"), D("40.00"), PlatformFeeRule(percent_of_line=D("2.5")), "USD")
    assert split == Split(D("40.00"), D("2.50"), D("57.50"))


def test_fee_as_percent_of_margin_before_fee():
    split = split_line(D("100.00"), D("40.00"), PlatformFeeRule(percent_of_margin=D(10)), "USD")
    assert split == Split(D("40.00"), D("6.00"), D("54.00"))


def test_both_fee_parts_add_before_the_single_rounding():
    # 1% of the line 0.50 = 0.005 and 1% of the margin 0.50 = 0.005: together 0.010 -> 0.01,
    # where rounding each part first would give 0.01 + 0.01.
    rule = PlatformFeeRule(percent_of_line=D(1), percent_of_margin=D(1))
    assert split_line(D("0.50"), D(0), rule, "USD") == Split(D(0), D("0.01"), D("0.49"))


def test_a_line_priced_below_cost_shows_a_negative_margin_and_no_margin_fee():
    rule = PlatformFeeRule(percent_of_line=D(5), percent_of_margin=D(20))
    split = split_line(D("10.00"), D("12.00"), rule, "USD")
    assert split == Split(D("12.00"), D("0.50"), D("-2.50"))
    assert split.total == D("10.00")


def test_zero_margin_takes_no_margin_fee():
    assert split_line(D("5.00"), D("5.00"), PlatformFeeRule(percent_of_margin=D(50)), "USD").platform_fee == 0


def test_yen_splits_are_whole_yen():
    split = split_line(D(1000), D("333.5"), PlatformFeeRule(percent_of_line=D("3.33")), "JPY")
    assert split == Split(D(334), D(33), D(633))


def test_split_refuses_an_unrounded_line():
    with pytest.raises(ValueError, match="not rounded"):
        split_line(D("1.005"), D(0), NO_PLATFORM_FEE, "USD")


@pytest.mark.parametrize("name", ["percent_of_line", "percent_of_margin"])
@pytest.mark.parametrize("value", ["-1", "100.01"])
def test_fee_percents_outside_zero_to_hundred_are_refused(name, value):
    with pytest.raises(InvalidArgument) as err:
        PlatformFeeRule(**{name: D(value)}).validate(prefix="platform_fee")
    assert err.value.field == f"platform_fee.{name}"
