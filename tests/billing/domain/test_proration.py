"""Proration by second: hand-checked amounts and Hypothesis properties of the rule
(billing.domain.proration)."""

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.domain import (
    NO_PLATFORM_FEE,
    Charge,
    ChargeUsage,
    PerUnit,
    PlanSpec,
    period_containing,
)
from billing.domain.proration import (
    Segment,
    active_share,
    build_segmented_invoice,
    prorate_amount,
    prorate_plan,
    prorate_quantity,
)
from common.errors import InvalidArgument

MARCH = period_containing(datetime(2026, 3, 1, tzinfo=UTC))
DAY = timedelta(days=1)


def at(day: int) -> datetime:
    return datetime(2026, 3, day, tzinfo=UTC)


DOCS = Charge(
    "docs", "documents", "Documents", PerUnit(D("0.10")), included_quantity=D(100), minimum_amount=D("5.00")
)
BASIC = PlanSpec("USD", (DOCS,), base_fee=D("49.00"))
PRO = PlanSpec(
    "USD",
    (Charge("docs", "documents", "Documents", PerUnit(D("0.05")), included_quantity=D(1000)),),
    base_fee=D("99.00"),
)


def test_share_is_active_seconds_over_period_seconds():
    assert active_share(MARCH, at(10), MARCH.end) == Fraction(22, 31)
    assert active_share(MARCH, at(1), MARCH.end) == 1
    assert active_share(MARCH, at(10), at(10)) == 0
    # Clipped to the period; sub-second parts of the bounds are cut to the whole second.
    assert active_share(MARCH, datetime(2026, 2, 1, tzinfo=UTC), at(2)) == Fraction(1, 31)
    assert active_share(MARCH, at(2) + timedelta(microseconds=999_999), at(3)) == Fraction(1, 31)


def test_started_on_the_tenth_pays_22_of_31_days_rounded_once():
    plan = prorate_plan(BASIC, Fraction(22, 31))
    # 49.00 * 22 / 31 = 34.7741935... -> 34.77; minimum 5.00 * 22/31 = 3.548... -> 3.55;
    # included 100 * 22/31 = 70.967... -> 71 documents.
    assert plan.base_fee == D("34.77")
    assert plan.charges[0].minimum_amount == D("3.55")
    assert plan.charges[0].included_quantity == D(71)


def test_included_quantity_keeps_the_places_the_plan_wrote():
    assert prorate_quantity(D("2.5"), Fraction(1, 3)) == D("0.8")
    assert prorate_quantity(D("0.5"), Fraction(1, 2)) == D("0.3")  # 0.25 -> 0.3: half away from zero


def test_half_a_cent_rounds_away_from_zero():
    assert prorate_amount(D("0.01"), Fraction(1, 2), "USD") == D("0.01")
    assert prorate_amount(D("0.03"), Fraction(1, 2), "USD") == D("0.02")
    assert prorate_amount(D("1"), Fraction(1, 2), "JPY") == D("1")


def test_a_share_outside_zero_to_one_is_refused():
    with pytest.raises(InvalidArgument):
        prorate_amount(D("1.00"), Fraction(3, 2), "USD")


def test_a_period_split_on_the_twentieth_prices_each_side_on_its_own_version():
    invoice = build_segmented_invoice(
        [
            Segment(BASIC, "basic v1", at(10), at(20), {"docs": ChargeUsage(quantity=D(150))}),
            Segment(PRO, "pro v1", at(20), MARCH.end, {"docs": ChargeUsage(quantity=D(500))}),
        ],
        NO_PLATFORM_FEE,
        MARCH,
    )
    amounts = [line.amount for line in invoice.lines]
    # basic, 10 of 31 days: fee 49 * 10/31 = 15.806 -> 15.81; included 100 * 10/31 = 32.26 -> 32;
    # docs (150 - 32) * 0.10 = 11.80 (above the minimum 5 * 10/31 = 1.61).
    # pro, 12 of 31 days: fee 99 * 12/31 = 38.322 -> 38.32; included 1000 * 12/31 = 387.1 -> 387;
    # docs: 500 - 387 = 113 * 0.05 = 5.65.
    assert amounts == [D("15.81"), D("11.80"), D("38.32"), D("5.65")]
    assert invoice.total == D("71.58")
    first = "Base fee (basic v1, 2026-03-10 00:00:00 to 2026-03-20 00:00:00 UTC)"
    assert invoice.lines[0].display_name == first
    assert invoice.lines[3].display_name.endswith("(pro v1, 2026-03-20 00:00:00 to 2026-04-01 00:00:00 UTC)")


def test_overlapping_segments_are_refused():
    with pytest.raises(InvalidArgument) as err:
        build_segmented_invoice(
            [Segment(BASIC, "a", at(1), at(20), {}), Segment(PRO, "b", at(19), MARCH.end, {})],
            NO_PLATFORM_FEE,
            MARCH,
        )
    assert err.value.field == "segments[1]"


fees = st.decimals(min_value=0, max_value=D(10) ** 12, places=2, allow_nan=False, allow_infinity=False)
seconds = int((MARCH.end - MARCH.start).total_seconds())


@given(fee=fees, start=st.integers(0, seconds), length=st.integers(0, seconds))
def test_a_prorated_fee_never_exceeds_the_full_fee(fee, start, length):
    begin = MARCH.start + timedelta(seconds=start)
    share = active_share(MARCH, begin, begin + timedelta(seconds=length))
    prorated = prorate_amount(fee, share, "USD")
    assert D(0) <= prorated <= fee
    assert prorate_quantity(D(int(fee)), share) <= D(int(fee))


@given(
    fee=fees,
    cuts=st.lists(st.integers(1, seconds - 1), min_size=1, max_size=8, unique=True),
    currency=st.sampled_from(["USD", "JPY"]),
)
def test_fees_across_a_split_period_sum_to_the_full_fee_within_a_unit_per_split(fee, cuts, currency):
    if currency == "JPY":
        fee = D(int(fee))
    bounds = [MARCH.start, *sorted(MARCH.start + timedelta(seconds=c) for c in cuts), MARCH.end]
    plan = PlanSpec(currency, base_fee=fee)
    invoice = build_segmented_invoice(
        [Segment(plan, "p v1", lo, hi, {}) for lo, hi in itertools.pairwise(bounds)],
        NO_PLATFORM_FEE,
        MARCH,
    )
    unit = D("0.01") if currency == "USD" else D(1)
    assert abs(invoice.total - fee) <= unit * len(cuts)


@given(fee=fees)
def test_a_whole_period_is_the_full_fee(fee):
    assert prorate_plan(PlanSpec("USD", base_fee=fee), active_share(MARCH, at(1), MARCH.end)).base_fee == fee
