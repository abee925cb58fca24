"""The API edge, case by case: each strange input below gets INVALID_ARGUMENT naming its field (several
of them were INTERNAL before the edge checks), and errors quote at most 64 characters of the input."""

from __future__ import annotations

import base64
import uuid

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from metering_kit import (
    COUNT,
    INVALID,
    assert_invalid_field,
    create_meter,
    event,
    ingest,
    meter,
    new_id,
    now,
    ts,
    utc,
)

from common.paging import encode_token
from tollgate.metering.v1 import metering_pb2 as pb


def raw_token(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


async def refused(call, request, field: str) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(request, timeout=10)
    assert_invalid_field(caught.value, field)
    return caught.value


ISSUED_TIME = "2026-01-15T12:00:00+00:00"


@pytest.mark.parametrize(
    "token",
    [
        encode_token({"t": ISSUED_TIME, "s": 2**70}),  # beyond bigint
        encode_token({"t": ISSUED_TIME, "s": -1}),
        encode_token({"t": ISSUED_TIME, "s": True}),
        encode_token({"t": ISSUED_TIME, "s": 1.5}),
        encode_token({"t": ISSUED_TIME, "s": "1"}),
        encode_token({"t": "2026-01-15T12:00:00", "s": 1}),  # no offset
        encode_token({"t": "0001-01-01T00:00:00+05:00", "s": 1}),  # before year 1 in UTC
        encode_token({"t": 20260115, "s": 1}),
        encode_token({"t": ISSUED_TIME, "s": 1, "b": "other"}),
        encode_token({"t": "x" * 10_000, "s": 1}),
        raw_token('{"t": "2026-01-15T12:00:00+00:00", "s": 1e999}'),
        raw_token("[" * 5000 + "]" * 5000),
        raw_token("null"),
    ],
)
async def test_list_events_page_tokens_with_wrong_types_or_values_are_invalid_argument(stub, token):
    await refused(stub.ListEvents, pb.ListEventsRequest(builder_id=new_id(), page_token=token), "page_token")


@pytest.mark.parametrize("key", ["a\x00b", 5, None, "Upper", "x" * 65, "requests\n"])
async def test_list_meters_page_tokens_with_a_bad_key_are_invalid_argument(stub, key):
    b = new_id()
    token = encode_token({"b": b, "k": key})
    await refused(stub.ListMeters, pb.ListMetersRequest(builder_id=b, page_token=token), "page_token")


async def test_an_issued_list_events_token_still_pages(stub):
    b = new_id()
    await ingest(stub, [event(f"e{i}", builder=b) for i in range(3)])
    first = await stub.ListEvents(pb.ListEventsRequest(builder_id=b, page_size=2), timeout=10)
    rest = await stub.ListEvents(
        pb.ListEventsRequest(builder_id=b, page_size=2, page_token=first.next_page_token), timeout=10
    )
    assert len(first.events) == 2 and len(rest.events) == 1 and not rest.next_page_token


async def test_keys_and_types_are_matched_as_whole_strings_so_a_trailing_newline_is_refused(stub):
    b = new_id()
    await refused(
        stub.CreateMeter, pb.CreateMeterRequest(request_id="r1", meter=meter(b, "requests\n")), "key"
    )
    bad_type = meter(b, "requests", event_types=["ai.request\n"])
    await refused(stub.CreateMeter, pb.CreateMeterRequest(request_id="r2", meter=bad_type), "event_types")
    await refused(stub.GetMeter, pb.GetMeterRequest(builder_id=b, key="requests\n"), "key")
    await refused(stub.ListEvents, pb.ListEventsRequest(builder_id=b, type="ai.request\n"), "type")
    # Nothing was created by the refused calls.
    listed = await stub.ListMeters(pb.ListMetersRequest(builder_id=b, include_archived=True), timeout=10)
    assert list(listed.meters) == []


def stamp(seconds: int, nanos: int = 0) -> Timestamp:
    return Timestamp(seconds=seconds, nanos=nanos)


YEAR_10000 = 253_402_300_800
BEFORE_YEAR_1 = -62_135_596_801


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("start_time", stamp(BEFORE_YEAR_1)),
        ("end_time", stamp(YEAR_10000)),
        ("start_time", stamp(0, -1)),
        ("ingested_before_time", stamp(0, 1_000_000_000)),
        ("ingested_before_time", stamp(2**63 - 1)),
    ],
)
async def test_query_usage_timestamps_outside_year_1_to_9999_or_bad_nanos_are_invalid_argument(
    stub, name, value
):
    b = new_id()
    await create_meter(stub, meter(b, "requests", COUNT))
    request = pb.QueryUsageRequest(builder_id=b, meter_key="requests")
    request.start_time.CopyFrom(ts(utc(2026, 1, 1)))
    request.end_time.CopyFrom(ts(utc(2026, 2, 1)))
    getattr(request, name).CopyFrom(value)
    await refused(stub.QueryUsage, request, name)


async def test_list_events_timestamps_outside_the_range_are_invalid_argument(stub):
    request = pb.ListEventsRequest(builder_id=new_id())
    request.end_time.CopyFrom(stamp(YEAR_10000))
    await refused(stub.ListEvents, request, "end_time")


async def test_a_query_over_the_whole_timestamp_range_answers(stub):
    b = new_id()
    await create_meter(stub, meter(b, "requests", COUNT))
    await ingest(stub, [event("e1", builder=b, at=now())])
    request = pb.QueryUsageRequest(builder_id=b, meter_key="requests", window_size=pb.WINDOW_SIZE_UNSPECIFIED)
    request.start_time.CopyFrom(stamp(-62_135_596_800))
    request.end_time.CopyFrom(stamp(253_402_300_799, 999_999_999))
    request.ingested_before_time.CopyFrom(stamp(-62_135_596_800))
    response = await stub.QueryUsage(request, timeout=10)
    assert list(response.rows) == []  # nothing was ingested before year 1


async def test_unknown_enum_numbers_are_invalid_argument_naming_the_field(stub):
    b = new_id()
    await refused(
        stub.CreateMeter,
        pb.CreateMeterRequest(request_id="r1", meter=meter(b, "m", aggregation=99)),
        "aggregation",
    )
    await refused(
        stub.CreateMeter,
        pb.CreateMeterRequest(request_id="r2", meter=meter(b, "m", statuses=[1, 7])),
        "statuses",
    )
    await create_meter(stub, meter(b, "requests", COUNT))
    request = pb.QueryUsageRequest(builder_id=b, meter_key="requests", window_size=99)
    request.start_time.CopyFrom(ts(utc(2026, 1, 1)))
    request.end_time.CopyFrom(ts(utc(2026, 2, 1)))
    await refused(stub.QueryUsage, request, "window_size")


async def test_huge_repeated_fields_are_invalid_argument_before_any_work(stub):
    b = new_id()
    await create_meter(stub, meter(b, "requests", COUNT))
    request = pb.QueryUsageRequest(
        builder_id=b, meter_key="requests", group_by_tags=[f"t{i}" for i in range(10_000)]
    )
    request.start_time.CopyFrom(ts(utc(2026, 1, 1)))
    request.end_time.CopyFrom(ts(utc(2026, 2, 1)))
    await refused(stub.QueryUsage, request, "group_by_tags")
    del request.group_by_tags[:]
    request.tag_filters.update({f"k{i}": "v" for i in range(1_000)})
    await refused(stub.QueryUsage, request, "tag_filters")
    many_statuses = meter(b, "failures", statuses=[2] * 1_000)
    await refused(stub.CreateMeter, pb.CreateMeterRequest(request_id="r1", meter=many_statuses), "statuses")
    many_types = meter(b, "types", event_types=[f"t{i}" for i in range(1_000)])
    await refused(stub.CreateMeter, pb.CreateMeterRequest(request_id="r2", meter=many_types), "event_types")


@pytest.mark.parametrize("length", [129, 100_000])
async def test_ids_longer_than_their_columns_are_invalid_argument_in_every_rpc(stub, length):
    long = "b" * length
    rid = uuid.uuid4().hex
    await refused(
        stub.CreateMeter, pb.CreateMeterRequest(request_id=rid, meter=meter(long, "m")), "builder_id"
    )
    await refused(stub.GetMeter, pb.GetMeterRequest(builder_id=long, key="m"), "builder_id")
    await refused(stub.ListMeters, pb.ListMetersRequest(builder_id=long), "builder_id")
    await refused(
        stub.ArchiveMeter, pb.ArchiveMeterRequest(request_id=rid, builder_id=long, key="m"), "builder_id"
    )
    await refused(stub.ListEvents, pb.ListEventsRequest(builder_id=long), "builder_id")
    await refused(stub.ListEvents, pb.ListEventsRequest(builder_id="b", customer_id=long), "customer_id")
    await refused(stub.ListEvents, pb.ListEventsRequest(builder_id="b", run_id=long), "run_id")
    request = pb.QueryUsageRequest(builder_id=long, meter_key="m")
    await refused(stub.QueryUsage, request, "builder_id")
    await refused(
        stub.CreateMeter, pb.CreateMeterRequest(request_id="r" * length, meter=meter("b", "m")), "request_id"
    )
    await refused(stub.IngestEvents, pb.IngestEventsRequest(request_id="r" * length), "request_id")


async def test_a_display_name_longer_than_256_is_invalid_argument(stub):
    m = meter(new_id(), "m", display_name="n" * 257)
    await refused(stub.CreateMeter, pb.CreateMeterRequest(request_id="r1", meter=m), "display_name")


async def test_user_input_quoted_in_an_error_is_cut_to_64_characters(stub):
    bad = "A" * 100
    error = await refused(
        stub.CreateMeter,
        pb.CreateMeterRequest(request_id="r1", meter=meter(new_id(), "m", event_types=[bad])),
        "event_types",
    )
    assert "A" * 64 in error.details() and "A" * 65 not in error.details()
    assert "100 characters" in error.details()
    b = new_id()
    response = await ingest(stub, [event("e1", builder=b, quantities={"pages": "x" * 100_000})])
    result = response.results[0]
    assert result.outcome == INVALID and result.field.endswith("quantities.pages")
    assert len(result.reason) < 200 and "100000 characters" in result.reason


@pytest.mark.parametrize("body", [b"\x0a\x03\xff\xfe\xfd", b"\xff\xff\xff", b"\x0a\xff\xff\xff\xff\x0f"])
async def test_bytes_that_are_not_a_valid_request_are_invalid_argument(channel, body):
    # Invalid UTF-8 in a string field, and wire data that is not protobuf at all.
    raw = channel.unary_unary("/tollgate.metering.v1.MeteringService/GetMeter")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await raw(body, timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
