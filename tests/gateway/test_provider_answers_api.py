"""What a provider answers cannot make a paid answer free or break the gateway: zero usage is estimated,
a 200 that is not a completion fails over as an upstream error, and a keep-alive connection the
provider closed is retried once without blaming the provider."""

from __future__ import annotations

import uuid
from decimal import Decimal

import grpc
import pytest

from tests.gateway.conftest import bearer, chat_request, stream_request
from tests.gateway.test_usage_outbox import wait_for_events
from tollgate.gateway.v1 import inference_pb2
from tollgate.metering.v1 import metering_pb2

S = inference_pb2.RoutingStrategy


@pytest.fixture(scope="module")
async def stack(make_stack, metering_address):
    return await make_stack(metering_address=metering_address, relay_enabled=True)


@pytest.fixture(autouse=True)
def fresh_providers(stack):
    stack.reset_providers()
    yield
    stack.reset_providers()


async def new_builder(stack) -> tuple[str, str]:
    builder = f"b-{uuid.uuid4().hex[:8]}"
    secret, _ = await stack.create_key(builder_id=builder)
    return builder, secret


async def test_a_provider_reporting_zero_usage_for_an_answer_is_estimated_and_billed(stack, metering_address):
    builder, secret = await new_builder(stack)
    model = await stack.upsert_model([{"provider": "provider_a"}])
    stack.providers["provider_a"].control(zero_usage=True, completion_tokens=8)
    text = "twelve characters and then some more"  # 36 characters -> 9 tokens at 4 a token
    reply = await stack.inference.CreateChatCompletion(
        chat_request(model, text), metadata=bearer(secret), timeout=10
    )
    answer = reply.choices[0].message.content
    assert answer  # a non-empty answer...
    assert reply.usage.estimated is True  # ...for which "0 tokens" is not believed
    assert reply.usage.input_tokens == 9
    assert reply.usage.output_tokens == (len(answer) + 3) // 4
    (event,) = await wait_for_events(metering_address, builder, 1)
    assert event.tags["tokens_estimated"] == "true"
    assert Decimal(event.quantities["output_tokens"]) == reply.usage.output_tokens
    assert Decimal(event.quantities["provider_cost"]) > 0


async def test_a_streamed_answer_with_zero_usage_is_estimated_too(stack, metering_address):
    builder, secret = await new_builder(stack)
    model = await stack.upsert_model([{"provider": "provider_b"}])
    stack.providers["provider_b"].control(zero_usage=True)
    messages = [
        m async for m in stack.inference.StreamChatCompletion(stream_request(model), metadata=bearer(secret))
    ]
    summary = messages[-1].summary
    assert summary.usage.estimated is True and summary.usage.output_tokens > 0
    (event,) = await wait_for_events(metering_address, builder, 1)
    assert event.tags["tokens_estimated"] == "true"
    assert Decimal(event.quantities["provider_cost"]) > 0


@pytest.mark.parametrize("kind", ["not_json", "no_choices", "bad_types"])
async def test_a_malformed_200_fails_over_and_is_recorded_as_a_failed_attempt(stack, metering_address, kind):
    builder, secret = await new_builder(stack)
    model = await stack.upsert_model([{"provider": "provider_a"}, {"provider": "provider_b"}])
    stack.providers["provider_a"].control(fail_next=1, error_kinds=[kind])
    rid = f"req-{uuid.uuid4().hex}"
    reply = await stack.inference.CreateChatCompletion(
        chat_request(model, request_id=rid, routing_strategy=S.ROUTING_STRATEGY_FIXED),
        metadata=bearer(secret),
        timeout=10,
    )
    assert reply.route.provider == "provider_b" and reply.route.attempt == 2
    events = {e.id: e for e in await wait_for_events(metering_address, builder, 2)}
    failed = events[f"{rid}:1"]
    assert failed.status == metering_pb2.EVENT_STATUS_FAILED
    assert failed.tags["provider"] == "provider_a" and failed.tags["error"] == "bad response"
    assert events[f"{rid}:2"].status == metering_pb2.EVENT_STATUS_SUCCEEDED
    health = await stack.route_health(model)
    assert health["provider_a"].failure_count == 1  # held against the provider, like a 5xx


async def test_a_malformed_200_from_the_only_offering_is_a_502(stack):
    _, secret = await new_builder(stack)
    model = await stack.upsert_model([{"provider": "provider_c"}])
    stack.providers["provider_c"].control(fail_next=1, error_kinds=["bad_types"])
    status, _, err = await stack.post_chat(
        secret, {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    )
    assert status == 502, err
    assert err["error"]["code"] == "upstream_error"
    assert "bad response" in err["error"]["message"]


async def test_a_stale_keep_alive_connection_is_retried_once_and_not_held_against_the_provider(
    stack, metering_address
):
    builder, secret = await new_builder(stack)
    model = await stack.upsert_model([{"provider": "provider_a"}])
    provider = stack.providers["provider_a"]
    # Warm the pool: the connection this answer came on goes back to the gateway's idle list.
    await stack.inference.CreateChatCompletion(chat_request(model), metadata=bearer(secret), timeout=10)
    provider.control(drop_reused=True)
    rid = f"req-{uuid.uuid4().hex}"
    reply = await stack.inference.CreateChatCompletion(
        chat_request(model, request_id=rid), metadata=bearer(secret), timeout=10
    )
    assert reply.route.provider == "provider_a" and reply.route.attempt == 1
    assert provider.stats()["by_outcome"].get("dropped_reused", 0) >= 1  # the stale connection was tried
    health = await stack.route_health(model)
    assert health["provider_a"].failure_count == 0
    assert health["provider_a"].consecutive_failures == 0
    events = await wait_for_events(metering_address, builder, 2)
    mine = [e for e in events if e.id.startswith(rid)]
    assert [(e.id, e.status) for e in mine] == [(f"{rid}:1", metering_pb2.EVENT_STATUS_SUCCEEDED)]


async def test_a_stale_connection_on_a_stream_is_retried_too(stack):
    _, secret = await new_builder(stack)
    model = await stack.upsert_model([{"provider": "provider_b"}])
    await stack.inference.CreateChatCompletion(chat_request(model), metadata=bearer(secret), timeout=10)
    stack.providers["provider_b"].control(drop_reused=True)
    try:
        messages = [
            m
            async for m in stack.inference.StreamChatCompletion(
                stream_request(model), metadata=bearer(secret)
            )
        ]
    except grpc.aio.AioRpcError as exc:  # pragma: no cover - the failure this test exists to catch
        raise AssertionError(exc.details()) from None
    assert messages[-1].summary.route.attempt == 1
    assert (await stack.route_health(model))["provider_b"].failure_count == 0
