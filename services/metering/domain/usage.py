"""QueryUsage: what a query means for a meter (a plan the store renders as one SQL statement) and how
raw group rows become windows clipped to the requested range."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from enum import IntEnum

from metering.domain.meters import Aggregation, Meter

MAX_GROUP_BY_TAGS = 16
# A windowed query may not produce more windows than this; a year of hours fits.
MAX_WINDOWS = 24 * 366 + 48


class WindowSize(IntEnum):
    """Calendar windows in UTC; numbers match the wire enum."""

    NONE = 0
    HOUR = 1
    DAY = 2
    MONTH = 3


class QueryError(ValueError):
    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


@dataclass(frozen=True)
class UsageQuery:
    builder_id: str
    meter_key: str
    customer_id: str
    start: datetime | None
    end: datetime | None
    window: int = 0
    group_by_customer: bool = False
    group_by_app: bool = False
    group_by_tags: tuple[str, ...] = ()
    group_by_bucket: bool = False
    tag_filters: dict[str, str] = field(default_factory=dict)
    ingested_before: datetime | None = None
    # Instead of the meter's statuses (for example TEST only); empty means the meter's.
    statuses: tuple[int, ...] = ()


@dataclass(frozen=True)
class QueryPlan:
    """Everything the store needs to aggregate in one statement. Times are UTC-aware datetimes."""

    builder_id: str
    event_types: tuple[str, ...]
    statuses: tuple[int, ...]
    start: datetime
    end: datetime
    cutoff: datetime
    customer_id: str | None
    # Tags every event must carry with these values (the meter's and the request's, merged).
    tag_filters: dict[str, str]
    # A request filter that contradicts the meter's own: nothing can match.
    empty: bool
    window: WindowSize
    group_by_customer: bool
    group_by_app: bool
    group_by_tags: tuple[str, ...]
    # When grouping by bucket: the quantity and the ascending upper bounds of every bucket but the last.
    bucket_quantity: str | None
    bucket_bounds: tuple[Decimal, ...]
    aggregation: Aggregation
    quantity: str
    unique_tag: str


@dataclass(frozen=True)
class RawRow:
    """One group as the store returns it: the truncated window start (None when not windowed)."""

    window_start: datetime | None
    customer_id: str
    app_id: str
    tags: tuple[str, ...]
    bucket_index: int | None
    value: Decimal
    event_count: int


@dataclass(frozen=True)
class UsageRow:
    window_start: datetime
    window_end: datetime
    customer_id: str
    app_id: str
    tags: dict[str, str]
    bucket: str
    value: Decimal
    event_count: int


def check_query(query: UsageQuery) -> None:
    """Rules that need no meter; raises QueryError naming the field."""
    if not query.builder_id:
        raise QueryError("builder_id is required", "builder_id")
    if not query.meter_key:
        raise QueryError("meter_key is required", "meter_key")
    if query.start is None:
        raise QueryError("start_time is required", "start_time")
    if query.end is None:
        raise QueryError("end_time is required", "end_time")
    if query.end <= query.start:
        raise QueryError("end_time must be after start_time", "end_time")
    try:
        window = WindowSize(query.window)
    except ValueError:
        raise QueryError(f"window_size {query.window} is not known", "window_size") from None
    if window is not WindowSize.NONE and _window_count(query.start, query.end, window) > MAX_WINDOWS:
        raise QueryError(f"the range holds more than {MAX_WINDOWS} windows of this size", "window_size")
    if len(query.group_by_tags) > MAX_GROUP_BY_TAGS:
        raise QueryError(f"group_by_tags has more than {MAX_GROUP_BY_TAGS} entries", "group_by_tags")
    for i, tag in enumerate(query.group_by_tags):
        if not tag or len(tag) > 64:
            raise QueryError("group_by_tags entries must be 1 to 64 characters", f"group_by_tags[{i}]")
    if len(set(query.group_by_tags)) != len(query.group_by_tags):
        raise QueryError("group_by_tags lists a tag twice", "group_by_tags")
    for tag in query.tag_filters:
        if not tag or len(tag) > 64:
            raise QueryError("tag_filters keys must be 1 to 64 characters", "tag_filters")


def plan(meter: Meter, query: UsageQuery, cutoff: datetime) -> QueryPlan:
    """The plan for one meter and query; raises QueryError for grouping the meter cannot serve."""
    check_query(query)
    spec = meter.spec
    if query.group_by_bucket and not spec.buckets:
        raise QueryError(f"meter {spec.key} has no buckets", "group_by_bucket")
    merged = dict(spec.tag_filters)
    empty = False
    for key, value in query.tag_filters.items():
        if key in merged and merged[key] != value:
            empty = True
        merged[key] = value
    assert query.start is not None and query.end is not None
    bounds = tuple(b.max_value for b in spec.buckets if b.max_value is not None)
    return QueryPlan(
        builder_id=query.builder_id,
        event_types=spec.event_types,
        statuses=tuple(sorted(set(query.statuses))) or tuple(int(s) for s in spec.statuses),
        start=query.start,
        end=query.end,
        cutoff=cutoff,
        customer_id=query.customer_id or None,
        tag_filters=merged,
        empty=empty,
        window=WindowSize(query.window),
        group_by_customer=query.group_by_customer,
        group_by_app=query.group_by_app,
        group_by_tags=query.group_by_tags,
        bucket_quantity=spec.bucket_quantity if query.group_by_bucket else None,
        bucket_bounds=bounds if query.group_by_bucket else (),
        aggregation=spec.aggregation,
        quantity=spec.quantity,
        unique_tag=spec.unique_tag,
    )


def _add_month(value: datetime) -> datetime:
    if value.month == 12:
        return value.replace(year=value.year + 1, month=1)
    return value.replace(month=value.month + 1)


def truncate(value: datetime, window: WindowSize) -> datetime:
    if window is WindowSize.HOUR:
        return value.replace(minute=0, second=0, microsecond=0)
    if window is WindowSize.DAY:
        return value.replace(hour=0, minute=0, second=0, microsecond=0)
    return value.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def window_end(window_start: datetime, window: WindowSize) -> datetime:
    if window is WindowSize.HOUR:
        return window_start + timedelta(hours=1)
    if window is WindowSize.DAY:
        return window_start + timedelta(days=1)
    return _add_month(window_start)


def _window_count(start: datetime, end: datetime, window: WindowSize) -> int:
    if window is WindowSize.MONTH:
        return (end.year - start.year) * 12 + end.month - start.month + 1
    size = 3600 if window is WindowSize.HOUR else 86400
    return int((end - start).total_seconds() // size) + 2


def rows(plan_: QueryPlan, raw: list[RawRow], bucket_keys: tuple[str, ...]) -> list[UsageRow]:
    """Raw group rows -> usage rows with windows clipped to [start, end)."""
    out: list[UsageRow] = []
    for r in raw:
        if r.window_start is None:
            ws, we = plan_.start, plan_.end
        else:
            ws = max(r.window_start, plan_.start)
            we = min(window_end(r.window_start, plan_.window), plan_.end)
        out.append(
            UsageRow(
                window_start=ws,
                window_end=we,
                customer_id=r.customer_id,
                app_id=r.app_id,
                tags=dict(zip(plan_.group_by_tags, r.tags, strict=True)),
                bucket=bucket_keys[r.bucket_index] if r.bucket_index is not None else "",
                value=r.value,
                event_count=r.event_count,
            )
        )
    return out
