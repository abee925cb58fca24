"""Signed webhook delivery of alerts, end to end: real billing servers (SpendService over gRPC, the
delivery loop) on one real PostgreSQL database, posting to a real aiohttp receiver on loopback.

Alerts are written the way the spend use cases write them: the alert row and its pending delivery in
one transaction (store/webhooks.py enqueue_delivery). Retry waits are shortened by settings (base
0.05 s, at most 0.2 s, 4 attempts, 0.5 s POST timeout) so that a whole retry schedule runs in seconds.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import grpc
import pytest
from aiohttp import web
from billing_kit import field_of, rid
from prometheus_client import REGISTRY

from billing.domain.webhooks import ALERT_FIELDS
from billing.store.spend import alerts, webhook_endpoints
from billing.store.webhooks import enqueue_delivery
from common.db import create_engine
from common.migrations import upgrade_head_async
from common.webhooks import SignatureError, verify_signature
from tests.conftest import auth_channel, security, token
from tollgate.billing.v1 import spend_pb2 as spb
from tollgate.billing.v1 import spend_pb2_grpc

_REPO = Path(__file__).resolve().parents[2]
MAX_ATTEMPTS = 4
TIMEOUT_SECONDS = 0.5
PENDING, DELIVERED, FAILED = (
    spb.WEBHOOK_DELIVERY_STATE_PENDING,
    spb.WEBHOOK_DELIVERY_STATE_DELIVERED,
    spb.WEBHOOK_DELIVERY_STATE_FAILED,
)


@dataclass
class Received:
    route: str
    alert_id: str
    signature: str
    body: bytes


@dataclass
class Receiver:
    """A builder's endpoint: /ok answers 200, /flaky 500 to an alert's first two posts then 200,
    /down always 500, /slow answers after the POST timeout, /busy 200 after a short wait."""

    base_url: str = ""
    received: list[Received] = field(default_factory=list)

    def of(self, alert_id: str) -> list[Received]:
        return [r for r in self.received if r.alert_id == alert_id]

    async def handle(self, request: web.Request) -> web.Response:
        route = request.match_info["route"]
        got = Received(
            route,
            request.headers.get("Tollgate-Alert-Id", ""),
            request.headers.get("Tollgate-Signature", ""),
            await request.read(),
        )
        self.received.append(got)
        if route == "flaky" and len(self.of(got.alert_id)) <= 2:
            return web.Response(status=500)
        if route == "down":
            return web.Response(status=500)
        if route == "slow":
            await asyncio.sleep(TIMEOUT_SECONDS * 3)
        if route == "busy":
            await asyncio.sleep(0.02)
        return web.Response(status=204 if route == "busy" else 200, text="" if route == "busy" else "thanks")


@dataclass
class WebhookStack:
    spend: spend_pb2_grpc.SpendServiceStub
    address: str
    database_url: str
    engine: object
    receiver: Receiver


def _settings(url: str, metering_address: str):
    from billing.config import Settings

    return Settings(
        database_url=url,
        grpc_address="127.0.0.1:0",
        metrics_port=None,
        metering_address=metering_address,
        security=security("billing"),
        webhook_poll_seconds=0.05,
        webhook_timeout_seconds=TIMEOUT_SECONDS,
        webhook_retry_base_seconds=0.05,
        webhook_retry_max_seconds=0.2,
        webhook_max_attempts=MAX_ATTEMPTS,
        webhook_batch_size=5,
        webhook_allowed_hosts=("127.0.0.1",),
    )


@pytest.fixture(scope="module")
async def hooks(make_database, fast_metering_address: str) -> AsyncIterator[WebhookStack]:
    from billing.app import start

    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/{route}", receiver.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    receiver.base_url = f"http://127.0.0.1:{port}"

    url = await make_database("billing")
    await upgrade_head_async(_REPO / "services" / "billing" / "migrations", url, "alembic_version_billing")
    running = await start(_settings(url, fast_metering_address))
    engine = create_engine(url)
    address = f"127.0.0.1:{running.port}"
    async with auth_channel(address) as channel:
        yield WebhookStack(spend_pb2_grpc.SpendServiceStub(channel), address, url, engine, receiver)
    await running.stop(0)
    await engine.dispose()
    await runner.cleanup()


def builder() -> str:
    return f"b-{uuid.uuid4().hex[:8]}"


async def set_endpoint(hooks: WebhookStack, builder_id: str, route: str, **kwargs) -> str:
    reply = await hooks.spend.SetWebhookEndpoint(
        spb.SetWebhookEndpointRequest(
            request_id=kwargs.pop("request_id", rid()),
            builder_id=builder_id,
            url=f"{hooks.receiver.base_url}/{route}",
            **kwargs,
        )
    )
    return reply.secret


async def raise_alert(
    hooks: WebhookStack, builder_id: str, *, amount: str = "80.125", limit: str = "80"
) -> str:
    """An alert and its pending delivery, in one transaction (what the spend use cases do)."""
    alert_id = f"alt_{uuid.uuid4().hex}"
    async with hooks.engine.begin() as conn:
        await conn.execute(
            alerts.insert().values(
                id=alert_id,
                builder_id=builder_id,
                customer_id="c1",
                kind="spend_threshold",
                dedupe_key=f"threshold:ctl_1:2026-12:{alert_id}",
                control_id="ctl_1",
                threshold_percent=80,
                charge_key="",
                period_start=datetime(2026, 12, 1, tzinfo=UTC),
                currency_code="USD",
                amount=Decimal(amount),
                limit_amount=Decimal(limit),
                message="Customer c1 reached 80% of its USD 100 budget.",
            )
        )
        assert await enqueue_delivery(conn, alert_id) is not None
    return alert_id


SETTLE_SECONDS = 30.0


async def settled(hooks: WebhookStack, builder_id: str, alert_id: str):
    """The alert's delivery once it is no longer pending (a bound on waiting, not an assertion)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_SECONDS
    while True:
        reply = await hooks.spend.ListWebhookDeliveries(
            spb.ListWebhookDeliveriesRequest(builder_id=builder_id, alert_id=alert_id)
        )
        assert len(reply.deliveries) == 1, reply
        if reply.deliveries[0].state != PENDING:
            return reply.deliveries[0]
        if loop.time() > deadline:
            raise AssertionError(f"still pending after {SETTLE_SECONDS} s: {reply.deliveries[0]}")
        await asyncio.sleep(0.05)


def attempts(outcome: str) -> float:
    return REGISTRY.get_sample_value("tollgate_billing_webhook_attempts_total", {"outcome": outcome}) or 0.0


async def test_an_alert_is_posted_as_json_signed_with_the_endpoint_secret(hooks, capsys):
    delivered_before = attempts("delivered")
    b = builder()
    secret = await set_endpoint(hooks, b, "ok")
    assert secret.startswith("whsec_") and len(secret) > 40
    alert_id = await raise_alert(hooks, b)

    delivery = await settled(hooks, b, alert_id)
    assert attempts("delivered") == delivered_before + 1
    logged = capsys.readouterr()
    assert "billing.webhook.delivered" in logged.out
    assert secret not in logged.out + logged.err
    assert delivery.state == DELIVERED
    assert (delivery.attempt_count, delivery.last_status_code, delivery.last_error) == (1, 200, "")
    assert delivery.url == f"{hooks.receiver.base_url}/ok"
    assert delivery.HasField("deliver_time") and not delivery.HasField("next_attempt_time")

    (got,) = hooks.receiver.of(alert_id)
    verify_signature(secret, got.body, got.signature)  # raises if it does not verify
    payload = json.loads(got.body)
    assert tuple(payload) == ALERT_FIELDS
    assert payload["id"] == alert_id and payload["builder_id"] == b
    assert payload["kind"] == "ALERT_KIND_SPEND_THRESHOLD"
    assert payload["amount"] == {"currency_code": "USD", "amount": "80.125"}
    assert payload["limit"] == {"currency_code": "USD", "amount": "80"}
    assert payload["threshold_percent"] == 80
    assert payload["period_start_time"] == "2026-12-01T00:00:00Z"


async def test_a_receiver_failing_twice_then_answering_gets_three_attempts_and_the_alert_is_delivered(hooks):
    b = builder()
    secret = await set_endpoint(hooks, b, "flaky")
    alert_id = await raise_alert(hooks, b)

    delivery = await settled(hooks, b, alert_id)
    assert delivery.state == DELIVERED
    assert (delivery.attempt_count, delivery.last_status_code, delivery.last_error) == (3, 200, "")
    posts = hooks.receiver.of(alert_id)
    assert len(posts) == 3
    assert len({p.body for p in posts}) == 1  # the same bytes on every retry
    for post in posts:
        verify_signature(secret, post.body, post.signature)


async def test_a_receiver_answering_500_every_time_is_failed_after_the_last_attempt(hooks):
    b = builder()
    await set_endpoint(hooks, b, "down")
    alert_id = await raise_alert(hooks, b)

    delivery = await settled(hooks, b, alert_id)
    assert delivery.state == FAILED
    assert delivery.attempt_count == MAX_ATTEMPTS
    assert (delivery.last_status_code, delivery.last_error) == (500, "the endpoint answered HTTP 500")
    assert not delivery.HasField("next_attempt_time") and not delivery.HasField("deliver_time")
    await asyncio.sleep(0.5)  # a failed delivery is not tried again
    assert len(hooks.receiver.of(alert_id)) == MAX_ATTEMPTS


async def test_a_receiver_that_never_answers_in_time_gets_attempts_recorded_with_the_error(hooks):
    b = builder()
    await set_endpoint(hooks, b, "slow")
    alert_id = await raise_alert(hooks, b)

    delivery = await settled(hooks, b, alert_id)
    assert delivery.state == FAILED
    assert delivery.attempt_count == MAX_ATTEMPTS
    assert delivery.last_status_code == 0
    assert delivery.last_error == f"no answer within {TIMEOUT_SECONDS:g} s"


async def test_a_closed_port_is_a_failed_attempt_naming_the_connection_error(hooks):
    b = builder()
    with socket_closed_port() as port:
        await hooks.spend.SetWebhookEndpoint(
            spb.SetWebhookEndpointRequest(request_id=rid(), builder_id=b, url=f"http://127.0.0.1:{port}/x")
        )
        alert_id = await raise_alert(hooks, b)
        delivery = await settled(hooks, b, alert_id)
    assert delivery.state == FAILED and delivery.attempt_count == MAX_ATTEMPTS
    assert delivery.last_status_code == 0
    assert delivery.last_error.startswith("the request failed: ClientConnectorError")


def socket_closed_port():
    """A loopback port nothing listens on (bound, never listening, for the test's duration)."""
    import contextlib
    import socket

    @contextlib.contextmanager
    def hold():
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            yield s.getsockname()[1]

    return hold()


async def test_rotating_the_secret_signs_the_next_deliveries_with_the_new_secret_only(hooks):
    b = builder()
    first = await set_endpoint(hooks, b, "ok")
    rotated = await hooks.spend.SetWebhookEndpoint(
        spb.SetWebhookEndpointRequest(
            request_id=rid(), builder_id=b, url=f"{hooks.receiver.base_url}/ok", rotate_secret=True
        )
    )
    second = rotated.secret
    assert second.startswith("whsec_") and second != first
    assert rotated.endpoint.secret_hint == second[:8]

    alert_id = await raise_alert(hooks, b)
    assert (await settled(hooks, b, alert_id)).state == DELIVERED
    (got,) = hooks.receiver.of(alert_id)
    verify_signature(second, got.body, got.signature)
    with pytest.raises(SignatureError):
        verify_signature(first, got.body, got.signature)


async def test_a_retried_set_webhook_endpoint_returns_the_same_secret(hooks):
    b = builder()
    request_id = rid()
    url = f"{hooks.receiver.base_url}/ok"
    request = spb.SetWebhookEndpointRequest(request_id=request_id, builder_id=b, url=url)
    first = await hooks.spend.SetWebhookEndpoint(request)
    again = await hooks.spend.SetWebhookEndpoint(request)
    assert first.secret and again.secret == first.secret
    assert again.endpoint == first.endpoint

    # The same id with another body is refused; a new id without rotation keeps the secret, unshown.
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await hooks.spend.SetWebhookEndpoint(
            spb.SetWebhookEndpointRequest(request_id=request_id, builder_id=b, url=url + "?v=2")
        )
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    moved = await hooks.spend.SetWebhookEndpoint(
        spb.SetWebhookEndpointRequest(request_id=rid(), builder_id=b, url=f"{hooks.receiver.base_url}/busy")
    )
    assert moved.secret == ""
    assert moved.endpoint.url.endswith("/busy")
    assert moved.endpoint.secret_hint == first.secret[:8]

    # Deliveries go to the endpoint as it is now, signed with the unchanged secret.
    alert_id = await raise_alert(hooks, b)
    delivery = await settled(hooks, b, alert_id)
    assert (delivery.state, delivery.last_status_code) == (DELIVERED, 204)
    assert delivery.url.endswith("/busy")
    (got,) = hooks.receiver.of(alert_id)
    verify_signature(first.secret, got.body, got.signature)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "url is required"),
        ("ftp://127.0.0.1/hook", "http or https"),
        ("http:///hook", "http or https URL with a host"),
        ("http://user:pw@127.0.0.1/hook", "user name or password"),
        ("http://127.0.0.1/" + "a" * 2040, "at most 2048 characters"),
        ("http://127.0.0.1/a b", "without spaces"),
        ("https://example.com/hook", "not in billing's webhook allow-list"),
        ("http://127.0.0.1:99999/hook", "not a valid URL"),
    ],
)
async def test_a_bad_url_is_invalid_argument_naming_url(hooks, url, message):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await hooks.spend.SetWebhookEndpoint(
            spb.SetWebhookEndpointRequest(request_id=rid(), builder_id=builder(), url=url)
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_of(err.value) == "url"
    assert message in err.value.details()


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (spb.SetWebhookEndpointRequest(builder_id="b", url="http://127.0.0.1/x"), "request_id"),
        (spb.SetWebhookEndpointRequest(request_id="r", url="http://127.0.0.1/x"), "builder_id"),
        (spb.ListWebhookDeliveriesRequest(builder_id="b", page_size=1001), "page_size"),
        (spb.ListWebhookDeliveriesRequest(builder_id="b", alert_id="not an id!"), "alert_id"),
        (spb.ListWebhookDeliveriesRequest(builder_id="b", page_token="e30"), "page_token"),
        (spb.ListWebhookDeliveriesRequest(builder_id="b", page_token="%%%"), "page_token"),
    ],
)
async def test_other_bad_fields_are_invalid_argument_naming_the_field(hooks, request_, field):
    call = (
        hooks.spend.SetWebhookEndpoint
        if isinstance(request_, spb.SetWebhookEndpointRequest)
        else hooks.spend.ListWebhookDeliveries
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call(request_)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_of(err.value) == field


async def test_the_delivery_log_pages_newest_first_and_filters_by_alert(hooks):
    b = builder()
    await set_endpoint(hooks, b, "ok")
    ids = [await raise_alert(hooks, b) for _ in range(3)]
    for alert_id in ids:
        await settled(hooks, b, alert_id)

    first = await hooks.spend.ListWebhookDeliveries(
        spb.ListWebhookDeliveriesRequest(builder_id=b, page_size=2)
    )
    assert [d.alert_id for d in first.deliveries] == [ids[2], ids[1]]
    rest = await hooks.spend.ListWebhookDeliveries(
        spb.ListWebhookDeliveriesRequest(builder_id=b, page_size=2, page_token=first.next_page_token)
    )
    assert [d.alert_id for d in rest.deliveries] == [ids[0]] and rest.next_page_token == ""
    other = await hooks.spend.ListWebhookDeliveries(spb.ListWebhookDeliveriesRequest(builder_id=builder()))
    assert list(other.deliveries) == []


async def test_a_builder_cannot_read_another_builders_delivery_log(hooks):
    async with auth_channel(hooks.address, credential=token("builder", "b-mine")) as channel:
        spend = spend_pb2_grpc.SpendServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await spend.ListWebhookDeliveries(spb.ListWebhookDeliveriesRequest(builder_id="b-theirs"))
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        mine = await spend.ListWebhookDeliveries(spb.ListWebhookDeliveriesRequest(builder_id="b-mine"))
        assert list(mine.deliveries) == []


async def test_an_alert_of_a_builder_without_an_endpoint_queues_no_delivery(hooks):
    b = builder()
    alert_id = f"alt_{uuid.uuid4().hex}"
    async with hooks.engine.begin() as conn:
        await conn.execute(
            alerts.insert().values(
                id=alert_id,
                builder_id=b,
                customer_id="c1",
                kind="hard_cap_reached",
                dedupe_key=f"cap:{alert_id}",
                period_start=datetime(2026, 12, 1, tzinfo=UTC),
                currency_code="USD",
                amount=Decimal("100"),
                limit_amount=Decimal("100"),
                message="Customer c1 reached its cap.",
            )
        )
        assert await enqueue_delivery(conn, alert_id) is None
    reply = await hooks.spend.ListWebhookDeliveries(spb.ListWebhookDeliveriesRequest(builder_id=b))
    assert list(reply.deliveries) == []


async def test_two_billing_replicas_on_one_database_deliver_each_alert_exactly_once(
    hooks, fast_metering_address
):
    from billing.app import start

    second = await start(_settings(hooks.database_url, fast_metering_address))
    try:
        b = builder()
        secret = await set_endpoint(hooks, b, "busy")
        ids = [await raise_alert(hooks, b) for _ in range(40)]
        deliveries = [await settled(hooks, b, alert_id) for alert_id in ids]
    finally:
        await second.stop(0)
    assert {d.state for d in deliveries} == {DELIVERED}
    assert {d.attempt_count for d in deliveries} == {1}
    posts = Counter(r.alert_id for r in hooks.receiver.received if r.alert_id in set(ids))
    assert posts == Counter({alert_id: 1 for alert_id in ids})
    for got in hooks.receiver.received:
        if got.alert_id in set(ids):
            verify_signature(secret, got.body, got.signature)


async def test_a_url_outside_the_allow_list_at_delivery_time_is_never_posted_to(hooks):
    """The allow-list is checked again before every POST (an endpoint set before the list narrowed)."""
    b = builder()
    await set_endpoint(hooks, b, "ok")
    port = hooks.receiver.base_url.rsplit(":", 1)[1]
    async with hooks.engine.begin() as conn:  # "localhost" is not in the stack's list (127.0.0.1 only)
        await conn.execute(
            webhook_endpoints.update()
            .where(webhook_endpoints.c.builder_id == b)
            .values(url=f"http://localhost:{port}/ok")
        )
    alert_id = await raise_alert(hooks, b)

    delivery = await settled(hooks, b, alert_id)
    assert (delivery.state, delivery.attempt_count, delivery.last_status_code) == (FAILED, MAX_ATTEMPTS, 0)
    assert delivery.last_error == f"host localhost:{port} is not in BILLING_WEBHOOK_ALLOWED_HOSTS; not sent"
    assert hooks.receiver.of(alert_id) == []
