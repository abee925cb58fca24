"""The fuzzer's strategies reach the inputs the issue names; if one stops reaching them, the fuzz test
silently proves less, so each is found here by search (no servers involved)."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, Phase, find, settings
from hypothesis import strategies as st

from tests.fuzz.strategies import (
    FRESH,
    INT64,
    LARGE_REPEATED_MAX,
    TIMESTAMP_MAX_SECONDS,
    Hints,
    _repeated,
    fresh_request_ids,
    messages,
)
from tollgate.billing.v1 import billing_pb2 as bpb
from tollgate.gateway.v1 import inference_pb2 as ipb
from tollgate.metering.v1 import metering_pb2 as mpb

pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")

SEARCH = settings(
    max_examples=2_000,
    derandomize=True,
    database=None,
    phases=(Phase.generate,),  # the first match will do: shrinking large messages is slow
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
HINTS = Hints(strings={"builder_id": ["b1"], "request_id": [FRESH]})


def _find(descriptor, condition, hints: Hints = HINTS):
    return find(messages(descriptor, hints), condition, settings=SEARCH)


@pytest.mark.parametrize(
    ("what", "descriptor", "condition"),
    [
        ("a NUL character", bpb.GetCustomerRequest.DESCRIPTOR, lambda m: "\x00" in m.customer_id),
        (
            "a 10,000-character string",
            bpb.GetCustomerRequest.DESCRIPTOR,
            lambda m: len(m.customer_id) == 10_000,
        ),
        (
            "an astral character",
            bpb.GetCustomerRequest.DESCRIPTOR,
            lambda m: any(ord(c) > 0xFFFF for c in m.customer_id),
        ),
        ("a trailing newline", bpb.GetCustomerRequest.DESCRIPTOR, lambda m: m.customer_id.endswith("\n")),
        ("int32 minimum", bpb.ListCustomersRequest.DESCRIPTOR, lambda m: m.page_size == -(2**31)),
        ("an unknown enum value", bpb.ListInvoicesRequest.DESCRIPTOR, lambda m: m.status not in (0, 1, 2, 3)),
        ("NaN temperature", ipb.CreateChatCompletionRequest.DESCRIPTOR, lambda m: math.isnan(m.temperature)),
        (
            "a timestamp past year 9999",
            mpb.QueryUsageRequest.DESCRIPTOR,
            lambda m: m.start_time.seconds > TIMESTAMP_MAX_SECONDS,
        ),
        ("int64 maximum units", bpb.TopUpWalletRequest.DESCRIPTOR, lambda m: m.amount.units == INT64[1]),
        ("nanos out of range", bpb.TopUpWalletRequest.DESCRIPTOR, lambda m: abs(m.amount.nanos) >= 10**9),
        (
            "a oneof price",
            bpb.PublishPlanVersionRequest.DESCRIPTOR,
            lambda m: any(c.HasField("graduated") for c in m.version.charges),
        ),
        (
            "a 100-entry map",
            mpb.UsageEvent.DESCRIPTOR,
            lambda m: len(m.tags) >= 100,
        ),
    ],
)
def test_strategy_reaches(what: str, descriptor, condition) -> None:
    assert condition(_find(descriptor, condition)), what


def test_repeated_fields_reach_2000_items() -> None:
    wild = Hints(plausible_probability=0.0)
    found = find(
        _repeated(st.just("x"), wild), lambda items: len(items) == LARGE_REPEATED_MAX, settings=SEARCH
    )
    assert len(found) == LARGE_REPEATED_MAX


def test_plausible_values_come_from_the_hints_and_fresh_ids_are_unique() -> None:
    found = _find(bpb.GetCustomerRequest.DESCRIPTOR, lambda m: m.builder_id == "b1")
    assert found.builder_id == "b1"
    a = fresh_request_ids(_find(bpb.TopUpWalletRequest.DESCRIPTOR, lambda m: m.request_id == FRESH))
    b = fresh_request_ids(_find(bpb.TopUpWalletRequest.DESCRIPTOR, lambda m: m.request_id == FRESH))
    assert len(a.request_id) == 32 and a.request_id != b.request_id


def test_fully_plausible_requests_set_every_field() -> None:
    plausible = Hints(strings=HINTS.strings, plausible_probability=1.0)
    found = _find(bpb.SubscribeRequest.DESCRIPTOR, lambda m: True, plausible)
    assert {f.name for f, _ in found.ListFields()} >= {"request_id", "builder_id", "customer_id", "plan_id"}
