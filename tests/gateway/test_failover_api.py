"""Failover before any output, none after: every error kind of a real upstream, plus the breaker.

Test settings: attempt timeout 1 s, breaker opens after 3 consecutive failures, cooldown 0.5 s.
Models use the FIXED strategy with provider_a first, provider_b second, so "failed over" is exact.
"""

from __future__ import annotations

import asyncio
import socket
import uuid

import grpc
import pytest

from tests.gateway.conftest import bearer, chat_request, stream_request
from tollgate.gateway.v1 import admin_pb2, inference_pb2

S = inference_pb2.RoutingStrategy
B = admin_pb2.BreakerState
A_THEN_B = [{"provider": "provider_a"}, {"provider": "provider_b"}]


@pytest.fixture(scope="module")
async def stack(make_stack):
    return await make_stack()


@pytest.fixture(scope="module")
async def secret(stack):
    secret, _ = await stack.create_key()
    return secret


@pytest.fixture(autouse=True)
def fresh_providers(stack):
    stack.reset_providers()
    yield
    stack.reset_providers()


async def call(stack, secret, model, **kw):
    return await stack.inference.CreateChatCompletion(
        chat_request(model, routing_strategy=S.ROUTING_STRATEGY_FIXED, **kw),
        metadata=bearer(secret),
        timeout=10,
    )


async def stream(stack, secret, model, **kw):
    """Collects a gRPC stream: (content, summary or None, error or None)."""
    text, summary = "", None
    try:
        async for msg in stack.inference.StreamChatCompletion(
            stream_request(model, routing_strategy=S.ROUTING_STRATEGY_FIXED, **kw),
            metadata=bearer(secret),
            timeout=10,
        ):
            if msg.HasField("delta"):
                text += msg.delta.content
            else:
                summary = msg.summary
    except grpc.aio.AioRpcError as exc:
        return text, summary, exc
    return text, summary, None


@pytest.mark.parametrize("kind", ["429", "500", "502", "503", "timeout", "reset", "midstream"])
async def test_unary_fails_over_to_the_next_offering_on(stack, secret, kind):
    model = await stack.upsert_model(A_THEN_B)
    stack.providers["provider_a"].control(fail_next=1, error_kinds=[kind])
    reply = await call(stack, secret, model)
    assert (reply.route.provider, reply.route.attempt) == ("provider_b", 2)
    assert reply.choices[0].message.content.startswith("provider_b ")
    outcome = kind if kind in ("timeout", "reset", "midstream") else f"error_{kind}"
    assert stack.providers["provider_a"].stats()["by_outcome"] == {outcome: 1}
    health = await stack.route_health(model)
    assert health["provider_a"].failure_count == 1
    assert health["provider_a"].last_error


@pytest.mark.parametrize("kind", ["429", "503", "timeout", "reset"])
async def test_stream_fails_over_before_the_first_delta(stack, secret, kind):
    model = await stack.upsert_model(A_THEN_B)
    stack.providers["provider_a"].control(fail_next=1, error_kinds=[kind])
    text, summary, error = await stream(stack, secret, model)
    assert error is None
    assert text.startswith("provider_b ")
    assert (summary.route.provider, summary.route.attempt) == ("provider_b", 2)
    assert summary.usage.output_tokens == 8


async def test_connect_refused_fails_over(stack, secret):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]  # closed again: nothing listens there
    name = f"dead-{uuid.uuid4().hex[:6]}"
    await stack.admin.UpsertProvider(
        admin_pb2.UpsertProviderRequest(
            request_id=uuid.uuid4().hex,
            provider=admin_pb2.Provider(name=name, base_url=f"http://127.0.0.1:{dead}/v1"),
        ),
        metadata=stack.admin_metadata,
        timeout=5,
    )
    model = await stack.upsert_model(
        [{"provider": name, "id": "dead", "prices": ("0", "0")}, {"provider": "provider_b"}]
    )
    reply = await call(stack, secret, model)
    assert (reply.route.provider, reply.route.attempt) == ("provider_b", 2)


async def test_upstream_400_is_returned_not_retried(stack, secret):
    model = await stack.upsert_model(A_THEN_B)
    stack.providers["provider_a"].control(fail_next=1, error_kinds=["400"])
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call(stack, secret, model)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert stack.providers["provider_b"].stats()["requests"] == 0
    # A caller's bad request says nothing about the provider's health.
    assert (await stack.route_health(model))["provider_a"].state == B.BREAKER_STATE_CLOSED


async def test_every_offering_failing_is_unavailable_naming_the_attempts(stack, secret):
    model = await stack.upsert_model(A_THEN_B)
    stack.providers["provider_a"].control(fail_next=1, error_kinds=["500"])
    stack.providers["provider_b"].control(fail_next=1, error_kinds=["503"])
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call(stack, secret, model)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "sk-upstream" not in err.value.details()


async def test_no_failover_after_the_stream_started(stack, secret):
    model = await stack.upsert_model(A_THEN_B)
    stack.providers["provider_a"].control(fail_next=1, error_kinds=["midstream"], midstream_after=2)
    text, summary, error = await stream(stack, secret, model)
    assert text == "provider_a says"  # what was sent stays sent; no silent switch to provider_b
    assert summary is None
    assert error is not None and error.code() == grpc.StatusCode.UNAVAILABLE
    assert error.details()
    assert stack.providers["provider_b"].stats()["requests"] == 0


async def test_http_stream_failure_after_output_ends_without_done(stack, secret):
    model = await stack.upsert_model(A_THEN_B)
    stack.providers["provider_a"].control(fail_next=1, error_kinds=["midstream"], midstream_after=2)
    body = {
        "model": model,
        "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": "hi"}],
        "route": "fixed",
    }
    async with stack.http.post(
        f"{stack.http_url}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {secret}"}
    ) as r:
        assert r.status == 200
        raw = (await r.read()).decode()
    assert "provider_a" in raw
    assert "[DONE]" not in raw
    assert '"error"' in raw
    assert stack.providers["provider_b"].stats()["requests"] == 0


async def test_breaker_opens_after_repeated_failures_half_opens_and_closes_on_a_good_probe(stack, secret):
    model = await stack.upsert_model(A_THEN_B)
    a = stack.providers["provider_a"]
    a.control(error_rate=1.0, error_kinds=["500"])
    for _ in range(3):
        assert (await call(stack, secret, model)).route.provider == "provider_b"
    health = await stack.route_health(model)
    assert health["provider_a"].state == B.BREAKER_STATE_OPEN
    assert health["provider_a"].consecutive_failures == 3
    assert health["provider_a"].HasField("open_time")
    assert health["provider_b"].state == B.BREAKER_STATE_CLOSED

    # Open: provider_a is skipped entirely, the caller sees provider_b at the first attempt.
    reply = await call(stack, secret, model)
    assert (reply.route.provider, reply.route.attempt) == ("provider_b", 1)
    assert a.stats()["requests"] == 3

    await asyncio.sleep(0.7)  # cooldown is 0.5 s
    assert (await stack.route_health(model))["provider_a"].state == B.BREAKER_STATE_HALF_OPEN

    a.control(error_rate=0.0)
    reply = await call(stack, secret, model)  # the probe
    assert reply.route.provider == "provider_a"
    health = await stack.route_health(model)
    assert health["provider_a"].state == B.BREAKER_STATE_CLOSED
    assert health["provider_a"].consecutive_failures == 0


async def test_failed_probe_reopens_the_breaker(stack, secret):
    model = await stack.upsert_model(A_THEN_B)
    a = stack.providers["provider_a"]
    a.control(error_rate=1.0, error_kinds=["503"])
    for _ in range(3):
        await call(stack, secret, model)
    await asyncio.sleep(0.7)
    reply = await call(stack, secret, model)  # probe fails, b answers
    assert (reply.route.provider, reply.route.attempt) == ("provider_b", 2)
    assert a.stats()["requests"] == 4
    assert (await stack.route_health(model))["provider_a"].state == B.BREAKER_STATE_OPEN
    reply = await call(stack, secret, model)
    assert reply.route.attempt == 1
    assert a.stats()["requests"] == 4
