import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EventStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVENT_STATUS_UNSPECIFIED: _ClassVar[EventStatus]
    EVENT_STATUS_SUCCEEDED: _ClassVar[EventStatus]
    EVENT_STATUS_FAILED: _ClassVar[EventStatus]
    EVENT_STATUS_TEST: _ClassVar[EventStatus]

class IngestOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INGEST_OUTCOME_UNSPECIFIED: _ClassVar[IngestOutcome]
    INGEST_OUTCOME_ACCEPTED: _ClassVar[IngestOutcome]
    INGEST_OUTCOME_DUPLICATE: _ClassVar[IngestOutcome]
    INGEST_OUTCOME_CONFLICT: _ClassVar[IngestOutcome]
    INGEST_OUTCOME_INVALID: _ClassVar[IngestOutcome]

class Aggregation(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AGGREGATION_UNSPECIFIED: _ClassVar[Aggregation]
    AGGREGATION_COUNT: _ClassVar[Aggregation]
    AGGREGATION_SUM: _ClassVar[Aggregation]
    AGGREGATION_UNIQUE_COUNT: _ClassVar[Aggregation]
    AGGREGATION_MAX: _ClassVar[Aggregation]
    AGGREGATION_LATEST: _ClassVar[Aggregation]

class MeterState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    METER_STATE_UNSPECIFIED: _ClassVar[MeterState]
    METER_STATE_ACTIVE: _ClassVar[MeterState]
    METER_STATE_ARCHIVED: _ClassVar[MeterState]

class WindowSize(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WINDOW_SIZE_UNSPECIFIED: _ClassVar[WindowSize]
    WINDOW_SIZE_HOUR: _ClassVar[WindowSize]
    WINDOW_SIZE_DAY: _ClassVar[WindowSize]
    WINDOW_SIZE_MONTH: _ClassVar[WindowSize]

class ExplainView(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXPLAIN_VIEW_UNSPECIFIED: _ClassVar[ExplainView]
    EXPLAIN_VIEW_GROUPS: _ClassVar[ExplainView]
    EXPLAIN_VIEW_EVENTS: _ClassVar[ExplainView]
EVENT_STATUS_UNSPECIFIED: EventStatus
EVENT_STATUS_SUCCEEDED: EventStatus
EVENT_STATUS_FAILED: EventStatus
EVENT_STATUS_TEST: EventStatus
INGEST_OUTCOME_UNSPECIFIED: IngestOutcome
INGEST_OUTCOME_ACCEPTED: IngestOutcome
INGEST_OUTCOME_DUPLICATE: IngestOutcome
INGEST_OUTCOME_CONFLICT: IngestOutcome
INGEST_OUTCOME_INVALID: IngestOutcome
AGGREGATION_UNSPECIFIED: Aggregation
AGGREGATION_COUNT: Aggregation
AGGREGATION_SUM: Aggregation
AGGREGATION_UNIQUE_COUNT: Aggregation
AGGREGATION_MAX: Aggregation
AGGREGATION_LATEST: Aggregation
METER_STATE_UNSPECIFIED: MeterState
METER_STATE_ACTIVE: MeterState
METER_STATE_ARCHIVED: MeterState
WINDOW_SIZE_UNSPECIFIED: WindowSize
WINDOW_SIZE_HOUR: WindowSize
WINDOW_SIZE_DAY: WindowSize
WINDOW_SIZE_MONTH: WindowSize
EXPLAIN_VIEW_UNSPECIFIED: ExplainView
EXPLAIN_VIEW_GROUPS: ExplainView
EXPLAIN_VIEW_EVENTS: ExplainView

class UsageEvent(_message.Message):
    __slots__ = ("id", "type", "occurred_time", "builder_id", "app_id", "customer_id", "status", "run_id", "tags", "quantities", "ingested_time")
    class TagsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class QuantitiesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_TIME_FIELD_NUMBER: _ClassVar[int]
    BUILDER_ID_FIELD_NUMBER: _ClassVar[int]
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    QUANTITIES_FIELD_NUMBER: _ClassVar[int]
    INGESTED_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    type: str
    occurred_time: _timestamp_pb2.Timestamp
    builder_id: str
    app_id: str
    customer_id: str
    status: EventStatus
    run_id: str
    tags: _containers.ScalarMap[str, str]
    quantities: _containers.ScalarMap[str, str]
    ingested_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., type: _Optional[str] = ..., occurred_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., builder_id: _Optional[str] = ..., app_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., status: _Optional[_Union[EventStatus, str]] = ..., run_id: _Optional[str] = ..., tags: _Optional[_Mapping[str, str]] = ..., quantities: _Optional[_Mapping[str, str]] = ..., ingested_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class IngestEventsRequest(_message.Message):
    __slots__ = ("request_id", "events")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    events: _containers.RepeatedCompositeFieldContainer[UsageEvent]
    def __init__(self, request_id: _Optional[str] = ..., events: _Optional[_Iterable[_Union[UsageEvent, _Mapping]]] = ...) -> None: ...

class EventResult(_message.Message):
    __slots__ = ("event_id", "outcome", "reason", "field")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    outcome: IngestOutcome
    reason: str
    field: str
    def __init__(self, event_id: _Optional[str] = ..., outcome: _Optional[_Union[IngestOutcome, str]] = ..., reason: _Optional[str] = ..., field: _Optional[str] = ...) -> None: ...

class IngestEventsResponse(_message.Message):
    __slots__ = ("results", "accepted_count", "duplicate_count", "conflict_count", "invalid_count")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_COUNT_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_COUNT_FIELD_NUMBER: _ClassVar[int]
    CONFLICT_COUNT_FIELD_NUMBER: _ClassVar[int]
    INVALID_COUNT_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[EventResult]
    accepted_count: int
    duplicate_count: int
    conflict_count: int
    invalid_count: int
    def __init__(self, results: _Optional[_Iterable[_Union[EventResult, _Mapping]]] = ..., accepted_count: _Optional[int] = ..., duplicate_count: _Optional[int] = ..., conflict_count: _Optional[int] = ..., invalid_count: _Optional[int] = ...) -> None: ...

class Bucket(_message.Message):
    __slots__ = ("key", "max_value")
    KEY_FIELD_NUMBER: _ClassVar[int]
    MAX_VALUE_FIELD_NUMBER: _ClassVar[int]
    key: str
    max_value: str
    def __init__(self, key: _Optional[str] = ..., max_value: _Optional[str] = ...) -> None: ...

class Meter(_message.Message):
    __slots__ = ("id", "builder_id", "key", "display_name", "event_types", "aggregation", "quantity", "unique_tag", "tag_filters", "statuses", "bucket_quantity", "buckets", "state", "create_time", "archive_time")
    class TagFiltersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    BUILDER_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPES_FIELD_NUMBER: _ClassVar[int]
    AGGREGATION_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    UNIQUE_TAG_FIELD_NUMBER: _ClassVar[int]
    TAG_FILTERS_FIELD_NUMBER: _ClassVar[int]
    STATUSES_FIELD_NUMBER: _ClassVar[int]
    BUCKET_QUANTITY_FIELD_NUMBER: _ClassVar[int]
    BUCKETS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    ARCHIVE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    builder_id: str
    key: str
    display_name: str
    event_types: _containers.RepeatedScalarFieldContainer[str]
    aggregation: Aggregation
    quantity: str
    unique_tag: str
    tag_filters: _containers.ScalarMap[str, str]
    statuses: _containers.RepeatedScalarFieldContainer[EventStatus]
    bucket_quantity: str
    buckets: _containers.RepeatedCompositeFieldContainer[Bucket]
    state: MeterState
    create_time: _timestamp_pb2.Timestamp
    archive_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., builder_id: _Optional[str] = ..., key: _Optional[str] = ..., display_name: _Optional[str] = ..., event_types: _Optional[_Iterable[str]] = ..., aggregation: _Optional[_Union[Aggregation, str]] = ..., quantity: _Optional[str] = ..., unique_tag: _Optional[str] = ..., tag_filters: _Optional[_Mapping[str, str]] = ..., statuses: _Optional[_Iterable[_Union[EventStatus, str]]] = ..., bucket_quantity: _Optional[str] = ..., buckets: _Optional[_Iterable[_Union[Bucket, _Mapping]]] = ..., state: _Optional[_Union[MeterState, str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., archive_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateMeterRequest(_message.Message):
    __slots__ = ("request_id", "meter")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    METER_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    meter: Meter
    def __init__(self, request_id: _Optional[str] = ..., meter: _Optional[_Union[Meter, _Mapping]] = ...) -> None: ...

class CreateMeterResponse(_message.Message):
    __slots__ = ("meter",)
    METER_FIELD_NUMBER: _ClassVar[int]
    meter: Meter
    def __init__(self, meter: _Optional[_Union[Meter, _Mapping]] = ...) -> None: ...

class GetMeterRequest(_message.Message):
    __slots__ = ("builder_id", "key")
    BUILDER_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    builder_id: str
    key: str
    def __init__(self, builder_id: _Optional[str] = ..., key: _Optional[str] = ...) -> None: ...

class GetMeterResponse(_message.Message):
    __slots__ = ("meter",)
    METER_FIELD_NUMBER: _ClassVar[int]
    meter: Meter
    def __init__(self, meter: _Optional[_Union[Meter, _Mapping]] = ...) -> None: ...

class ListMetersRequest(_message.Message):
    __slots__ = ("builder_id", "include_archived", "page_size", "page_token")
    BUILDER_ID_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_ARCHIVED_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    builder_id: str
    include_archived: bool
    page_size: int
    page_token: str
    def __init__(self, builder_id: _Optional[str] = ..., include_archived: _Optional[bool] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListMetersResponse(_message.Message):
    __slots__ = ("meters", "next_page_token")
    METERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    meters: _containers.RepeatedCompositeFieldContainer[Meter]
    next_page_token: str
    def __init__(self, meters: _Optional[_Iterable[_Union[Meter, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ArchiveMeterRequest(_message.Message):
    __slots__ = ("request_id", "builder_id", "key")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    BUILDER_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    builder_id: str
    key: str
    def __init__(self, request_id: _Optional[str] = ..., builder_id: _Optional[str] = ..., key: _Optional[str] = ...) -> None: ...

class ArchiveMeterResponse(_message.Message):
    __slots__ = ("meter",)
    METER_FIELD_NUMBER: _ClassVar[int]
    meter: Meter
    def __init__(self, meter: _Optional[_Union[Meter, _Mapping]] = ...) -> None: ...

class QueryUsageRequest(_message.Message):
    __slots__ = ("builder_id", "meter_key", "customer_id", "start_time", "end_time", "window_size", "group_by_customer", "group_by_app", "group_by_tags", "group_by_bucket", "tag_filters", "ingested_before_time", "statuses")
    class TagFiltersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    BUILDER_ID_FIELD_NUMBER: _ClassVar[int]
    METER_KEY_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    WINDOW_SIZE_FIELD_NUMBER: _ClassVar[int]
    GROUP_BY_CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    GROUP_BY_APP_FIELD_NUMBER: _ClassVar[int]
    GROUP_BY_TAGS_FIELD_NUMBER: _ClassVar[int]
    GROUP_BY_BUCKET_FIELD_NUMBER: _ClassVar[int]
    TAG_FILTERS_FIELD_NUMBER: _ClassVar[int]
    INGESTED_BEFORE_TIME_FIELD_NUMBER: _ClassVar[int]
    STATUSES_FIELD_NUMBER: _ClassVar[int]
    builder_id: str
    meter_key: str
    customer_id: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    window_size: WindowSize
    group_by_customer: bool
    group_by_app: bool
    group_by_tags: _containers.RepeatedScalarFieldContainer[str]
    group_by_bucket: bool
    tag_filters: _containers.ScalarMap[str, str]
    ingested_before_time: _timestamp_pb2.Timestamp
    statuses: _containers.RepeatedScalarFieldContainer[EventStatus]
    def __init__(self, builder_id: _Optional[str] = ..., meter_key: _Optional[str] = ..., customer_id: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., window_size: _Optional[_Union[WindowSize, str]] = ..., group_by_customer: _Optional[bool] = ..., group_by_app: _Optional[bool] = ..., group_by_tags: _Optional[_Iterable[str]] = ..., group_by_bucket: _Optional[bool] = ..., tag_filters: _Optional[_Mapping[str, str]] = ..., ingested_before_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., statuses: _Optional[_Iterable[_Union[EventStatus, str]]] = ...) -> None: ...

class UsageRow(_message.Message):
    __slots__ = ("window_start_time", "window_end_time", "customer_id", "app_id", "tags", "bucket", "value", "event_count")
    class TagsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    WINDOW_START_TIME_FIELD_NUMBER: _ClassVar[int]
    WINDOW_END_TIME_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    EVENT_COUNT_FIELD_NUMBER: _ClassVar[int]
    window_start_time: _timestamp_pb2.Timestamp
    window_end_time: _timestamp_pb2.Timestamp
    customer_id: str
    app_id: str
    tags: _containers.ScalarMap[str, str]
    bucket: str
    value: str
    event_count: int
    def __init__(self, window_start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., window_end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., customer_id: _Optional[str] = ..., app_id: _Optional[str] = ..., tags: _Optional[_Mapping[str, str]] = ..., bucket: _Optional[str] = ..., value: _Optional[str] = ..., event_count: _Optional[int] = ...) -> None: ...

class QueryUsageResponse(_message.Message):
    __slots__ = ("rows", "ingested_before_time", "cutoff_settled")
    ROWS_FIELD_NUMBER: _ClassVar[int]
    INGESTED_BEFORE_TIME_FIELD_NUMBER: _ClassVar[int]
    CUTOFF_SETTLED_FIELD_NUMBER: _ClassVar[int]
    rows: _containers.RepeatedCompositeFieldContainer[UsageRow]
    ingested_before_time: _timestamp_pb2.Timestamp
    cutoff_settled: bool
    def __init__(self, rows: _Optional[_Iterable[_Union[UsageRow, _Mapping]]] = ..., ingested_before_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., cutoff_settled: _Optional[bool] = ...) -> None: ...

class ListEventsRequest(_message.Message):
    __slots__ = ("builder_id", "customer_id", "type", "run_id", "start_time", "end_time", "page_size", "page_token")
    BUILDER_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    builder_id: str
    customer_id: str
    type: str
    run_id: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    page_size: int
    page_token: str
    def __init__(self, builder_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., type: _Optional[str] = ..., run_id: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListEventsResponse(_message.Message):
    __slots__ = ("events", "next_page_token")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[UsageEvent]
    next_page_token: str
    def __init__(self, events: _Optional[_Iterable[_Union[UsageEvent, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ExplainUsageRequest(_message.Message):
    __slots__ = ("builder_id", "meter_key", "customer_id", "start_time", "end_time", "ingested_before_time", "ingested_after_time", "view", "group_by_tags", "tag_filters", "page_size", "page_token")
    class TagFiltersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    BUILDER_ID_FIELD_NUMBER: _ClassVar[int]
    METER_KEY_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    INGESTED_BEFORE_TIME_FIELD_NUMBER: _ClassVar[int]
    INGESTED_AFTER_TIME_FIELD_NUMBER: _ClassVar[int]
    VIEW_FIELD_NUMBER: _ClassVar[int]
    GROUP_BY_TAGS_FIELD_NUMBER: _ClassVar[int]
    TAG_FILTERS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    builder_id: str
    meter_key: str
    customer_id: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    ingested_before_time: _timestamp_pb2.Timestamp
    ingested_after_time: _timestamp_pb2.Timestamp
    view: ExplainView
    group_by_tags: _containers.RepeatedScalarFieldContainer[str]
    tag_filters: _containers.ScalarMap[str, str]
    page_size: int
    page_token: str
    def __init__(self, builder_id: _Optional[str] = ..., meter_key: _Optional[str] = ..., customer_id: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ingested_before_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ingested_after_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., view: _Optional[_Union[ExplainView, str]] = ..., group_by_tags: _Optional[_Iterable[str]] = ..., tag_filters: _Optional[_Mapping[str, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class UsageGroup(_message.Message):
    __slots__ = ("tags", "quantity", "event_count", "provider_cost")
    class TagsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TAGS_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    EVENT_COUNT_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_COST_FIELD_NUMBER: _ClassVar[int]
    tags: _containers.ScalarMap[str, str]
    quantity: str
    event_count: int
    provider_cost: str
    def __init__(self, tags: _Optional[_Mapping[str, str]] = ..., quantity: _Optional[str] = ..., event_count: _Optional[int] = ..., provider_cost: _Optional[str] = ...) -> None: ...

class ExplainedEvent(_message.Message):
    __slots__ = ("event", "ingest_time", "contributed_quantity")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    INGEST_TIME_FIELD_NUMBER: _ClassVar[int]
    CONTRIBUTED_QUANTITY_FIELD_NUMBER: _ClassVar[int]
    event: UsageEvent
    ingest_time: _timestamp_pb2.Timestamp
    contributed_quantity: str
    def __init__(self, event: _Optional[_Union[UsageEvent, _Mapping]] = ..., ingest_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., contributed_quantity: _Optional[str] = ...) -> None: ...

class ExplainUsageResponse(_message.Message):
    __slots__ = ("total_quantity", "event_count", "groups", "events", "next_page_token", "ingested_before_time")
    TOTAL_QUANTITY_FIELD_NUMBER: _ClassVar[int]
    EVENT_COUNT_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    INGESTED_BEFORE_TIME_FIELD_NUMBER: _ClassVar[int]
    total_quantity: str
    event_count: int
    groups: _containers.RepeatedCompositeFieldContainer[UsageGroup]
    events: _containers.RepeatedCompositeFieldContainer[ExplainedEvent]
    next_page_token: str
    ingested_before_time: _timestamp_pb2.Timestamp
    def __init__(self, total_quantity: _Optional[str] = ..., event_count: _Optional[int] = ..., groups: _Optional[_Iterable[_Union[UsageGroup, _Mapping]]] = ..., events: _Optional[_Iterable[_Union[ExplainedEvent, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., ingested_before_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
