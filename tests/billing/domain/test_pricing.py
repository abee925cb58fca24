from decimal import Decimal as D

import pytest

from billing.domain import (
    BucketPrice,
    Charge,
    ChargeUsage,
    CostPlusMarkup,
    Graduated,
    Package,
    PerUnit,
    SizeBuckets,
    Tier,
    Volume,
    price_charge,
)
from common.errors import InvalidArgument

TIERS = (
    Tier(up_to=D(100), unit_price=D("0.10")),
    Tier(up_to=D(1000), unit_price=D("0.08"), flat_price=D(5)),
    Tier(up_to=None, unit_price=D("0.05"), flat_price=D(20)),
)


def charge(price, **kw) -> Charge:
    return Charge(key="c", meter_key="m", display_name="Things", price=price, **kw)


def amount(c: Charge, quantity) -> D:
    return price_charge(c, ChargeUsage(quantity=D(quantity))).amount


# --- per unit and included quantity ---------------------------------------------------------


@pytest.mark.parametrize(
    "quantity,expected", [("0", "0"), ("99", "0"), ("100", "0"), ("101", "0.25"), ("140", "10")]
)
def test_per_unit_charges_only_units_above_the_included_quantity(quantity, expected):
    c = charge(PerUnit(D("0.25")), included_quantity=D(100))
    result = price_charge(c, ChargeUsage(quantity=D(quantity)))
    assert result.amount == D(expected)
    assert result.included_quantity_applied == min(D(quantity), D(100))
    assert result.billable_quantity == max(D(0), D(quantity) - 100)
    assert result.unit_price == D("0.25")


def test_per_unit_keeps_sub_cent_precision_to_nine_places():
    c = charge(PerUnit(D("0.000002")))
    result = price_charge(c, ChargeUsage(quantity=D(123457)))
    assert result.amount == D("0.246914")
    c = charge(PerUnit(D("0.000000003")))
    assert price_charge(c, ChargeUsage(quantity=D("0.5"))).amount == D("0.000000002")


# --- graduated ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "quantity,expected",
    [
        ("0", "0"),
        ("1", "0.10"),
        ("100", "10.00"),  # exactly at the first up_to: all in tier 1
        ("101", "15.08"),  # one unit into tier 2 brings its flat fee
        ("1000", "87.00"),  # 10 + 5 + 900 * 0.08
        ("1001", "107.05"),  # + 20 flat + 0.05
        ("2000", "157.00"),
    ],
)
def test_graduated_prices_each_unit_by_its_own_tier(quantity, expected):
    assert amount(charge(Graduated(TIERS)), quantity) == D(expected)


def test_graduated_breakdown_shows_each_tier_used():
    result = price_charge(charge(Graduated(TIERS)), ChargeUsage(quantity=D(1500)))
    assert [(t.label, t.quantity, t.amount) for t in result.tiers] == [
        ("0 to 100", D(100), D("10.00")),
        ("100 to 1000", D(900), D("77.00")),
        ("above 1000", D(500), D("45.00")),
    ]
    assert sum(t.amount for t in result.tiers) == result.amount == D("132.00")
    assert result.unit_price is None


def test_graduated_tiers_count_billable_units_after_the_included_quantity():
    c = charge(Graduated(TIERS), included_quantity=D(50))
    assert amount(c, 150) == D("10.00")
    assert amount(c, 151) == D("15.08")


# --- volume ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "quantity,expected",
    [
        ("0", "0"),
        ("100", "10.00"),  # 100 * 0.10
        ("101", "13.08"),  # all 101 at 0.08 + 5 flat
        ("1000", "85.00"),
        ("1001", "70.05"),  # all at 0.05 + 20: cheaper than 1000
    ],
)
def test_volume_prices_all_units_at_the_tier_the_total_falls_in(quantity, expected):
    result = price_charge(charge(Volume(TIERS)), ChargeUsage(quantity=D(quantity)))
    assert result.amount == D(expected)


def test_volume_reports_the_single_unit_price_applied():
    result = price_charge(charge(Volume(TIERS)), ChargeUsage(quantity=D(500)))
    assert result.unit_price == D("0.08")
    assert [(t.quantity, t.flat_price) for t in result.tiers] == [(D(500), D(5))]


# --- package --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "quantity,packages,expected",
    [("0", 0, "0"), ("1", 1, "5.00"), ("1000", 1, "5.00"), ("1001", 2, "10.00"), ("3000", 3, "15.00")],
)
def test_package_charges_every_started_package(quantity, packages, expected):
    result = price_charge(charge(Package(D(1000), D("5.00"))), ChargeUsage(quantity=D(quantity)))
    assert result.amount == D(expected)
    assert result.tiers[0].quantity == packages if packages else result.amount == 0


def test_package_rounds_up_fractional_quantities():
    assert amount(charge(Package(D("0.5"), D(2))), "1.01") == D(6)


# --- size buckets ---------------------------------------------------------------------------

DOCS = SizeBuckets(
    (BucketPrice("1-10", D("0.50")), BucketPrice("11-100", D("2.00")), BucketPrice("101+", D("5.00")))
)


def docs(**counts) -> ChargeUsage:
    names = {"small": "1-10", "medium": "11-100", "large": "101+"}
    return ChargeUsage(bucket_counts={names[k]: D(v) for k, v in counts.items()})


def test_size_buckets_price_each_document_by_its_page_range():
    result = price_charge(charge(DOCS), docs(small=10, medium=3, large=2))
    assert result.amount == D("21.00")  # 10 * 0.5 + 3 * 2 + 2 * 5
    assert result.quantity == D(15)
    assert [(t.label, t.quantity, t.amount) for t in result.tiers] == [
        ("1-10", D(10), D("5.00")),
        ("11-100", D(3), D("6.00")),
        ("101+", D(2), D("10.00")),
    ]


def test_size_bucket_allowance_is_consumed_in_bucket_order():
    c = charge(DOCS, included_quantity=D(12))
    result = price_charge(c, docs(small=10, medium=3, large=2))
    # 10 small and 2 medium are free; 1 medium and 2 large are billed.
    assert result.amount == D("12.00")
    assert result.included_quantity_applied == D(12)
    assert [t.quantity for t in result.tiers] == [D(0), D(1), D(2)]


@pytest.mark.parametrize("total_docs,expected", [(99, "0"), (100, "0"), (101, "5.00")])
def test_size_bucket_usage_at_or_under_the_allowance_costs_nothing(total_docs, expected):
    c = charge(DOCS, included_quantity=D(100))
    assert price_charge(c, docs(small=50, large=total_docs - 50)).amount == D(expected)


def test_usage_in_a_bucket_the_charge_does_not_price_is_refused_not_dropped():
    with pytest.raises(InvalidArgument) as err:
        price_charge(charge(DOCS), ChargeUsage(bucket_counts={"1000+": D(1)}))
    assert err.value.field == "usage.bucket_counts[1000+]"


# --- cost plus markup -----------------------------------------------------------------------


def test_cost_plus_adds_the_markup_percent_to_the_provider_cost():
    result = price_charge(charge(CostPlusMarkup(D(25))), ChargeUsage(quantity=D("80.00")))
    assert result.amount == D("100.00")
    assert result.provider_cost == D("80.00")


def test_cost_plus_adds_a_fixed_fee_per_request():
    c = charge(CostPlusMarkup(D(25), D("0.002")))
    result = price_charge(c, ChargeUsage(quantity=D("0.123456789"), request_count=D(1500)))
    # 0.123456789 * 1.25 = 0.15432098625 -> 0.154320986 at nine places; + 3.00 for 1500 requests.
    assert result.amount == D("3.154320986")
    assert result.provider_cost == D("0.123456789")


def test_cost_plus_without_usage_costs_nothing():
    assert price_charge(charge(CostPlusMarkup(D(25), D("0.01"))), ChargeUsage()).amount == 0


# --- caps -----------------------------------------------------------------------------------


def test_minimum_raises_a_small_amount_even_with_no_usage():
    c = charge(PerUnit(D(1)), minimum_amount=D("10.00"))
    result = price_charge(c, ChargeUsage(quantity=D(0)))
    assert result.amount == D("10.00") and result.minimum_applied and not result.maximum_applied
    assert result.amount_before_caps == 0
    result = price_charge(c, ChargeUsage(quantity=D(10)))
    assert result.amount == D(10) and not result.minimum_applied
    assert price_charge(c, ChargeUsage(quantity=D(11))).amount == D(11)


def test_maximum_caps_the_amount_at_and_above_it():
    c = charge(PerUnit(D(1)), maximum_amount=D("50.00"))
    assert price_charge(c, ChargeUsage(quantity=D(49))).amount == D(49)
    at = price_charge(c, ChargeUsage(quantity=D(50)))
    assert at.amount == D(50) and not at.maximum_applied
    over = price_charge(c, ChargeUsage(quantity=D(51)))
    assert over.amount == D("50.00") and over.maximum_applied and over.amount_before_caps == D(51)


def test_maximum_caps_cost_plus_markup_too():
    c = charge(CostPlusMarkup(D(100)), maximum_amount=D(100))
    assert price_charge(c, ChargeUsage(quantity=D(60))).amount == D(100)


def test_negative_usage_is_refused():
    with pytest.raises(InvalidArgument) as err:
        price_charge(charge(PerUnit(D(1))), ChargeUsage(quantity=D(-1)))
    assert err.value.field == "usage.quantity"
