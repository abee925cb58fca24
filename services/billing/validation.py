"""Billing's one validation layer at the API edge: every BillingService request passes `validate`
before its handler runs, so no input reaches the service or the database in a shape it cannot hold.

The rules are one table, RULES, keyed by the full name of each request field (nested messages
included); a field missing from it is a start-up error (`check_coverage`), so a field added to the
proto cannot slip through unchecked. The limits match the migration's columns and are written in
the proto comments (protos/tollgate/billing/v1/billing.proto and spend.proto, whose SpendService
requests are covered too):

- every string: no NUL or other control character (free text may hold tab, newline, return),
  at most its column's length in characters;
- ids, keys and codes: patterns matched against the WHOLE string;
- timestamps: from 2000-01-01T00:00:00Z (inclusive) to 2100-01-01T00:00:00Z (exclusive);
- Money: nanos within +-999,999,999 and of the sign of units, |amount| below 10^15 units, a
  three-letter upper-case currency code (or empty, which the service then names);
- enums: only the values the contract defines;
- repeated fields: at most a stated count;
- page tokens: base64url text of at most 512 characters (what is inside is checked where it is read).

Rules about meaning (a currency billing supports, a positive amount, ascending tiers) stay in the
service and the domain; this layer only guarantees shape and size. Errors quote user input through
`quote`, truncated, and name the field with its path ("version.charges[0].graduated.tiers[1].up_to").
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from billing.domain.text import quote
from common.errors import InvalidArgument
from tollgate.billing.v1 import billing_pb2 as pb
from tollgate.billing.v1 import spend_pb2 as spb

# ---- limits, shared with the proto comments ---------------------------------------------------------

MIN_TIME_SECONDS = 946_684_800  # 2000-01-01T00:00:00Z
MAX_TIME_SECONDS = 4_102_444_800  # 2100-01-01T00:00:00Z, exclusive
# Any single amount (a top-up, a payment, a credit note, a base fee) is below this many whole units;
# a wallet balance never exceeds it either (service.MAX_WALLET_BALANCE).
MAX_AMOUNT_UNITS = 10**15
MAX_PLAN_YAML_CHARS = 64 * 1024
MAX_PAGE_TOKEN_CHARS = 512

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_BUT_SPACING = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


# ---- rule kinds ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Text:
    """A string field: at most max_len characters, optionally required and matching a whole pattern."""

    max_len: int
    required: bool = False
    pattern: re.Pattern[str] | None = None
    shape: str = ""  # how the pattern reads in an error
    free_text: bool = False  # tab, newline and return allowed
    echo: bool = True  # quote the (truncated) value in the error
    max_items: int = 1  # for a repeated string field: how many values

    def check(self, value: str, path: str) -> None:
        if not value:
            if self.required:
                raise InvalidArgument(f"{path} is required", field=path)
            return
        if "\x00" in value:
            raise InvalidArgument(f"{path} must not contain NUL characters", field=path)
        if (_CONTROL_BUT_SPACING if self.free_text else _CONTROL).search(value):
            raise InvalidArgument(f"{path} must not contain control characters", field=path)
        if len(value) > self.max_len:
            raise InvalidArgument(f"{path} must be at most {self.max_len} characters", field=path)
        if self.pattern is not None and not self.pattern.fullmatch(value):
            got = f"; got {quote(value)}" if self.echo else ""
            raise InvalidArgument(f"{path} must be {self.shape}{got}", field=path)


@dataclass(frozen=True)
class Int:
    low: int
    high: int
    max_items: int = 1  # for a repeated integer field: how many values

    def check(self, value: int, path: str) -> None:
        if not self.low <= value <= self.high:
            raise InvalidArgument(f"{path} must be between {self.low:,} and {self.high:,}", field=path)


@dataclass(frozen=True)
class Enum:
    """Only the values the contract defines (the unspecified zero included; the service says more)."""

    def check(self, value: int, path: str, fd: FieldDescriptor) -> None:
        if value not in fd.enum_type.values_by_number:
            raise InvalidArgument(f"{path} has no value {value}", field=path)


@dataclass(frozen=True)
class Stamp:
    def check(self, msg: Any, path: str) -> None:
        if not MIN_TIME_SECONDS <= msg.seconds < MAX_TIME_SECONDS or not 0 <= msg.nanos <= 999_999_999:
            raise InvalidArgument(
                f"{path} must be from 2000-01-01T00:00:00Z up to 2100-01-01T00:00:00Z", field=path
            )


@dataclass(frozen=True)
class Amount:
    def check(self, msg: Any, path: str) -> None:
        CURRENCY.check(msg.currency_code, f"{path}.currency_code")
        if not -1_000_000_000 < msg.nanos < 1_000_000_000:
            raise InvalidArgument(f"{path}.nanos must be between -999,999,999 and 999,999,999", field=path)
        if (msg.units > 0 and msg.nanos < 0) or (msg.units < 0 and msg.nanos > 0):
            raise InvalidArgument(f"{path}: units and nanos must have the same sign", field=path)
        if abs(Decimal(msg.units) + Decimal(msg.nanos).scaleb(-9)) >= MAX_AMOUNT_UNITS:
            raise InvalidArgument(f"{path} must be below {MAX_AMOUNT_UNITS:,} in absolute value", field=path)


@dataclass(frozen=True)
class Nested:
    """A message field checked field by field; a repeated one holds at most max_items."""

    max_items: int = 1


@dataclass(frozen=True)
class Ignored:
    """Output only: the request's value is not read."""


@dataclass(frozen=True)
class Flag:
    """A bool: both values are valid."""

    def check(self, value: bool, path: str) -> None:
        return None


Rule = Text | Int | Enum | Stamp | Amount | Nested | Ignored | Flag

# ---- shapes -------------------------------------------------------------------------------------------

REQUEST_ID = Text(
    128, required=True, pattern=re.compile(r"[\x21-\x7e]{1,128}"), shape="1 to 128 printable ASCII characters"
)
# A builder's own ids (builder, app, customer): any text without control characters, as metering takes
# them on usage events (the customers, invoices and wallets columns are VARCHAR(128)).
REF = Text(128, required=True)
OPTIONAL_REF = Text(128)
# Ids billing assigns ("plan_<hex>", "inv_<hex>"); the columns are VARCHAR(64).
SERVER_ID = Text(
    64,
    required=True,
    pattern=re.compile(r"[A-Za-z0-9_.-]{1,64}"),
    shape="1 to 64 characters of [A-Za-z0-9_.-]",
)
OPTIONAL_SERVER_ID = Text(64, pattern=SERVER_ID.pattern, shape=SERVER_ID.shape)
KEY = Text(
    64,
    required=True,
    pattern=re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}"),
    shape="1 to 64 characters of [a-z0-9_.-], starting with a letter or digit",
)
# Charge and meter keys: metering's meter key rule (domain/plan.py KEY_PATTERN), a leading '_' allowed.
CHARGE_KEY = Text(
    64, required=True, pattern=re.compile(r"[a-z0-9_.-]{1,64}"), shape="1 to 64 characters of [a-z0-9_.-]"
)
OPTIONAL_CHARGE_KEY = Text(64, pattern=CHARGE_KEY.pattern, shape=CHARGE_KEY.shape)
CURRENCY = Text(3, pattern=re.compile(r"[A-Z]{3}"), shape="a three-letter upper-case ISO 4217 code")
NAME = Text(256)  # display names and e-mail addresses: VARCHAR(256)
REASON = Text(1000, required=True, free_text=True)
DECIMAL = Text(
    40, pattern=re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)"), shape="a plain decimal number such as 12.50"
)
BUCKET = Text(64)
PAGE_TOKEN = Text(
    MAX_PAGE_TOKEN_CHARS,
    pattern=re.compile(r"[A-Za-z0-9_-]+"),
    shape="a token this service issued",
    echo=False,
)
PAGE_SIZE = Int(0, 1000)
PLAN_VERSION = Int(0, 2**31 - 1)
YAML = Text(MAX_PLAN_YAML_CHARS, required=True, free_text=True)
LABEL = Text(64)

_B = "tollgate.billing.v1."

# SpendService (spend.proto; its limits are in the comment on the service). Money fields are shape
# checked here; their currency (the customer's) and sign are the service's to check. The webhook
# RPCs' rules are with the others in RULES below.
API_KEY_ID = Text(
    64, pattern=re.compile(r"[A-Za-z0-9_.-]{1,64}"), shape="1 to 64 characters of [A-Za-z0-9_.-]"
)
TAG_KEY = Text(64, pattern=re.compile(r"[a-z0-9_.-]{1,64}"), shape="1 to 64 characters of [a-z0-9_.-]")
SPEND_RULES: dict[str, Rule] = {
    _B + "SetSpendControlRequest.request_id": REQUEST_ID,
    _B + "SetSpendControlRequest.control": Nested(),
    _B + "SpendControl.id": Ignored(),
    _B + "SpendControl.builder_id": REF,
    _B + "SpendControl.customer_id": REF,
    _B + "SpendControl.scope": Nested(),
    _B + "SpendControl.hard_cap": Amount(),
    _B + "SpendControl.alert_budget": Amount(),
    _B + "SpendControl.threshold_percents": Int(1, 1000, max_items=10),
    _B + "SpendControl.on_cap": Enum(),
    _B + "SpendControl.degrade_model": Text(128),
    _B + "SpendControl.create_time": Ignored(),
    _B + "SpendControl.update_time": Ignored(),
    _B + "SpendScope.kind": Enum(),
    _B + "SpendScope.api_key_id": API_KEY_ID,
    _B + "SpendScope.tag_key": TAG_KEY,
    _B + "SpendScope.tag_value": Text(256),
    _B + "DeleteSpendControlRequest.request_id": REQUEST_ID,
    _B + "DeleteSpendControlRequest.builder_id": REF,
    _B + "DeleteSpendControlRequest.control_id": SERVER_ID,
    _B + "ListSpendControlsRequest.builder_id": REF,
    _B + "ListSpendControlsRequest.customer_id": OPTIONAL_REF,
    _B + "ListSpendControlsRequest.page_size": PAGE_SIZE,
    _B + "ListSpendControlsRequest.page_token": PAGE_TOKEN,
    _B + "GetSpendPolicyRequest.builder_id": REF,
    _B + "GetSpendPolicyRequest.customer_id": REF,
    _B + "AcquireSpendLeaseRequest.request_id": REQUEST_ID,
    _B + "AcquireSpendLeaseRequest.builder_id": REF,
    _B + "AcquireSpendLeaseRequest.customer_id": REF,
    _B + "AcquireSpendLeaseRequest.control_id": SERVER_ID,
    _B + "AcquireSpendLeaseRequest.holder": REF,
    _B + "AcquireSpendLeaseRequest.amount": Amount(),
    _B + "AcquireSpendLeaseRequest.minimum": Amount(),
    _B + "ReportSpendLeaseRequest.request_id": REQUEST_ID,
    _B + "ReportSpendLeaseRequest.builder_id": REF,
    _B + "ReportSpendLeaseRequest.lease_id": SERVER_ID,
    _B + "ReportSpendLeaseRequest.consumed": Amount(),
    _B + "ReportSpendLeaseRequest.release": Flag(),
    _B + "ListAlertsRequest.builder_id": REF,
    _B + "ListAlertsRequest.customer_id": OPTIONAL_REF,
    _B + "ListAlertsRequest.page_size": PAGE_SIZE,
    _B + "ListAlertsRequest.page_token": PAGE_TOKEN,
}

RULES: dict[str, Rule] = {
    # customers
    _B + "CreateCustomerRequest.request_id": REQUEST_ID,
    _B + "CreateCustomerRequest.customer": Nested(),
    _B + "Customer.id": REF,
    _B + "Customer.builder_id": REF,
    _B + "Customer.app_id": OPTIONAL_REF,
    _B + "Customer.currency_code": CURRENCY,
    _B + "Customer.display_name": NAME,
    _B + "Customer.billing_email": NAME,
    _B + "Customer.create_time": Ignored(),
    _B + "GetCustomerRequest.builder_id": REF,
    _B + "GetCustomerRequest.customer_id": REF,
    _B + "ListCustomersRequest.builder_id": REF,
    _B + "ListCustomersRequest.page_size": PAGE_SIZE,
    _B + "ListCustomersRequest.page_token": PAGE_TOKEN,
    # plans
    _B + "CreatePlanRequest.request_id": REQUEST_ID,
    _B + "CreatePlanRequest.plan": Nested(),
    _B + "Plan.id": Ignored(),
    _B + "Plan.builder_id": REF,
    _B + "Plan.key": KEY,
    _B + "Plan.display_name": NAME,
    _B + "Plan.currency_code": CURRENCY,
    _B + "Plan.versions": Ignored(),
    _B + "Plan.create_time": Ignored(),
    _B + "GetPlanRequest.builder_id": REF,
    _B + "GetPlanRequest.plan_id": SERVER_ID,
    _B + "ListPlansRequest.builder_id": REF,
    _B + "ListPlansRequest.page_size": PAGE_SIZE,
    _B + "ListPlansRequest.page_token": PAGE_TOKEN,
    _B + "PublishPlanVersionRequest.request_id": REQUEST_ID,
    _B + "PublishPlanVersionRequest.builder_id": REF,
    _B + "PublishPlanVersionRequest.version": Nested(),
    _B + "PlanVersion.plan_id": SERVER_ID,
    _B + "PlanVersion.version": Ignored(),
    _B + "PlanVersion.billing_interval": Enum(),
    _B + "PlanVersion.base_fee": Amount(),
    _B + "PlanVersion.charges": Nested(max_items=100),
    _B + "PlanVersion.publish_time": Ignored(),
    _B + "Charge.key": CHARGE_KEY,
    _B + "Charge.meter_key": CHARGE_KEY,
    _B + "Charge.display_name": NAME,
    _B + "Charge.per_unit": Nested(),
    _B + "Charge.graduated": Nested(),
    _B + "Charge.volume": Nested(),
    _B + "Charge.package": Nested(),
    _B + "Charge.size_buckets": Nested(),
    _B + "Charge.cost_plus": Nested(),
    _B + "Charge.included_quantity": DECIMAL,
    _B + "Charge.minimum_amount": DECIMAL,
    _B + "Charge.maximum_amount": DECIMAL,
    _B + "Charge.provider_cost_meter_key": OPTIONAL_CHARGE_KEY,
    _B + "PerUnitPrice.unit_price": DECIMAL,
    _B + "GraduatedPrice.tiers": Nested(max_items=50),
    _B + "VolumePrice.tiers": Nested(max_items=50),
    _B + "Tier.up_to": DECIMAL,
    _B + "Tier.unit_price": DECIMAL,
    _B + "Tier.flat_price": DECIMAL,
    _B + "PackagePrice.package_size": DECIMAL,
    _B + "PackagePrice.package_price": DECIMAL,
    _B + "SizeBucketPrice.buckets": Nested(max_items=50),
    _B + "BucketPrice.bucket": BUCKET,
    _B + "BucketPrice.unit_price": DECIMAL,
    _B + "CostPlusPrice.markup_percent": DECIMAL,
    _B + "CostPlusPrice.fixed_per_request": DECIMAL,
    _B + "ApplyPlanYamlRequest.request_id": REQUEST_ID,
    _B + "ApplyPlanYamlRequest.builder_id": REF,
    _B + "ApplyPlanYamlRequest.yaml": YAML,
    _B + "ApplyPlanYamlRequest.plan_key": KEY,
    _B + "ApplyPlanYamlRequest.display_name": NAME,
    # subscriptions and fees
    _B + "SubscribeRequest.request_id": REQUEST_ID,
    _B + "SubscribeRequest.builder_id": REF,
    _B + "SubscribeRequest.customer_id": REF,
    _B + "SubscribeRequest.plan_id": SERVER_ID,
    _B + "SubscribeRequest.plan_version": PLAN_VERSION,
    _B + "SubscribeRequest.start_time": Stamp(),
    _B + "ChangePlanRequest.request_id": REQUEST_ID,
    _B + "ChangePlanRequest.builder_id": REF,
    _B + "ChangePlanRequest.customer_id": REF,
    _B + "ChangePlanRequest.plan_id": SERVER_ID,
    _B + "ChangePlanRequest.plan_version": PLAN_VERSION,
    _B + "ChangePlanRequest.timing": Enum(),
    _B + "CancelSubscriptionRequest.request_id": REQUEST_ID,
    _B + "CancelSubscriptionRequest.builder_id": REF,
    _B + "CancelSubscriptionRequest.customer_id": REF,
    _B + "CancelSubscriptionRequest.timing": Enum(),
    _B + "SetPlatformFeeRequest.request_id": REQUEST_ID,
    _B + "SetPlatformFeeRequest.platform_fee": Nested(),
    _B + "PlatformFee.builder_id": REF,
    _B + "PlatformFee.percent_of_line": DECIMAL,
    _B + "PlatformFee.percent_of_margin": DECIMAL,
    _B + "PlatformFee.update_time": Ignored(),
    # invoices
    _B + "PreviewInvoiceRequest.builder_id": REF,
    _B + "PreviewInvoiceRequest.customer_id": REF,
    _B + "PreviewInvoiceRequest.as_of_time": Stamp(),
    _B + "ClosePeriodRequest.request_id": REQUEST_ID,
    _B + "ClosePeriodRequest.builder_id": REF,
    _B + "ClosePeriodRequest.period_end_time": Stamp(),
    _B + "GetInvoiceRequest.builder_id": REF,
    _B + "GetInvoiceRequest.invoice_id": SERVER_ID,
    _B + "ListInvoicesRequest.builder_id": REF,
    _B + "ListInvoicesRequest.customer_id": OPTIONAL_REF,
    _B + "ListInvoicesRequest.status": Enum(),
    _B + "ListInvoicesRequest.page_size": PAGE_SIZE,
    _B + "ListInvoicesRequest.page_token": PAGE_TOKEN,
    _B + "VoidInvoiceRequest.request_id": REQUEST_ID,
    _B + "VoidInvoiceRequest.builder_id": REF,
    _B + "VoidInvoiceRequest.invoice_id": SERVER_ID,
    _B + "VoidInvoiceRequest.reason": REASON,
    _B + "IssueCreditNoteRequest.request_id": REQUEST_ID,
    _B + "IssueCreditNoteRequest.builder_id": REF,
    _B + "IssueCreditNoteRequest.invoice_id": SERVER_ID,
    _B + "IssueCreditNoteRequest.amount": Amount(),
    _B + "IssueCreditNoteRequest.reason": REASON,
    _B + "IssueCreditNoteRequest.settlement": Enum(),
    _B + "ListRefundsRequest.builder_id": REF,
    _B + "ListRefundsRequest.customer_id": OPTIONAL_REF,
    _B + "ListRefundsRequest.state": Enum(),
    _B + "ListRefundsRequest.page_size": PAGE_SIZE,
    _B + "ListRefundsRequest.page_token": PAGE_TOKEN,
    _B + "MarkRefundRequest.request_id": REQUEST_ID,
    _B + "MarkRefundRequest.builder_id": REF,
    _B + "MarkRefundRequest.refund_id": SERVER_ID,
    _B + "MarkRefundRequest.state": Enum(),
    _B + "MarkRefundRequest.external_reference": OPTIONAL_REF,
    _B + "MarkRefundRequest.failure_reason": Text(1000, free_text=True),
    # explaining a line (nothing written)
    _B + "ExplainInvoiceLineRequest.builder_id": REF,
    _B + "ExplainInvoiceLineRequest.invoice_id": SERVER_ID,
    _B + "ExplainInvoiceLineRequest.position": Int(0, 10_000),
    _B + "ExplainInvoiceLineRequest.view": Enum(),
    _B + "ExplainInvoiceLineRequest.group_by": Text(
        64,
        required=True,
        pattern=re.compile(r"[a-z0-9_.-]{1,64}"),
        shape="1 to 64 characters of [a-z0-9_.-]",
        max_items=4,
    ),
    _B + "ExplainInvoiceLineRequest.page_size": PAGE_SIZE,
    _B + "ExplainInvoiceLineRequest.page_token": PAGE_TOKEN,
    _B + "ExportInvoiceLineRequest.builder_id": REF,
    _B + "ExportInvoiceLineRequest.invoice_id": SERVER_ID,
    _B + "ExportInvoiceLineRequest.position": Int(0, 10_000),
    # payments, wallets, earnings
    _B + "RecordPaymentRequest.request_id": REQUEST_ID,
    _B + "RecordPaymentRequest.builder_id": REF,
    _B + "RecordPaymentRequest.invoice_id": SERVER_ID,
    _B + "RecordPaymentRequest.amount": Amount(),
    _B + "RecordPaymentRequest.external_reference": REF,
    _B + "TopUpWalletRequest.request_id": REQUEST_ID,
    _B + "TopUpWalletRequest.builder_id": REF,
    _B + "TopUpWalletRequest.customer_id": REF,
    _B + "TopUpWalletRequest.amount": Amount(),
    _B + "GetWalletRequest.builder_id": REF,
    _B + "GetWalletRequest.customer_id": REF,
    # Empty: every builder's entries (the platform's and payouts' view).
    _B + "ListEarningsRequest.builder_id": OPTIONAL_REF,
    _B + "ListEarningsRequest.page_size": PAGE_SIZE,
    _B + "ListEarningsRequest.page_token": PAGE_TOKEN,
    # simulations (nothing written)
    _B + "DraftPlan.label": LABEL,
    _B + "DraftPlan.yaml": Text(MAX_PLAN_YAML_CHARS, free_text=True),  # one of yaml and version
    _B + "DraftPlan.version": Nested(),
    _B + "SimulatePlanRequest.builder_id": REF,
    _B + "SimulatePlanRequest.customer_id": OPTIONAL_REF,
    _B + "SimulatePlanRequest.period_start_time": Stamp(),
    _B + "SimulatePlanRequest.plan": Nested(),
    _B + "PriceUsageProfilesRequest.builder_id": REF,
    _B + "PriceUsageProfilesRequest.plans": Nested(max_items=10),
    _B + "PriceUsageProfilesRequest.profiles": Nested(max_items=10),
    _B + "UsageProfile.name": Text(64, required=True),
    _B + "UsageProfile.meters": Nested(),
    _B + "UsageProfile.scaled": Nested(),
    _B + "MeterQuantities.meters": Nested(max_items=100),
    _B + "MeterQuantity.meter_key": CHARGE_KEY,
    _B + "MeterQuantity.quantity": DECIMAL,
    _B + "MeterQuantity.event_count": DECIMAL,
    _B + "MeterQuantity.buckets": Nested(max_items=50),
    _B + "BucketQuantity.bucket": BUCKET,
    _B + "BucketQuantity.quantity": DECIMAL,
    _B + "ScaledMonth.customer_id": REF,
    _B + "ScaledMonth.period_start_time": Stamp(),
    _B + "ScaledMonth.factor": DECIMAL,
    _B + "GetUnitEconomicsRequest.builder_id": REF,
    _B + "GetUnitEconomicsRequest.period_start_time": Stamp(),
    **SPEND_RULES,
    # webhooks (spend.proto); the URL's shape and host are checked by domain/webhooks.py check_url
    _B + "SetWebhookEndpointRequest.request_id": REQUEST_ID,
    _B + "SetWebhookEndpointRequest.builder_id": REF,
    _B + "SetWebhookEndpointRequest.url": Text(2048, required=True),
    _B + "SetWebhookEndpointRequest.rotate_secret": Ignored(),  # a bool: any value is valid
    _B + "ListWebhookDeliveriesRequest.builder_id": REF,
    _B + "ListWebhookDeliveriesRequest.alert_id": OPTIONAL_SERVER_ID,
    _B + "ListWebhookDeliveriesRequest.page_size": PAGE_SIZE,
    _B + "ListWebhookDeliveriesRequest.page_token": PAGE_TOKEN,
}


def _field_path(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _check_field(fd: FieldDescriptor, rule: Rule, value: Any, path: str) -> None:
    if isinstance(rule, Ignored):
        return
    if isinstance(rule, Nested):
        _walk(value, path)
    elif isinstance(rule, Enum):
        rule.check(value, path, fd)
    else:
        rule.check(value, path)  # type: ignore[union-attr]


def _walk(msg: Message, prefix: str) -> None:
    for fd, value in msg.ListFields():
        rule = RULES[fd.full_name]
        path = _field_path(prefix, fd.name)
        if fd.is_repeated:
            if isinstance(rule, Ignored):
                continue
            limit = rule.max_items if isinstance(rule, Nested | Text | Int) else 1
            if len(value) > limit:
                raise InvalidArgument(f"{path} has more than {limit} items", field=path)
            for i, item in enumerate(value):
                _check_field(fd, rule, item, f"{path}[{i}]")
        else:
            _check_field(fd, rule, value, path)
    # Unset fields are not listed: a required string is empty, and an unset message reads as its
    # defaults (so a missing `customer` reports `customer.id is required`).
    for fd in msg.DESCRIPTOR.fields:
        rule = RULES[fd.full_name]
        path = _field_path(prefix, fd.name)
        # For a repeated string, `required` is each item's rule (checked above): the list may be empty.
        if isinstance(rule, Text) and rule.required and not fd.is_repeated and not getattr(msg, fd.name):
            raise InvalidArgument(f"{path} is required", field=path)
        if (
            isinstance(rule, Nested)
            and not fd.is_repeated
            and fd.containing_oneof is None
            and not msg.HasField(fd.name)
        ):
            _walk(getattr(msg, fd.name), path)


def validate(request: Message) -> None:
    """Raise InvalidArgument naming the first field of `request` outside its rule."""
    _walk(request, "")


def check_coverage() -> list[str]:
    """The request fields (nested ones included) that RULES does not cover; empty when complete."""
    missing: list[str] = []
    seen: set[str] = set()

    def visit(desc: Descriptor) -> None:
        if desc.full_name in seen:
            return
        seen.add(desc.full_name)
        for fd in desc.fields:
            rule = RULES.get(fd.full_name)
            if rule is None:
                missing.append(fd.full_name)
            elif isinstance(rule, Nested):
                visit(fd.message_type)

    for method in pb.DESCRIPTOR.services_by_name["BillingService"].methods:
        visit(method.input_type)
    for method in spb.DESCRIPTOR.services_by_name["SpendService"].methods:
        visit(method.input_type)
    return missing


def validated(handler: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap one servicer method so its request is validated before the handler sees it."""

    async def run(request: Message, context: Any) -> Any:
        validate(request)
        return await handler(request, context)

    run.__name__ = getattr(handler, "__name__", "handler")
    return run
