"""The BillingService gRPC servicer: decode the request, call the service, encode the view.

Errors are common.errors raised by the service or the domain; the shared interceptor maps them to
status codes with the offending field.
"""

from __future__ import annotations

from typing import Any

import grpc

from billing.codec import (
    REFUND_STATE,
    SETTLEMENT,
    STATUS_FILTER,
    credit_note_pb,
    customer_pb,
    decode_money,
    decode_time,
    draft_plan,
    earnings_pb,
    economics_pb,
    invoice_pb,
    money_pb,
    plan_pb,
    refund_pb,
    subscription_pb,
    timestamp_pb,
    totals_pb,
    usage_profile,
    version_pb,
    version_to_dict,
    wallet_pb,
)
from billing.service import BillingService
from billing.service.explain import event_status, group_tags
from billing.service.webhooks import WebhookService
from billing.spend_api import validating_spend_servicer
from billing.validation import check_coverage, validated
from common.auth import Access
from common.errors import InvalidArgument
from common.money import format_decimal
from tollgate.billing.v1 import billing_pb2 as pb
from tollgate.billing.v1 import billing_pb2_grpc, spend_pb2, spend_pb2_grpc

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
    "CancelSubscription": _BUILDER,
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
    "SimulatePlan": _BUILDER,
    "PriceUsageProfiles": _BUILDER,
    "GetUnitEconomics": _BUILDER,
    "ListRefunds": _BUILDER,
    # Marking a refund paid is money leaving: the operator (who runs the payment processor) says so.
    "MarkRefund": Access.operator_only(),
    "ExplainInvoiceLine": _BUILDER,
    "ExportInvoiceLine": _BUILDER,
}

# SpendService (spend.proto): builders manage their customers' controls, alerts and webhooks; the
# gateway (a service caller) reads policies and holds leases for every builder's customers.
_GATEWAY = Access.for_builder("builder_id", services=("gateway",))
SPEND_ACCESS = {
    "SetSpendControl": Access.for_builder("control.builder_id"),
    "DeleteSpendControl": _BUILDER,
    "ListSpendControls": _BUILDER,
    "GetSpendPolicy": _GATEWAY,
    "AcquireSpendLease": _GATEWAY,
    "ReportSpendLease": _GATEWAY,
    "ListAlerts": _BUILDER,
    "SetWebhookEndpoint": _BUILDER,
    "ListWebhookDeliveries": _BUILDER,
}


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
        currency = plan.currency_code if plan else ""
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
            plan=plan_pb(view.plan), version=version_pb(view.version), published=view.published
        )

    async def Subscribe(self, request: pb.SubscribeRequest, context: grpc.aio.ServicerContext) -> Any:
        view = await self.service.subscribe(
            request.request_id,
            request.builder_id,
            request.customer_id,
            request.plan_id,
            request.plan_version,
            decode_time(request, "start_time", "start_time"),
        )
        return pb.SubscribeResponse(subscription=subscription_pb(view))

    async def ChangePlan(self, request: pb.ChangePlanRequest, context: grpc.aio.ServicerContext) -> Any:
        view = await self.service.change_plan(
            request.request_id,
            request.builder_id,
            request.customer_id,
            request.plan_id,
            request.plan_version,
            immediately=request.timing == pb.PLAN_CHANGE_TIMING_IMMEDIATELY,
        )
        return pb.ChangePlanResponse(subscription=subscription_pb(view))

    async def CancelSubscription(
        self, request: pb.CancelSubscriptionRequest, context: grpc.aio.ServicerContext
    ) -> Any:
        view = await self.service.cancel_subscription(
            request.request_id,
            request.builder_id,
            request.customer_id,
            immediately=request.timing == pb.CANCEL_TIMING_IMMEDIATELY,
        )
        return pb.CancelSubscriptionResponse(subscription=subscription_pb(view))

    async def SetPlatformFee(
        self, request: pb.SetPlatformFeeRequest, context: grpc.aio.ServicerContext
    ) -> Any:
        f = request.platform_fee
        view = await self.service.set_platform_fee(
            request.request_id, f.builder_id, f.percent_of_line, f.percent_of_margin
        )
        return pb.SetPlatformFeeResponse(
            platform_fee=pb.PlatformFee(
                builder_id=view.builder_id,
                percent_of_line=view.percent_of_line,
                percent_of_margin=view.percent_of_margin,
                update_time=timestamp_pb(view.update_time),
            )
        )

    async def PreviewInvoice(
        self, request: pb.PreviewInvoiceRequest, context: grpc.aio.ServicerContext
    ) -> Any:
        view = await self.service.preview_invoice(
            request.builder_id, request.customer_id, decode_time(request, "as_of_time", "as_of_time")
        )
        return pb.PreviewInvoiceResponse(invoice=invoice_pb(view))

    async def ClosePeriod(self, request: pb.ClosePeriodRequest, context: grpc.aio.ServicerContext) -> Any:
        end = decode_time(request, "period_end_time", "period_end_time")
        if end is None:
            raise InvalidArgument("period_end_time is required", field="period_end_time")
        view = await self.service.close_period(request.request_id, request.builder_id, end)
        return pb.ClosePeriodResponse(
            invoice_count=view.invoice_count,
            finalized_count=view.finalized_count,
            usage_cutoff_time=timestamp_pb(view.usage_cutoff_time),
            totals=[money_pb(t.amount, t.currency_code) for t in view.totals],
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
            STATUS_FILTER.get(request.status),
            request.page_size,
            request.page_token,
        )
        return pb.ListInvoicesResponse(invoices=[invoice_pb(r) for r in rows], next_page_token=token)

    async def ExplainInvoiceLine(
        self, request: pb.ExplainInvoiceLineRequest, context: grpc.aio.ServicerContext
    ) -> Any:
        answer = await self.service.explain_invoice_line(
            request.builder_id,
            request.invoice_id,
            request.position,
            events=request.view == pb.EXPLAIN_VIEW_EVENTS,
            group_by=tuple(request.group_by),
            size=request.page_size,
            token=request.page_token,
        )
        invoice = invoice_pb(answer.invoice)
        line = next(ln for ln in invoice.lines if ln.position == answer.position)
        return pb.ExplainInvoiceLineResponse(
            line=line,
            total_quantity=format_decimal(answer.total),
            event_count=answer.event_count,
            groups=[
                pb.LineEventGroup(
                    tags=group_tags(g.tags),
                    quantity=g.quantity,
                    event_count=g.event_count,
                    provider_cost=g.provider_cost,
                )
                for g in answer.groups
            ],
            events=[
                pb.LineEvent(
                    event_id=e.event.id,
                    type=e.event.type,
                    occurred_time=e.event.occurred_time,
                    ingest_time=e.ingest_time,
                    run_id=e.event.run_id,
                    status=event_status(e.event.status),
                    tags=dict(e.event.tags),
                    quantities=dict(e.event.quantities),
                    contributed_quantity=e.contributed_quantity,
                )
                for e in answer.events
            ],
            next_page_token=answer.next_page_token,
        )

    async def ExportInvoiceLine(
        self, request: pb.ExportInvoiceLineRequest, context: grpc.aio.ServicerContext
    ) -> Any:
        text, count = await self.service.export_invoice_line(
            request.builder_id, request.invoice_id, request.position
        )
        return pb.ExportInvoiceLineResponse(csv=text, event_count=count)

    async def VoidInvoice(self, request: pb.VoidInvoiceRequest, context: grpc.aio.ServicerContext) -> Any:
        view = await self.service.void_invoice(
            request.request_id, request.builder_id, request.invoice_id, request.reason
        )
        return pb.VoidInvoiceResponse(invoice=invoice_pb(view))

    async def IssueCreditNote(
        self, request: pb.IssueCreditNoteRequest, context: grpc.aio.ServicerContext
    ) -> Any:
        amount, currency = decode_money(request.amount, "amount")
        view = await self.service.issue_credit_note(
            request.request_id,
            request.builder_id,
            request.invoice_id,
            amount,
            currency,
            request.reason,
            SETTLEMENT[request.settlement],
        )
        return pb.IssueCreditNoteResponse(
            credit_note=credit_note_pb(view.credit_note),
            invoice=invoice_pb(view.invoice),
            refund=refund_pb(view.refund) if view.refund is not None else None,
        )

    async def ListRefunds(self, request: pb.ListRefundsRequest, context: grpc.aio.ServicerContext) -> Any:
        rows, token = await self.service.list_refunds(
            request.builder_id,
            request.customer_id,
            REFUND_STATE[request.state],
            request.page_size,
            request.page_token,
        )
        return pb.ListRefundsResponse(refunds=[refund_pb(r) for r in rows], next_page_token=token)

    async def MarkRefund(self, request: pb.MarkRefundRequest, context: grpc.aio.ServicerContext) -> Any:
        view = await self.service.mark_refund(
            request.request_id,
            request.builder_id,
            request.refund_id,
            REFUND_STATE[request.state],
            request.external_reference,
            request.failure_reason,
        )
        return pb.MarkRefundResponse(refund=refund_pb(view))

    async def RecordPayment(self, request: pb.RecordPaymentRequest, context: grpc.aio.ServicerContext) -> Any:
        amount, currency = decode_money(request.amount, "amount")
        view = await self.service.record_payment(
            request.request_id,
            request.builder_id,
            request.invoice_id,
            amount,
            currency,
            request.external_reference,
        )
        p = view.payment
        return pb.RecordPaymentResponse(
            payment=pb.Payment(
                id=p.id,
                invoice_id=p.invoice_id,
                amount=money_pb(p.amount, p.currency_code),
                external_reference=p.external_reference,
                create_time=timestamp_pb(p.create_time),
            ),
            invoice=invoice_pb(view.invoice),
        )

    async def TopUpWallet(self, request: pb.TopUpWalletRequest, context: grpc.aio.ServicerContext) -> Any:
        amount, currency = decode_money(request.amount, "amount")
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

    async def SimulatePlan(self, request: pb.SimulatePlanRequest, context: grpc.aio.ServicerContext) -> Any:
        sim = await self.service.simulate_plan(
            request.builder_id,
            request.customer_id,
            decode_time(request, "period_start_time", "period_start_time"),
            draft_plan(request.plan, "plan"),
        )
        return pb.SimulatePlanResponse(
            customers=[
                pb.CustomerSimulation(
                    customer_id=c.customer_id,
                    projected_invoice=invoice_pb(c.invoice),
                    projected=totals_pb(c.projected),
                    billed=totals_pb(c.billed) if c.billed is not None else None,
                    billed_invoice_id=c.billed_invoice_id,
                )
                for c in sim.customers
            ],
            projected=totals_pb(sim.projected),
            billed=totals_pb(sim.billed),
        )

    async def PriceUsageProfiles(
        self, request: pb.PriceUsageProfilesRequest, context: grpc.aio.ServicerContext
    ) -> Any:
        prices = await self.service.price_usage_profiles(
            request.builder_id,
            [draft_plan(d, f"plans[{i}]") for i, d in enumerate(request.plans)],
            [usage_profile(p, f"profiles[{i}]") for i, p in enumerate(request.profiles)],
        )
        return pb.PriceUsageProfilesResponse(
            prices=[
                pb.ProfilePrice(
                    profile=p.profile,
                    plan=p.plan,
                    projected_invoice=invoice_pb(p.invoice),
                    totals=totals_pb(p.totals),
                )
                for p in prices
            ]
        )

    async def GetUnitEconomics(
        self, request: pb.GetUnitEconomicsRequest, context: grpc.aio.ServicerContext
    ) -> Any:
        view = await self.service.get_unit_economics(
            request.builder_id, decode_time(request, "period_start_time", "period_start_time")
        )
        return pb.GetUnitEconomicsResponse(
            meters=[economics_pb(r) for r in view.meters],
            workflows=[economics_pb(r) for r in view.workflows],
            test_traffic=[
                pb.TestTrafficCost(
                    meter_key=t.meter_key,
                    provider_cost=format_decimal(t.provider_cost),
                    event_count=t.event_count,
                )
                for t in view.test_traffic
            ],
            invoice_count=view.invoice_count,
        )


def validating_servicer(service: BillingService) -> BillingServicer:
    """The servicer with every RPC behind the one validation layer (billing/validation.py)."""
    missing = check_coverage()
    if missing:
        raise RuntimeError(f"billing/validation.py has no rule for: {', '.join(missing)}")
    servicer = BillingServicer(service)
    for method in pb.DESCRIPTOR.services_by_name["BillingService"].methods:
        setattr(servicer, method.name, validated(getattr(servicer, method.name)))
    return servicer


def register(service: BillingService, webhooks: WebhookService | None = None) -> Any:
    webhook_service = webhooks or WebhookService(service.engine)

    def _register(server: grpc.aio.Server) -> list[str]:
        billing_pb2_grpc.add_BillingServiceServicer_to_server(validating_servicer(service), server)
        spend_pb2_grpc.add_SpendServiceServicer_to_server(
            validating_spend_servicer(service, webhook_service), server
        )
        return [
            pb.DESCRIPTOR.services_by_name["BillingService"].full_name,
            spend_pb2.DESCRIPTOR.services_by_name["SpendService"].full_name,
        ]

    return _register
