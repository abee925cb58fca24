"""SpendService's webhook RPCs (SetWebhookEndpoint, ListWebhookDeliveries): decode, validate, call the
service, encode. `WebhookHandlers` is a mixin the spend servicer (spend_api.py) can inherit; until it
lands, `WebhookSpendServicer` serves these two RPCs and leaves the other SpendService RPCs
UNIMPLEMENTED (the generated base class)."""

from __future__ import annotations

from typing import Any

import grpc

from billing.codec import timestamp_pb
from billing.service.webhooks import DeliveryView, WebhookService
from billing.validation import validate
from tollgate.billing.v1 import spend_pb2 as spb
from tollgate.billing.v1 import spend_pb2_grpc

DELIVERY_STATES = {
    "pending": spb.WEBHOOK_DELIVERY_STATE_PENDING,
    "delivered": spb.WEBHOOK_DELIVERY_STATE_DELIVERED,
    "failed": spb.WEBHOOK_DELIVERY_STATE_FAILED,
}


def delivery_pb(view: DeliveryView) -> spb.WebhookDelivery:
    return spb.WebhookDelivery(
        id=view.id,
        alert_id=view.alert_id,
        url=view.url,
        state=DELIVERY_STATES.get(view.state, spb.WEBHOOK_DELIVERY_STATE_UNSPECIFIED),
        attempt_count=view.attempt_count,
        last_status_code=view.last_status_code,
        last_error=view.last_error,
        next_attempt_time=timestamp_pb(view.next_attempt_time),
        deliver_time=timestamp_pb(view.deliver_time),
        create_time=timestamp_pb(view.create_time),
    )


class WebhookHandlers:
    """The two handlers over `self.webhooks`; each request passes billing/validation.py first."""

    webhooks: WebhookService

    async def SetWebhookEndpoint(
        self, request: spb.SetWebhookEndpointRequest, context: grpc.aio.ServicerContext
    ) -> Any:
        validate(request)
        reply = await self.webhooks.set_webhook_endpoint(
            request.request_id, request.builder_id, request.url, request.rotate_secret
        )
        e = reply.endpoint
        return spb.SetWebhookEndpointResponse(
            endpoint=spb.WebhookEndpoint(
                builder_id=e.builder_id,
                url=e.url,
                secret_hint=e.secret_hint,
                create_time=timestamp_pb(e.create_time),
                update_time=timestamp_pb(e.update_time),
            ),
            secret=reply.secret,
        )

    async def ListWebhookDeliveries(
        self, request: spb.ListWebhookDeliveriesRequest, context: grpc.aio.ServicerContext
    ) -> Any:
        validate(request)
        rows, token = await self.webhooks.list_webhook_deliveries(
            request.builder_id, request.alert_id, request.page_size, request.page_token
        )
        return spb.ListWebhookDeliveriesResponse(
            deliveries=[delivery_pb(r) for r in rows], next_page_token=token
        )


class WebhookSpendServicer(WebhookHandlers, spend_pb2_grpc.SpendServiceServicer):
    def __init__(self, webhooks: WebhookService) -> None:
        self.webhooks = webhooks
