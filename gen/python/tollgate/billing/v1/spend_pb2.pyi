import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from tollgate.type.v1 import money_pb2 as _money_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SpendScopeKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SPEND_SCOPE_KIND_UNSPECIFIED: _ClassVar[SpendScopeKind]
    SPEND_SCOPE_KIND_CUSTOMER: _ClassVar[SpendScopeKind]
    SPEND_SCOPE_KIND_API_KEY: _ClassVar[SpendScopeKind]
    SPEND_SCOPE_KIND_TAG: _ClassVar[SpendScopeKind]

class CapAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CAP_ACTION_UNSPECIFIED: _ClassVar[CapAction]
    CAP_ACTION_REFUSE: _ClassVar[CapAction]
    CAP_ACTION_DEGRADE: _ClassVar[CapAction]

class RateKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RATE_KIND_UNSPECIFIED: _ClassVar[RateKind]
    RATE_KIND_COST_PLUS: _ClassVar[RateKind]
    RATE_KIND_PER_EVENT: _ClassVar[RateKind]
    RATE_KIND_PER_QUANTITY: _ClassVar[RateKind]

class SpendLeaseState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SPEND_LEASE_STATE_UNSPECIFIED: _ClassVar[SpendLeaseState]
    SPEND_LEASE_STATE_ACTIVE: _ClassVar[SpendLeaseState]
    SPEND_LEASE_STATE_RELEASED: _ClassVar[SpendLeaseState]
    SPEND_LEASE_STATE_EXPIRED: _ClassVar[SpendLeaseState]

class AlertKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ALERT_KIND_UNSPECIFIED: _ClassVar[AlertKind]
    ALERT_KIND_SPEND_THRESHOLD: _ClassVar[AlertKind]
    ALERT_KIND_HARD_CAP_REACHED: _ClassVar[AlertKind]
    ALERT_KIND_NEGATIVE_MARGIN: _ClassVar[AlertKind]

class WebhookDeliveryState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WEBHOOK_DELIVERY_STATE_UNSPECIFIED: _ClassVar[WebhookDeliveryState]
    WEBHOOK_DELIVERY_STATE_PENDING: _ClassVar[WebhookDeliveryState]
    WEBHOOK_DELIVERY_STATE_DELIVERED: _ClassVar[WebhookDeliveryState]
    WEBHOOK_DELIVERY_STATE_FAILED: _ClassVar[WebhookDeliveryState]
SPEND_SCOPE_KIND_UNSPECIFIED: SpendScopeKind
SPEND_SCOPE_KIND_CUSTOMER: SpendScopeKind
SPEND_SCOPE_KIND_API_KEY: SpendScopeKind
SPEND_SCOPE_KIND_TAG: SpendScopeKind
CAP_ACTION_UNSPECIFIED: CapAction
CAP_ACTION_REFUSE: CapAction
CAP_ACTION_DEGRADE: CapAction
RATE_KIND_UNSPECIFIED: RateKind
RATE_KIND_COST_PLUS: RateKind
RATE_KIND_PER_EVENT: RateKind
RATE_KIND_PER_QUANTITY: RateKind
SPEND_LEASE_STATE_UNSPECIFIED: SpendLeaseState
SPEND_LEASE_STATE_ACTIVE: SpendLeaseState
SPEND_LEASE_STATE_RELEASED: SpendLeaseState
SPEND_LEASE_STATE_EXPIRED: SpendLeaseState
ALERT_KIND_UNSPECIFIED: AlertKind
ALERT_KIND_SPEND_THRESHOLD: AlertKind
ALERT_KIND_HARD_CAP_REACHED: AlertKind
ALERT_KIND_NEGATIVE_MARGIN: AlertKind
WEBHOOK_DELIVERY_STATE_UNSPECIFIED: WebhookDeliveryState
WEBHOOK_DELIVERY_STATE_PENDING: WebhookDeliveryState
WEBHOOK_DELIVERY_STATE_DELIVERED: WebhookDeliveryState
WEBHOOK_DELIVERY_STATE_FAILED: WebhookDeliveryState

class SpendScope(_message.Message):
    __slots__ = ("kind", "api_key_id", "tag_key", "tag_value")
    KIND_FIELD_NUMBER: _ClassVar[int]
    API_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    TAG_KEY_FIELD_NUMBER: _ClassVar[int]
    TAG_VALUE_FIELD_NUMBER: _ClassVar[int]
    kind: SpendScopeKind
    api_key_id: str
    tag_key: str
    tag_value: str
    def __init__(self, kind: _Optional[_Union[SpendScopeKind, str]] = ..., api_key_id: _Optional[str] = ..., tag_key: _Optional[str] = ..., tag_value: _Optional[str] = ...) -> None: ...

class SpendControl(_message.Message):
    __slots__ = ("id", "builder_id", "customer_id", "scope", "hard_cap", "alert_budget", "threshold_percents", "on_cap", "degrade_model", "create_time", "update_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    BUILDER_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    HARD_CAP_FIELD_NUMBER: _ClassVar[int]
    ALERT_BUDGET_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_PERCENTS_FIELD_NUMBER: _ClassVar[int]
    ON_CAP_FIELD_NUMBER: _ClassVar[int]
    DEGRADE_MODEL_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    builder_id: str
    customer_id: str
    scope: SpendScope
    hard_cap: _money_pb2.Money
    alert_budget: _money_pb2.Money
    threshold_percents: _containers.RepeatedScalarFieldContainer[int]
    on_cap: CapAction
    degrade_model: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., builder_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., scope: _Optional[_Union[SpendScope, _Mapping]] = ..., hard_cap: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., alert_budget: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., threshold_percents: _Optional[_Iterable[int]] = ..., on_cap: _Optional[_Union[CapAction, str]] = ..., degrade_model: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SpendStatus(_message.Message):
    __slots__ = ("control", "period_start_time", "period_end_time", "spent", "held", "remaining", "reached_threshold_percents", "active_lease_count")
    CONTROL_FIELD_NUMBER: _ClassVar[int]
    PERIOD_START_TIME_FIELD_NUMBER: _ClassVar[int]
    PERIOD_END_TIME_FIELD_NUMBER: _ClassVar[int]
    SPENT_FIELD_NUMBER: _ClassVar[int]
    HELD_FIELD_NUMBER: _ClassVar[int]
    REMAINING_FIELD_NUMBER: _ClassVar[int]
    REACHED_THRESHOLD_PERCENTS_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_LEASE_COUNT_FIELD_NUMBER: _ClassVar[int]
    control: SpendControl
    period_start_time: _timestamp_pb2.Timestamp
    period_end_time: _timestamp_pb2.Timestamp
    spent: _money_pb2.Money
    held: _money_pb2.Money
    remaining: _money_pb2.Money
    reached_threshold_percents: _containers.RepeatedScalarFieldContainer[int]
    active_lease_count: int
    def __init__(self, control: _Optional[_Union[SpendControl, _Mapping]] = ..., period_start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., period_end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., spent: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., held: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., remaining: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., reached_threshold_percents: _Optional[_Iterable[int]] = ..., active_lease_count: _Optional[int] = ...) -> None: ...

class SetSpendControlRequest(_message.Message):
    __slots__ = ("request_id", "control")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CONTROL_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    control: SpendControl
    def __init__(self, request_id: _Optional[str] = ..., control: _Optional[_Union[SpendControl, _Mapping]] = ...) -> None: ...

class SetSpendControlResponse(_message.Message):
    __slots__ = ("status",)
    STATUS_FIELD_NUMBER: _ClassVar[int]
    status: SpendStatus
    def __init__(self, status: _Optional[_Union[SpendStatus, _Mapping]] = ...) -> None: ...

class DeleteSpendControlRequest(_message.Message):
    __slots__ = ("request_id", "builder_id", "control_id")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    BUILDER_ID_FIELD_NUMBER: _ClassVar[int]
    CONTROL_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    builder_id: str
    control_id: str
    def __init__(self, request_id: _Optional[str] = ..., builder_id: _Optional[str] = ..., control_id: _Optional[str] = ...) -> None: ...

class DeleteSpendControlResponse(_message.Message):
    __slots__ = ("control",)
    CONTROL_FIELD_NUMBER: _ClassVar[int]
    control: SpendControl
    def __init__(self, control: _Optional[_Union[SpendControl, _Mapping]] = ...) -> None: ...

class ListSpendControlsRequest(_message.Message):
    __slots__ = ("builder_id", "customer_id", "page_size", "page_token")
    BUILDER_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    builder_id: str
    customer_id: str
    page_size: int
    page_token: str
    def __init__(self, builder_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListSpendControlsResponse(_message.Message):
    __slots__ = ("controls", "next_page_token")
    CONTROLS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    controls: _containers.RepeatedCompositeFieldContainer[SpendStatus]
    next_page_token: str
    def __init__(self, controls: _Optional[_Iterable[_Union[SpendStatus, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class RateItem(_message.Message):
    __slots__ = ("charge_key", "kind", "markup_percent", "fixed_per_event", "unit_price", "quantity", "statuses", "event_type")
    CHARGE_KEY_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    MARKUP_PERCENT_FIELD_NUMBER: _ClassVar[int]
    FIXED_PER_EVENT_FIELD_NUMBER: _ClassVar[int]
    UNIT_PRICE_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    STATUSES_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    charge_key: str
    kind: RateKind
    markup_percent: str
    fixed_per_event: str
    unit_price: str
    quantity: str
    statuses: _containers.RepeatedScalarFieldContainer[str]
    event_type: str
    def __init__(self, charge_key: _Optional[str] = ..., kind: _Optional[_Union[RateKind, str]] = ..., markup_percent: _Optional[str] = ..., fixed_per_event: _Optional[str] = ..., unit_price: _Optional[str] = ..., quantity: _Optional[str] = ..., statuses: _Optional[_Iterable[str]] = ..., event_type: _Optional[str] = ...) -> None: ...

class SpendPolicy(_message.Message):
    __slots__ = ("builder_id", "customer_id", "currency_code", "controls", "rate_card", "period_end_time", "lease_seconds")
    BUILDER_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_CODE_FIELD_NUMBER: _ClassVar[int]
    CONTROLS_FIELD_NUMBER: _ClassVar[int]
    RATE_CARD_FIELD_NUMBER: _ClassVar[int]
    PERIOD_END_TIME_FIELD_NUMBER: _ClassVar[int]
    LEASE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    builder_id: str
    customer_id: str
    currency_code: str
    controls: _containers.RepeatedCompositeFieldContainer[SpendControl]
    rate_card: _containers.RepeatedCompositeFieldContainer[RateItem]
    period_end_time: _timestamp_pb2.Timestamp
    lease_seconds: int
    def __init__(self, builder_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., currency_code: _Optional[str] = ..., controls: _Optional[_Iterable[_Union[SpendControl, _Mapping]]] = ..., rate_card: _Optional[_Iterable[_Union[RateItem, _Mapping]]] = ..., period_end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., lease_seconds: _Optional[int] = ...) -> None: ...

class GetSpendPolicyRequest(_message.Message):
    __slots__ = ("builder_id", "customer_id")
    BUILDER_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    builder_id: str
    customer_id: str
    def __init__(self, builder_id: _Optional[str] = ..., customer_id: _Optional[str] = ...) -> None: ...

class GetSpendPolicyResponse(_message.Message):
    __slots__ = ("policy",)
    POLICY_FIELD_NUMBER: _ClassVar[int]
    policy: SpendPolicy
    def __init__(self, policy: _Optional[_Union[SpendPolicy, _Mapping]] = ...) -> None: ...

class SpendLease(_message.Message):
    __slots__ = ("id", "control_id", "holder", "granted", "consumed", "state", "expire_time", "period_end_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    CONTROL_ID_FIELD_NUMBER: _ClassVar[int]
    HOLDER_FIELD_NUMBER: _ClassVar[int]
    GRANTED_FIELD_NUMBER: _ClassVar[int]
    CONSUMED_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    PERIOD_END_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    control_id: str
    holder: str
    granted: _money_pb2.Money
    consumed: _money_pb2.Money
    state: SpendLeaseState
    expire_time: _timestamp_pb2.Timestamp
    period_end_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., control_id: _Optional[str] = ..., holder: _Optional[str] = ..., granted: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., consumed: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., state: _Optional[_Union[SpendLeaseState, str]] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., period_end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CapReached(_message.Message):
    __slots__ = ("control_id", "scope", "hard_cap", "spent", "held", "reset_time", "on_cap", "degrade_model")
    CONTROL_ID_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    HARD_CAP_FIELD_NUMBER: _ClassVar[int]
    SPENT_FIELD_NUMBER: _ClassVar[int]
    HELD_FIELD_NUMBER: _ClassVar[int]
    RESET_TIME_FIELD_NUMBER: _ClassVar[int]
    ON_CAP_FIELD_NUMBER: _ClassVar[int]
    DEGRADE_MODEL_FIELD_NUMBER: _ClassVar[int]
    control_id: str
    scope: SpendScope
    hard_cap: _money_pb2.Money
    spent: _money_pb2.Money
    held: _money_pb2.Money
    reset_time: _timestamp_pb2.Timestamp
    on_cap: CapAction
    degrade_model: str
    def __init__(self, control_id: _Optional[str] = ..., scope: _Optional[_Union[SpendScope, _Mapping]] = ..., hard_cap: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., spent: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., held: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., reset_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., on_cap: _Optional[_Union[CapAction, str]] = ..., degrade_model: _Optional[str] = ...) -> None: ...

class AcquireSpendLeaseRequest(_message.Message):
    __slots__ = ("request_id", "builder_id", "customer_id", "control_id", "holder", "amount", "minimum")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    BUILDER_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    CONTROL_ID_FIELD_NUMBER: _ClassVar[int]
    HOLDER_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    MINIMUM_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    builder_id: str
    customer_id: str
    control_id: str
    holder: str
    amount: _money_pb2.Money
    minimum: _money_pb2.Money
    def __init__(self, request_id: _Optional[str] = ..., builder_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., control_id: _Optional[str] = ..., holder: _Optional[str] = ..., amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., minimum: _Optional[_Union[_money_pb2.Money, _Mapping]] = ...) -> None: ...

class AcquireSpendLeaseResponse(_message.Message):
    __slots__ = ("lease", "refused")
    LEASE_FIELD_NUMBER: _ClassVar[int]
    REFUSED_FIELD_NUMBER: _ClassVar[int]
    lease: SpendLease
    refused: CapReached
    def __init__(self, lease: _Optional[_Union[SpendLease, _Mapping]] = ..., refused: _Optional[_Union[CapReached, _Mapping]] = ...) -> None: ...

class ReportSpendLeaseRequest(_message.Message):
    __slots__ = ("request_id", "builder_id", "lease_id", "consumed", "release")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    BUILDER_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    CONSUMED_FIELD_NUMBER: _ClassVar[int]
    RELEASE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    builder_id: str
    lease_id: str
    consumed: _money_pb2.Money
    release: bool
    def __init__(self, request_id: _Optional[str] = ..., builder_id: _Optional[str] = ..., lease_id: _Optional[str] = ..., consumed: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., release: _Optional[bool] = ...) -> None: ...

class ReportSpendLeaseResponse(_message.Message):
    __slots__ = ("lease",)
    LEASE_FIELD_NUMBER: _ClassVar[int]
    lease: SpendLease
    def __init__(self, lease: _Optional[_Union[SpendLease, _Mapping]] = ...) -> None: ...

class Alert(_message.Message):
    __slots__ = ("id", "builder_id", "customer_id", "kind", "control_id", "threshold_percent", "amount", "limit", "charge_key", "period_start_time", "message", "create_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    BUILDER_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    CONTROL_ID_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_PERCENT_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    CHARGE_KEY_FIELD_NUMBER: _ClassVar[int]
    PERIOD_START_TIME_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    builder_id: str
    customer_id: str
    kind: AlertKind
    control_id: str
    threshold_percent: int
    amount: _money_pb2.Money
    limit: _money_pb2.Money
    charge_key: str
    period_start_time: _timestamp_pb2.Timestamp
    message: str
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., builder_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., kind: _Optional[_Union[AlertKind, str]] = ..., control_id: _Optional[str] = ..., threshold_percent: _Optional[int] = ..., amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., limit: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., charge_key: _Optional[str] = ..., period_start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., message: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListAlertsRequest(_message.Message):
    __slots__ = ("builder_id", "customer_id", "page_size", "page_token")
    BUILDER_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    builder_id: str
    customer_id: str
    page_size: int
    page_token: str
    def __init__(self, builder_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListAlertsResponse(_message.Message):
    __slots__ = ("alerts", "next_page_token")
    ALERTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    alerts: _containers.RepeatedCompositeFieldContainer[Alert]
    next_page_token: str
    def __init__(self, alerts: _Optional[_Iterable[_Union[Alert, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class WebhookEndpoint(_message.Message):
    __slots__ = ("builder_id", "url", "secret_hint", "create_time", "update_time")
    BUILDER_ID_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    SECRET_HINT_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    builder_id: str
    url: str
    secret_hint: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, builder_id: _Optional[str] = ..., url: _Optional[str] = ..., secret_hint: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SetWebhookEndpointRequest(_message.Message):
    __slots__ = ("request_id", "builder_id", "url", "rotate_secret")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    BUILDER_ID_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    ROTATE_SECRET_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    builder_id: str
    url: str
    rotate_secret: bool
    def __init__(self, request_id: _Optional[str] = ..., builder_id: _Optional[str] = ..., url: _Optional[str] = ..., rotate_secret: _Optional[bool] = ...) -> None: ...

class SetWebhookEndpointResponse(_message.Message):
    __slots__ = ("endpoint", "secret")
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    endpoint: WebhookEndpoint
    secret: str
    def __init__(self, endpoint: _Optional[_Union[WebhookEndpoint, _Mapping]] = ..., secret: _Optional[str] = ...) -> None: ...

class WebhookDelivery(_message.Message):
    __slots__ = ("id", "alert_id", "url", "state", "attempt_count", "last_status_code", "last_error", "next_attempt_time", "deliver_time", "create_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    ALERT_ID_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_COUNT_FIELD_NUMBER: _ClassVar[int]
    LAST_STATUS_CODE_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    NEXT_ATTEMPT_TIME_FIELD_NUMBER: _ClassVar[int]
    DELIVER_TIME_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    alert_id: str
    url: str
    state: WebhookDeliveryState
    attempt_count: int
    last_status_code: int
    last_error: str
    next_attempt_time: _timestamp_pb2.Timestamp
    deliver_time: _timestamp_pb2.Timestamp
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., alert_id: _Optional[str] = ..., url: _Optional[str] = ..., state: _Optional[_Union[WebhookDeliveryState, str]] = ..., attempt_count: _Optional[int] = ..., last_status_code: _Optional[int] = ..., last_error: _Optional[str] = ..., next_attempt_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., deliver_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListWebhookDeliveriesRequest(_message.Message):
    __slots__ = ("builder_id", "alert_id", "page_size", "page_token")
    BUILDER_ID_FIELD_NUMBER: _ClassVar[int]
    ALERT_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    builder_id: str
    alert_id: str
    page_size: int
    page_token: str
    def __init__(self, builder_id: _Optional[str] = ..., alert_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListWebhookDeliveriesResponse(_message.Message):
    __slots__ = ("deliveries", "next_page_token")
    DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    deliveries: _containers.RepeatedCompositeFieldContainer[WebhookDelivery]
    next_page_token: str
    def __init__(self, deliveries: _Optional[_Iterable[_Union[WebhookDelivery, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
