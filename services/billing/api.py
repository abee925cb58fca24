"""The BillingService gRPC servicer: decode the request, call the service, encode the view.

Errors are common.errors raised by the service or the domain; the shared interceptor maps them to
status codes with the offending field.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import grpc
from google.protobuf import json_format

from billing.service import BillingService
from billing.validation import check_coverage, validated
from common.auth import Access
from common.errors import InvalidArgument
from common.money import format_decimal, from_money, from_timestamp, to_money, to_timestamp
from tollgate.billing.v1 import billing_pb2 as pb
from tollgate.billing.v1 import billing_pb2_grpc
from tollgate.type.v1 import money_pb2

# Who may call what (common/auth.py). A builder runs its own catalog of customers and plans, closes and
# reads its own invoices. Money that arrives (payments, wallet top-ups) and the platform's own cut are
# recorded by an operator only: a builder that could record them would pay itself out of nothing.
# Payouts reads the earnings feed and, to reconcile, the invoices.
_BUILDER = Access.for_builder("builder_id")
ACCESS = {
    "CreateCustomer": Access.for_builder("customer.builder_id"),
    "GetCustomer": _BUILDER,
    "ListCustomers": _BUILDER,
    "CreatePlan": Access.for_builder("plan.builder_id"),
    "GetPlan": _BUILDER,
    "ListPlans": _BUILDER,
    "PublishPlanVersion": _BUILDER,
    "ApplyPlanYaml": _BUILDER,
    "Subscribe": _BUILDER,
    "ChangePlan": _BUILDER,
    "SetPlatformFee": Access.operator_only(),
    "PreviewInvoice": _BUILDER,
    "ClosePeriod": _BUILDER,
    "GetInvoice": Access.for_builder("builder_id", services=("payouts",)),
    "ListInvoices": Access.for_builder("builder_id", services=("payouts",)),
    "VoidInvoice": _BUILDER,
    "IssueCreditNote": _BUILDER,
    "RecordPayment": Access.operator_only(),
    "TopUpWallet": Access.operator_only(),
    "GetWallet": _BUILDER,
    "ListEarnings": Access.for_builder("builder_id", services=("payouts",)),
}

_STATUS = {
    "draft": pb.INVOICE_STATUS_DRAFT,
    "finalized": pb.INVOICE_STATUS_FINALIZED,
    "void": pb.INVOICE_STATUS_VOID,
}
_STATUS_FILTER = {pb.INVOICE_STATUS_FINALIZED: "finalized", pb.INVOICE_STATUS_VOID: "void"}
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


# ---- decoding -------------------------------------------------------------------------------------


def _time(msg: Any, name: str, field: str) -> datetime | None:
    if not msg.HasField(name):
        return None
    try:
        return from_timestamp(getattr(msg, name))
    except (ValueError, OverflowError):
        raise InvalidArgument(f"{field} is not a valid timestamp", field=field) from None


def _money(m: money_pb2.Money, field: str) -> tuple[Decimal, str]:
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
        amount, base_currency = _money(v.base_fee, "version.base_fee")
        if base_currency and base_currency != currency:
            raise InvalidArgument(f"base_fee must be in {currency}", field="version.base_fee.currency_code")
        out["base_fee"] = format_decimal(amount)
    return out


# ---- encoding -------------------------------------------------------------------------------------


def _ts(value: str | None) -> Any:
    return to_timestamp(datetime.fromisoformat(value)) if value else None


def _m(amount: str | None, currency: str) -> money_pb2.Money:
    return to_money(Decimal(amount or "0"), currency)


def customer_pb(v: dict[str, Any]) -> pb.Customer:
    return pb.Customer(
        id=v["id"],
        builder_id=v["builder_id"],
        app_id=v["app_id"],
        currency_code=v["currency_code"],
        display_name=v["display_name"],
        billing_email=v["billing_email"],
        create_time=_ts(v["create_time"]),
    )


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


def charge_pb(c: dict[str, Any]) -> pb.Charge:
    return json_format.ParseDict(_drop_none(c), pb.Charge())


def version_pb(v: dict[str, Any]) -> pb.PlanVersion:
    spec = v["spec"]
    return pb.PlanVersion(
        plan_id=v["plan_id"],
        version=v["version"],
        billing_interval=pb.BILLING_INTERVAL_MONTH,
        base_fee=_m(spec.get("base_fee"), spec["currency"]),
        charges=[charge_pb(c) for c in spec["charges"]],
        publish_time=_ts(v["publish_time"]),
    )


def plan_pb(v: dict[str, Any]) -> pb.Plan:
    return pb.Plan(
        id=v["id"],
        builder_id=v["builder_id"],
        key=v["key"],
        display_name=v["display_name"],
        currency_code=v["currency_code"],
        versions=[version_pb(x) for x in v["versions"]],
        create_time=_ts(v["create_time"]),
    )


def subscription_pb(v: dict[str, Any]) -> pb.Subscription:
    return pb.Subscription(
        id=v["id"],
        builder_id=v["builder_id"],
        customer_id=v["customer_id"],
        plan_id=v["plan_id"],
        plan_version=v["plan_version"],
        start_time=_ts(v["start_time"]),
        next_plan_id=v["next_plan_id"],
        next_plan_version=v["next_plan_version"],
        change_time=_ts(v["change_time"]),
    )


def invoice_pb(v: dict[str, Any]) -> pb.Invoice:
    cur = v["currency_code"]
    lines = [
        pb.InvoiceLine(
            position=ln["position"],
            kind=_LINE[ln["kind"]],
            charge_key=ln["charge_key"],
            meter_key=ln["meter_key"],
            display_name=ln["display_name"],
            quantity=ln["quantity"],
            included_quantity=ln["included_quantity"],
            unit_price=ln["unit_price"],
            tiers=[
                pb.TierAmount(
                    label=t["label"],
                    quantity=t["quantity"],
                    unit_price=t["unit_price"],
                    flat_price=t["flat_price"],
                    amount=t["amount"],
                )
                for t in ln["tiers"]
            ],
            amount=_m(ln["amount"], cur),
            split=pb.Split(
                provider_cost=_m(ln["provider_cost"], cur),
                platform_fee=_m(ln["platform_fee"], cur),
                builder_margin=_m(ln["builder_margin"], cur),
            ),
            usage_by_tag=[
                pb.TagUsage(tag=u["tag"], value=u["value"], quantity=u["quantity"])
                for u in ln["usage_by_tag"]
            ],
            adjusted_period_start_time=_ts(ln["adjusted_period_start_time"]),
        )
        for ln in v["lines"]
    ]
    return pb.Invoice(
        id=v["id"],
        builder_id=v["builder_id"],
        customer_id=v["customer_id"],
        app_id=v["app_id"],
        number=v["number"],
        status=_STATUS[v["status"]],
        currency_code=cur,
        period_start_time=_ts(v["period_start_time"]),
        period_end_time=_ts(v["period_end_time"]),
        usage_cutoff_time=_ts(v["usage_cutoff_time"]),
        plan_id=v["plan_id"],
        plan_version=v["plan_version"],
        lines=lines,
        total=_m(v["total"], cur),
        wallet_applied=_m(v["wallet_applied"], cur),
        credited=_m(v["credited"], cur),
        amount_due=_m(v["amount_due"], cur),
        amount_paid=_m(v["amount_paid"], cur),
        payment_status=_PAYMENT[v["payment_status"]],
        finalize_time=_ts(v["finalize_time"]),
        void_time=_ts(v["void_time"]),
    )


def wallet_pb(v: dict[str, Any]) -> pb.Wallet:
    cur = v["currency_code"]
    return pb.Wallet(
        builder_id=v["builder_id"],
        customer_id=v["customer_id"],
        balance=_m(v["balance"], cur),
        transactions=[
            pb.WalletTransaction(
                id=t["id"],
                amount=_m(t["amount"], cur),
                invoice_id=t["invoice_id"],
                create_time=_ts(t["create_time"]),
            )
            for t in v["transactions"]
        ],
    )


def earnings_pb(v: dict[str, Any]) -> pb.EarningsEntry:
    return pb.EarningsEntry(
        sequence=v["sequence"],
        builder_id=v["builder_id"],
        app_id=v["app_id"],
        customer_id=v["customer_id"],
        invoice_id=v["invoice_id"],
        line_position=v["line_position"],
        workflow=v["workflow"],
        meter_key=v["meter_key"],
        kind=_EARN_KIND[v["kind"]],
        reason=_EARN_REASON[v["reason"]],
        amount=_m(v["amount"], v["currency_code"]),
        source_id=v["source_id"],
        create_time=_ts(v["create_time"]),
    )


class BillingServicer(billing_pb2_grpc.BillingServiceServicer):
    def __init__(self, service: BillingService) -> None:
        self.service = service

    async def CreateCustomer(
        self, request: pb.CreateCustomerRequest, context: grpc.aio.ServicerContext
    ) -> Any:
        c = request.customer
        view = await self.service.create_customer(
            request.request_id,
            {
                "builder_id": c.builder_id,
                "id": c.id,
                "app_id": c.app_id,
                "currency_code": c.currency_code,
                "display_name": c.display_name,
                "billing_email": c.billing_email,
            },
        )
        return pb.CreateCustomerResponse(customer=customer_pb(view))

    async def GetCustomer(self, request: pb.GetCustomerRequest, context: grpc.aio.ServicerContext) -> Any:
        return pb.GetCustomerResponse(
            customer=customer_pb(await self.service.get_customer(request.builder_id, request.customer_id))
        )

    async def ListCustomers(self, request: pb.ListCustomersRequest, context: grpc.aio.ServicerContext) -> Any:
        rows, token = await self.service.list_customers(
            request.builder_id, request.page_size, request.page_token
        )
        return pb.ListCustomersResponse(customers=[customer_pb(r) for r in rows], next_page_token=token)

    async def CreatePlan(self, request: pb.CreatePlanRequest, context: grpc.aio.ServicerContext) -> Any:
        p = request.plan
        view = await self.service.create_plan(
            request.request_id,
            {
                "builder_id": p.builder_id,
                "key": p.key,
                "display_name": p.display_name,
                "currency_code": p.currency_code,
            },
        )
        return pb.CreatePlanResponse(plan=plan_pb(view))

    async def GetPlan(self, request: pb.GetPlanRequest, context: grpc.aio.ServicerContext) -> Any:
        return pb.GetPlanResponse(
            plan=plan_pb(await self.service.get_plan(request.builder_id, request.plan_id))
        )

    async def ListPlans(self, request: pb.ListPlansRequest, context: grpc.aio.ServicerContext) -> Any:
        rows, token = await self.service.list_plans(request.builder_id, request.page_size, request.page_token)
        return pb.ListPlansResponse(plans=[plan_pb(r) for r in rows], next_page_token=token)

    async def PublishPlanVersion(
        self, request: pb.PublishPlanVersionRequest, context: grpc.aio.ServicerContext
    ) -> Any:
        plan = (
            await self.service.get_plan(request.builder_id, request.version.plan_id)
            if (request.builder_id and request.version.plan_id)
            else None
        )
        currency = plan["currency_code"] if plan else ""
        spec = version_to_dict(request.version, currency)
        view = await self.service.publish_plan_version(
            request.request_id, request.builder_id, request.version.plan_id, spec
        )
        return pb.PublishPlanVersionResponse(version=version_pb(view))

    async def ApplyPlanYaml(self, request: pb.ApplyPlanYamlRequest, context: grpc.aio.ServicerContext) -> Any:
        view = await self.service.apply_plan_yaml(
            request.request_id, request.builder_id, request.plan_key, request.display_name, request.yaml
        )
        return pb.ApplyPlanYamlResponse(
            plan=plan_pb(view["plan"]), version=version_pb(view["version"]), published=view["published"]
        )

    async def Subscribe(self, request: pb.SubscribeRequest, context: grpc.aio.ServicerContext) -> Any:
        view = await self.service.subscribe(
            request.request_id,
            request.builder_id,
            request.customer_id,
            request.plan_id,
            request.plan_version,
            _time(request, "start_time", "start_time"),
        )
        return pb.SubscribeResponse(subscription=subscription_pb(view))

    async def ChangePlan(self, request: pb.ChangePlanRequest, context: grpc.aio.ServicerContext) -> Any:
        view = await self.service.change_plan(
            request.request_id, request.builder_id, request.customer_id, request.plan_id, request.plan_version
        )
        return pb.ChangePlanResponse(subscription=subscription_pb(view))

    async def SetPlatformFee(
        self, request: pb.SetPlatformFeeRequest, context: grpc.aio.ServicerContext
    ) -> Any:
        f = request.platform_fee
        view = await self.service.set_platform_fee(
            request.request_id, f.builder_id, f.percent_of_line, f.percent_of_margin
        )
        return pb.SetPlatformFeeResponse(
            platform_fee=pb.PlatformFee(
                builder_id=view["builder_id"],
                percent_of_line=view["percent_of_line"],
                percent_of_margin=view["percent_of_margin"],
                update_time=_ts(view["update_time"]),
            )
        )

    async def PreviewInvoice(
        self, request: pb.PreviewInvoiceRequest, context: grpc.aio.ServicerContext
    ) -> Any:
        view = await self.service.preview_invoice(
            request.builder_id, request.customer_id, _time(request, "as_of_time", "as_of_time")
        )
        return pb.PreviewInvoiceResponse(invoice=invoice_pb(view))

    async def ClosePeriod(self, request: pb.ClosePeriodRequest, context: grpc.aio.ServicerContext) -> Any:
        end = _time(request, "period_end_time", "period_end_time")
        if end is None:
            raise InvalidArgument("period_end_time is required", field="period_end_time")
        view = await self.service.close_period(request.request_id, request.builder_id, end)
        return pb.ClosePeriodResponse(
            invoice_count=view["invoice_count"],
            finalized_count=view["finalized_count"],
            usage_cutoff_time=_ts(view["usage_cutoff_time"]),
            totals=[_m(t["amount"], t["currency_code"]) for t in view["totals"]],
        )

    async def GetInvoice(self, request: pb.GetInvoiceRequest, context: grpc.aio.ServicerContext) -> Any:
        return pb.GetInvoiceResponse(
            invoice=invoice_pb(await self.service.get_invoice(request.builder_id, request.invoice_id))
        )

    async def ListInvoices(self, request: pb.ListInvoicesRequest, context: grpc.aio.ServicerContext) -> Any:
        if request.status == pb.INVOICE_STATUS_DRAFT:
            raise InvalidArgument("drafts are not stored; use PreviewInvoice", field="status")
        rows, token = await self.service.list_invoices(
            request.builder_id,
            request.customer_id,
            _STATUS_FILTER.get(request.status),
            request.page_size,
            request.page_token,
        )
        return pb.ListInvoicesResponse(invoices=[invoice_pb(r) for r in rows], next_page_token=token)

    async def VoidInvoice(self, request: pb.VoidInvoiceRequest, context: grpc.aio.ServicerContext) -> Any:
        view = await self.service.void_invoice(
            request.request_id, request.builder_id, request.invoice_id, request.reason
        )
        return pb.VoidInvoiceResponse(invoice=invoice_pb(view))

    async def IssueCreditNote(
        self, request: pb.IssueCreditNoteRequest, context: grpc.aio.ServicerContext
    ) -> Any:
        amount, currency = _money(request.amount, "amount")
        view = await self.service.issue_credit_note(
            request.request_id, request.builder_id, request.invoice_id, amount, currency, request.reason
        )
        note = view["credit_note"]
        return pb.IssueCreditNoteResponse(
            credit_note=pb.CreditNote(
                id=note["id"],
                invoice_id=note["invoice_id"],
                amount=_m(note["amount"], note["currency_code"]),
                reason=note["reason"],
                create_time=_ts(note["create_time"]),
            ),
            invoice=invoice_pb(view["invoice"]),
        )

    async def RecordPayment(self, request: pb.RecordPaymentRequest, context: grpc.aio.ServicerContext) -> Any:
        amount, currency = _money(request.amount, "amount")
        view = await self.service.record_payment(
            request.request_id,
            request.builder_id,
            request.invoice_id,
            amount,
            currency,
            request.external_reference,
        )
        p = view["payment"]
        return pb.RecordPaymentResponse(
            payment=pb.Payment(
                id=p["id"],
                invoice_id=p["invoice_id"],
                amount=_m(p["amount"], p["currency_code"]),
                external_reference=p["external_reference"],
                create_time=_ts(p["create_time"]),
            ),
            invoice=invoice_pb(view["invoice"]),
        )

    async def TopUpWallet(self, request: pb.TopUpWalletRequest, context: grpc.aio.ServicerContext) -> Any:
        amount, currency = _money(request.amount, "amount")
        view = await self.service.top_up_wallet(
            request.request_id, request.builder_id, request.customer_id, amount, currency
        )
        return pb.TopUpWalletResponse(wallet=wallet_pb(view))

    async def GetWallet(self, request: pb.GetWalletRequest, context: grpc.aio.ServicerContext) -> Any:
        return pb.GetWalletResponse(
            wallet=wallet_pb(await self.service.get_wallet(request.builder_id, request.customer_id))
        )

    async def ListEarnings(self, request: pb.ListEarningsRequest, context: grpc.aio.ServicerContext) -> Any:
        rows, token = await self.service.list_earnings(
            request.builder_id, request.page_size, request.page_token
        )
        return pb.ListEarningsResponse(entries=[earnings_pb(r) for r in rows], next_page_token=token)


def validating_servicer(service: BillingService) -> BillingServicer:
    """The servicer with every RPC behind the one validation layer (billing/validation.py)."""
    missing = check_coverage()
    if missing:
        raise RuntimeError(f"billing/validation.py has no rule for: {', '.join(missing)}")
    servicer = BillingServicer(service)
    for method in pb.DESCRIPTOR.services_by_name["BillingService"].methods:
        setattr(servicer, method.name, validated(getattr(servicer, method.name)))
    return servicer


def register(service: BillingService) -> Any:
    def _register(server: grpc.aio.Server) -> list[str]:
        billing_pb2_grpc.add_BillingServiceServicer_to_server(validating_servicer(service), server)
        return [pb.DESCRIPTOR.services_by_name["BillingService"].full_name]

    return _register
