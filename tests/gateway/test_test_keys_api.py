"""Test keys: a builder's own testing through the gateway is recorded as metering's TEST status, every
attempt of it (failed ones too, their outcome in the attempt_status tag), and a key is test or live for
its whole life, which its secret's prefix tells."""

from __future__ import annotations

import re
import uuid
from decimal import Decimal

import asyncpg
import grpc
import pytest
from grpc_status import rpc_status

from tests.gateway.conftest import bearer, chat_request
from tests.gateway.test_usage_outbox import cost, wait_for_events
from tollgate.gateway.v1 import admin_pb2, inference_pb2
from tollgate.metering.v1 import metering_pb2

S = inference_pb2.RoutingStrategy
TEST = admin_pb2.API_KEY_MODE_TEST
LIVE = admin_pb2.API_KEY_MODE_LIVE


@pytest.fixture(scope="module")
async def stack(make_stack, metering_address):
    return await make_stack(metering_address=metering_address, relay_enabled=True)


@pytest.fixture(autouse=True)
def fresh_providers(stack):
    stack.reset_providers()
    yield
    stack.reset_providers()


def new_builder() -> str:
    return f"b-{uuid.uuid4().hex[:8]}"


def field_of(err: grpc.aio.AioRpcError) -> str:
    from google.rpc import error_details_pb2

    status = rpc_status.from_call(err)
    assert status is not None
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            info = error_details_pb2.BadRequest()
            detail.Unpack(info)
            return info.field_violations[0].field
    return ""


async def test_a_test_keys_traffic_through_the_openai_client_is_recorded_as_test_events(
    stack, metering_address
):
    builder = new_builder()
    secret, key = await stack.create_key(builder_id=builder, mode=TEST)
    model = await stack.upsert_model([{"provider": "provider_a"}])
    client = stack.openai(secret)
    replies = [
        await client.chat.completions.create(model=model, messages=[{"role": "user", "content": f"hi {i}"}])
        for i in range(3)
    ]
    events = await wait_for_events(metering_address, builder, 3)
    assert len(events) == 3
    assert {e.status for e in events} == {metering_pb2.EVENT_STATUS_TEST}
    assert {e.tags["attempt_status"] for e in events} == {"succeeded"}
    assert {e.customer_id for e in events} == {key.customer_id}
    # the provider cost is still measured exactly: it is the builder's own cost of testing
    expected = sum(cost("provider_a", r.usage.prompt_tokens, r.usage.completion_tokens) for r in replies)
    assert sum(Decimal(e.quantities["provider_cost"]) for e in events) == expected > 0


async def test_a_test_keys_streamed_answer_is_a_test_event_too(stack, metering_address):
    builder = new_builder()
    secret, _ = await stack.create_key(builder_id=builder, mode=TEST)
    model = await stack.upsert_model([{"provider": "provider_b"}])
    stream = await stack.openai(secret).chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "stream it"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    usage = [chunk.usage async for chunk in stream if chunk.usage is not None]
    assert len(usage) == 1
    (event,) = await wait_for_events(metering_address, builder, 1)
    assert event.status == metering_pb2.EVENT_STATUS_TEST
    assert event.tags["attempt_status"] == "succeeded"
    assert Decimal(event.quantities["provider_cost"]) == cost(
        "provider_b", usage[0].prompt_tokens, usage[0].completion_tokens
    )


async def test_a_failed_attempt_of_a_test_key_is_a_test_event_not_a_failed_one(stack, metering_address):
    builder = new_builder()
    secret, _ = await stack.create_key(builder_id=builder, mode=TEST)
    model = await stack.upsert_model([{"provider": "provider_a"}, {"provider": "provider_b"}])
    stack.providers["provider_a"].control(fail_next=1)
    rid = f"req-{uuid.uuid4().hex}"
    reply = await stack.inference.CreateChatCompletion(
        chat_request(model, request_id=rid, routing_strategy=S.ROUTING_STRATEGY_FIXED),
        metadata=bearer(secret),
        timeout=10,
    )
    assert reply.route.attempt == 2
    events = {e.id: e for e in await wait_for_events(metering_address, builder, 2)}
    failed, served = events[f"{rid}:1"], events[f"{rid}:2"]
    assert failed.status == metering_pb2.EVENT_STATUS_TEST
    assert failed.tags["attempt_status"] == "failed" and failed.tags["error"]
    assert served.status == metering_pb2.EVENT_STATUS_TEST
    assert served.tags["attempt_status"] == "succeeded"


async def test_a_live_keys_events_keep_succeeded_and_failed_without_an_attempt_status_tag(
    stack, metering_address
):
    builder = new_builder()
    secret, key = await stack.create_key(builder_id=builder)  # mode unset: live
    assert key.mode == LIVE
    model = await stack.upsert_model([{"provider": "provider_a"}, {"provider": "provider_b"}])
    stack.providers["provider_a"].control(fail_next=1)
    rid = f"req-{uuid.uuid4().hex}"
    await stack.inference.CreateChatCompletion(
        chat_request(model, request_id=rid, routing_strategy=S.ROUTING_STRATEGY_FIXED),
        metadata=bearer(secret),
        timeout=10,
    )
    events = {e.id: e for e in await wait_for_events(metering_address, builder, 2)}
    assert events[f"{rid}:1"].status == metering_pb2.EVENT_STATUS_FAILED
    assert events[f"{rid}:2"].status == metering_pb2.EVENT_STATUS_SUCCEEDED
    assert all("attempt_status" not in e.tags for e in events.values())


async def test_the_secret_prefix_tells_a_test_key_from_a_live_one(stack):
    test_secret, test_key = await stack.create_key(builder_id=new_builder(), mode=TEST)
    live_secret, live_key = await stack.create_key(builder_id=new_builder(), mode=LIVE)
    assert re.fullmatch(r"tg_test_[A-Za-z0-9_-]{43}", test_secret)
    assert re.fullmatch(r"tg_[A-Za-z0-9_-]{43}", live_secret) and not live_secret.startswith("tg_test_")
    assert test_key.mode == TEST and live_key.mode == LIVE
    assert test_key.secret_prefix == test_secret[:13] and test_key.secret_prefix.startswith("tg_test_")
    assert live_key.secret_prefix == live_secret[:8]


async def test_a_test_key_stays_test_through_retry_listing_and_revocation(stack):
    builder = new_builder()
    rid = uuid.uuid4().hex
    _, key = await stack.create_key(builder_id=builder, request_id=rid, mode=TEST)
    # the same request id asking for a live key is another body: refused, not a switch
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stack.create_key(builder_id=builder, request_id=rid, mode=LIVE)
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    again_secret, again = await stack.create_key(builder_id=builder, request_id=rid, mode=TEST)
    assert again.id == key.id and again.mode == TEST and again_secret == ""
    listed = await stack.admin.ListApiKeys(
        admin_pb2.ListApiKeysRequest(builder_id=builder, include_revoked=True),
        metadata=stack.admin_metadata,
        timeout=5,
    )
    assert [(k.id, k.mode) for k in listed.api_keys] == [(key.id, TEST)]
    revoked = await stack.admin.RevokeApiKey(
        admin_pb2.RevokeApiKeyRequest(request_id=uuid.uuid4().hex, api_key_id=key.id),
        metadata=stack.admin_metadata,
        timeout=5,
    )
    assert revoked.api_key.mode == TEST and revoked.api_key.state == admin_pb2.API_KEY_STATE_REVOKED


def test_no_admin_request_but_create_api_key_carries_a_mode():
    """No RPC can switch a key: ApiKeyMode is an input of CreateApiKey only."""
    service = admin_pb2.DESCRIPTOR.services_by_name["GatewayAdminService"]
    carrying = set()

    def walk(message, path, seen):
        for f in message.fields:
            if f.enum_type is not None and f.enum_type.name == "ApiKeyMode":
                carrying.add(path)
            if f.message_type is not None and f.message_type.full_name not in seen:
                walk(f.message_type, path, seen | {f.message_type.full_name})

    for method in service.methods:
        walk(method.input_type, method.name, {method.input_type.full_name})
    assert carrying == {"CreateApiKey"}


async def test_the_database_refuses_to_switch_a_stored_key_between_test_and_live(stack):
    _, test_key = await stack.create_key(builder_id=new_builder(), mode=TEST)
    _, live_key = await stack.create_key(builder_id=new_builder(), mode=LIVE)
    conn = await asyncpg.connect(stack.database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        for key_id, flipped in ((test_key.id, False), (live_key.id, True)):
            with pytest.raises(asyncpg.CheckViolationError, match="cannot change"):
                await conn.execute("UPDATE api_keys SET test = $1 WHERE id = $2", flipped, key_id)
        # other columns still update (revocation is an UPDATE too)
        await conn.execute("UPDATE api_keys SET display_name = 'renamed' WHERE id = $1", test_key.id)
        stored = {r["id"]: r["test"] for r in await conn.fetch("SELECT id, test FROM api_keys")}
    finally:
        await conn.close()
    assert stored[test_key.id] is True and stored[live_key.id] is False


@pytest.mark.parametrize("mode", [3, 99, -1])
async def test_an_unknown_mode_is_invalid_argument_on_mode(stack, mode):
    req = admin_pb2.CreateApiKeyRequest(
        request_id=uuid.uuid4().hex, builder_id=new_builder(), app_id="a", customer_id="c", mode=mode
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stack.admin.CreateApiKey(req, metadata=stack.admin_metadata, timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_of(err.value) == "mode"
