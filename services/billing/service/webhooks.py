"""Webhook endpoints and the delivery log: SetWebhookEndpoint, ListWebhookDeliveries (SpendService).

The deliveries themselves are made by the loop in billing/webhooks.py; the rows it works are queued
with each alert (store/webhooks.py enqueue_delivery, in the alert's transaction).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from billing import store
from billing.domain.webhooks import SECRET_PREFIX, check_url, secret_hint
from billing.service._core import _cursor, _not_our_token, _require
from billing.service.views import from_json, to_json
from billing.store import webhooks as webhook_store
from common.idempotency import builder_scope, claim, complete, fingerprint
from common.paging import encode_token, page_size

log = structlog.get_logger("billing.webhooks")


@dataclass(frozen=True)
class EndpointView:
    builder_id: str
    url: str
    secret_hint: str
    create_time: datetime | None
    update_time: datetime | None


@dataclass(frozen=True)
class SetEndpointReply:
    endpoint: EndpointView
    # Only when this call created the endpoint or rotated its secret; "" otherwise. The stored reply
    # keeps it so that a retry returns it again, as the contract says.
    secret: str


@dataclass(frozen=True)
class DeliveryView:
    id: str
    alert_id: str
    url: str
    state: str  # pending | delivered | failed
    attempt_count: int
    last_status_code: int
    last_error: str
    next_attempt_time: datetime | None
    deliver_time: datetime | None
    create_time: datetime | None


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def _endpoint_view(row: dict[str, Any]) -> EndpointView:
    return EndpointView(
        row["builder_id"], row["url"], secret_hint(row["secret"]), row["create_time"], row["update_time"]
    )


def _delivery_view(row: dict[str, Any]) -> DeliveryView:
    return DeliveryView(
        row["id"],
        row["alert_id"],
        row["url"],
        row["state"],
        row["attempt_count"],
        row["last_status_code"],
        row["last_error"],
        row["next_attempt_time"] if row["state"] == webhook_store.PENDING else None,
        row["deliver_time"],
        row["create_time"],
    )


class WebhookService:
    """The two use cases; `allowed_hosts` is BILLING_WEBHOOK_ALLOWED_HOSTS (empty: any host)."""

    def __init__(self, engine: AsyncEngine, *, allowed_hosts: tuple[str, ...] = ()) -> None:
        self.engine = engine
        self.allowed_hosts = allowed_hosts

    async def set_webhook_endpoint(
        self, request_id: str, builder_id: str, url: str, rotate_secret: bool
    ) -> SetEndpointReply:
        _require(request_id, "request_id")
        _require(builder_id, "builder_id")
        check_url(url, self.allowed_hosts)
        scope = builder_scope("SetWebhookEndpoint", builder_id)
        body = {"builder_id": builder_id, "url": url, "rotate_secret": rotate_secret}
        async with self.engine.begin() as conn:
            prior = await claim(conn, store.idempotency_keys, scope, request_id, fingerprint(body))
            if prior is not None:
                return from_json(SetEndpointReply, prior)
            reply = await self._set(conn, builder_id, url, rotate_secret)
            await complete(conn, store.idempotency_keys, scope, request_id, to_json(reply))
        log.info(
            "billing.webhook.endpoint_set",
            builder_id=builder_id,
            secret_issued=bool(reply.secret),  # never the secret itself
        )
        return reply

    async def _set(self, conn: AsyncConnection, builder_id: str, url: str, rotate: bool) -> SetEndpointReply:
        existing = await webhook_store.get_endpoint(conn, builder_id, for_update=True)
        issued = ""
        if existing is None:
            issued = new_secret()
            if not await webhook_store.insert_endpoint(conn, builder_id, url, issued):
                # Another request created it meanwhile (its insert committed first): this one sets it.
                issued = new_secret() if rotate else ""
                await webhook_store.update_endpoint(conn, builder_id, url, issued or None)
        else:
            issued = new_secret() if rotate else ""
            await webhook_store.update_endpoint(conn, builder_id, url, issued or None)
        row = await webhook_store.get_endpoint(conn, builder_id)
        assert row is not None
        return SetEndpointReply(_endpoint_view(row), issued)

    async def list_webhook_deliveries(
        self, builder_id: str, alert_id: str, size: int, token: str
    ) -> tuple[list[DeliveryView], str]:
        _require(builder_id, "builder_id")
        limit = page_size(size)
        cursor = _cursor(token, {"t": str, "id": str})
        after = None
        if cursor is not None:
            try:
                when = datetime.fromisoformat(cursor["t"])
            except ValueError:
                raise _not_our_token() from None
            if when.tzinfo is None:
                raise _not_our_token()
            after = (when, cursor["id"])
        async with self.engine.connect() as conn:
            rows = await webhook_store.list_deliveries(conn, builder_id, alert_id, limit + 1, after)
        more = len(rows) > limit
        rows = rows[:limit]
        next_token = ""
        if more:
            last = rows[-1]
            next_token = encode_token({"t": last["create_time"].isoformat(), "id": last["id"]})
        return [_delivery_view(r) for r in rows], next_token
