"""The SpendService gRPC servicer (spend.proto): decode, call the service, encode. Its access rules are
SPEND_ACCESS in api.py; every request passes validation.py first, as BillingService's do."""

from __future__ import annotations

from typing import Any

import grpc

from billing.codec import decode_money
from billing.service import BillingService
from billing.service.webhooks import WebhookService
from billing.spend_codec import (
    alert_pb,
    control_input,
    control_pb,
    lease_pb,
    lease_reply_pb,
    spend_policy_pb,
    spend_status_pb,
)
from billing.validation import check_coverage, validated
from billing.webhooks_api import WebhookHandlers
from tollgate.billing.v1 import spend_pb2 as spb
from tollgate.billing.v1 import spend_pb2_grpc


class SpendServicer(WebhookHandlers, spend_pb2_grpc.SpendServiceServicer):
    """Every SpendService RPC; the webhook ones come from webhooks_api.WebhookHandlers (which validate
    their requests themselves)."""

    def __init__(self, service: BillingService, webhooks: WebhookService) -> None:
        self.service = service
        self.webhooks = webhooks

    async def SetSpendControl(
        self, request: spb.SetSpendControlRequest, context: grpc.aio.ServicerContext
    ) -> Any:
        view = await self.service.set_spend_control(request.request_id, control_input(request.control))
        return spb.SetSpendControlResponse(status=spend_status_pb(view))

    async def DeleteSpendControl(
        self, request: spb.DeleteSpendControlRequest, context: grpc.aio.ServicerContext
    ) -> Any:
        view = await self.service.delete_spend_control(
            request.request_id, request.builder_id, request.control_id
        )
        return spb.DeleteSpendControlResponse(control=control_pb(view))

    async def ListSpendControls(
        self, request: spb.ListSpendControlsRequest, context: grpc.aio.ServicerContext
    ) -> Any:
        rows, token = await self.service.list_spend_controls(
            request.builder_id, request.customer_id, request.page_size, request.page_token
        )
        return spb.ListSpendControlsResponse(
            controls=[spend_status_pb(r) for r in rows], next_page_token=token
        )

    async def GetSpendPolicy(
        self, request: spb.GetSpendPolicyRequest, context: grpc.aio.ServicerContext
    ) -> Any:
        view = await self.service.get_spend_policy(request.builder_id, request.customer_id)
        return spb.GetSpendPolicyResponse(policy=spend_policy_pb(view))

    async def AcquireSpendLease(
        self, request: spb.AcquireSpendLeaseRequest, context: grpc.aio.ServicerContext
    ) -> Any:
        view = await self.service.acquire_spend_lease(
            request.request_id,
            request.builder_id,
            request.customer_id,
            request.control_id,
            request.holder,
            decode_money(request.amount, "amount"),
            decode_money(request.minimum, "minimum"),
        )
        return lease_reply_pb(view)

    async def ReportSpendLease(
        self, request: spb.ReportSpendLeaseRequest, context: grpc.aio.ServicerContext
    ) -> Any:
        view = await self.service.report_spend_lease(
            request.request_id,
            request.builder_id,
            request.lease_id,
            decode_money(request.consumed, "consumed"),
            request.release,
        )
        return spb.ReportSpendLeaseResponse(lease=lease_pb(view))

    async def ListAlerts(self, request: spb.ListAlertsRequest, context: grpc.aio.ServicerContext) -> Any:
        rows, token = await self.service.list_alerts(
            request.builder_id, request.customer_id, request.page_size, request.page_token
        )
        return spb.ListAlertsResponse(alerts=[alert_pb(r) for r in rows], next_page_token=token)


def validating_spend_servicer(service: BillingService, webhooks: WebhookService) -> SpendServicer:
    """The servicer with every SpendService RPC behind validation.py (the webhook handlers, inherited,
    validate their own requests)."""
    missing = check_coverage()
    if missing:
        raise RuntimeError(f"billing/validation.py has no rule for: {', '.join(missing)}")
    servicer = SpendServicer(service, webhooks)
    for method in spb.DESCRIPTOR.services_by_name["SpendService"].methods:
        if method.name not in SpendServicer.__dict__:
            continue
        setattr(servicer, method.name, validated(getattr(servicer, method.name)))
    return servicer
