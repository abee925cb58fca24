"""Builders and small helpers for the metering API tests: events, meters, queries, error details.

Every helper talks to the real server through the public stubs; nothing here touches the database.
"""

from __future__ import annotations

import re
import socket
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from common.migrations import upgrade_head_async
from tollgate.metering.v1 import metering_pb2 as pb

SUCCEEDED = pb.EVENT_STATUS_SUCCEEDED
FAILED = pb.EVENT_STATUS_FAILED
TEST = pb.EVENT_STATUS_TEST

ACCEPTED = pb.INGEST_OUTCOME_ACCEPTED
DUPLICATE = pb.INGEST_OUTCOME_DUPLICATE
CONFLICT = pb.INGEST_OUTCOME_CONFLICT
INVALID = pb.INGEST_OUTCOME_INVALID

COUNT = pb.AGGREGATION_COUNT
SUM = pb.AGGREGATION_SUM
UNIQUE_COUNT = pb.AGGREGATION_UNIQUE_COUNT
MAX = pb.AGGREGATION_MAX
LATEST = pb.AGGREGATION_LATEST

HOUR = pb.WINDOW_SIZE_HOUR
DAY = pb.WINDOW_SIZE_DAY
MONTH = pb.WINDOW_SIZE_MONTH

DEADLINE = 30.0


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def ts(moment: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(moment)
    return out


def from_ts(stamp: Timestamp) -> datetime:
    return stamp.ToDatetime(tzinfo=UTC)


def new_id(prefix: str = "b") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def event(
    event_id: str,
    *,
    builder: str,
    customer: str = "cust-1",
    at: datetime | None = None,
    type: str = "ai.request",
    status: int = SUCCEEDED,
    app: str = "app-1",
    run_id: str = "",
    tags: Mapping[str, str] | None = None,
    quantities: Mapping[str, str] | None = None,
) -> pb.UsageEvent:
    ev = pb.UsageEvent(
        id=event_id,
        type=type,
        builder_id=builder,
        app_id=app,
        customer_id=customer,
        status=status,
        run_id=run_id,
        tags=dict(tags or {}),
        quantities=dict(quantities or {}),
    )
    ev.occurred_time.CopyFrom(ts(at or utc(2026, 1, 15, 12)))
    return ev


async def ingest(
    stub, events: Sequence[pb.UsageEvent], request_id: str | None = None
) -> pb.IngestEventsResponse:
    return await stub.IngestEvents(
        pb.IngestEventsRequest(request_id=request_id or uuid.uuid4().hex, events=list(events)),
        timeout=DEADLINE,
    )


def assert_all(response: pb.IngestEventsResponse, outcome: int) -> None:
    bad = [(r.event_id, r.outcome, r.reason) for r in response.results if r.outcome != outcome]
    assert not bad, bad[:5]


def meter(
    builder: str,
    key: str,
    aggregation: int = COUNT,
    *,
    event_types: Iterable[str] = ("ai.request",),
    quantity: str = "",
    unique_tag: str = "",
    tag_filters: Mapping[str, str] | None = None,
    statuses: Iterable[int] = (),
    bucket_quantity: str = "",
    buckets: Iterable[tuple[str, str]] = (),
    display_name: str = "",
) -> pb.Meter:
    return pb.Meter(
        builder_id=builder,
        key=key,
        display_name=display_name or key.replace("_", " ").capitalize(),
        event_types=list(event_types),
        aggregation=aggregation,
        quantity=quantity,
        unique_tag=unique_tag,
        tag_filters=dict(tag_filters or {}),
        statuses=list(statuses),
        bucket_quantity=bucket_quantity,
        buckets=[pb.Bucket(key=k, max_value=v) for k, v in buckets],
    )


async def create_meter(stub, m: pb.Meter, request_id: str | None = None) -> pb.Meter:
    response = await stub.CreateMeter(
        pb.CreateMeterRequest(request_id=request_id or uuid.uuid4().hex, meter=m), timeout=DEADLINE
    )
    return response.meter


async def query(
    stub,
    builder: str,
    meter_key: str,
    start: datetime,
    end: datetime,
    *,
    customer: str = "",
    window: int = pb.WINDOW_SIZE_UNSPECIFIED,
    by_customer: bool = False,
    by_app: bool = False,
    by_tags: Iterable[str] = (),
    by_bucket: bool = False,
    tag_filters: Mapping[str, str] | None = None,
    ingested_before: datetime | None = None,
) -> pb.QueryUsageResponse:
    request = pb.QueryUsageRequest(
        builder_id=builder,
        meter_key=meter_key,
        customer_id=customer,
        window_size=window,
        group_by_customer=by_customer,
        group_by_app=by_app,
        group_by_tags=list(by_tags),
        group_by_bucket=by_bucket,
        tag_filters=dict(tag_filters or {}),
    )
    request.start_time.CopyFrom(ts(start))
    request.end_time.CopyFrom(ts(end))
    if ingested_before is not None:
        request.ingested_before_time.CopyFrom(ts(ingested_before))
    return await stub.QueryUsage(request, timeout=DEADLINE)


async def total(stub, builder: str, meter_key: str, start: datetime, end: datetime, **kw) -> Decimal:
    """The single value of an ungrouped, unwindowed query; zero when no event matched."""
    response = await query(stub, builder, meter_key, start, end, **kw)
    assert len(response.rows) <= 1, response.rows
    return Decimal(response.rows[0].value) if response.rows else Decimal(0)


def row_key(row: pb.UsageRow) -> tuple:
    return (
        from_ts(row.window_start_time),
        from_ts(row.window_end_time),
        row.customer_id,
        row.app_id,
        tuple(sorted(row.tags.items())),
        row.bucket,
    )


def values(response: pb.QueryUsageResponse) -> dict[tuple, tuple[Decimal, int]]:
    """Rows as {(window start, window end, customer, app, tags, bucket): (value, event_count)}."""
    out: dict[tuple, tuple[Decimal, int]] = {}
    for row in response.rows:
        key = row_key(row)
        assert key not in out, f"row repeated: {key}"
        out[key] = (Decimal(row.value), row.event_count)
    return out


def field_violations(error: grpc.aio.AioRpcError) -> list[str]:
    """The google.rpc.BadRequest field names carried by a failed call."""
    status = rpc_status.from_call(error)
    fields: list[str] = []
    if status is None:
        return fields
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields.extend(v.field for v in bad.field_violations)
    return fields


def assert_invalid_field(error: grpc.aio.AioRpcError, leaf: str) -> None:
    """INVALID_ARGUMENT whose BadRequest names the field `leaf` (alone or as the last path part)."""
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (error.code(), error.details())
    fields = field_violations(error)
    # Indexes, map keys and deeper parts are fine: "meter.buckets[1].max_value" names "buckets",
    # "meter.tag_filters[client]" names "tag_filters".
    paths = ["." + re.sub(r"\[[^\]]*\]", "", f) + "." for f in fields]
    assert any(f".{leaf}." in p for p in paths), (leaf, fields, error.details())


def now() -> datetime:
    return datetime.now(UTC)


def month_start(moment: datetime) -> datetime:
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def add_months(moment: datetime, months: int) -> datetime:
    index = moment.year * 12 + moment.month - 1 + months
    return moment.replace(year=index // 12, month=index % 12 + 1)


__all__ = ["timedelta"]


def event_field_is(result: pb.EventResult, position: int, path: str) -> bool:
    """An EventResult's field names `path` of the event, bare or as events[position].path."""
    return result.field in (path, f"events[{position}].{path}")


REPO = Path(__file__).resolve().parents[2]

# The API tests use fixed calendar dates (January 2026 and around it). The default retention window
# (400 days) would start refusing them as the calendar moves on, so their servers keep a century;
# the default window itself is tested by test_retention_api.py against a server with default settings.
TEST_MAX_EVENT_AGE_DAYS = 36_600


def server_settings(database_url: str, **overrides):
    """Settings for a test server on a free loopback port, with the tests' credentials and retention
    window."""
    from metering.config import Settings
    from tests.conftest import security

    values = {
        "database_url": database_url,
        "grpc_address": "127.0.0.1:0",
        "metrics_port": None,
        "security": security("metering"),
        "max_event_age_days": TEST_MAX_EVENT_AGE_DAYS,
        **overrides,
    }
    return Settings(**values)


async def migrated_metering_database(make_database) -> str:
    """A new database at metering's migration head, as tests/conftest.py's migrated_database builds it."""
    url = await make_database("metering")
    await upgrade_head_async(REPO / "services" / "metering" / "migrations", url, "alembic_version_metering")
    return url


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
