"""Every field of every MeteringService request has a limit at the edge: starting from a valid request
per RPC, each field in turn (found through the descriptors, nested messages, maps and repeated fields
included) gets a NUL character, 100,000 characters, an out-of-range number or timestamp, an unknown
enum number or 10,000 entries, and the call is refused naming that field: INVALID_ARGUMENT for the
request, or the event's own INVALID result for a field of an IngestEvents event. A field added to the
contract without a limit makes this test fail. Output-only fields are listed as ignored."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import grpc
import pytest
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.timestamp_pb2 import Timestamp
from metering_kit import (
    DAY,
    INVALID,
    SUM,
    assert_invalid_field,
    create_meter,
    event,
    meter,
    now,
    ts,
    utc,
)

from tests.fuzz.harness import PENDING_RPCS
from tollgate.metering.v1 import metering_pb2 as pb

SERVICE = pb.DESCRIPTOR.services_by_name["MeteringService"]
BUILDER = "cov-builder"
# Output only: the server ignores whatever a caller puts there.
IGNORED = {
    "tollgate.metering.v1.Meter.id",
    "tollgate.metering.v1.Meter.state",
    "tollgate.metering.v1.Meter.create_time",
    "tollgate.metering.v1.Meter.archive_time",
    "tollgate.metering.v1.UsageEvent.ingested_time",
}
LONG = "x" * 100_000
MANY = 10_001


def valid_requests() -> dict[str, object]:
    good_event = event(
        "e1",
        builder=BUILDER,
        at=now(),
        run_id="run-1",
        tags={"workflow": "intake"},
        quantities={"pages": "3"},
    )
    return {
        "IngestEvents": pb.IngestEventsRequest(request_id="r1", events=[good_event]),
        "CreateMeter": pb.CreateMeterRequest(
            request_id="r1",
            meter=meter(
                BUILDER,
                "pages",
                SUM,
                quantity="pages",
                tag_filters={"workflow": "intake"},
                statuses=[pb.EVENT_STATUS_SUCCEEDED],
                bucket_quantity="pages",
                buckets=[("small", "10"), ("big", "")],
            ),
        ),
        "GetMeter": pb.GetMeterRequest(builder_id=BUILDER, key="requests"),
        "ListMeters": pb.ListMetersRequest(builder_id=BUILDER, page_size=10),
        "ArchiveMeter": pb.ArchiveMeterRequest(request_id="r1", builder_id=BUILDER, key="requests"),
        "QueryUsage": pb.QueryUsageRequest(
            builder_id=BUILDER,
            meter_key="requests",
            customer_id="cust-1",
            start_time=ts(utc(2026, 1, 1)),
            end_time=ts(utc(2026, 2, 1)),
            window_size=DAY,
            group_by_tags=["workflow"],
            tag_filters={"workflow": "intake"},
            ingested_before_time=ts(now()),
        ),
        "ExplainUsage": pb.ExplainUsageRequest(
            builder_id=BUILDER,
            meter_key="requests",
            customer_id="cust-1",
            start_time=ts(utc(2026, 1, 1)),
            end_time=ts(utc(2026, 2, 1)),
            ingested_before_time=ts(now()),
            ingested_after_time=ts(utc(2026, 1, 1)),
            view=pb.EXPLAIN_VIEW_EVENTS,
            group_by_tags=["workflow"],
            tag_filters={"workflow": "intake"},
            page_size=10,
        ),
        "ListEvents": pb.ListEventsRequest(
            builder_id=BUILDER,
            customer_id="cust-1",
            type="ai.request",
            run_id="run-1",
            start_time=ts(utc(2026, 1, 1)),
            end_time=ts(utc(2026, 2, 1)),
            page_size=10,
        ),
    }


Mutation = tuple[str, str, Callable[[object], None]]  # (description, leaf field name, change)


def _is_map(field: FieldDescriptor) -> bool:
    return field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type.GetOptions().map_entry


def _bad_values(field: FieldDescriptor) -> Iterator[tuple[str, Callable[[object, str], None]]]:
    """(label, setter) pairs that each break the field's limit."""
    if _is_map(field):
        yield "map key with NUL", lambda m, n: getattr(m, n).update({"a\x00": "v"})
        yield "map value with NUL", lambda m, n: getattr(m, n).update({"workflow": "v\x00"})
        yield "long map key", lambda m, n: getattr(m, n).update({LONG: "v"})
        yield "long map value", lambda m, n: getattr(m, n).update({"workflow": LONG})
        yield "huge map", lambda m, n: getattr(m, n).update({f"k{i}": "v" for i in range(MANY)})
    elif field.type == FieldDescriptor.TYPE_STRING:
        if field.is_repeated:
            yield "entry with NUL", lambda m, n: getattr(m, n).append("a\x00")
            yield "long entry", lambda m, n: getattr(m, n).append(LONG)
            yield "huge list", lambda m, n: getattr(m, n).extend(["a"] * MANY)
        else:
            yield "NUL", lambda m, n: setattr(m, n, "a\x00")
            yield "100,000 characters", lambda m, n: setattr(m, n, LONG)
    elif field.type == FieldDescriptor.TYPE_ENUM:
        if field.is_repeated:
            yield "unknown entry", lambda m, n: getattr(m, n).append(2**31 - 1)
            yield "huge list", lambda m, n: getattr(m, n).extend([1] * MANY)
        else:
            yield "unknown number", lambda m, n: setattr(m, n, 2**31 - 1)
    elif field.type == FieldDescriptor.TYPE_INT32:
        yield "largest int32", lambda m, n: setattr(m, n, 2**31 - 1)
        yield "negative", lambda m, n: setattr(m, n, -1)
    elif (
        field.type == FieldDescriptor.TYPE_MESSAGE
        and field.message_type.full_name == "google.protobuf.Timestamp"
    ):
        yield (
            "year 10000",
            lambda m, n: getattr(m, n).MergeFrom(Timestamp(seconds=253_402_300_800)),
        )
        yield (
            "negative nanos",
            lambda m, n: getattr(m, n).MergeFrom(Timestamp(seconds=0, nanos=-1)),
        )
    elif field.type == FieldDescriptor.TYPE_BOOL:
        return
    elif field.type == FieldDescriptor.TYPE_MESSAGE and field.is_repeated:
        yield "huge list", lambda m, n: getattr(m, n).extend([getattr(m, n)[0]] * MANY)
    elif field.type == FieldDescriptor.TYPE_MESSAGE:
        return  # a nested message: its own fields are mutated one by one
    else:
        raise AssertionError(
            f"no bad values for {field.full_name} (type {field.type}): add them here and a limit at the edge"
        )


def mutations(
    message, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], FieldDescriptor, str, Callable]]:
    for field in message.DESCRIPTOR.fields:
        if field.full_name in IGNORED:
            continue
        for label, setter in _bad_values(field):
            yield path, field, label, setter
        nested = field.type == FieldDescriptor.TYPE_MESSAGE and not _is_map(field)
        if nested and field.message_type.full_name != "google.protobuf.Timestamp":
            if field.is_repeated:
                if len(getattr(message, field.name)):
                    yield from mutations(getattr(message, field.name)[0], (*path, f"{field.name}[0]"))
            elif message.HasField(field.name):
                yield from mutations(getattr(message, field.name), (*path, field.name))


def _target(request, path: tuple[str, ...]):
    target = request
    for part in path:
        if part.endswith("[0]"):
            target = getattr(target, part[:-3])[0]
        else:
            target = getattr(target, part)
    return target


# RPCs published but not implemented yet (tests/fuzz/harness.py PENDING_RPCS) join when they land.
IMPLEMENTED = [m for m in SERVICE.methods if f"MeteringService.{m.name}" not in PENDING_RPCS]

CASES = [
    (method.name, path, field.name, label, setter)
    for method in IMPLEMENTED
    for path, field, label, setter in mutations(valid_requests()[method.name])
]


def test_every_rpc_has_a_valid_request_and_at_least_one_limit_per_field():
    assert set(valid_requests()) == {m.name for m in IMPLEMENTED}
    covered = {(m, path, leaf) for m, path, leaf, _, _ in CASES}
    assert len(covered) >= 40, len(covered)


@pytest.fixture(scope="module")
async def ready(stub):
    await create_meter(stub, meter(BUILDER, "requests"))
    return stub


@pytest.mark.parametrize(
    ("rpc", "path", "leaf", "label", "setter"),
    CASES,
    ids=[f"{rpc}:{'.'.join((*path, leaf))}:{label}" for rpc, path, leaf, label, _ in CASES],
)
async def test_each_field_beyond_its_limit_is_refused_naming_it(ready, rpc, path, leaf, label, setter):
    request = valid_requests()[rpc]
    setter(_target(request, path), leaf)
    in_event = rpc == "IngestEvents" and path and path[0] == "events[0]"
    try:
        response = await getattr(ready, rpc)(request, timeout=30)
    except grpc.aio.AioRpcError as error:
        assert not in_event, (label, error.code(), error.details()[:200])
        assert_invalid_field(error, leaf)
        assert len(error.details()) < 300, error.details()[:300]
        return
    assert in_event, f"{rpc} accepted {'.'.join((*path, leaf))} with {label}"
    result = response.results[0]
    assert result.outcome == INVALID, (label, result)
    assert leaf in result.field, (label, result.field)
    assert len(result.reason) < 300, result.reason[:300]
