"""Property: whatever a caller sends to any MeteringService RPC, over a real gRPC server, the answer is
never INTERNAL or UNKNOWN, a refusal names its field and quotes at most a short piece of the input,
and the server still answers its health check SERVING.

Requests are built from the service's own descriptors, so a new RPC or field is fuzzed without
touching this file: strings from NUL characters, unicode, newlines after valid keys and up to
200,000 characters; integers and enum numbers at and beyond their ranges; timestamps from year 1 to
far beyond year 9999 with negative and oversized nanos; repeated fields and maps up to thousands of
entries; page tokens that are base64 JSON the service never issued (wrong types, huge numbers,
naive or overflowing times). Valid-looking values are mixed in so that requests get past the first
check and reach the database. A second property sends raw bytes (not protobuf, strings that are not
UTF-8) to every RPC.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import grpc
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from metering_kit import field_violations

from tests.fuzz.harness import PENDING_RPCS
from tollgate.metering.v1 import metering_pb2 as pb

SERVICE = pb.DESCRIPTOR.services_by_name["MeteringService"]
# RPCs published but not implemented yet (tests/fuzz/harness.py PENDING_RPCS) join when they land.
METHODS = [m for m in SERVICE.methods if f"MeteringService.{m.name}" not in PENDING_RPCS]
NOW_SECONDS = int(datetime.now(UTC).timestamp())
MIN_SECONDS, MAX_SECONDS = -62_135_596_800, 253_402_300_799
# Refusals quote user input cut to 64 characters; whole messages stay far below this.
MAX_DETAILS = 600
FORBIDDEN = (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN)

# A few builders and keys that exist, so that some calls go all the way to the database.
BUILDERS = ["fuzz-b1", "fuzz-b2"]
KEYS = ["requests", "tokens"]

plausible_text = st.sampled_from(
    [
        "",
        "fuzz-b1",
        "fuzz-b2",
        "requests",
        "tokens",
        "ai.request",
        "input_tokens",
        "cust-1",
        "workflow",
        "10",
        "0.000000001",
        "99999999999999999999999999999",
        "1e400",
        "-1",
        "NaN",
        "requests\n",
        "ai.request\n",
        "\nrequests",
        "a\x00b",
        "\x00",
        "x" * 65,
        "x" * 129,
        "x" * 257,
        "é" * 300,
        "'; DROP TABLE events; --",
        '{"a": "b"}',
        "\u202e\ufeff\U0001f600",
    ]
)
any_text = st.text(st.characters(codec="utf-8"), max_size=40)
long_text = st.tuples(st.sampled_from(["a", "\x00", "é", "1", "-", "\n"]), st.integers(1_000, 200_000)).map(
    lambda t: t[0] * t[1]
)
text_values = st.one_of(plausible_text, plausible_text, any_text, long_text)


def _json_values():
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=False, allow_infinity=False),
        st.sampled_from(
            [
                "2026-01-15T12:00:00+00:00",
                "2026-01-15T12:00:00",
                "0001-01-01T00:00:00+05:00",
                "9999-12-31T23:59:59-05:00",
                "yesterday",
                "requests",
                "fuzz-b1",
                "a\x00b",
                "x" * 200,
            ]
        ),
        any_text,
    )
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=3), inner, max_size=3)
        ),
        max_leaves=6,
    )


def _cursor():
    keys = st.sampled_from(["t", "s", "b", "k", "x"])
    return st.one_of(
        st.dictionaries(keys, _json_values(), max_size=4),
        st.fixed_dictionaries({"t": _json_values(), "s": _json_values()}),
        st.fixed_dictionaries({"b": st.sampled_from(BUILDERS), "k": _json_values()}),
        _json_values(),
    )


def _encode(value) -> str:
    raw = json.dumps(value, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


page_tokens = st.one_of(
    _cursor().map(_encode),
    st.sampled_from(["1e999", "[" * 600 + "]" * 600, "nan", "true"]).map(lambda s: _encode_raw(s)),
    text_values,
)


def _encode_raw(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


int32s = st.one_of(
    st.sampled_from([0, 1, 2, 3, 5, 6, 99, 1000, 1001, -1, 2**31 - 1, -(2**31)]),
    st.integers(-(2**31), 2**31 - 1),
)
int64s = st.one_of(int32s, st.sampled_from([2**63 - 1, -(2**63)]), st.integers(-(2**63), 2**63 - 1))
seconds = st.one_of(
    st.sampled_from(
        [
            *(0, NOW_SECONDS, NOW_SECONDS - 86_400, NOW_SECONDS - 500 * 86_400, NOW_SECONDS + 10**6),
            *(MIN_SECONDS, MIN_SECONDS - 1, MAX_SECONDS, MAX_SECONDS + 1, 2**63 - 1, -(2**63)),
        ]
    ),
    st.integers(NOW_SECONDS - 400 * 86_400, NOW_SECONDS),
    st.integers(-(2**63), 2**63 - 1),
)
nanos = st.one_of(st.sampled_from([0, 999_999_999, 1_000_000_000, -1, 2**31 - 1, -(2**31)]), int32s)


def _repeated(element: st.SearchStrategy, small: st.SearchStrategy) -> st.SearchStrategy[list]:
    # Mostly short lists; sometimes thousands of copies of one small value (cheap to build, and the
    # request stays under gRPC's 4 MB message limit so it reaches the handler).
    return st.one_of(
        st.lists(element, max_size=4),
        st.tuples(small, st.integers(17, 3_000)).map(lambda t: [t[0]] * t[1]),
    )


def _small(field: FieldDescriptor) -> st.SearchStrategy:
    if field.type == FieldDescriptor.TYPE_STRING:
        return plausible_text
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return st.just({})
    return _field_value(field, 99)


ids = st.text("abcdefghij0123456789-", min_size=1, max_size=12)
decimals = st.one_of(
    st.decimals(min_value=0, max_value=10**12, places=3, allow_nan=False).map(str),
    st.sampled_from(["0", "1", "2.5", "0.000000001", "99999999999999999999999999999.999999999"]),
)
recent_seconds = st.integers(NOW_SECONDS - 399 * 86_400, NOW_SECONDS)
# Values that pass the first checks, by field name, so that requests reach the service and database.
VALID: dict[str, st.SearchStrategy] = {
    "builder_id": st.sampled_from(BUILDERS),
    "key": st.sampled_from(KEYS),
    "meter_key": st.sampled_from(KEYS),
    "request_id": ids,
    "id": ids,
    "type": st.sampled_from(["ai.request", "document.processed"]),
    "event_types": st.sampled_from(["ai.request", "document.processed"]),
    "customer_id": st.sampled_from(["", "cust-1", "cust-2"]),
    "app_id": st.sampled_from(["", "app-1"]),
    "run_id": st.sampled_from(["", "run-1"]),
    "quantity": st.sampled_from(["input_tokens", "pages"]),
    "bucket_quantity": st.sampled_from(["", "pages"]),
    "unique_tag": st.sampled_from(["", "workflow"]),
    "group_by_tags": st.sampled_from(["workflow", "client"]),
    "max_value": decimals,
    "aggregation": st.integers(1, 5),
    "status": st.integers(1, 3),
    "statuses": st.integers(1, 3),
    "window_size": st.integers(0, 3),
    "page_size": st.integers(0, 1000),
    "page_token": st.just(""),
}
# Fields drawn on every example (still sometimes with a bad value); the others are set half the time.
ALWAYS = frozenset(
    (
        *("builder_id", "key", "meter_key", "request_id", "meter", "start_time", "end_time", "events"),
        *("event_types", "aggregation", "occurred_time", "id", "type", "customer_id", "status"),
    )
)


def _field_value(field: FieldDescriptor, depth: int) -> st.SearchStrategy:
    nasty = _nasty_value(field, depth)
    valid = VALID.get(field.name)
    return nasty if valid is None else st.one_of(valid, valid, valid, valid, nasty)


def _nasty_value(field: FieldDescriptor, depth: int) -> st.SearchStrategy:
    if field.name == "page_token":
        return page_tokens
    if field.type == FieldDescriptor.TYPE_STRING:
        return text_values
    if field.type == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if field.type == FieldDescriptor.TYPE_ENUM:
        return int32s
    if field.type in (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SFIXED32):
        return int32s
    if field.type in (FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT64, FieldDescriptor.TYPE_SFIXED64):
        return int64s
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return message_strategy(field.message_type, depth + 1)
    raise AssertionError(f"no strategy for {field.full_name} (type {field.type})")


def _is_map(field: FieldDescriptor) -> bool:
    return field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type.GetOptions().map_entry


def message_strategy(descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy[dict]:
    """A dict of field values for the message (every field sometimes absent), built from its descriptor."""
    if descriptor.full_name == "google.protobuf.Timestamp":
        recent = st.fixed_dictionaries({"seconds": recent_seconds, "nanos": st.integers(0, 999_999_999)})
        return st.one_of(recent, recent, recent, st.fixed_dictionaries({"seconds": seconds, "nanos": nanos}))
    if depth > 3:
        return st.just({})
    fields: dict[str, st.SearchStrategy] = {}
    for field in descriptor.fields:
        if _is_map(field):
            key = st.one_of(st.sampled_from(["workflow", "input_tokens", "pages"]), text_values)
            value = _field_value(field.message_type.fields_by_name["value"], depth)
            if field.name == "quantities":
                value = st.one_of(decimals, decimals, value)
            small = _small(field.message_type.fields_by_name["value"])
            strategy = st.one_of(
                st.dictionaries(key, value, max_size=4),
                st.tuples(small, st.integers(33, 3_000)).map(lambda t: {f"k{i}": t[0] for i in range(t[1])}),
            )
        elif field.is_repeated:
            strategy = _repeated(_field_value(field, depth), _small(field))
        else:
            strategy = _field_value(field, depth)
        fields[field.name] = strategy
    always = {name: strategy for name, strategy in fields.items() if name in ALWAYS}
    sometimes = {name: strategy for name, strategy in fields.items() if name not in ALWAYS}
    return st.fixed_dictionaries(always, optional=sometimes)


def build(descriptor: Descriptor, values: dict):
    """The protobuf message for a dict from message_strategy."""
    message = pb.__dict__.get(descriptor.name)
    if message is None or message.DESCRIPTOR is not descriptor:
        from google.protobuf import message_factory

        message = message_factory.GetMessageClass(descriptor)
    out = message()
    _fill(out, values)
    return out


def _fill(out, values: dict) -> None:
    for name, value in values.items():
        field = out.DESCRIPTOR.fields_by_name[name]
        if _is_map(field):
            target = getattr(out, name)
            value_field = field.message_type.fields_by_name["value"]
            for k, v in value.items():
                if value_field.type == FieldDescriptor.TYPE_MESSAGE:
                    _fill(target[k], v)
                else:
                    target[k] = v
        elif field.is_repeated:
            target = getattr(out, name)
            if field.type == FieldDescriptor.TYPE_MESSAGE:
                for item in value:
                    _fill(target.add(), item)
            else:
                target.extend(value)
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            child = getattr(out, name)
            child.SetInParent()
            _fill(child, value)
        else:
            setattr(out, name, value)


calls = st.sampled_from(METHODS).flatmap(
    lambda method: message_strategy(method.input_type).map(lambda values: (method, values))
)


async def _seed(stub) -> None:
    """Meters and events for the fuzzed calls to find (idempotent: request ids are fixed)."""
    for b in BUILDERS:
        for key, agg, qty in (
            ("requests", pb.AGGREGATION_COUNT, ""),
            ("tokens", pb.AGGREGATION_SUM, "input_tokens"),
        ):
            m = pb.Meter(builder_id=b, key=key, event_types=["ai.request"], aggregation=agg, quantity=qty)
            await stub.CreateMeter(pb.CreateMeterRequest(request_id=f"seed-{b}-{key}", meter=m), timeout=30)
        events = []
        for i in range(30):
            e = pb.UsageEvent(
                id=f"seed-{i}",
                type="ai.request",
                builder_id=b,
                customer_id="cust-1",
                status=pb.EVENT_STATUS_SUCCEEDED,
                quantities={"input_tokens": str(i)},
                tags={"workflow": "intake"},
            )
            e.occurred_time.FromDatetime(datetime.now(UTC) - timedelta(hours=i))
            events.append(e)
        await stub.IngestEvents(pb.IngestEventsRequest(events=events), timeout=30)


_seeded = False


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(call=calls)
async def test_no_request_to_any_rpc_gives_internal_or_unknown_and_the_server_stays_serving(
    stub, channel, call
):
    global _seeded
    if not _seeded:
        await _seed(stub)
        _seeded = True
    method, values = call
    request = build(method.input_type, values)
    try:
        response = await getattr(stub, method.name)(request, timeout=30)
        event(f"{method.name} OK")
    except grpc.aio.AioRpcError as error:
        event(f"{method.name} {error.code().name} {' '.join(field_violations(error))[:40]}")
        assert error.code() not in FORBIDDEN, (method.name, error.code(), error.details())
        assert len(error.details() or "") <= MAX_DETAILS, (method.name, len(error.details()))
        if error.code() == grpc.StatusCode.INVALID_ARGUMENT:
            assert field_violations(error), (method.name, error.details())
    else:
        if method.name == "IngestEvents":
            assert len(response.results) == len(request.events)
            for r in response.results:
                assert len(r.reason) <= MAX_DETAILS, r.reason[:100]
                if r.outcome == pb.INGEST_OUTCOME_INVALID:
                    assert r.field and r.reason, r
    health = health_pb2_grpc.HealthStub(channel)
    answer = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
    assert answer.status == health_pb2.HealthCheckResponse.SERVING


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    method=st.sampled_from(METHODS),
    body=st.one_of(
        st.binary(max_size=200),
        # A valid-looking field header followed by bytes that are not UTF-8 or run past the end.
        st.tuples(
            st.sampled_from([b"\x0a", b"\x12", b"\x1a", b"\x22"]), st.binary(min_size=1, max_size=50)
        ).map(lambda t: t[0] + bytes([len(t[1])]) + t[1]),
    ),
)
async def test_raw_bytes_to_any_rpc_never_give_internal_or_unknown(channel, method, body):
    raw = channel.unary_unary(f"/{SERVICE.full_name}/{method.name}")
    try:
        await raw(body, timeout=30)
    except grpc.aio.AioRpcError as error:
        assert error.code() not in FORBIDDEN, (method.name, body, error.code(), error.details())
    health = health_pb2_grpc.HealthStub(channel)
    answer = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
    assert answer.status == health_pb2.HealthCheckResponse.SERVING
