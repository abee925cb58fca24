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

class BillingInterval(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BILLING_INTERVAL_UNSPECIFIED: _ClassVar[BillingInterval]
    BILLING_INTERVAL_MONTH: _ClassVar[BillingInterval]

class PlanChangeTiming(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PLAN_CHANGE_TIMING_UNSPECIFIED: _ClassVar[PlanChangeTiming]
    PLAN_CHANGE_TIMING_NEXT_PERIOD: _ClassVar[PlanChangeTiming]
    PLAN_CHANGE_TIMING_IMMEDIATELY: _ClassVar[PlanChangeTiming]

class CancelTiming(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CANCEL_TIMING_UNSPECIFIED: _ClassVar[CancelTiming]
    CANCEL_TIMING_PERIOD_END: _ClassVar[CancelTiming]
    CANCEL_TIMING_IMMEDIATELY: _ClassVar[CancelTiming]

class InvoiceStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INVOICE_STATUS_UNSPECIFIED: _ClassVar[InvoiceStatus]
    INVOICE_STATUS_DRAFT: _ClassVar[InvoiceStatus]
    INVOICE_STATUS_FINALIZED: _ClassVar[InvoiceStatus]
    INVOICE_STATUS_VOID: _ClassVar[InvoiceStatus]

class PaymentStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PAYMENT_STATUS_UNSPECIFIED: _ClassVar[PaymentStatus]
    PAYMENT_STATUS_UNPAID: _ClassVar[PaymentStatus]
    PAYMENT_STATUS_PARTIALLY_PAID: _ClassVar[PaymentStatus]
    PAYMENT_STATUS_PAID: _ClassVar[PaymentStatus]

class LineKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LINE_KIND_UNSPECIFIED: _ClassVar[LineKind]
    LINE_KIND_BASE_FEE: _ClassVar[LineKind]
    LINE_KIND_USAGE: _ClassVar[LineKind]
    LINE_KIND_LATE_USAGE_ADJUSTMENT: _ClassVar[LineKind]

class CreditSettlement(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CREDIT_SETTLEMENT_UNSPECIFIED: _ClassVar[CreditSettlement]
    CREDIT_SETTLEMENT_WALLET: _ClassVar[CreditSettlement]
    CREDIT_SETTLEMENT_REFUND: _ClassVar[CreditSettlement]

class RefundState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REFUND_STATE_UNSPECIFIED: _ClassVar[RefundState]
    REFUND_STATE_PENDING: _ClassVar[RefundState]
    REFUND_STATE_PAID: _ClassVar[RefundState]
    REFUND_STATE_FAILED: _ClassVar[RefundState]

class ExplainView(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXPLAIN_VIEW_UNSPECIFIED: _ClassVar[ExplainView]
    EXPLAIN_VIEW_GROUPS: _ClassVar[ExplainView]
    EXPLAIN_VIEW_EVENTS: _ClassVar[ExplainView]

class EarningsKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EARNINGS_KIND_UNSPECIFIED: _ClassVar[EarningsKind]
    EARNINGS_KIND_BUILDER_MARGIN: _ClassVar[EarningsKind]
    EARNINGS_KIND_PLATFORM_FEE: _ClassVar[EarningsKind]
    EARNINGS_KIND_PROVIDER_COST: _ClassVar[EarningsKind]

class EarningsReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EARNINGS_REASON_UNSPECIFIED: _ClassVar[EarningsReason]
    EARNINGS_REASON_PAYMENT: _ClassVar[EarningsReason]
    EARNINGS_REASON_CREDIT_NOTE: _ClassVar[EarningsReason]
    EARNINGS_REASON_VOID: _ClassVar[EarningsReason]
BILLING_INTERVAL_UNSPECIFIED: BillingInterval
BILLING_INTERVAL_MONTH: BillingInterval
PLAN_CHANGE_TIMING_UNSPECIFIED: PlanChangeTiming
PLAN_CHANGE_TIMING_NEXT_PERIOD: PlanChangeTiming
PLAN_CHANGE_TIMING_IMMEDIATELY: PlanChangeTiming
CANCEL_TIMING_UNSPECIFIED: CancelTiming
CANCEL_TIMING_PERIOD_END: CancelTiming
CANCEL_TIMING_IMMEDIATELY: CancelTiming
INVOICE_STATUS_UNSPECIFIED: InvoiceStatus
INVOICE_STATUS_DRAFT: InvoiceStatus
INVOICE_STATUS_FINALIZED: InvoiceStatus
INVOICE_STATUS_VOID: InvoiceStatus
PAYMENT_STATUS_UNSPECIFIED: PaymentStatus
PAYMENT_STATUS_UNPAID: PaymentStatus
PAYMENT_STATUS_PARTIALLY_PAID: PaymentStatus
PAYMENT_STATUS_PAID: PaymentStatus
LINE_KIND_UNSPECIFIED: LineKind
LINE_KIND_BASE_FEE: LineKind
LINE_KIND_USAGE: LineKind
LINE_KIND_LATE_USAGE_ADJUSTMENT: LineKind
CREDIT_SETTLEMENT_UNSPECIFIED: CreditSettlement
CREDIT_SETTLEMENT_WALLET: CreditSettlement
CREDIT_SETTLEMENT_REFUND: CreditSettlement
REFUND_STATE_UNSPECIFIED: RefundState
REFUND_STATE_PENDING: RefundState
REFUND_STATE_PAID: RefundState
REFUND_STATE_FAILED: RefundState
EXPLAIN_VIEW_UNSPECIFIED: ExplainView
EXPLAIN_VIEW_GROUPS: ExplainView
EXPLAIN_VIEW_EVENTS: ExplainView
EARNINGS_KIND_UNSPECIFIED: EarningsKind
EARNINGS_KIND_BUILDER_MARGIN: EarningsKind
EARNINGS_KIND_PLATFORM_FEE: EarningsKind
EARNINGS_KIND_PROVIDER_COST: EarningsKind
EARNINGS_REASON_UNSPECIFIED: EarningsReason
EARNINGS_REASON_PAYMENT: EarningsReason
EARNINGS_REASON_CREDIT_NOTE: EarningsReason
EARNINGS_REASON_VOID: EarningsReason

class Customer(_message.Message):
    __slots__ = ("id", "builder_id", "app_id", "currency_code", "display_name", "billing_email", "create_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    BUILDER_ID_FIELD_NUMBER: _ClassVar[int]
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_CODE_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    BILLING_EMAIL_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    builder_id: str
    app_id: str
    currency_code: str
    display_name: str
    billing_email: str
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., builder_id: _Optional[str] = ..., app_id: _Optional[str] = ..., currency_code: _Optional[str] = ..., display_name: _Optional[str] = ..., billing_email: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateCustomerRequest(_message.Message):
    __slots__ = ("request_id", "customer")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    customer: Customer
    def __init__(self, request_id: _Optional[str] = ..., customer: _Optional[_Union[Customer, _Mapping]] = ...) -> None: ...

class CreateCustomerResponse(_message.Message):
    __slots__ = ("customer",)
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    customer: Customer
    def __init__(self, customer: _Optional[_Union[Customer, _Mapping]] = ...) -> None: ...

class GetCustomerRequest(_message.Message):
    __slots__ = ("builder_id", "customer_id")
    BUILDER_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    builder_id: str
    customer_id: str
    def __init__(self, builder_id: _Optional[str] = ..., customer_id: _Optional[str] = ...) -> None: ...

class GetCustomerResponse(_message.Message):
    __slots__ = ("customer",)
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    customer: Customer
    def __init__(self, customer: _Optional[_Union[Customer, _Mapping]] = ...) -> None: ...

class ListCustomersRequest(_message.Message):
    __slots__ = ("builder_id", "page_size", "page_token")
    BUILDER_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    builder_id: str
    page_size: int
    page_token: str
    def __init__(self, builder_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListCustomersResponse(_message.Message):
    __slots__ = ("customers", "next_page_token")
    CUSTOMERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    customers: _containers.RepeatedCompositeFieldContainer[Customer]
    next_page_token: str
    def __init__(self, customers: _Optional[_Iterable[_Union[Customer, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class Tier(_message.Message):
    __slots__ = ("up_to", "unit_price", "flat_price")
    UP_TO_FIELD_NUMBER: _ClassVar[int]
    UNIT_PRICE_FIELD_NUMBER: _ClassVar[int]
    FLAT_PRICE_FIELD_NUMBER: _ClassVar[int]
    up_to: str
    unit_price: str
    flat_price: str
    def __init__(self, up_to: _Optional[str] = ..., unit_price: _Optional[str] = ..., flat_price: _Optional[str] = ...) -> None: ...

class PerUnitPrice(_message.Message):
    __slots__ = ("unit_price",)
    UNIT_PRICE_FIELD_NUMBER: _ClassVar[int]
    unit_price: str
    def __init__(self, unit_price: _Optional[str] = ...) -> None: ...

class GraduatedPrice(_message.Message):
    __slots__ = ("tiers",)
    TIERS_FIELD_NUMBER: _ClassVar[int]
    tiers: _containers.RepeatedCompositeFieldContainer[Tier]
    def __init__(self, tiers: _Optional[_Iterable[_Union[Tier, _Mapping]]] = ...) -> None: ...

class VolumePrice(_message.Message):
    __slots__ = ("tiers",)
    TIERS_FIELD_NUMBER: _ClassVar[int]
    tiers: _containers.RepeatedCompositeFieldContainer[Tier]
    def __init__(self, tiers: _Optional[_Iterable[_Union[Tier, _Mapping]]] = ...) -> None: ...

class PackagePrice(_message.Message):
    __slots__ = ("package_size", "package_price")
    PACKAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PACKAGE_PRICE_FIELD_NUMBER: _ClassVar[int]
    package_size: str
    package_price: str
    def __init__(self, package_size: _Optional[str] = ..., package_price: _Optional[str] = ...) -> None: ...

class BucketPrice(_message.Message):
    __slots__ = ("bucket", "unit_price")
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    UNIT_PRICE_FIELD_NUMBER: _ClassVar[int]
    bucket: str
    unit_price: str
    def __init__(self, bucket: _Optional[str] = ..., unit_price: _Optional[str] = ...) -> None: ...

class SizeBucketPrice(_message.Message):
    __slots__ = ("buckets",)
    BUCKETS_FIELD_NUMBER: _ClassVar[int]
    buckets: _containers.RepeatedCompositeFieldContainer[BucketPrice]
    def __init__(self, buckets: _Optional[_Iterable[_Union[BucketPrice, _Mapping]]] = ...) -> None: ...

class CostPlusPrice(_message.Message):
    __slots__ = ("markup_percent", "fixed_per_request")
    MARKUP_PERCENT_FIELD_NUMBER: _ClassVar[int]
    FIXED_PER_REQUEST_FIELD_NUMBER: _ClassVar[int]
    markup_percent: str
    fixed_per_request: str
    def __init__(self, markup_percent: _Optional[str] = ..., fixed_per_request: _Optional[str] = ...) -> None: ...

class Charge(_message.Message):
    __slots__ = ("key", "meter_key", "display_name", "per_unit", "graduated", "volume", "package", "size_buckets", "cost_plus", "included_quantity", "minimum_amount", "maximum_amount", "provider_cost_meter_key")
    KEY_FIELD_NUMBER: _ClassVar[int]
    METER_KEY_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    PER_UNIT_FIELD_NUMBER: _ClassVar[int]
    GRADUATED_FIELD_NUMBER: _ClassVar[int]
    VOLUME_FIELD_NUMBER: _ClassVar[int]
    PACKAGE_FIELD_NUMBER: _ClassVar[int]
    SIZE_BUCKETS_FIELD_NUMBER: _ClassVar[int]
    COST_PLUS_FIELD_NUMBER: _ClassVar[int]
    INCLUDED_QUANTITY_FIELD_NUMBER: _ClassVar[int]
    MINIMUM_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    MAXIMUM_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_COST_METER_KEY_FIELD_NUMBER: _ClassVar[int]
    key: str
    meter_key: str
    display_name: str
    per_unit: PerUnitPrice
    graduated: GraduatedPrice
    volume: VolumePrice
    package: PackagePrice
    size_buckets: SizeBucketPrice
    cost_plus: CostPlusPrice
    included_quantity: str
    minimum_amount: str
    maximum_amount: str
    provider_cost_meter_key: str
    def __init__(self, key: _Optional[str] = ..., meter_key: _Optional[str] = ..., display_name: _Optional[str] = ..., per_unit: _Optional[_Union[PerUnitPrice, _Mapping]] = ..., graduated: _Optional[_Union[GraduatedPrice, _Mapping]] = ..., volume: _Optional[_Union[VolumePrice, _Mapping]] = ..., package: _Optional[_Union[PackagePrice, _Mapping]] = ..., size_buckets: _Optional[_Union[SizeBucketPrice, _Mapping]] = ..., cost_plus: _Optional[_Union[CostPlusPrice, _Mapping]] = ..., included_quantity: _Optional[str] = ..., minimum_amount: _Optional[str] = ..., maximum_amount: _Optional[str] = ..., provider_cost_meter_key: _Optional[str] = ...) -> None: ...

class PlanVersion(_message.Message):
    __slots__ = ("plan_id", "version", "billing_interval", "base_fee", "charges", "publish_time")
    PLAN_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    BILLING_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    BASE_FEE_FIELD_NUMBER: _ClassVar[int]
    CHARGES_FIELD_NUMBER: _ClassVar[int]
    PUBLISH_TIME_FIELD_NUMBER: _ClassVar[int]
    plan_id: str
    version: int
    billing_interval: BillingInterval
    base_fee: _money_pb2.Money
    charges: _containers.RepeatedCompositeFieldContainer[Charge]
    publish_time: _timestamp_pb2.Timestamp
    def __init__(self, plan_id: _Optional[str] = ..., version: _Optional[int] = ..., billing_interval: _Optional[_Union[BillingInterval, str]] = ..., base_fee: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., charges: _Optional[_Iterable[_Union[Charge, _Mapping]]] = ..., publish_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Plan(_message.Message):
    __slots__ = ("id", "builder_id", "key", "display_name", "currency_code", "versions", "create_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    BUILDER_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_CODE_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    builder_id: str
    key: str
    display_name: str
    currency_code: str
    versions: _containers.RepeatedCompositeFieldContainer[PlanVersion]
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., builder_id: _Optional[str] = ..., key: _Optional[str] = ..., display_name: _Optional[str] = ..., currency_code: _Optional[str] = ..., versions: _Optional[_Iterable[_Union[PlanVersion, _Mapping]]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreatePlanRequest(_message.Message):
    __slots__ = ("request_id", "plan")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    plan: Plan
    def __init__(self, request_id: _Optional[str] = ..., plan: _Optional[_Union[Plan, _Mapping]] = ...) -> None: ...

class CreatePlanResponse(_message.Message):
    __slots__ = ("plan",)
    PLAN_FIELD_NUMBER: _ClassVar[int]
    plan: Plan
    def __init__(self, plan: _Optional[_Union[Plan, _Mapping]] = ...) -> None: ...

class GetPlanRequest(_message.Message):
    __slots__ = ("builder_id", "plan_id")
    BUILDER_ID_FIELD_NUMBER: _ClassVar[int]
    PLAN_ID_FIELD_NUMBER: _ClassVar[int]
    builder_id: str
    plan_id: str
    def __init__(self, builder_id: _Optional[str] = ..., plan_id: _Optional[str] = ...) -> None: ...

class GetPlanResponse(_message.Message):
    __slots__ = ("plan",)
    PLAN_FIELD_NUMBER: _ClassVar[int]
    plan: Plan
    def __init__(self, plan: _Optional[_Union[Plan, _Mapping]] = ...) -> None: ...

class ListPlansRequest(_message.Message):
    __slots__ = ("builder_id", "page_size", "page_token")
    BUILDER_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    builder_id: str
    page_size: int
    page_token: str
    def __init__(self, builder_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListPlansResponse(_message.Message):
    __slots__ = ("plans", "next_page_token")
    PLANS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    plans: _containers.RepeatedCompositeFieldContainer[Plan]
    next_page_token: str
    def __init__(self, plans: _Optional[_Iterable[_Union[Plan, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class PublishPlanVersionRequest(_message.Message):
    __slots__ = ("request_id", "builder_id", "version")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    BUILDER_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    builder_id: str
    version: PlanVersion
    def __init__(self, request_id: _Optional[str] = ..., builder_id: _Optional[str] = ..., version: _Optional[_Union[PlanVersion, _Mapping]] = ...) -> None: ...

class PublishPlanVersionResponse(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: PlanVersion
    def __init__(self, version: _Optional[_Union[PlanVersion, _Mapping]] = ...) -> None: ...

class ApplyPlanYamlRequest(_message.Message):
    __slots__ = ("request_id", "builder_id", "yaml", "plan_key", "display_name")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    BUILDER_ID_FIELD_NUMBER: _ClassVar[int]
    YAML_FIELD_NUMBER: _ClassVar[int]
    PLAN_KEY_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    builder_id: str
    yaml: str
    plan_key: str
    display_name: str
    def __init__(self, request_id: _Optional[str] = ..., builder_id: _Optional[str] = ..., yaml: _Optional[str] = ..., plan_key: _Optional[str] = ..., display_name: _Optional[str] = ...) -> None: ...

class ApplyPlanYamlResponse(_message.Message):
    __slots__ = ("plan", "version", "published")
    PLAN_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PUBLISHED_FIELD_NUMBER: _ClassVar[int]
    plan: Plan
    version: PlanVersion
    published: bool
    def __init__(self, plan: _Optional[_Union[Plan, _Mapping]] = ..., version: _Optional[_Union[PlanVersion, _Mapping]] = ..., published: _Optional[bool] = ...) -> None: ...

class Subscription(_message.Message):
    __slots__ = ("id", "builder_id", "customer_id", "plan_id", "plan_version", "start_time", "next_plan_id", "next_plan_version", "change_time", "end_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    BUILDER_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    PLAN_ID_FIELD_NUMBER: _ClassVar[int]
    PLAN_VERSION_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    NEXT_PLAN_ID_FIELD_NUMBER: _ClassVar[int]
    NEXT_PLAN_VERSION_FIELD_NUMBER: _ClassVar[int]
    CHANGE_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    builder_id: str
    customer_id: str
    plan_id: str
    plan_version: int
    start_time: _timestamp_pb2.Timestamp
    next_plan_id: str
    next_plan_version: int
    change_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., builder_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., plan_id: _Optional[str] = ..., plan_version: _Optional[int] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., next_plan_id: _Optional[str] = ..., next_plan_version: _Optional[int] = ..., change_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SubscribeRequest(_message.Message):
    __slots__ = ("request_id", "builder_id", "customer_id", "plan_id", "plan_version", "start_time")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    BUILDER_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    PLAN_ID_FIELD_NUMBER: _ClassVar[int]
    PLAN_VERSION_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    builder_id: str
    customer_id: str
    plan_id: str
    plan_version: int
    start_time: _timestamp_pb2.Timestamp
    def __init__(self, request_id: _Optional[str] = ..., builder_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., plan_id: _Optional[str] = ..., plan_version: _Optional[int] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SubscribeResponse(_message.Message):
    __slots__ = ("subscription",)
    SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    subscription: Subscription
    def __init__(self, subscription: _Optional[_Union[Subscription, _Mapping]] = ...) -> None: ...

class ChangePlanRequest(_message.Message):
    __slots__ = ("request_id", "builder_id", "customer_id", "plan_id", "plan_version", "timing")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    BUILDER_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    PLAN_ID_FIELD_NUMBER: _ClassVar[int]
    PLAN_VERSION_FIELD_NUMBER: _ClassVar[int]
    TIMING_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    builder_id: str
    customer_id: str
    plan_id: str
    plan_version: int
    timing: PlanChangeTiming
    def __init__(self, request_id: _Optional[str] = ..., builder_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., plan_id: _Optional[str] = ..., plan_version: _Optional[int] = ..., timing: _Optional[_Union[PlanChangeTiming, str]] = ...) -> None: ...

class ChangePlanResponse(_message.Message):
    __slots__ = ("subscription",)
    SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    subscription: Subscription
    def __init__(self, subscription: _Optional[_Union[Subscription, _Mapping]] = ...) -> None: ...

class CancelSubscriptionRequest(_message.Message):
    __slots__ = ("request_id", "builder_id", "customer_id", "timing")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    BUILDER_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    TIMING_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    builder_id: str
    customer_id: str
    timing: CancelTiming
    def __init__(self, request_id: _Optional[str] = ..., builder_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., timing: _Optional[_Union[CancelTiming, str]] = ...) -> None: ...

class CancelSubscriptionResponse(_message.Message):
    __slots__ = ("subscription",)
    SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    subscription: Subscription
    def __init__(self, subscription: _Optional[_Union[Subscription, _Mapping]] = ...) -> None: ...

class PlatformFee(_message.Message):
    __slots__ = ("builder_id", "percent_of_line", "percent_of_margin", "update_time")
    BUILDER_ID_FIELD_NUMBER: _ClassVar[int]
    PERCENT_OF_LINE_FIELD_NUMBER: _ClassVar[int]
    PERCENT_OF_MARGIN_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    builder_id: str
    percent_of_line: str
    percent_of_margin: str
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, builder_id: _Optional[str] = ..., percent_of_line: _Optional[str] = ..., percent_of_margin: _Optional[str] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SetPlatformFeeRequest(_message.Message):
    __slots__ = ("request_id", "platform_fee")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FEE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    platform_fee: PlatformFee
    def __init__(self, request_id: _Optional[str] = ..., platform_fee: _Optional[_Union[PlatformFee, _Mapping]] = ...) -> None: ...

class SetPlatformFeeResponse(_message.Message):
    __slots__ = ("platform_fee",)
    PLATFORM_FEE_FIELD_NUMBER: _ClassVar[int]
    platform_fee: PlatformFee
    def __init__(self, platform_fee: _Optional[_Union[PlatformFee, _Mapping]] = ...) -> None: ...

class Split(_message.Message):
    __slots__ = ("provider_cost", "platform_fee", "builder_margin")
    PROVIDER_COST_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FEE_FIELD_NUMBER: _ClassVar[int]
    BUILDER_MARGIN_FIELD_NUMBER: _ClassVar[int]
    provider_cost: _money_pb2.Money
    platform_fee: _money_pb2.Money
    builder_margin: _money_pb2.Money
    def __init__(self, provider_cost: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., platform_fee: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., builder_margin: _Optional[_Union[_money_pb2.Money, _Mapping]] = ...) -> None: ...

class TierAmount(_message.Message):
    __slots__ = ("label", "quantity", "unit_price", "flat_price", "amount")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    UNIT_PRICE_FIELD_NUMBER: _ClassVar[int]
    FLAT_PRICE_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    label: str
    quantity: str
    unit_price: str
    flat_price: str
    amount: str
    def __init__(self, label: _Optional[str] = ..., quantity: _Optional[str] = ..., unit_price: _Optional[str] = ..., flat_price: _Optional[str] = ..., amount: _Optional[str] = ...) -> None: ...

class TagUsage(_message.Message):
    __slots__ = ("tag", "value", "quantity")
    TAG_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    tag: str
    value: str
    quantity: str
    def __init__(self, tag: _Optional[str] = ..., value: _Optional[str] = ..., quantity: _Optional[str] = ...) -> None: ...

class InvoiceLine(_message.Message):
    __slots__ = ("position", "kind", "charge_key", "meter_key", "display_name", "quantity", "included_quantity", "unit_price", "tiers", "amount", "split", "usage_by_tag", "adjusted_period_start_time")
    POSITION_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    CHARGE_KEY_FIELD_NUMBER: _ClassVar[int]
    METER_KEY_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    INCLUDED_QUANTITY_FIELD_NUMBER: _ClassVar[int]
    UNIT_PRICE_FIELD_NUMBER: _ClassVar[int]
    TIERS_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    USAGE_BY_TAG_FIELD_NUMBER: _ClassVar[int]
    ADJUSTED_PERIOD_START_TIME_FIELD_NUMBER: _ClassVar[int]
    position: int
    kind: LineKind
    charge_key: str
    meter_key: str
    display_name: str
    quantity: str
    included_quantity: str
    unit_price: str
    tiers: _containers.RepeatedCompositeFieldContainer[TierAmount]
    amount: _money_pb2.Money
    split: Split
    usage_by_tag: _containers.RepeatedCompositeFieldContainer[TagUsage]
    adjusted_period_start_time: _timestamp_pb2.Timestamp
    def __init__(self, position: _Optional[int] = ..., kind: _Optional[_Union[LineKind, str]] = ..., charge_key: _Optional[str] = ..., meter_key: _Optional[str] = ..., display_name: _Optional[str] = ..., quantity: _Optional[str] = ..., included_quantity: _Optional[str] = ..., unit_price: _Optional[str] = ..., tiers: _Optional[_Iterable[_Union[TierAmount, _Mapping]]] = ..., amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., split: _Optional[_Union[Split, _Mapping]] = ..., usage_by_tag: _Optional[_Iterable[_Union[TagUsage, _Mapping]]] = ..., adjusted_period_start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Invoice(_message.Message):
    __slots__ = ("id", "builder_id", "customer_id", "app_id", "number", "status", "currency_code", "period_start_time", "period_end_time", "usage_cutoff_time", "plan_id", "plan_version", "lines", "total", "wallet_applied", "credited", "amount_due", "amount_paid", "payment_status", "finalize_time", "void_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    BUILDER_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_CODE_FIELD_NUMBER: _ClassVar[int]
    PERIOD_START_TIME_FIELD_NUMBER: _ClassVar[int]
    PERIOD_END_TIME_FIELD_NUMBER: _ClassVar[int]
    USAGE_CUTOFF_TIME_FIELD_NUMBER: _ClassVar[int]
    PLAN_ID_FIELD_NUMBER: _ClassVar[int]
    PLAN_VERSION_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    WALLET_APPLIED_FIELD_NUMBER: _ClassVar[int]
    CREDITED_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_DUE_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_PAID_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_STATUS_FIELD_NUMBER: _ClassVar[int]
    FINALIZE_TIME_FIELD_NUMBER: _ClassVar[int]
    VOID_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    builder_id: str
    customer_id: str
    app_id: str
    number: int
    status: InvoiceStatus
    currency_code: str
    period_start_time: _timestamp_pb2.Timestamp
    period_end_time: _timestamp_pb2.Timestamp
    usage_cutoff_time: _timestamp_pb2.Timestamp
    plan_id: str
    plan_version: int
    lines: _containers.RepeatedCompositeFieldContainer[InvoiceLine]
    total: _money_pb2.Money
    wallet_applied: _money_pb2.Money
    credited: _money_pb2.Money
    amount_due: _money_pb2.Money
    amount_paid: _money_pb2.Money
    payment_status: PaymentStatus
    finalize_time: _timestamp_pb2.Timestamp
    void_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., builder_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., app_id: _Optional[str] = ..., number: _Optional[int] = ..., status: _Optional[_Union[InvoiceStatus, str]] = ..., currency_code: _Optional[str] = ..., period_start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., period_end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., usage_cutoff_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., plan_id: _Optional[str] = ..., plan_version: _Optional[int] = ..., lines: _Optional[_Iterable[_Union[InvoiceLine, _Mapping]]] = ..., total: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., wallet_applied: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., credited: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., amount_due: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., amount_paid: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., payment_status: _Optional[_Union[PaymentStatus, str]] = ..., finalize_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., void_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class PreviewInvoiceRequest(_message.Message):
    __slots__ = ("builder_id", "customer_id", "as_of_time")
    BUILDER_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    AS_OF_TIME_FIELD_NUMBER: _ClassVar[int]
    builder_id: str
    customer_id: str
    as_of_time: _timestamp_pb2.Timestamp
    def __init__(self, builder_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., as_of_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class PreviewInvoiceResponse(_message.Message):
    __slots__ = ("invoice",)
    INVOICE_FIELD_NUMBER: _ClassVar[int]
    invoice: Invoice
    def __init__(self, invoice: _Optional[_Union[Invoice, _Mapping]] = ...) -> None: ...

class ClosePeriodRequest(_message.Message):
    __slots__ = ("request_id", "builder_id", "period_end_time")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    BUILDER_ID_FIELD_NUMBER: _ClassVar[int]
    PERIOD_END_TIME_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    builder_id: str
    period_end_time: _timestamp_pb2.Timestamp
    def __init__(self, request_id: _Optional[str] = ..., builder_id: _Optional[str] = ..., period_end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ClosePeriodResponse(_message.Message):
    __slots__ = ("invoice_count", "finalized_count", "usage_cutoff_time", "totals")
    INVOICE_COUNT_FIELD_NUMBER: _ClassVar[int]
    FINALIZED_COUNT_FIELD_NUMBER: _ClassVar[int]
    USAGE_CUTOFF_TIME_FIELD_NUMBER: _ClassVar[int]
    TOTALS_FIELD_NUMBER: _ClassVar[int]
    invoice_count: int
    finalized_count: int
    usage_cutoff_time: _timestamp_pb2.Timestamp
    totals: _containers.RepeatedCompositeFieldContainer[_money_pb2.Money]
    def __init__(self, invoice_count: _Optional[int] = ..., finalized_count: _Optional[int] = ..., usage_cutoff_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., totals: _Optional[_Iterable[_Union[_money_pb2.Money, _Mapping]]] = ...) -> None: ...

class GetInvoiceRequest(_message.Message):
    __slots__ = ("builder_id", "invoice_id")
    BUILDER_ID_FIELD_NUMBER: _ClassVar[int]
    INVOICE_ID_FIELD_NUMBER: _ClassVar[int]
    builder_id: str
    invoice_id: str
    def __init__(self, builder_id: _Optional[str] = ..., invoice_id: _Optional[str] = ...) -> None: ...

class GetInvoiceResponse(_message.Message):
    __slots__ = ("invoice",)
    INVOICE_FIELD_NUMBER: _ClassVar[int]
    invoice: Invoice
    def __init__(self, invoice: _Optional[_Union[Invoice, _Mapping]] = ...) -> None: ...

class ListInvoicesRequest(_message.Message):
    __slots__ = ("builder_id", "customer_id", "status", "page_size", "page_token")
    BUILDER_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    builder_id: str
    customer_id: str
    status: InvoiceStatus
    page_size: int
    page_token: str
    def __init__(self, builder_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., status: _Optional[_Union[InvoiceStatus, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListInvoicesResponse(_message.Message):
    __slots__ = ("invoices", "next_page_token")
    INVOICES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    invoices: _containers.RepeatedCompositeFieldContainer[Invoice]
    next_page_token: str
    def __init__(self, invoices: _Optional[_Iterable[_Union[Invoice, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class VoidInvoiceRequest(_message.Message):
    __slots__ = ("request_id", "builder_id", "invoice_id", "reason")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    BUILDER_ID_FIELD_NUMBER: _ClassVar[int]
    INVOICE_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    builder_id: str
    invoice_id: str
    reason: str
    def __init__(self, request_id: _Optional[str] = ..., builder_id: _Optional[str] = ..., invoice_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class VoidInvoiceResponse(_message.Message):
    __slots__ = ("invoice",)
    INVOICE_FIELD_NUMBER: _ClassVar[int]
    invoice: Invoice
    def __init__(self, invoice: _Optional[_Union[Invoice, _Mapping]] = ...) -> None: ...

class CreditNote(_message.Message):
    __slots__ = ("id", "invoice_id", "amount", "reason", "create_time", "settlement", "due_reduced", "wallet_credited", "refunded", "refund_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    INVOICE_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    SETTLEMENT_FIELD_NUMBER: _ClassVar[int]
    DUE_REDUCED_FIELD_NUMBER: _ClassVar[int]
    WALLET_CREDITED_FIELD_NUMBER: _ClassVar[int]
    REFUNDED_FIELD_NUMBER: _ClassVar[int]
    REFUND_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    invoice_id: str
    amount: _money_pb2.Money
    reason: str
    create_time: _timestamp_pb2.Timestamp
    settlement: CreditSettlement
    due_reduced: _money_pb2.Money
    wallet_credited: _money_pb2.Money
    refunded: _money_pb2.Money
    refund_id: str
    def __init__(self, id: _Optional[str] = ..., invoice_id: _Optional[str] = ..., amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., reason: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., settlement: _Optional[_Union[CreditSettlement, str]] = ..., due_reduced: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., wallet_credited: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., refunded: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., refund_id: _Optional[str] = ...) -> None: ...

class IssueCreditNoteRequest(_message.Message):
    __slots__ = ("request_id", "builder_id", "invoice_id", "amount", "reason", "settlement")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    BUILDER_ID_FIELD_NUMBER: _ClassVar[int]
    INVOICE_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SETTLEMENT_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    builder_id: str
    invoice_id: str
    amount: _money_pb2.Money
    reason: str
    settlement: CreditSettlement
    def __init__(self, request_id: _Optional[str] = ..., builder_id: _Optional[str] = ..., invoice_id: _Optional[str] = ..., amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., reason: _Optional[str] = ..., settlement: _Optional[_Union[CreditSettlement, str]] = ...) -> None: ...

class IssueCreditNoteResponse(_message.Message):
    __slots__ = ("credit_note", "invoice", "refund")
    CREDIT_NOTE_FIELD_NUMBER: _ClassVar[int]
    INVOICE_FIELD_NUMBER: _ClassVar[int]
    REFUND_FIELD_NUMBER: _ClassVar[int]
    credit_note: CreditNote
    invoice: Invoice
    refund: Refund
    def __init__(self, credit_note: _Optional[_Union[CreditNote, _Mapping]] = ..., invoice: _Optional[_Union[Invoice, _Mapping]] = ..., refund: _Optional[_Union[Refund, _Mapping]] = ...) -> None: ...

class Refund(_message.Message):
    __slots__ = ("id", "builder_id", "customer_id", "invoice_id", "credit_note_id", "amount", "state", "external_reference", "failure_reason", "create_time", "update_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    BUILDER_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    INVOICE_ID_FIELD_NUMBER: _ClassVar[int]
    CREDIT_NOTE_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    FAILURE_REASON_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    builder_id: str
    customer_id: str
    invoice_id: str
    credit_note_id: str
    amount: _money_pb2.Money
    state: RefundState
    external_reference: str
    failure_reason: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., builder_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., invoice_id: _Optional[str] = ..., credit_note_id: _Optional[str] = ..., amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., state: _Optional[_Union[RefundState, str]] = ..., external_reference: _Optional[str] = ..., failure_reason: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListRefundsRequest(_message.Message):
    __slots__ = ("builder_id", "customer_id", "state", "page_size", "page_token")
    BUILDER_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    builder_id: str
    customer_id: str
    state: RefundState
    page_size: int
    page_token: str
    def __init__(self, builder_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., state: _Optional[_Union[RefundState, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListRefundsResponse(_message.Message):
    __slots__ = ("refunds", "next_page_token")
    REFUNDS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    refunds: _containers.RepeatedCompositeFieldContainer[Refund]
    next_page_token: str
    def __init__(self, refunds: _Optional[_Iterable[_Union[Refund, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class MarkRefundRequest(_message.Message):
    __slots__ = ("request_id", "builder_id", "refund_id", "state", "external_reference", "failure_reason")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    BUILDER_ID_FIELD_NUMBER: _ClassVar[int]
    REFUND_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    FAILURE_REASON_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    builder_id: str
    refund_id: str
    state: RefundState
    external_reference: str
    failure_reason: str
    def __init__(self, request_id: _Optional[str] = ..., builder_id: _Optional[str] = ..., refund_id: _Optional[str] = ..., state: _Optional[_Union[RefundState, str]] = ..., external_reference: _Optional[str] = ..., failure_reason: _Optional[str] = ...) -> None: ...

class MarkRefundResponse(_message.Message):
    __slots__ = ("refund",)
    REFUND_FIELD_NUMBER: _ClassVar[int]
    refund: Refund
    def __init__(self, refund: _Optional[_Union[Refund, _Mapping]] = ...) -> None: ...

class LineEventGroup(_message.Message):
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

class LineEvent(_message.Message):
    __slots__ = ("event_id", "type", "occurred_time", "ingest_time", "run_id", "status", "tags", "quantities", "contributed_quantity")
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
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_TIME_FIELD_NUMBER: _ClassVar[int]
    INGEST_TIME_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    QUANTITIES_FIELD_NUMBER: _ClassVar[int]
    CONTRIBUTED_QUANTITY_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    type: str
    occurred_time: _timestamp_pb2.Timestamp
    ingest_time: _timestamp_pb2.Timestamp
    run_id: str
    status: str
    tags: _containers.ScalarMap[str, str]
    quantities: _containers.ScalarMap[str, str]
    contributed_quantity: str
    def __init__(self, event_id: _Optional[str] = ..., type: _Optional[str] = ..., occurred_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ingest_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., run_id: _Optional[str] = ..., status: _Optional[str] = ..., tags: _Optional[_Mapping[str, str]] = ..., quantities: _Optional[_Mapping[str, str]] = ..., contributed_quantity: _Optional[str] = ...) -> None: ...

class ExplainInvoiceLineRequest(_message.Message):
    __slots__ = ("builder_id", "invoice_id", "position", "view", "group_by", "page_size", "page_token")
    BUILDER_ID_FIELD_NUMBER: _ClassVar[int]
    INVOICE_ID_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    VIEW_FIELD_NUMBER: _ClassVar[int]
    GROUP_BY_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    builder_id: str
    invoice_id: str
    position: int
    view: ExplainView
    group_by: _containers.RepeatedScalarFieldContainer[str]
    page_size: int
    page_token: str
    def __init__(self, builder_id: _Optional[str] = ..., invoice_id: _Optional[str] = ..., position: _Optional[int] = ..., view: _Optional[_Union[ExplainView, str]] = ..., group_by: _Optional[_Iterable[str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ExplainInvoiceLineResponse(_message.Message):
    __slots__ = ("line", "total_quantity", "event_count", "groups", "events", "next_page_token")
    LINE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_QUANTITY_FIELD_NUMBER: _ClassVar[int]
    EVENT_COUNT_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    line: InvoiceLine
    total_quantity: str
    event_count: int
    groups: _containers.RepeatedCompositeFieldContainer[LineEventGroup]
    events: _containers.RepeatedCompositeFieldContainer[LineEvent]
    next_page_token: str
    def __init__(self, line: _Optional[_Union[InvoiceLine, _Mapping]] = ..., total_quantity: _Optional[str] = ..., event_count: _Optional[int] = ..., groups: _Optional[_Iterable[_Union[LineEventGroup, _Mapping]]] = ..., events: _Optional[_Iterable[_Union[LineEvent, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ExportInvoiceLineRequest(_message.Message):
    __slots__ = ("builder_id", "invoice_id", "position")
    BUILDER_ID_FIELD_NUMBER: _ClassVar[int]
    INVOICE_ID_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    builder_id: str
    invoice_id: str
    position: int
    def __init__(self, builder_id: _Optional[str] = ..., invoice_id: _Optional[str] = ..., position: _Optional[int] = ...) -> None: ...

class ExportInvoiceLineResponse(_message.Message):
    __slots__ = ("csv", "event_count")
    CSV_FIELD_NUMBER: _ClassVar[int]
    EVENT_COUNT_FIELD_NUMBER: _ClassVar[int]
    csv: str
    event_count: int
    def __init__(self, csv: _Optional[str] = ..., event_count: _Optional[int] = ...) -> None: ...

class Payment(_message.Message):
    __slots__ = ("id", "invoice_id", "amount", "external_reference", "create_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    INVOICE_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    invoice_id: str
    amount: _money_pb2.Money
    external_reference: str
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., invoice_id: _Optional[str] = ..., amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., external_reference: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RecordPaymentRequest(_message.Message):
    __slots__ = ("request_id", "builder_id", "invoice_id", "amount", "external_reference")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    BUILDER_ID_FIELD_NUMBER: _ClassVar[int]
    INVOICE_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    builder_id: str
    invoice_id: str
    amount: _money_pb2.Money
    external_reference: str
    def __init__(self, request_id: _Optional[str] = ..., builder_id: _Optional[str] = ..., invoice_id: _Optional[str] = ..., amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., external_reference: _Optional[str] = ...) -> None: ...

class RecordPaymentResponse(_message.Message):
    __slots__ = ("payment", "invoice")
    PAYMENT_FIELD_NUMBER: _ClassVar[int]
    INVOICE_FIELD_NUMBER: _ClassVar[int]
    payment: Payment
    invoice: Invoice
    def __init__(self, payment: _Optional[_Union[Payment, _Mapping]] = ..., invoice: _Optional[_Union[Invoice, _Mapping]] = ...) -> None: ...

class WalletTransaction(_message.Message):
    __slots__ = ("id", "amount", "invoice_id", "create_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    INVOICE_ID_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    amount: _money_pb2.Money
    invoice_id: str
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., invoice_id: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Wallet(_message.Message):
    __slots__ = ("builder_id", "customer_id", "balance", "transactions")
    BUILDER_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    TRANSACTIONS_FIELD_NUMBER: _ClassVar[int]
    builder_id: str
    customer_id: str
    balance: _money_pb2.Money
    transactions: _containers.RepeatedCompositeFieldContainer[WalletTransaction]
    def __init__(self, builder_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., balance: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., transactions: _Optional[_Iterable[_Union[WalletTransaction, _Mapping]]] = ...) -> None: ...

class TopUpWalletRequest(_message.Message):
    __slots__ = ("request_id", "builder_id", "customer_id", "amount")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    BUILDER_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    builder_id: str
    customer_id: str
    amount: _money_pb2.Money
    def __init__(self, request_id: _Optional[str] = ..., builder_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ...) -> None: ...

class TopUpWalletResponse(_message.Message):
    __slots__ = ("wallet",)
    WALLET_FIELD_NUMBER: _ClassVar[int]
    wallet: Wallet
    def __init__(self, wallet: _Optional[_Union[Wallet, _Mapping]] = ...) -> None: ...

class GetWalletRequest(_message.Message):
    __slots__ = ("builder_id", "customer_id")
    BUILDER_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    builder_id: str
    customer_id: str
    def __init__(self, builder_id: _Optional[str] = ..., customer_id: _Optional[str] = ...) -> None: ...

class GetWalletResponse(_message.Message):
    __slots__ = ("wallet",)
    WALLET_FIELD_NUMBER: _ClassVar[int]
    wallet: Wallet
    def __init__(self, wallet: _Optional[_Union[Wallet, _Mapping]] = ...) -> None: ...

class EarningsEntry(_message.Message):
    __slots__ = ("sequence", "builder_id", "app_id", "customer_id", "invoice_id", "line_position", "workflow", "meter_key", "kind", "reason", "amount", "source_id", "create_time")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    BUILDER_ID_FIELD_NUMBER: _ClassVar[int]
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    INVOICE_ID_FIELD_NUMBER: _ClassVar[int]
    LINE_POSITION_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_FIELD_NUMBER: _ClassVar[int]
    METER_KEY_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_ID_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    builder_id: str
    app_id: str
    customer_id: str
    invoice_id: str
    line_position: int
    workflow: str
    meter_key: str
    kind: EarningsKind
    reason: EarningsReason
    amount: _money_pb2.Money
    source_id: str
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, sequence: _Optional[int] = ..., builder_id: _Optional[str] = ..., app_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., invoice_id: _Optional[str] = ..., line_position: _Optional[int] = ..., workflow: _Optional[str] = ..., meter_key: _Optional[str] = ..., kind: _Optional[_Union[EarningsKind, str]] = ..., reason: _Optional[_Union[EarningsReason, str]] = ..., amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., source_id: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListEarningsRequest(_message.Message):
    __slots__ = ("builder_id", "page_size", "page_token")
    BUILDER_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    builder_id: str
    page_size: int
    page_token: str
    def __init__(self, builder_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListEarningsResponse(_message.Message):
    __slots__ = ("entries", "next_page_token")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[EarningsEntry]
    next_page_token: str
    def __init__(self, entries: _Optional[_Iterable[_Union[EarningsEntry, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DraftPlan(_message.Message):
    __slots__ = ("label", "yaml", "version")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    YAML_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    label: str
    yaml: str
    version: PlanVersion
    def __init__(self, label: _Optional[str] = ..., yaml: _Optional[str] = ..., version: _Optional[_Union[PlanVersion, _Mapping]] = ...) -> None: ...

class PricedTotals(_message.Message):
    __slots__ = ("total", "provider_cost", "platform_fee", "builder_margin")
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_COST_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FEE_FIELD_NUMBER: _ClassVar[int]
    BUILDER_MARGIN_FIELD_NUMBER: _ClassVar[int]
    total: _money_pb2.Money
    provider_cost: _money_pb2.Money
    platform_fee: _money_pb2.Money
    builder_margin: _money_pb2.Money
    def __init__(self, total: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., provider_cost: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., platform_fee: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., builder_margin: _Optional[_Union[_money_pb2.Money, _Mapping]] = ...) -> None: ...

class SimulatePlanRequest(_message.Message):
    __slots__ = ("builder_id", "customer_id", "period_start_time", "plan")
    BUILDER_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    PERIOD_START_TIME_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    builder_id: str
    customer_id: str
    period_start_time: _timestamp_pb2.Timestamp
    plan: DraftPlan
    def __init__(self, builder_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., period_start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., plan: _Optional[_Union[DraftPlan, _Mapping]] = ...) -> None: ...

class CustomerSimulation(_message.Message):
    __slots__ = ("customer_id", "projected_invoice", "projected", "billed", "billed_invoice_id")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECTED_INVOICE_FIELD_NUMBER: _ClassVar[int]
    PROJECTED_FIELD_NUMBER: _ClassVar[int]
    BILLED_FIELD_NUMBER: _ClassVar[int]
    BILLED_INVOICE_ID_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    projected_invoice: Invoice
    projected: PricedTotals
    billed: PricedTotals
    billed_invoice_id: str
    def __init__(self, customer_id: _Optional[str] = ..., projected_invoice: _Optional[_Union[Invoice, _Mapping]] = ..., projected: _Optional[_Union[PricedTotals, _Mapping]] = ..., billed: _Optional[_Union[PricedTotals, _Mapping]] = ..., billed_invoice_id: _Optional[str] = ...) -> None: ...

class SimulatePlanResponse(_message.Message):
    __slots__ = ("customers", "projected", "billed")
    CUSTOMERS_FIELD_NUMBER: _ClassVar[int]
    PROJECTED_FIELD_NUMBER: _ClassVar[int]
    BILLED_FIELD_NUMBER: _ClassVar[int]
    customers: _containers.RepeatedCompositeFieldContainer[CustomerSimulation]
    projected: PricedTotals
    billed: PricedTotals
    def __init__(self, customers: _Optional[_Iterable[_Union[CustomerSimulation, _Mapping]]] = ..., projected: _Optional[_Union[PricedTotals, _Mapping]] = ..., billed: _Optional[_Union[PricedTotals, _Mapping]] = ...) -> None: ...

class BucketQuantity(_message.Message):
    __slots__ = ("bucket", "quantity")
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    bucket: str
    quantity: str
    def __init__(self, bucket: _Optional[str] = ..., quantity: _Optional[str] = ...) -> None: ...

class MeterQuantity(_message.Message):
    __slots__ = ("meter_key", "quantity", "event_count", "buckets")
    METER_KEY_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    EVENT_COUNT_FIELD_NUMBER: _ClassVar[int]
    BUCKETS_FIELD_NUMBER: _ClassVar[int]
    meter_key: str
    quantity: str
    event_count: str
    buckets: _containers.RepeatedCompositeFieldContainer[BucketQuantity]
    def __init__(self, meter_key: _Optional[str] = ..., quantity: _Optional[str] = ..., event_count: _Optional[str] = ..., buckets: _Optional[_Iterable[_Union[BucketQuantity, _Mapping]]] = ...) -> None: ...

class MeterQuantities(_message.Message):
    __slots__ = ("meters",)
    METERS_FIELD_NUMBER: _ClassVar[int]
    meters: _containers.RepeatedCompositeFieldContainer[MeterQuantity]
    def __init__(self, meters: _Optional[_Iterable[_Union[MeterQuantity, _Mapping]]] = ...) -> None: ...

class ScaledMonth(_message.Message):
    __slots__ = ("customer_id", "period_start_time", "factor")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    PERIOD_START_TIME_FIELD_NUMBER: _ClassVar[int]
    FACTOR_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    period_start_time: _timestamp_pb2.Timestamp
    factor: str
    def __init__(self, customer_id: _Optional[str] = ..., period_start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., factor: _Optional[str] = ...) -> None: ...

class UsageProfile(_message.Message):
    __slots__ = ("name", "meters", "scaled")
    NAME_FIELD_NUMBER: _ClassVar[int]
    METERS_FIELD_NUMBER: _ClassVar[int]
    SCALED_FIELD_NUMBER: _ClassVar[int]
    name: str
    meters: MeterQuantities
    scaled: ScaledMonth
    def __init__(self, name: _Optional[str] = ..., meters: _Optional[_Union[MeterQuantities, _Mapping]] = ..., scaled: _Optional[_Union[ScaledMonth, _Mapping]] = ...) -> None: ...

class PriceUsageProfilesRequest(_message.Message):
    __slots__ = ("builder_id", "plans", "profiles")
    BUILDER_ID_FIELD_NUMBER: _ClassVar[int]
    PLANS_FIELD_NUMBER: _ClassVar[int]
    PROFILES_FIELD_NUMBER: _ClassVar[int]
    builder_id: str
    plans: _containers.RepeatedCompositeFieldContainer[DraftPlan]
    profiles: _containers.RepeatedCompositeFieldContainer[UsageProfile]
    def __init__(self, builder_id: _Optional[str] = ..., plans: _Optional[_Iterable[_Union[DraftPlan, _Mapping]]] = ..., profiles: _Optional[_Iterable[_Union[UsageProfile, _Mapping]]] = ...) -> None: ...

class ProfilePrice(_message.Message):
    __slots__ = ("profile", "plan", "projected_invoice", "totals")
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    PROJECTED_INVOICE_FIELD_NUMBER: _ClassVar[int]
    TOTALS_FIELD_NUMBER: _ClassVar[int]
    profile: str
    plan: str
    projected_invoice: Invoice
    totals: PricedTotals
    def __init__(self, profile: _Optional[str] = ..., plan: _Optional[str] = ..., projected_invoice: _Optional[_Union[Invoice, _Mapping]] = ..., totals: _Optional[_Union[PricedTotals, _Mapping]] = ...) -> None: ...

class PriceUsageProfilesResponse(_message.Message):
    __slots__ = ("prices",)
    PRICES_FIELD_NUMBER: _ClassVar[int]
    prices: _containers.RepeatedCompositeFieldContainer[ProfilePrice]
    def __init__(self, prices: _Optional[_Iterable[_Union[ProfilePrice, _Mapping]]] = ...) -> None: ...

class GetUnitEconomicsRequest(_message.Message):
    __slots__ = ("builder_id", "period_start_time")
    BUILDER_ID_FIELD_NUMBER: _ClassVar[int]
    PERIOD_START_TIME_FIELD_NUMBER: _ClassVar[int]
    builder_id: str
    period_start_time: _timestamp_pb2.Timestamp
    def __init__(self, builder_id: _Optional[str] = ..., period_start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class UnitEconomics(_message.Message):
    __slots__ = ("meter_key", "workflow", "units", "revenue", "provider_cost", "platform_fee", "builder_margin", "margin_per_unit")
    METER_KEY_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_FIELD_NUMBER: _ClassVar[int]
    UNITS_FIELD_NUMBER: _ClassVar[int]
    REVENUE_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_COST_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FEE_FIELD_NUMBER: _ClassVar[int]
    BUILDER_MARGIN_FIELD_NUMBER: _ClassVar[int]
    MARGIN_PER_UNIT_FIELD_NUMBER: _ClassVar[int]
    meter_key: str
    workflow: str
    units: str
    revenue: _money_pb2.Money
    provider_cost: _money_pb2.Money
    platform_fee: _money_pb2.Money
    builder_margin: _money_pb2.Money
    margin_per_unit: str
    def __init__(self, meter_key: _Optional[str] = ..., workflow: _Optional[str] = ..., units: _Optional[str] = ..., revenue: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., provider_cost: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., platform_fee: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., builder_margin: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., margin_per_unit: _Optional[str] = ...) -> None: ...

class GetUnitEconomicsResponse(_message.Message):
    __slots__ = ("meters", "workflows", "invoice_count", "test_traffic")
    METERS_FIELD_NUMBER: _ClassVar[int]
    WORKFLOWS_FIELD_NUMBER: _ClassVar[int]
    INVOICE_COUNT_FIELD_NUMBER: _ClassVar[int]
    TEST_TRAFFIC_FIELD_NUMBER: _ClassVar[int]
    meters: _containers.RepeatedCompositeFieldContainer[UnitEconomics]
    workflows: _containers.RepeatedCompositeFieldContainer[UnitEconomics]
    invoice_count: int
    test_traffic: _containers.RepeatedCompositeFieldContainer[TestTrafficCost]
    def __init__(self, meters: _Optional[_Iterable[_Union[UnitEconomics, _Mapping]]] = ..., workflows: _Optional[_Iterable[_Union[UnitEconomics, _Mapping]]] = ..., invoice_count: _Optional[int] = ..., test_traffic: _Optional[_Iterable[_Union[TestTrafficCost, _Mapping]]] = ...) -> None: ...

class TestTrafficCost(_message.Message):
    __slots__ = ("meter_key", "provider_cost", "event_count")
    METER_KEY_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_COST_FIELD_NUMBER: _ClassVar[int]
    EVENT_COUNT_FIELD_NUMBER: _ClassVar[int]
    meter_key: str
    provider_cost: str
    event_count: int
    def __init__(self, meter_key: _Optional[str] = ..., provider_cost: _Optional[str] = ..., event_count: _Optional[int] = ...) -> None: ...
