"""Meters: what a builder counts and how. A meter is immutable once created, apart from archiving."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import IntEnum

from metering.domain.events import EventStatus, normalise_quantity, quoted

MAX_METER_KEY_LENGTH = 64
MAX_DISPLAY_NAME_LENGTH = 256
MAX_EVENT_TYPES = 32
MAX_BUCKETS = 64
MAX_TAG_FILTERS = 32

# Matched with fullmatch: "$" would also match before a trailing newline.
_KEY_RE = re.compile(r"[a-z0-9_.-]{1,64}")
_TYPE_RE = re.compile(r"[a-z0-9._-]{1,128}")


class Aggregation(IntEnum):
    """How matching events become one number; numbers match the wire enum."""

    COUNT = 1
    SUM = 2
    UNIQUE_COUNT = 3
    MAX = 4
    LATEST = 5


class MeterState(IntEnum):
    ACTIVE = 1
    ARCHIVED = 2


class MeterError(ValueError):
    """A meter definition breaks a rule; field is the path inside the request."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


@dataclass(frozen=True)
class Bucket:
    key: str
    # None on the last bucket, which is open-ended.
    max_value: Decimal | None


@dataclass(frozen=True)
class MeterSpec:
    """A meter as a builder defines it (no id, state or times)."""

    builder_id: str
    key: str
    display_name: str
    event_types: tuple[str, ...]
    aggregation: Aggregation
    quantity: str = ""
    unique_tag: str = ""
    tag_filters: dict[str, str] = field(default_factory=dict)
    statuses: tuple[EventStatus, ...] = (EventStatus.SUCCEEDED,)
    bucket_quantity: str = ""
    buckets: tuple[Bucket, ...] = ()


@dataclass(frozen=True)
class Meter:
    id: str
    spec: MeterSpec
    state: MeterState
    create_time: datetime
    archive_time: datetime | None = None


def validate_key(key: str, field: str = "key") -> None:
    if not key:
        raise MeterError("key is required", field)
    if not _KEY_RE.fullmatch(key):
        raise MeterError(f"key must be 1 to {MAX_METER_KEY_LENGTH} characters of [a-z0-9_.-]", field)


def new_spec(
    *,
    builder_id: str,
    key: str,
    display_name: str,
    event_types: list[str],
    aggregation: int,
    quantity: str,
    unique_tag: str,
    tag_filters: dict[str, str],
    statuses: list[int],
    bucket_quantity: str,
    buckets: list[tuple[str, str]],
    prefix: str = "meter.",
) -> MeterSpec:
    """Validate a meter definition as received and return it normalised; raises MeterError."""
    if not builder_id:
        raise MeterError("builder_id is required", prefix + "builder_id")
    if len(builder_id) > 128:
        raise MeterError("builder_id is longer than 128 characters", prefix + "builder_id")
    validate_key(key, prefix + "key")
    if len(display_name) > MAX_DISPLAY_NAME_LENGTH:
        raise MeterError(
            f"display_name is longer than {MAX_DISPLAY_NAME_LENGTH} characters", prefix + "display_name"
        )
    if not event_types:
        raise MeterError("event_types needs at least one event type", prefix + "event_types")
    if len(event_types) > MAX_EVENT_TYPES:
        raise MeterError(f"event_types has more than {MAX_EVENT_TYPES} entries", prefix + "event_types")
    for i, event_type in enumerate(event_types):
        if not _TYPE_RE.fullmatch(event_type):
            raise MeterError(
                f"event type {quoted(event_type)} must be 1 to 128 characters of [a-z0-9._-]",
                f"{prefix}event_types[{i}]",
            )
    try:
        agg = Aggregation(aggregation)
    except ValueError:
        raise MeterError(
            "aggregation is required" if aggregation == 0 else f"aggregation {aggregation} is not known",
            prefix + "aggregation",
        ) from None
    if agg in (Aggregation.SUM, Aggregation.MAX, Aggregation.LATEST):
        if not quantity:
            raise MeterError(f"quantity is required for {agg.name}", prefix + "quantity")
        if len(quantity) > 64:
            raise MeterError("quantity is longer than 64 characters", prefix + "quantity")
    elif quantity:
        raise MeterError(f"quantity must be empty for {agg.name}", prefix + "quantity")
    if unique_tag:
        if agg is not Aggregation.UNIQUE_COUNT:
            raise MeterError(f"unique_tag must be empty for {agg.name}", prefix + "unique_tag")
        if len(unique_tag) > 64:
            raise MeterError("unique_tag is longer than 64 characters", prefix + "unique_tag")
    if len(tag_filters) > MAX_TAG_FILTERS:
        raise MeterError(f"tag_filters has more than {MAX_TAG_FILTERS} entries", prefix + "tag_filters")
    for tag_key, tag_value in tag_filters.items():
        if not tag_key or len(tag_key) > 64:
            raise MeterError("tag filter keys must be 1 to 64 characters", prefix + "tag_filters")
        if len(tag_value) > 256:
            raise MeterError(f"tag filter {tag_key} is longer than 256 characters", prefix + "tag_filters")
    status_set: list[EventStatus] = []
    for i, status in enumerate(statuses):
        try:
            parsed = EventStatus(status)
        except ValueError:
            raise MeterError(f"status {status} is not a known status", f"{prefix}statuses[{i}]") from None
        if parsed not in status_set:
            status_set.append(parsed)
    if not status_set:
        status_set = [EventStatus.SUCCEEDED]
    parsed_buckets = _buckets(bucket_quantity, buckets, prefix)
    return MeterSpec(
        builder_id=builder_id,
        key=key,
        display_name=display_name,
        event_types=tuple(dict.fromkeys(event_types)),
        aggregation=agg,
        quantity=quantity,
        unique_tag=unique_tag,
        tag_filters=dict(sorted(tag_filters.items())),
        statuses=tuple(sorted(status_set)),
        bucket_quantity=bucket_quantity,
        buckets=parsed_buckets,
    )


def _buckets(bucket_quantity: str, buckets: list[tuple[str, str]], prefix: str) -> tuple[Bucket, ...]:
    if not buckets:
        if bucket_quantity:
            raise MeterError("bucket_quantity needs buckets", prefix + "bucket_quantity")
        return ()
    if not bucket_quantity:
        raise MeterError("bucket_quantity is required when buckets are set", prefix + "bucket_quantity")
    if len(bucket_quantity) > 64:
        raise MeterError("bucket_quantity is longer than 64 characters", prefix + "bucket_quantity")
    if len(buckets) > MAX_BUCKETS:
        raise MeterError(f"buckets has more than {MAX_BUCKETS} entries", prefix + "buckets")
    out: list[Bucket] = []
    seen: set[str] = set()
    last = len(buckets) - 1
    previous: Decimal | None = None
    for i, (key, max_value) in enumerate(buckets):
        path = f"{prefix}buckets[{i}]"
        if not key or len(key) > 64:
            raise MeterError("bucket key must be 1 to 64 characters", path + ".key")
        if key in seen:
            raise MeterError(f"bucket key {key!r} is used twice", path + ".key")
        seen.add(key)
        if not max_value:
            if i != last:
                raise MeterError(
                    "only the last bucket may be open-ended (empty max_value)", path + ".max_value"
                )
            out.append(Bucket(key, None))
            continue
        if i == last:
            raise MeterError("the last bucket must be open-ended (empty max_value)", path + ".max_value")
        try:
            bound = Decimal(normalise_quantity(max_value))
        except ValueError as exc:
            raise MeterError(f"max_value {exc}", path + ".max_value") from None
        if previous is not None and bound <= previous:
            raise MeterError("bucket max_value must be ascending", path + ".max_value")
        previous = bound
        out.append(Bucket(key, bound))
    return tuple(out)


def archive(meter: Meter, now: datetime) -> Meter:
    """Archiving an archived meter returns it unchanged."""
    if meter.state is MeterState.ARCHIVED:
        return meter
    return Meter(meter.id, meter.spec, MeterState.ARCHIVED, meter.create_time, now)


def to_json(meter: Meter) -> dict:
    """A meter as plain JSON, for the idempotency table's stored reply."""
    spec = meter.spec
    return {
        "id": meter.id,
        "builder_id": spec.builder_id,
        "key": spec.key,
        "display_name": spec.display_name,
        "event_types": list(spec.event_types),
        "aggregation": int(spec.aggregation),
        "quantity": spec.quantity,
        "unique_tag": spec.unique_tag,
        "tag_filters": dict(spec.tag_filters),
        "statuses": [int(s) for s in spec.statuses],
        "bucket_quantity": spec.bucket_quantity,
        "buckets": [[b.key, str(b.max_value) if b.max_value is not None else None] for b in spec.buckets],
        "state": int(meter.state),
        "create_time": meter.create_time.isoformat(),
        "archive_time": meter.archive_time.isoformat() if meter.archive_time else None,
    }


def from_json(data: dict) -> Meter:
    spec = MeterSpec(
        builder_id=data["builder_id"],
        key=data["key"],
        display_name=data["display_name"],
        event_types=tuple(data["event_types"]),
        aggregation=Aggregation(data["aggregation"]),
        quantity=data["quantity"],
        unique_tag=data["unique_tag"],
        tag_filters=dict(data["tag_filters"]),
        statuses=tuple(EventStatus(s) for s in data["statuses"]),
        bucket_quantity=data["bucket_quantity"],
        buckets=tuple(Bucket(k, Decimal(v) if v is not None else None) for k, v in data["buckets"]),
    )
    return Meter(
        id=data["id"],
        spec=spec,
        state=MeterState(data["state"]),
        create_time=datetime.fromisoformat(data["create_time"]),
        archive_time=datetime.fromisoformat(data["archive_time"]) if data["archive_time"] else None,
    )


def spec_fingerprint_body(spec: MeterSpec) -> dict:
    """What makes two CreateMeter requests the same request."""
    return {
        "builder_id": spec.builder_id,
        "key": spec.key,
        "display_name": spec.display_name,
        "event_types": list(spec.event_types),
        "aggregation": int(spec.aggregation),
        "quantity": spec.quantity,
        "unique_tag": spec.unique_tag,
        "tag_filters": dict(spec.tag_filters),
        "statuses": [int(s) for s in spec.statuses],
        "bucket_quantity": spec.bucket_quantity,
        "buckets": [[b.key, str(b.max_value) if b.max_value is not None else None] for b in spec.buckets],
    }
