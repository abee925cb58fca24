"""Billing's wire format: protobuf requests -> the service's inputs, its typed views -> protobuf.

Only the servicer (api.py) calls these; the service and the domain never see a proto. No pricing or
money rule lives here: amounts cross as Decimal <-> Money (common.money), times as datetime <->
Timestamp.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from google.protobuf import json_format

from billing.domain.economics import EconomicsRow
from billing.domain.simulation import MeterMonth, Totals
from billing.service.simulation import DraftPlan, UsageProfile
from billing.service.views import (
    CreditNoteView,
    CustomerView,
    EarningsView,
    InvoiceView,
    PlanView,
    RefundView,
    SubscriptionView,
    VersionView,
    WalletView,
)
from common.errors import InvalidArgument
from common.money import format_decimal, from_money, from_timestamp, to_money, to_timestamp
from tollgate.billing.v1 import billing_pb2 as pb
from tollgate.type.v1 import money_pb2

_STATUS = {
    "draft": pb.INVOICE_STATUS_DRAFT,
    "finalized": pb.INVOICE_STATUS_FINALIZED,
    "void": pb.INVOICE_STATUS_VOID,
}
STATUS_FILTER = {pb.INVOICE_STATUS_FINALIZED: "finalized", pb.INVOICE_STATUS_VOID: "void"}
_PAYMENT = {
    "unpaid": pb.PAYMENT_STATUS_UNPAID,
    "partially_paid": pb.PAYMENT_STATUS_PARTIALLY_PAID,
    "paid": pb.PAYMENT_STATUS_PAID,
}
_LINE = {
    "base_fee": pb.LINE_KIND_BASE_FEE,
    "usage": pb.LINE_KIND_USAGE,
    "late_usage": pb.LINE_KIND_LATE_USAGE_ADJUSTMENT,
}
_EARN_KIND = {
    "builder_margin": pb.EARNINGS_KIND_BUILDER_MARGIN,
    "platform_fee": pb.EARNINGS_KIND_PLATFORM_FEE,
    "provider_cost": pb.EARNINGS_KIND_PROVIDER_COST,
}
_EARN_REASON = {
    "payment": pb.EARNINGS_REASON_PAYMENT,
    "credit_note": pb.EARNINGS_REASON_CREDIT_NOTE,
    "void": pb.EARNINGS_REASON_VOID,
}

SETTLEMENT = {
    pb.CREDIT_SETTLEMENT_UNSPECIFIED: "",
    pb.CREDIT_SETTLEMENT_WALLET: "wallet",
    pb.CREDIT_SETTLEMENT_REFUND: "refund",
}
_SETTLEMENT_PB = {v: k for k, v in SETTLEMENT.items()}
REFUND_STATE = {
    pb.REFUND_STATE_UNSPECIFIED: "",
    pb.REFUND_STATE_PENDING: "pending",
    pb.REFUND_STATE_PAID: "paid",
    pb.REFUND_STATE_FAILED: "failed",
}
_REFUND_STATE_PB = {v: k for k, v in REFUND_STATE.items()}


# ---- decoding -------------------------------------------------------------------------------------


def decode_time(msg: Any, name: str, field: str) -> datetime | None:
    if not msg.HasField(name):
        return None
    try:
        return from_timestamp(getattr(msg, name))
    except (ValueError, OverflowError):
        raise InvalidArgument(f"{field} is not a valid timestamp", field=field) from None


def decode_money(m: money_pb2.Money, field: str) -> tuple[Decimal, str]:
    try:
        return from_money(m), m.currency_code
    except ValueError as exc:
        raise InvalidArgument(f"{field}: {exc}", field=field) from None


def charge_to_dict(c: pb.Charge) -> dict[str, Any]:
    """Proto Charge -> the domain's plan dict: the same field names and nesting (domain/plan.py), so the
    domain's error paths ("charges[0].size_buckets.buckets[2].unit_price") name the request's fields."""
    out = json_format.MessageToDict(c, preserving_proto_field_name=True)
    for name in ("graduated", "volume"):
        for tier in out.get(name, {}).get("tiers", []):
            tier.setdefault("up_to", None)
    return out


def version_to_dict(v: pb.PlanVersion, currency: str) -> dict[str, Any]:
    out: dict[str, Any] = {"currency": currency, "charges": [charge_to_dict(c) for c in v.charges]}
    if v.HasField("base_fee") and (v.base_fee.units or v.base_fee.nanos):
        amount, base_currency = decode_money(v.base_fee, "version.base_fee")
        if base_currency and base_currency != currency:
            raise InvalidArgument(f"base_fee must be in {currency}", field="version.base_fee.currency_code")
        out["base_fee"] = format_decimal(amount)
    return out


def draft_plan(d: pb.DraftPlan, path: str) -> DraftPlan:
    if d.HasField("yaml"):
        return DraftPlan(d.label, path, yaml=d.yaml)
    if d.HasField("version"):
        # The plan's currency is filled in by the service; the base fee's, if any, must match it.
        spec = version_to_dict(d.version, d.version.base_fee.currency_code)
        return DraftPlan(d.label, path, plan_id=d.version.plan_id, version=spec)
    return DraftPlan(d.label, path)


def _decimal(text: str, path: str, default: str = "0") -> Decimal:
    value = Decimal(text or default)  # validation.py let only plain decimals through
    if value < 0:
        raise InvalidArgument(f"{path} must not be negative", field=path)
    return value


def usage_profile(p: pb.UsageProfile, path: str) -> UsageProfile:
    if p.HasField("meters"):
        meters: dict[str, MeterMonth] = {}
        for i, m in enumerate(p.meters.meters):
            at = f"{path}.meters.meters[{i}]"
            if m.meter_key in meters:
                raise InvalidArgument(f"meter {m.meter_key} appears twice", field=f"{at}.meter_key")
            buckets: dict[str, Decimal] = {}
            for j, b in enumerate(m.buckets):
                if b.bucket in buckets:
                    raise InvalidArgument(
                        f"bucket {b.bucket} appears twice", field=f"{at}.buckets[{j}].bucket"
                    )
                buckets[b.bucket] = _decimal(b.quantity, f"{at}.buckets[{j}].quantity")
            meters[m.meter_key] = MeterMonth(
                _decimal(m.quantity, f"{at}.quantity"), _decimal(m.event_count, f"{at}.event_count"), buckets
            )
        return UsageProfile(p.name, path, meters=meters)
    if p.HasField("scaled"):
        s = p.scaled
        return UsageProfile(
            p.name,
            path,
            customer_id=s.customer_id or "",
            period_start=decode_time(s, "period_start_time", f"{path}.scaled.period_start_time"),
            factor=_decimal(s.factor, f"{path}.scaled.factor", "1"),
        )
    return UsageProfile(p.name, path)


# ---- encoding -------------------------------------------------------------------------------------


def timestamp_pb(value: datetime | None) -> Any:
    return to_timestamp(value) if value is not None else None


def money_pb(amount: Decimal, currency: str) -> money_pb2.Money:
    return to_money(amount, currency)


def totals_pb(t: Totals) -> pb.PricedTotals:
    return pb.PricedTotals(
        total=to_money(t.total, t.currency),
        provider_cost=to_money(t.provider_cost, t.currency),
        platform_fee=to_money(t.platform_fee, t.currency),
        builder_margin=to_money(t.builder_margin, t.currency),
    )


def economics_pb(r: EconomicsRow) -> pb.UnitEconomics:
    per_unit = r.margin_per_unit
    return pb.UnitEconomics(
        meter_key=r.meter_key,
        workflow=r.workflow,
        units=format_decimal(r.units),
        revenue=to_money(r.revenue, r.currency),
        provider_cost=to_money(r.provider_cost, r.currency),
        platform_fee=to_money(r.platform_fee, r.currency),
        builder_margin=to_money(r.builder_margin, r.currency),
        margin_per_unit=format_decimal(per_unit) if per_unit is not None else "",
    )


def customer_pb(v: CustomerView) -> pb.Customer:
    return pb.Customer(
        id=v.id,
        builder_id=v.builder_id,
        app_id=v.app_id,
        currency_code=v.currency_code,
        display_name=v.display_name,
        billing_email=v.billing_email,
        create_time=timestamp_pb(v.create_time),
    )


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


def charge_pb(c: dict[str, Any]) -> pb.Charge:
    return json_format.ParseDict(_drop_none(c), pb.Charge())


def version_pb(v: VersionView) -> pb.PlanVersion:
    spec = v.spec
    return pb.PlanVersion(
        plan_id=v.plan_id,
        version=v.version,
        billing_interval=pb.BILLING_INTERVAL_MONTH,
        base_fee=money_pb(Decimal(spec.get("base_fee") or "0"), spec["currency"]),
        charges=[charge_pb(c) for c in spec["charges"]],
        publish_time=timestamp_pb(v.publish_time),
    )


def plan_pb(v: PlanView) -> pb.Plan:
    return pb.Plan(
        id=v.id,
        builder_id=v.builder_id,
        key=v.key,
        display_name=v.display_name,
        currency_code=v.currency_code,
        versions=[version_pb(x) for x in v.versions],
        create_time=timestamp_pb(v.create_time),
    )


def subscription_pb(v: SubscriptionView) -> pb.Subscription:
    return pb.Subscription(
        id=v.id,
        builder_id=v.builder_id,
        customer_id=v.customer_id,
        plan_id=v.plan_id,
        plan_version=v.plan_version,
        start_time=timestamp_pb(v.start_time),
        next_plan_id=v.next_plan_id,
        next_plan_version=v.next_plan_version,
        change_time=timestamp_pb(v.change_time),
        end_time=timestamp_pb(v.end_time),
    )


def invoice_pb(v: InvoiceView) -> pb.Invoice:
    cur = v.currency_code
    lines = [
        pb.InvoiceLine(
            position=ln.position,
            kind=_LINE[ln.kind],
            charge_key=ln.charge_key,
            meter_key=ln.meter_key,
            display_name=ln.display_name,
            quantity=ln.quantity,
            included_quantity=ln.included_quantity,
            unit_price=ln.unit_price,
            tiers=[
                pb.TierAmount(
                    label=t["label"],
                    quantity=t["quantity"],
                    unit_price=t["unit_price"],
                    flat_price=t["flat_price"],
                    amount=t["amount"],
                )
                for t in ln.tiers
            ],
            amount=money_pb(ln.amount, cur),
            split=pb.Split(
                provider_cost=money_pb(ln.provider_cost, cur),
                platform_fee=money_pb(ln.platform_fee, cur),
                builder_margin=money_pb(ln.builder_margin, cur),
            ),
            usage_by_tag=[
                pb.TagUsage(tag=u["tag"], value=u["value"], quantity=u["quantity"]) for u in ln.usage_by_tag
            ],
            adjusted_period_start_time=timestamp_pb(ln.adjusted_period_start_time),
        )
        for ln in v.lines
    ]
    return pb.Invoice(
        id=v.id,
        builder_id=v.builder_id,
        customer_id=v.customer_id,
        app_id=v.app_id,
        number=v.number,
        status=_STATUS[v.status],
        currency_code=cur,
        period_start_time=timestamp_pb(v.period_start_time),
        period_end_time=timestamp_pb(v.period_end_time),
        usage_cutoff_time=timestamp_pb(v.usage_cutoff_time),
        plan_id=v.plan_id,
        plan_version=v.plan_version,
        lines=lines,
        total=money_pb(v.total, cur),
        wallet_applied=money_pb(v.wallet_applied, cur),
        credited=money_pb(v.credited, cur),
        amount_due=money_pb(v.amount_due, cur),
        amount_paid=money_pb(v.amount_paid, cur),
        payment_status=_PAYMENT[v.payment_status],
        finalize_time=timestamp_pb(v.finalize_time),
        void_time=timestamp_pb(v.void_time),
    )


def wallet_pb(v: WalletView) -> pb.Wallet:
    cur = v.currency_code
    return pb.Wallet(
        builder_id=v.builder_id,
        customer_id=v.customer_id,
        balance=money_pb(v.balance, cur),
        transactions=[
            pb.WalletTransaction(
                id=t.id,
                amount=money_pb(t.amount, cur),
                invoice_id=t.invoice_id,
                create_time=timestamp_pb(t.create_time),
            )
            for t in v.transactions
        ],
    )


def earnings_pb(v: EarningsView) -> pb.EarningsEntry:
    return pb.EarningsEntry(
        sequence=v.sequence,
        builder_id=v.builder_id,
        app_id=v.app_id,
        customer_id=v.customer_id,
        invoice_id=v.invoice_id,
        line_position=v.line_position,
        workflow=v.workflow,
        meter_key=v.meter_key,
        kind=_EARN_KIND[v.kind],
        reason=_EARN_REASON[v.reason],
        amount=money_pb(v.amount, v.currency_code),
        source_id=v.source_id,
        create_time=timestamp_pb(v.create_time),
    )


def credit_note_pb(v: CreditNoteView) -> pb.CreditNote:
    cur = v.currency_code
    return pb.CreditNote(
        id=v.id,
        invoice_id=v.invoice_id,
        amount=money_pb(v.amount, cur),
        reason=v.reason,
        create_time=timestamp_pb(v.create_time),
        settlement=_SETTLEMENT_PB[v.settlement],
        due_reduced=money_pb(v.due_reduced, cur),
        wallet_credited=money_pb(v.wallet_credited, cur),
        refunded=money_pb(v.refunded, cur),
        refund_id=v.refund_id,
    )


def refund_pb(v: RefundView) -> pb.Refund:
    return pb.Refund(
        id=v.id,
        builder_id=v.builder_id,
        customer_id=v.customer_id,
        invoice_id=v.invoice_id,
        credit_note_id=v.credit_note_id,
        amount=money_pb(v.amount, v.currency_code),
        state=_REFUND_STATE_PB[v.state],
        external_reference=v.external_reference,
        failure_reason=v.failure_reason,
        create_time=timestamp_pb(v.create_time),
        update_time=timestamp_pb(v.update_time),
    )
