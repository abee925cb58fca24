"""BILLING_LATE_USAGE_MAX_AGE_DAYS: its default equals metering's retention, and bad values fail fast."""

from __future__ import annotations

import pytest

from billing.config import Settings
from common.settings import SettingsError
from metering.config import Settings as MeteringSettings


def test_the_default_look_back_covers_metering_default_retention():
    assert Settings.from_env({}).late_usage_max_age_days == 400
    assert Settings.from_env({}).late_usage_max_age_days >= MeteringSettings.from_env({}).max_event_age_days


def test_the_look_back_is_read_from_the_environment():
    assert Settings.from_env({"BILLING_LATE_USAGE_MAX_AGE_DAYS": "800"}).late_usage_max_age_days == 800


@pytest.mark.parametrize("value", ["0", "-5", "3652060"])
def test_a_look_back_out_of_range_fails_fast(value):
    with pytest.raises(SettingsError) as err:
        Settings.from_env({"BILLING_LATE_USAGE_MAX_AGE_DAYS": value})
    assert "BILLING_LATE_USAGE_MAX_AGE_DAYS" in str(err.value)
