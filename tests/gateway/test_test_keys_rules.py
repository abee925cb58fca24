"""The rules of test keys without I/O: the status of a test key's event whatever the outcome, and a secret
whose prefix never lies about its mode."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from gateway.domain.catalog import Route
from gateway.domain.chat import BusinessUnits
from gateway.domain.keys import TEST_SECRET_PREFIX, is_test_secret, new_secret, shown_prefix
from gateway.domain.usage import FAILED, SUCCEEDED, TEST, build_event
from gateway.outbox import encode
from tollgate.metering.v1 import metering_pb2


def route() -> Route:
    return Route(
        model="m",
        offering_id="off_a",
        provider="provider_a",
        upstream_model="up",
        url="http://127.0.0.1:1/chat/completions",
        credential_env="",
        input_price_per_mtok=Decimal("1.5"),
        output_price_per_mtok=Decimal("6"),
        weight=1,
        position=0,
    )


def event(*, test: bool, succeeded: bool):
    return build_event(
        request_id="r1",
        attempt=1,
        occurred_time=datetime(2026, 12, 1, tzinfo=UTC),
        builder_id="b",
        app_id="a",
        customer_id="c",
        route=route(),
        succeeded=succeeded,
        input_tokens=1000,
        output_tokens=500,
        estimated=False,
        latency_ms=5,
        tags={"workspace": "w"},
        units=BusinessUnits(),
        error="" if succeeded else "http 503",
        test=test,
    )


@pytest.mark.parametrize("succeeded", [True, False])
def test_a_test_keys_attempt_is_test_whatever_its_outcome_which_a_tag_keeps(succeeded):
    e = event(test=True, succeeded=succeeded)
    assert e.status == TEST
    assert e.tags["attempt_status"] == (SUCCEEDED if succeeded else FAILED)
    # still measured: 1000 x 1.5/M + 500 x 6/M
    assert Decimal(e.quantities["provider_cost"]) == Decimal("0.0045")
    assert metering_pb2.UsageEvent.FromString(encode(e)).status == metering_pb2.EVENT_STATUS_TEST


@pytest.mark.parametrize("succeeded", [True, False])
def test_a_live_keys_attempt_keeps_its_outcome_as_status(succeeded):
    e = event(test=False, succeeded=succeeded)
    assert e.status == (SUCCEEDED if succeeded else FAILED)
    assert "attempt_status" not in e.tags
    want = metering_pb2.EVENT_STATUS_SUCCEEDED if succeeded else metering_pb2.EVENT_STATUS_FAILED
    assert metering_pb2.UsageEvent.FromString(encode(e)).status == want


def test_secrets_say_their_mode_and_show_five_random_characters_past_it():
    for _ in range(2000):
        live, test = new_secret(), new_secret(test=True)
        assert not is_test_secret(live) and is_test_secret(test)
        assert len(live) == 3 + 43 and len(test) == len(TEST_SECRET_PREFIX) + 43
        assert shown_prefix(live) == live[:8] and shown_prefix(test) == test[:13]


def test_a_live_secret_drawn_with_a_test_looking_start_is_drawn_again(monkeypatch):
    import gateway.domain.keys as keys

    draws = iter(["test_" + "x" * 38, "A" * 43])
    monkeypatch.setattr(keys.secrets, "token_urlsafe", lambda n: next(draws))
    assert keys.new_secret() == "tg_" + "A" * 43
