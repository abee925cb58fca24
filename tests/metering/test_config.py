"""metering.config.Settings: defaults, METERING_* variables, and failing fast on bad values, both in
process and as `python -m metering`."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from common.settings import SettingsError
from metering.config import Settings

REPO = Path(__file__).resolve().parents[2]


def test_defaults_match_the_agreed_interface():
    s = Settings.from_env({})
    assert s.database_url is None
    assert s.data_dir == ".tollgate/pgdata"
    assert s.grpc_address == "127.0.0.1:50051"
    assert s.metrics_port == 9101
    assert s.shutdown_grace_seconds == 5.0
    assert s.max_batch_size == 10_000
    assert s.future_tolerance_seconds == 300
    assert s.settle_seconds == 30.0
    assert s.max_event_age_days == 400
    assert s.max_new_partitions_per_batch == 4


def test_metering_variables_are_read():
    s = Settings.from_env(
        {
            "METERING_DATABASE_URL": "postgresql://u@h:5432/metering",
            "METERING_GRPC_ADDRESS": "0.0.0.0:6000",
            "METERING_METRICS_PORT": "9200",
            "METERING_LOG_LEVEL": "DEBUG",
            "METERING_SHUTDOWN_GRACE_SECONDS": "2.5",
            "METERING_MAX_BATCH_SIZE": "500",
            "METERING_FUTURE_TOLERANCE_SECONDS": "60",
            "METERING_SETTLE_SECONDS": "4",
            "METERING_MAX_EVENT_AGE_DAYS": "30",
            "METERING_MAX_NEW_PARTITIONS_PER_BATCH": "2",
            "BILLING_GRPC_ADDRESS": "ignored:1",
        }
    )
    assert s.database_url == "postgresql://u@h:5432/metering"
    assert s.grpc_address == "0.0.0.0:6000"
    assert s.metrics_port == 9200
    assert s.log_level == "DEBUG"
    assert s.shutdown_grace_seconds == 2.5
    assert s.max_batch_size == 500
    assert s.future_tolerance_seconds == 60
    assert s.settle_seconds == 4.0
    assert s.max_event_age_days == 30
    assert s.max_new_partitions_per_batch == 2


@pytest.mark.parametrize("value", ["off", "none", "OFF", "0"])
def test_metrics_port_off_disables_metrics(value):
    assert Settings.from_env({"METERING_METRICS_PORT": value}).metrics_port is None


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("METERING_MAX_BATCH_SIZE", "lots"),
        ("METERING_MAX_BATCH_SIZE", "0"),
        ("METERING_SETTLE_SECONDS", "-1"),
        ("METERING_METRICS_PORT", "ninety"),
        ("METERING_METRICS_PORT", "70000"),
        ("METERING_SHUTDOWN_GRACE_SECONDS", "soon"),
        ("METERING_MAX_EVENT_AGE_DAYS", "0"),
        ("METERING_MAX_EVENT_AGE_DAYS", "4000000"),
        ("METERING_MAX_NEW_PARTITIONS_PER_BATCH", "0"),
        ("METERING_FUTURE_TOLERANCE_SECONDS", "-1"),
    ],
)
def test_bad_values_fail_fast_naming_the_variable(name, value):
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({name: value})
    assert name in str(caught.value)


def test_settings_are_frozen():
    s = Settings()
    with pytest.raises(AttributeError):
        s.max_batch_size = 1  # type: ignore[misc]


async def test_process_with_a_bad_variable_exits_non_zero_naming_it():
    env = dict(os.environ, METERING_MAX_BATCH_SIZE="lots", METERING_GRPC_ADDRESS="127.0.0.1:0")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "metering",
        cwd=REPO,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode != 0
    assert b"METERING_MAX_BATCH_SIZE" in out
