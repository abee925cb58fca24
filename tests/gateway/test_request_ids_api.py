"""A client-supplied request id never buys an unbilled answer: reused for another request it is refused
before a provider is paid; retried after a failure, or sent by another builder, it is answered and
billed under event ids of its own (README "Request ids")."""

from __future__ import annotations

import uuid
from decimal import Decimal

import grpc
import pytest

from tests.gateway.conftest import PRICES, bearer, chat_request
from tests.gateway.test_usage_outbox import wait_for_events
from tollgate.metering.v1 import metering_pb2

MILLION = Decimal(1_000_000)


def cost(provider: str, input_tokens: int, output_tokens: int) -> Decimal:
    i, o = PRICES[provider]
    return (input_tokens * i + output_tokens * o) / MILLION


@pytest.fixture(scope="module")
async def stack(make_stack, metering_address):
    return await make_stack(metering_address=metering_address, relay_enabled=True)


@pytest.fixture(autouse=True)
def fresh_providers(stack):
    stack.reset_providers()
    yield
    stack.reset_providers()


def body(model: str, text: str = "hello there") -> dict:
    return {"model": model, "messages": [{"role": "user", "content": text}]}


async def test_the_same_request_id_with_a_different_body_is_refused_before_any_provider_is_called(
    stack, metering_address
):
    builder = f"b-{uuid.uuid4().hex[:8]}"
    secret, _ = await stack.create_key(builder_id=builder)
    model = await stack.upsert_model([{"provider": "provider_a"}])
    rid = f"req-{uuid.uuid4().hex}"
    headers = {"x-tollgate-request-id": rid}
    status, _, first = await stack.post_chat(secret, body(model, "first question"), headers)
    assert status == 200, first
    calls = stack.providers["provider_a"].stats()["requests"]

    status, _, err = await stack.post_chat(secret, body(model, "a different question"), headers)
    assert status == 409, err
    assert err["error"]["code"] == "request_id_reused"
    assert err["error"]["param"] == "request_id"
    with pytest.raises(grpc.aio.AioRpcError) as rpc:
        await stack.inference.CreateChatCompletion(
            chat_request(model, "yet another question", request_id=rid), metadata=bearer(secret), timeout=10
        )
    assert rpc.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "request_id" in rpc.value.details()
    assert stack.providers["provider_a"].stats()["requests"] == calls  # nobody was paid for the refusals

    events = await wait_for_events(metering_address, builder, 1)
    assert [e.id for e in events] == [f"{rid}:1"]  # the one answer, billed


async def test_a_retry_with_the_same_request_id_after_a_502_is_answered_and_billed(stack, metering_address):
    builder = f"b-{uuid.uuid4().hex[:8]}"
    secret, _ = await stack.create_key(builder_id=builder)
    model = await stack.upsert_model([{"provider": "provider_b"}])
    rid = f"req-{uuid.uuid4().hex}"
    headers = {"x-tollgate-request-id": rid}
    stack.providers["provider_b"].control(fail_next=1, error_kinds=["503"])
    status, _, err = await stack.post_chat(secret, body(model), headers)
    assert status == 502, err

    status, resp_headers, ok = await stack.post_chat(secret, body(model), headers)
    assert status == 200, ok
    # the first call reserved attempts 1-6 (GATEWAY_MAX_ATTEMPTS) and used 1; the retry starts at 7
    assert ok["tollgate"]["attempt"] == 7
    assert resp_headers["x-tollgate-attempt"] == "7"

    events = {e.id: e for e in await wait_for_events(metering_address, builder, 2)}
    assert set(events) == {f"{rid}:1", f"{rid}:7"}
    assert events[f"{rid}:1"].status == metering_pb2.EVENT_STATUS_FAILED
    paid = events[f"{rid}:7"]
    assert paid.status == metering_pb2.EVENT_STATUS_SUCCEEDED
    # "hello there" is 2 prompt tokens at the stand-in; it answers 8 tokens
    assert Decimal(paid.quantities["provider_cost"]) == cost("provider_b", 2, 8)


async def test_the_same_request_id_from_another_builder_is_its_own_request_and_billed(
    stack, metering_address
):
    rid = f"req-{uuid.uuid4().hex}"
    model = await stack.upsert_model([{"provider": "provider_a"}])
    builders = [f"b-{uuid.uuid4().hex[:8]}" for _ in range(2)]
    for builder in builders:
        secret, _ = await stack.create_key(builder_id=builder)
        status, _, ok = await stack.post_chat(secret, body(model), {"x-tollgate-request-id": rid})
        assert status == 200, ok
        assert ok["tollgate"]["attempt"] == 1  # event ids are scoped by builder: no collision
    for builder in builders:
        (event,) = await wait_for_events(metering_address, builder, 1)
        assert event.id == f"{rid}:1" and event.builder_id == builder
        assert event.status == metering_pb2.EVENT_STATUS_SUCCEEDED
        assert Decimal(event.quantities["provider_cost"]) == cost("provider_a", 2, 8)
