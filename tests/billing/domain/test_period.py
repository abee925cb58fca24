from datetime import UTC, datetime, timedelta, timezone

import pytest

from billing.domain import BillingPeriod, next_period, period_containing, plan_change_effective_time
from common.errors import InvalidArgument


def test_a_time_in_another_zone_falls_in_its_utc_month():
    # 23:30 on 31 March in New York is already 1 April in UTC.
    new_york = timezone(timedelta(hours=-4))
    period = period_containing(datetime(2025, 3, 31, 23, 30, tzinfo=new_york))
    assert period == BillingPeriod(datetime(2025, 4, 1, tzinfo=UTC), datetime(2025, 5, 1, tzinfo=UTC))
    assert period.label == "2025-04"


def test_february_of_a_leap_year_ends_on_the_first_of_march():
    assert period_containing(datetime(2024, 2, 29, 12, tzinfo=UTC)).end == datetime(2024, 3, 1, tzinfo=UTC)


def test_periods_chain_without_gaps_across_the_year_end():
    period = period_containing(datetime(2025, 11, 5, tzinfo=UTC))
    for _ in range(3):
        following = next_period(period)
        assert following.start == period.end
        period = following
    assert period.label == "2026-02"


def test_a_plan_change_on_the_first_instant_of_a_month_waits_for_the_next_month():
    assert plan_change_effective_time(datetime(2025, 6, 1, tzinfo=UTC)) == datetime(2025, 7, 1, tzinfo=UTC)


def test_naive_times_are_refused():
    with pytest.raises(InvalidArgument) as err:
        period_containing(datetime(2025, 6, 1))
    assert err.value.field == "time"


def test_a_period_must_end_after_it_starts():
    with pytest.raises(InvalidArgument) as err:
        BillingPeriod(datetime(2025, 6, 1, tzinfo=UTC), datetime(2025, 6, 1, tzinfo=UTC))
    assert err.value.field == "period.end"
