"""Every ingest validation rule: the event is INVALID with a reason and the offending field, and its
valid batch-mate in the same batch is still accepted."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from metering_kit import (
    ACCEPTED,
    COUNT,
    INVALID,
    assert_invalid_field,
    create_meter,
    event,
    event_field_is,
    ingest,
    meter,
    new_id,
    now,
    query,
    ts,
    utc,
)

from tollgate.metering.v1 import metering_pb2 as pb


async def outcome_of(stub, bad: pb.UsageEvent, builder: str) -> pb.EventResult:
    """Send `bad` between two good events and return its result; the good ones must be accepted."""
    before = event(new_id("ok"), builder=builder)
    after = event(new_id("ok"), builder=builder)
    response = await ingest(stub, [before, bad, after])
    assert response.results[0].outcome == ACCEPTED
    assert response.results[2].outcome == ACCEPTED
    assert response.accepted_count == 2 + (response.results[1].outcome == ACCEPTED)
    return response.results[1]


async def assert_invalid(stub, bad: pb.UsageEvent, builder: str, field: str, *words: str) -> None:
    result = await outcome_of(stub, bad, builder)
    assert result.outcome == INVALID, result
    assert event_field_is(result, 1, field), result
    assert result.reason, result
    if words:
        assert any(w in result.reason.lower() for w in words), result.reason


async def test_missing_id_is_invalid(stub):
    b = new_id()
    await assert_invalid(stub, event("", builder=b), b, "id")


async def test_id_of_129_characters_is_invalid_and_128_is_fine(stub):
    b = new_id()
    await assert_invalid(stub, event("x" * 129, builder=b), b, "id", "128")
    assert (await outcome_of(stub, event("y" * 128, builder=b), b)).outcome == ACCEPTED


@pytest.mark.parametrize("status", [pb.EVENT_STATUS_UNSPECIFIED, 42])
async def test_unspecified_or_unknown_status_is_invalid(stub, status):
    b = new_id()
    await assert_invalid(stub, event(new_id("e"), builder=b, status=status), b, "status", "status")


@pytest.mark.parametrize("status", [pb.EVENT_STATUS_FAILED, pb.EVENT_STATUS_TEST])
async def test_failed_and_test_statuses_are_accepted(stub, status):
    b = new_id()
    assert (await outcome_of(stub, event(new_id("e"), builder=b, status=status), b)).outcome == ACCEPTED


@pytest.mark.parametrize("text", ["abc", "1e5", "0e0", "", "1,5", "0x10", "1_000", "\u0661\u0662", "1 000"])
async def test_unparseable_quantity_is_invalid(stub, text):
    b = new_id()
    await assert_invalid(
        stub, event(new_id("e"), builder=b, quantities={"pages": text}), b, "quantities.pages"
    )


async def test_negative_quantity_is_invalid(stub):
    b = new_id()
    bad = event(new_id("e"), builder=b, quantities={"provider_cost": "-0.000001"})
    await assert_invalid(stub, bad, b, "quantities.provider_cost", "negative")


@pytest.mark.parametrize("text", ["NaN", "nan", "Infinity", "-Infinity", "inf", "sNaN"])
async def test_non_finite_quantity_is_invalid(stub, text):
    b = new_id()
    await assert_invalid(
        stub, event(new_id("e"), builder=b, quantities={"input_tokens": text}), b, "quantities.input_tokens"
    )


@pytest.mark.parametrize("text", ["0", "1200", "0.000375", "12.50", "123456789012.123456789"])
async def test_exact_decimal_quantities_are_accepted_and_kept_exactly(stub, text):
    b = new_id()
    e = event(new_id("e"), builder=b, quantities={"provider_cost": text})
    assert (await outcome_of(stub, e, b)).outcome == ACCEPTED
    listed = await stub.ListEvents(pb.ListEventsRequest(builder_id=b, page_size=10), timeout=10)
    stored = next(ev for ev in listed.events if ev.id == e.id)

    assert Decimal(stored.quantities["provider_cost"]) == Decimal(text)


async def test_occurred_time_more_than_5_minutes_ahead_is_invalid(stub):
    b = new_id()
    bad = event(new_id("e"), builder=b, at=now() + timedelta(minutes=6))
    await assert_invalid(stub, bad, b, "occurred_time", "future")


async def test_occurred_time_4_minutes_ahead_is_accepted(stub):
    b = new_id()
    ok = event(new_id("e"), builder=b, at=now() + timedelta(minutes=4))
    assert (await outcome_of(stub, ok, b)).outcome == ACCEPTED


async def test_missing_occurred_time_is_invalid(stub):
    b = new_id()
    bad = event(new_id("e"), builder=b)
    bad.ClearField("occurred_time")
    await assert_invalid(stub, bad, b, "occurred_time")


async def test_33_tags_are_invalid_and_32_are_fine(stub):
    b = new_id()
    tags33 = {f"k{i}": "v" for i in range(33)}
    await assert_invalid(stub, event(new_id("e"), builder=b, tags=tags33), b, "tags")
    tags32 = {f"k{i}": "v" for i in range(32)}
    assert (await outcome_of(stub, event(new_id("e"), builder=b, tags=tags32), b)).outcome == ACCEPTED


async def test_over_long_tag_key_is_invalid(stub):
    b = new_id()
    result = await outcome_of(stub, event(new_id("e"), builder=b, tags={"k" * 65: "v"}), b)
    assert result.outcome == INVALID
    assert result.field.removeprefix("events[1].").startswith("tags"), result
    assert result.reason


async def test_over_long_tag_value_is_invalid_and_256_is_fine(stub):
    b = new_id()
    result = await outcome_of(stub, event(new_id("e"), builder=b, tags={"workflow": "v" * 257}), b)
    assert result.outcome == INVALID
    assert result.field.removeprefix("events[1].").startswith("tags"), result
    ok = event(new_id("e"), builder=b, tags={"k" * 64: "v" * 256})
    assert (await outcome_of(stub, ok, b)).outcome == ACCEPTED


async def test_33_quantities_are_invalid(stub):
    b = new_id()
    bad = event(new_id("e"), builder=b, quantities={f"q{i}": "1" for i in range(33)})
    await assert_invalid(stub, bad, b, "quantities")


async def test_missing_customer_is_invalid(stub):
    b = new_id()
    await assert_invalid(stub, event(new_id("e"), builder=b, customer=""), b, "customer_id", "customer")


async def test_missing_builder_is_invalid(stub):
    b = new_id()
    await assert_invalid(stub, event(new_id("e"), builder=""), b, "builder_id", "builder")


async def test_over_long_customer_is_invalid(stub):
    b = new_id()
    await assert_invalid(stub, event(new_id("e"), builder=b, customer="c" * 129), b, "customer_id")


@pytest.mark.parametrize("bad_type", ["", "AI.Request", "ai request", "ai/request", "t" * 129])
async def test_bad_type_is_invalid(stub, bad_type):
    b = new_id()
    await assert_invalid(stub, event(new_id("e"), builder=b, type=bad_type), b, "type")


@pytest.mark.parametrize("good_type", ["workflow.run", "document.processed", "my-own_type.v2"])
async def test_builders_own_types_are_accepted(stub, good_type):
    b = new_id()
    assert (await outcome_of(stub, event(new_id("e"), builder=b, type=good_type), b)).outcome == ACCEPTED


async def test_invalid_events_are_not_stored(stub):
    b = new_id()
    await ingest(stub, [event("neg", builder=b, quantities={"pages": "-5"})])
    listed = await stub.ListEvents(pb.ListEventsRequest(builder_id=b), timeout=10)
    assert [e.id for e in listed.events] == []
    # The id was never taken: a corrected event with it is accepted.
    fixed = await ingest(stub, [event("neg", builder=b, quantities={"pages": "5"})])
    assert fixed.results[0].outcome == ACCEPTED


async def test_over_long_or_empty_quantity_key_is_invalid(stub):
    b = new_id()
    for key in ("q" * 65, ""):
        result = await outcome_of(stub, event(new_id("e"), builder=b, quantities={key: "1"}), b)
        assert result.outcome == INVALID, (key, result)
        assert result.field.removeprefix("events[1].").startswith("quantities"), result


async def test_empty_tag_key_is_invalid(stub):
    b = new_id()
    result = await outcome_of(stub, event(new_id("e"), builder=b, tags={"": "v"}), b)
    assert result.outcome == INVALID
    assert result.field.removeprefix("events[1].").startswith("tags"), result


@pytest.mark.parametrize(
    ("where", "field"),
    [
        ("id", "id"),
        ("customer", "customer_id"),
        ("run_id", "run_id"),
        ("tag_value", "tags"),
        ("tag_key", "tags"),
        ("quantity_key", "quantities"),
        ("app", "app_id"),
    ],
)
async def test_nul_characters_are_invalid_not_an_internal_error(stub, where, field):
    b = new_id()
    kwargs: dict = {}
    event_id = new_id("e")
    if where == "id":
        event_id = "bad\x00id"
    elif where == "customer":
        kwargs["customer"] = "c\x00"
    elif where == "run_id":
        kwargs["run_id"] = "r\x00"
    elif where == "app":
        kwargs["app"] = "a\x00"
    elif where == "tag_value":
        kwargs["tags"] = {"workflow": "in\x00take"}
    elif where == "tag_key":
        kwargs["tags"] = {"work\x00flow": "intake"}
    else:
        kwargs["quantities"] = {"pa\x00ges": "1"}
    result = await outcome_of(stub, event(event_id, builder=b, **kwargs), b)
    assert result.outcome == INVALID, result
    assert result.field.removeprefix("events[1].").startswith(field), result


def _nul_calls(stub, b: str):

    jan, feb = utc(2026, 1, 1), utc(2026, 2, 1)
    return {
        "QueryUsage.builder_id": ("builder_id", lambda: query(stub, "b\x00", "m", jan, feb)),
        "QueryUsage.customer_id": ("customer_id", lambda: query(stub, b, "m", jan, feb, customer="c\x00")),
        "QueryUsage.tag_filters": (
            "tag_filters",
            lambda: query(stub, b, "m", jan, feb, tag_filters={"k": "v\x00"}),
        ),
        "QueryUsage.group_by_tags": (
            "group_by_tags",
            lambda: query(stub, b, "m", jan, feb, by_tags=["k\x00"]),
        ),
        "ListEvents.builder_id": (
            "builder_id",
            lambda: stub.ListEvents(pb.ListEventsRequest(builder_id="b\x00"), timeout=5),
        ),
        "ListEvents.customer_id": (
            "customer_id",
            lambda: stub.ListEvents(pb.ListEventsRequest(builder_id=b, customer_id="c\x00"), timeout=5),
        ),
        "ListEvents.run_id": (
            "run_id",
            lambda: stub.ListEvents(
                pb.ListEventsRequest(builder_id=b, run_id="r\x00", start_time=ts(jan)), timeout=5
            ),
        ),
        "GetMeter.builder_id": (
            "builder_id",
            lambda: stub.GetMeter(pb.GetMeterRequest(builder_id="b\x00", key="m"), timeout=5),
        ),
        "ListMeters.builder_id": (
            "builder_id",
            lambda: stub.ListMeters(pb.ListMetersRequest(builder_id="b\x00"), timeout=5),
        ),
        "CreateMeter.builder_id": ("builder_id", lambda: create_meter(stub, meter("b\x00", "m2", COUNT))),
        "CreateMeter.tag_filters": (
            "tag_filters",
            lambda: create_meter(stub, meter(b, "m3", COUNT, tag_filters={"k": "\x00"})),
        ),
        "CreateMeter.display_name": (
            "display_name",
            lambda: create_meter(stub, meter(b, "m4", COUNT, display_name="x\x00")),
        ),
        "CreateMeter.request_id": (
            "request_id",
            lambda: stub.CreateMeter(
                pb.CreateMeterRequest(request_id="r\x00", meter=meter(b, "m5", COUNT)), timeout=5
            ),
        ),
        "ArchiveMeter.request_id": (
            "request_id",
            lambda: stub.ArchiveMeter(
                pb.ArchiveMeterRequest(request_id="r\x00", builder_id=b, key="m"), timeout=5
            ),
        ),
    }


NUL_CASES = list(_nul_calls(None, "b"))


@pytest.mark.parametrize("case", NUL_CASES)
async def test_nul_characters_in_any_request_string_are_invalid_argument_not_internal(stub, case):

    b = new_id()
    await create_meter(stub, meter(b, "m", COUNT))
    field, call = _nul_calls(stub, b)[case]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call()
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (
        case,
        caught.value.code(),
        caught.value.details(),
    )
    assert_invalid_field(caught.value, field)


# google.protobuf.Timestamp is valid for 0001-01-01 to 9999-12-31 with nanos in [0, 999999999].
OUT_OF_RANGE_TIMES = [
    ("seconds_before_year_1", -(10**12), 0),
    ("negative_nanos", 1_700_000_000, -1),
    ("nanos_of_two_seconds", 1_700_000_000, 2_000_000_000),
]


@pytest.mark.parametrize(
    ("case", "seconds", "nanos"), OUT_OF_RANGE_TIMES, ids=[c[0] for c in OUT_OF_RANGE_TIMES]
)
async def test_invalid_timestamp_is_an_invalid_event_and_batch_mates_are_accepted(stub, case, seconds, nanos):
    b = new_id()
    bad = event(new_id("e"), builder=b)
    bad.occurred_time.seconds = seconds
    bad.occurred_time.nanos = nanos
    await assert_invalid(stub, bad, b, "occurred_time")


@pytest.mark.parametrize("which", ["start_time", "end_time", "ingested_before_time"])
@pytest.mark.parametrize(("case", "seconds", "nanos"), [("far", 10**12, 0), ("bad_nanos", 1_770_000_000, -5)])
async def test_invalid_timestamp_in_query_usage_is_invalid_argument_naming_it(
    stub, which, case, seconds, nanos
):

    b = new_id()
    await create_meter(stub, meter(b, "m", COUNT))
    request = pb.QueryUsageRequest(builder_id=b, meter_key="m")
    request.start_time.CopyFrom(ts(utc(2026, 1, 1)))
    request.end_time.CopyFrom(ts(utc(2026, 2, 1)))
    stamp = getattr(request, which)
    stamp.seconds = seconds if which != "start_time" else -seconds
    stamp.nanos = nanos
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.QueryUsage(request, timeout=5)
    assert_invalid_field(caught.value, which)


@pytest.mark.parametrize("which", ["start_time", "end_time"])
async def test_invalid_timestamp_in_list_events_is_invalid_argument_naming_it(stub, which):

    request = pb.ListEventsRequest(builder_id=new_id())
    getattr(request, which).CopyFrom(Timestamp(seconds=-(10**12)))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ListEvents(request, timeout=5)
    assert_invalid_field(caught.value, which)
