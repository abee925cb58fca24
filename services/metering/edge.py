"""The API edge: every field of every MeteringService request checked against the limits stated in
metering.proto, before anything reaches the service or the database.

Why here and not in the database: PostgreSQL answers a NUL character, a string longer than its column
or an out-of-range timestamp with an error the service would report as INTERNAL. The limits match the
columns (migrations 0001-0003): builder ids varchar(128), meter keys varchar(64), display names
varchar(256), quantity and tag names varchar(64); event ids and references are bounded at 128 like
the event registry's varchar(128). IngestEvents is the exception on purpose: its events are checked
one by one in domain/events.py (an invalid event is rejected alone, with its own result), so only the
batch's own fields are checked here. Semantic rules (a SUM needs a quantity, buckets ascend) stay in
the domain; this module checks shapes, sizes and ranges.

Every failure is an InvalidArgument naming the field; user input quoted in a message is cut to 64
characters (domain.events.quoted).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from common.errors import InvalidArgument
from common.paging import decode_token, page_size
from metering.domain.events import (
    MAX_QUANTITY_KEY_LENGTH,
    MAX_REF_LENGTH,
    MAX_TAG_KEY_LENGTH,
    MAX_TAG_VALUE_LENGTH,
    MAX_TAGS,
    quoted,
)
from metering.domain.meters import MAX_BUCKETS, MAX_DISPLAY_NAME_LENGTH, MAX_EVENT_TYPES, MAX_TAG_FILTERS
from metering.domain.usage import MAX_GROUP_BY_TAGS

MAX_REQUEST_ID_LENGTH = 128
MAX_PAGE_TOKEN_LENGTH = 512
MAX_STATUSES = 8
MAX_BUCKET_VALUE_LENGTH = 64
KEY_PATTERN = re.compile(r"[a-z0-9_.-]{1,64}")
TYPE_PATTERN = re.compile(r"[a-z0-9._-]{1,128}")
KNOWN_AGGREGATIONS = range(1, 6)
KNOWN_STATUSES = range(1, 4)
KNOWN_WINDOW_SIZES = range(0, 4)
# google.protobuf.Timestamp's range: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z.
MIN_SECONDS = -62_135_596_800
MAX_SECONDS = 253_402_300_799
_MAX_SEQ = 2**63 - 1
_NOT_ISSUED = "page_token is not a token this service issued"


def _text(
    value: str,
    field: str,
    *,
    max_length: int,
    required: bool = False,
    pattern: re.Pattern[str] | None = None,
    label: str | None = None,
) -> None:
    """One string field; `label` names it in the message when it differs from the path (map keys)."""
    name = label or field
    if not value:
        if required:
            raise InvalidArgument(f"{name} is required", field=field)
        return
    if "\x00" in value:
        raise InvalidArgument(f"{name} contains a NUL character", field=field)
    if len(value) > max_length:
        raise InvalidArgument(f"{name} is longer than {max_length} characters", field=field)
    if pattern is not None and pattern.fullmatch(value) is None:
        alphabet = pattern.pattern.split("{")[0]
        raise InvalidArgument(
            f"{name} {quoted(value)} must be 1 to {max_length} characters of {alphabet}", field=field
        )


def _count(items: Any, field: str, maximum: int) -> None:
    if len(items) > maximum:
        raise InvalidArgument(f"{field} has {len(items)} entries, more than {maximum}", field=field)


def _string_map(items: Any, field: str, *, max_entries: int, key_length: int, value_length: int) -> None:
    _count(items, field, max_entries)
    for key, value in items.items():
        _text(key, field, max_length=key_length, required=True, label=f"a {field} key")
        _text(value, f"{field}[{quoted(key)}]", max_length=value_length)


def _enum(value: int, field: str, known: range, *, required: bool) -> None:
    if value == 0 and required:
        raise InvalidArgument(f"{field} is required", field=field)
    if value != 0 and value not in known:
        raise InvalidArgument(f"{field} {value} is not a known value", field=field)


def _request_id(value: str, *, required: bool = True) -> None:
    _text(value, "request_id", max_length=MAX_REQUEST_ID_LENGTH, required=required)


def timestamp(message: Any, name: str, *, required: bool = False) -> datetime | None:
    """A set Timestamp field as an aware UTC datetime, checked against Timestamp's own range."""
    if not message.HasField(name):
        if required:
            raise InvalidArgument(f"{name} is required", field=name)
        return None
    ts = getattr(message, name)
    if not (MIN_SECONDS <= ts.seconds <= MAX_SECONDS and 0 <= ts.nanos <= 999_999_999):
        raise InvalidArgument(
            f"{name} is not a valid timestamp (years 1 to 9999, nanos 0 to 999999999)", field=name
        )
    return ts.ToDatetime(tzinfo=UTC)


# ---- one function per RPC ------------------------------------------------------------------------


def check_ingest_events(request: Any) -> None:
    """The batch's own fields; each event is checked on its own by domain.events.validate_event."""
    _request_id(request.request_id, required=False)


def check_create_meter(request: Any) -> None:
    _request_id(request.request_id)
    if not request.HasField("meter"):
        raise InvalidArgument("meter is required", field="meter")
    m = request.meter
    # id, state, create_time and archive_time are output only: ignored, whatever they hold.
    _text(m.builder_id, "meter.builder_id", max_length=MAX_REF_LENGTH, required=True)
    _text(m.key, "meter.key", max_length=64, required=True, pattern=KEY_PATTERN)
    _text(m.display_name, "meter.display_name", max_length=MAX_DISPLAY_NAME_LENGTH)
    _count(m.event_types, "meter.event_types", MAX_EVENT_TYPES)
    for i, event_type in enumerate(m.event_types):
        _text(event_type, f"meter.event_types[{i}]", max_length=128, required=True, pattern=TYPE_PATTERN)
    _enum(m.aggregation, "meter.aggregation", KNOWN_AGGREGATIONS, required=True)
    _text(m.quantity, "meter.quantity", max_length=MAX_QUANTITY_KEY_LENGTH)
    _text(m.unique_tag, "meter.unique_tag", max_length=MAX_TAG_KEY_LENGTH)
    _string_map(
        m.tag_filters,
        "meter.tag_filters",
        max_entries=MAX_TAG_FILTERS,
        key_length=MAX_TAG_KEY_LENGTH,
        value_length=MAX_TAG_VALUE_LENGTH,
    )
    _count(m.statuses, "meter.statuses", MAX_STATUSES)
    for i, status in enumerate(m.statuses):
        _enum(status, f"meter.statuses[{i}]", KNOWN_STATUSES, required=True)
    _text(m.bucket_quantity, "meter.bucket_quantity", max_length=MAX_QUANTITY_KEY_LENGTH)
    _count(m.buckets, "meter.buckets", MAX_BUCKETS)
    for i, bucket in enumerate(m.buckets):
        _text(bucket.key, f"meter.buckets[{i}].key", max_length=64, required=True)
        _text(bucket.max_value, f"meter.buckets[{i}].max_value", max_length=MAX_BUCKET_VALUE_LENGTH)


def _meter_ref(builder_id: str, key: str, key_field: str = "key") -> None:
    _text(builder_id, "builder_id", max_length=MAX_REF_LENGTH, required=True)
    _text(key, key_field, max_length=64, required=True, pattern=KEY_PATTERN)


def check_get_meter(request: Any) -> None:
    _meter_ref(request.builder_id, request.key)


def check_archive_meter(request: Any) -> None:
    _request_id(request.request_id)
    _meter_ref(request.builder_id, request.key)


def _token(token: str) -> dict[str, Any] | None:
    if len(token) > MAX_PAGE_TOKEN_LENGTH:
        raise InvalidArgument(_NOT_ISSUED, field="page_token")
    return decode_token(token)


def check_list_meters(request: Any) -> tuple[int, str | None]:
    """Checks the request; returns the page size and the key to list after (from the page token)."""
    _text(request.builder_id, "builder_id", max_length=MAX_REF_LENGTH, required=True)
    size = page_size(request.page_size)  # 0 to 1,000; raises naming page_size
    cursor = _token(request.page_token)
    if cursor is None:
        return size, None
    key = cursor.get("k")
    if (
        set(cursor) != {"b", "k"}
        or cursor["b"] != request.builder_id
        or not isinstance(key, str)
        or KEY_PATTERN.fullmatch(key) is None
    ):
        raise InvalidArgument(_NOT_ISSUED, field="page_token")
    return size, key


def check_query_usage(request: Any) -> tuple[datetime | None, datetime | None, datetime | None]:
    """Checks the request; returns start_time, end_time and ingested_before_time."""
    _meter_ref(request.builder_id, request.meter_key, "meter_key")
    _text(request.customer_id, "customer_id", max_length=MAX_REF_LENGTH)
    _enum(request.window_size, "window_size", KNOWN_WINDOW_SIZES, required=False)
    _count(request.group_by_tags, "group_by_tags", MAX_GROUP_BY_TAGS)
    for i, tag in enumerate(request.group_by_tags):
        _text(tag, f"group_by_tags[{i}]", max_length=MAX_TAG_KEY_LENGTH, required=True)
    _string_map(
        request.tag_filters,
        "tag_filters",
        max_entries=MAX_TAGS,
        key_length=MAX_TAG_KEY_LENGTH,
        value_length=MAX_TAG_VALUE_LENGTH,
    )
    _count(request.statuses, "statuses", MAX_STATUSES)
    for i, status in enumerate(request.statuses):
        _enum(status, f"statuses[{i}]", KNOWN_STATUSES, required=True)
    return (
        timestamp(request, "start_time"),
        timestamp(request, "end_time"),
        timestamp(request, "ingested_before_time"),
    )


def check_list_events(
    request: Any,
) -> tuple[int, datetime | None, datetime | None, tuple[datetime, int] | None]:
    """Checks the request; returns the page size, start_time, end_time and the position to list after."""
    _text(request.builder_id, "builder_id", max_length=MAX_REF_LENGTH, required=True)
    _text(request.customer_id, "customer_id", max_length=MAX_REF_LENGTH)
    _text(request.type, "type", max_length=128, pattern=TYPE_PATTERN)
    _text(request.run_id, "run_id", max_length=MAX_REF_LENGTH)
    start, end = timestamp(request, "start_time"), timestamp(request, "end_time")
    size = page_size(request.page_size)
    cursor = _token(request.page_token)
    if cursor is None:
        return size, start, end, None
    # The service issues {"t": occurred_time as ISO 8601 with its offset, "s": seq}; anything else,
    # however well-formed, was not issued by it.
    moment, seq = cursor.get("t"), cursor.get("s")
    if set(cursor) != {"t", "s"} or not isinstance(moment, str) or len(moment) > 64:
        raise InvalidArgument(_NOT_ISSUED, field="page_token")
    if type(seq) is not int or not 0 <= seq <= _MAX_SEQ:
        raise InvalidArgument(_NOT_ISSUED, field="page_token")
    try:
        after = datetime.fromisoformat(moment)
        if after.tzinfo is None:
            raise ValueError("no offset")
        after = after.astimezone(UTC)
    except (ValueError, OverflowError):
        raise InvalidArgument(_NOT_ISSUED, field="page_token") from None
    return size, start, end, (after, seq)


MAX_EXPLAIN_GROUP_BY = 4
KNOWN_EXPLAIN_VIEWS = range(0, 3)
EXPLAIN_VIEW_EVENTS = 2


@dataclass(frozen=True)
class ExplainArgs:
    """ExplainUsage's checked request: times, page size, and the decoded page token's parts."""

    start: datetime
    end: datetime
    ingested_before: datetime | None
    ingested_after: datetime | None
    size: int
    fingerprint: str
    # From the page token: the cutoff the first page used (when the request left it unset) and the
    # position to continue after, (quantity, tag values) for groups or (occurred_time, event_id).
    cutoff: datetime | None
    after: tuple[Any, Any] | None


def explain_fingerprint(request: Any) -> str:
    """What a page token is bound to: the request without its paging fields."""
    copy = type(request)()
    copy.CopyFrom(request)
    copy.ClearField("page_token")
    copy.ClearField("page_size")
    return hashlib.sha256(copy.SerializeToString(deterministic=True)).hexdigest()[:24]


def _moment(value: Any) -> datetime:
    if not isinstance(value, str) or len(value) > 64:
        raise ValueError("not a time")
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError("no offset")
    return moment.astimezone(UTC)


def check_explain_usage(request: Any) -> ExplainArgs:
    """Checks the request with QueryUsage's limits (and ExplainUsage's own: at most 4 group_by_tags,
    an ingested_after_time before ingested_before_time), and decodes its page token."""
    _meter_ref(request.builder_id, request.meter_key, "meter_key")
    _text(request.customer_id, "customer_id", max_length=MAX_REF_LENGTH, required=True)
    start = timestamp(request, "start_time", required=True)
    end = timestamp(request, "end_time", required=True)
    assert start is not None and end is not None
    if end <= start:
        raise InvalidArgument("end_time must be after start_time", field="end_time")
    before = timestamp(request, "ingested_before_time")
    after = timestamp(request, "ingested_after_time")
    if after is not None and before is not None and after >= before:
        raise InvalidArgument(
            "ingested_after_time must be before ingested_before_time", field="ingested_after_time"
        )
    _enum(request.view, "view", KNOWN_EXPLAIN_VIEWS, required=False)
    _count(request.group_by_tags, "group_by_tags", MAX_EXPLAIN_GROUP_BY)
    for i, tag in enumerate(request.group_by_tags):
        _text(tag, f"group_by_tags[{i}]", max_length=MAX_TAG_KEY_LENGTH, required=True)
    if len(set(request.group_by_tags)) != len(request.group_by_tags):
        raise InvalidArgument("group_by_tags lists a tag twice", field="group_by_tags")
    _string_map(
        request.tag_filters,
        "tag_filters",
        max_entries=MAX_TAGS,
        key_length=MAX_TAG_KEY_LENGTH,
        value_length=MAX_TAG_VALUE_LENGTH,
    )
    size = page_size(request.page_size)
    fp = explain_fingerprint(request)
    token = _token(request.page_token)
    if token is None:
        return ExplainArgs(start, end, before, after, size, fp, None, None)
    # The service issues {"f": fingerprint, "c": cutoff, "k": position}; anything else, or a token of
    # another request, was not issued for this one.
    try:
        if set(token) != {"f", "c", "k"} or token["f"] != fp:
            raise ValueError("another request")
        cutoff = _moment(token["c"])
        k = token["k"]
        if not isinstance(k, list) or len(k) != 2:
            raise ValueError("bad position")
        if request.view == EXPLAIN_VIEW_EVENTS:
            if not isinstance(k[1], str) or not 0 < len(k[1]) <= MAX_REF_LENGTH or "\x00" in k[1]:
                raise ValueError("bad event id")
            position: tuple[Any, Any] = (_moment(k[0]), k[1])
        else:
            values = k[1]
            if (
                not isinstance(k[0], str)
                or len(k[0]) > 64
                or not isinstance(values, list)
                or len(values) != len(request.group_by_tags)
                or not all(
                    isinstance(v, str) and len(v) <= MAX_TAG_VALUE_LENGTH and "\x00" not in v for v in values
                )
            ):
                raise ValueError("bad group")
            quantity = Decimal(k[0])
            if not quantity.is_finite():
                raise ValueError("bad quantity")
            position = (quantity, tuple(values))
    except (ValueError, OverflowError, ArithmeticError):
        raise InvalidArgument(_NOT_ISSUED, field="page_token") from None
    return ExplainArgs(start, end, before, after, size, fp, cutoff, position)
