"""Billing's replies as typed views: frozen dataclasses holding Decimal amounts and aware datetimes.

api.py encodes them straight into protos. A mutation's reply is also stored as its request id's
reply, as JSON: `to_json` writes exactly the shape billing has always stored (decimals as plain
strings without trailing zeros, times as ISO strings in UTC, the same keys), and `from_json` reads it
back, so a retry returns exactly the first reply and replies stored by earlier versions still decode.
Decimal strings the contract itself carries as strings (quantities, percents, tier rows) stay strings.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from typing import Any, TypeVar

ZERO = Decimal(0)
V = TypeVar("V")


def _s(value: Decimal | None) -> str | None:
    if value is None:
        return None
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def _t(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None


# ---- the JSON codec of stored replies -----------------------------------------------------------------


def to_json(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Decimal):
        return _s(value)
    if isinstance(value, datetime):
        return _t(value)
    if isinstance(value, tuple):
        return [to_json(v) for v in value]
    return value  # str, int, bool, None, and JSON kept as JSON (plan specs, tier rows)


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _decode(kind: Any, raw: Any) -> Any:
    if raw is None:
        return None
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        (kind,) = [k for k in typing.get_args(kind) if k is not type(None)]
    if kind is Decimal:
        return Decimal(raw)
    if kind is datetime:
        return datetime.fromisoformat(raw)
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        return from_json(kind, raw)
    if typing.get_origin(kind) is tuple:
        item = typing.get_args(kind)[0]
        return tuple(_decode(item, v) for v in raw)
    return raw


def from_json(cls: type[V], data: dict[str, Any]) -> V:
    hints = _hints(cls)
    # A field added later with a default (SubscriptionView.end_time) decodes replies stored before it.
    fields = [f for f in dataclasses.fields(cls) if f.name in data or f.default is dataclasses.MISSING]
    return cls(**{f.name: _decode(hints[f.name], data[f.name]) for f in fields})  # type: ignore[arg-type]


# ---- views ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CustomerView:
    id: str
    builder_id: str
    app_id: str
    currency_code: str
    display_name: str
    billing_email: str
    create_time: datetime | None


@dataclass(frozen=True)
class VersionView:
    plan_id: str
    version: int
    spec: dict[str, Any]  # the domain's plan dict (domain/plan.py plan_to_dict), JSON as stored
    publish_time: datetime | None


@dataclass(frozen=True)
class PlanView:
    id: str
    builder_id: str
    key: str
    display_name: str
    currency_code: str
    versions: tuple[VersionView, ...]
    create_time: datetime | None


@dataclass(frozen=True)
class AppliedPlan:
    plan: PlanView
    version: VersionView
    published: bool


@dataclass(frozen=True)
class SubscriptionView:
    id: str
    builder_id: str
    customer_id: str
    plan_id: str
    plan_version: int
    start_time: datetime | None
    next_plan_id: str
    next_plan_version: int
    change_time: datetime | None
    end_time: datetime | None = None


@dataclass(frozen=True)
class FeeView:
    builder_id: str
    percent_of_line: str
    percent_of_margin: str
    update_time: datetime | None


@dataclass(frozen=True)
class LineView:
    position: int
    kind: str
    charge_key: str
    meter_key: str
    display_name: str
    quantity: str
    included_quantity: str
    unit_price: str  # "" when tiers apply
    tiers: list[dict[str, Any]]
    amount: Decimal
    provider_cost: Decimal
    platform_fee: Decimal
    builder_margin: Decimal
    usage_by_tag: list[dict[str, Any]]
    adjusted_period_start_time: datetime | None


@dataclass(frozen=True)
class InvoiceView:
    id: str
    builder_id: str
    customer_id: str
    app_id: str
    number: int
    status: str
    currency_code: str
    period_start_time: datetime | None
    period_end_time: datetime | None
    usage_cutoff_time: datetime | None
    plan_id: str
    plan_version: int
    lines: tuple[LineView, ...]
    total: Decimal
    wallet_applied: Decimal
    credited: Decimal
    amount_due: Decimal
    amount_paid: Decimal
    payment_status: str
    finalize_time: datetime | None
    void_time: datetime | None


@dataclass(frozen=True)
class EarningsView:
    sequence: int
    builder_id: str
    app_id: str
    customer_id: str
    invoice_id: str
    line_position: int
    workflow: str
    meter_key: str
    kind: str
    reason: str
    currency_code: str
    amount: Decimal
    source_id: str
    create_time: datetime | None


@dataclass(frozen=True)
class PaymentView:
    id: str
    invoice_id: str
    amount: Decimal
    currency_code: str
    external_reference: str
    create_time: datetime | None


@dataclass(frozen=True)
class PaymentReply:
    payment: PaymentView
    invoice: InvoiceView


@dataclass(frozen=True)
class CreditNoteView:
    id: str
    invoice_id: str
    amount: Decimal
    currency_code: str
    reason: str
    create_time: datetime | None
    # Where the money went (domain/credit.py); the defaults decode replies stored before settlement.
    settlement: str = ""  # "" | wallet | refund
    due_reduced: Decimal = ZERO
    wallet_credited: Decimal = ZERO
    refunded: Decimal = ZERO
    refund_id: str = ""


@dataclass(frozen=True)
class RefundView:
    id: str
    builder_id: str
    customer_id: str
    invoice_id: str
    credit_note_id: str
    amount: Decimal
    currency_code: str
    state: str  # pending | paid | failed
    external_reference: str
    failure_reason: str
    create_time: datetime | None
    update_time: datetime | None


@dataclass(frozen=True)
class CreditNoteReply:
    credit_note: CreditNoteView
    invoice: InvoiceView
    refund: RefundView | None = None


@dataclass(frozen=True)
class WalletTransactionView:
    id: str
    amount: Decimal
    invoice_id: str
    create_time: datetime | None


@dataclass(frozen=True)
class WalletView:
    builder_id: str
    customer_id: str
    currency_code: str
    balance: Decimal
    transactions: tuple[WalletTransactionView, ...]


@dataclass(frozen=True)
class CurrencyTotal:
    currency_code: str
    amount: Decimal


@dataclass(frozen=True)
class CloseSummary:
    invoice_count: int
    finalized_count: int
    usage_cutoff_time: datetime | None
    totals: tuple[CurrencyTotal, ...]


# ---- from rows ----------------------------------------------------------------------------------------


def customer_view(r: dict[str, Any]) -> CustomerView:
    return CustomerView(
        r["id"],
        r["builder_id"],
        r["app_id"],
        r["currency_code"],
        r["display_name"],
        r["billing_email"],
        r["create_time"],
    )


def version_view(r: dict[str, Any]) -> VersionView:
    return VersionView(r["plan_id"], r["version"], r["spec"], r["publish_time"])


def plan_view(r: dict[str, Any], versions: list[dict[str, Any]]) -> PlanView:
    return PlanView(
        r["id"],
        r["builder_id"],
        r["key"],
        r["display_name"],
        r["currency_code"],
        tuple(version_view(v) for v in versions),
        r["create_time"],
    )


def subscription_view(r: dict[str, Any]) -> SubscriptionView:
    return SubscriptionView(
        r["id"],
        r["builder_id"],
        r["customer_id"],
        r["plan_id"],
        r["plan_version"],
        r["start_time"],
        r["next_plan_id"] or "",
        r["next_plan_version"] or 0,
        r["change_time"],
        r.get("end_time"),
    )


def fee_view(r: dict[str, Any]) -> FeeView:
    return FeeView(
        r["builder_id"], _s(r["percent_of_line"]) or "0", _s(r["percent_of_margin"]) or "0", r["update_time"]
    )


def line_view(r: dict[str, Any]) -> LineView:
    return LineView(
        position=r["position"],
        kind=r["kind"],
        charge_key=r["charge_key"],
        meter_key=r["meter_key"],
        display_name=r["display_name"],
        quantity=_s(r["quantity"]) or "0",
        included_quantity=_s(r["included_quantity"]) or "0",
        unit_price=_s(r["unit_price"]) or "",
        tiers=r["tiers"],
        amount=r["amount"],
        provider_cost=r["provider_cost"],
        platform_fee=r["platform_fee"],
        builder_margin=r["builder_margin"],
        usage_by_tag=r["usage_by_tag"],
        adjusted_period_start_time=r["usage_period_start"] if r["kind"] == "late_usage" else None,
    )


def amount_due(inv: dict[str, Any]) -> Decimal:
    if inv["status"] == "void":
        return ZERO
    return max(ZERO, inv["total"] - inv["wallet_applied"] - inv["credited"] - inv["amount_paid"])


def invoice_view(inv: dict[str, Any], lines: list[dict[str, Any]]) -> InvoiceView:
    due = amount_due(inv)
    if inv.get("status") == "draft":
        payment_status = "unpaid" if due > 0 else "paid"
    elif inv["paid_time"] is not None or due == 0:
        payment_status = "paid"
    elif inv["amount_paid"] > 0 or inv["wallet_applied"] > 0:
        payment_status = "partially_paid"
    else:
        payment_status = "unpaid"
    return InvoiceView(
        id=inv["id"],
        builder_id=inv["builder_id"],
        customer_id=inv["customer_id"],
        app_id=inv["app_id"],
        number=inv["number"],
        status=inv["status"],
        currency_code=inv["currency_code"],
        period_start_time=inv["period_start"],
        period_end_time=inv["period_end"],
        usage_cutoff_time=inv["usage_cutoff"],
        plan_id=inv["plan_id"],
        plan_version=inv["plan_version"],
        lines=tuple(line_view(r) for r in lines),
        total=inv["total"],
        wallet_applied=inv["wallet_applied"],
        credited=inv["credited"],
        amount_due=due,
        amount_paid=inv["amount_paid"],
        payment_status=payment_status,
        finalize_time=inv["finalize_time"],
        void_time=inv["void_time"],
    )


def earnings_view(r: dict[str, Any]) -> EarningsView:
    return EarningsView(
        r["sequence"],
        r["builder_id"],
        r["app_id"],
        r["customer_id"],
        r["invoice_id"],
        r["line_position"],
        r["workflow"],
        r["meter_key"],
        r["kind"],
        r["reason"],
        r["currency_code"],
        r["amount"],
        r["source_id"],
        r["create_time"],
    )


def refund_view(r: dict[str, Any]) -> RefundView:
    return RefundView(
        r["id"],
        r["builder_id"],
        r["customer_id"],
        r["invoice_id"],
        r["credit_note_id"],
        r["amount"],
        r["currency_code"],
        r["state"],
        r["external_reference"],
        r["failure_reason"],
        r["create_time"],
        r["update_time"],
    )


def payment_view(p: dict[str, Any], currency: str) -> PaymentView:
    return PaymentView(
        p["id"], p["invoice_id"], p["amount"], currency, p["external_reference"], p["create_time"]
    )
