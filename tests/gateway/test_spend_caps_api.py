"""Spend caps in the request path, against real billing, metering and gateway servers (the providers are
the stand-ins): a request that would cross a hard cap is refused before any provider is called (HTTP
402 / RESOURCE_EXHAUSTED with a typed reason), DEGRADE serves the cheaper model, 64 concurrent clients
never push spend past the cap, and settled spend equals the metered usage priced at the plan to the
cent."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import grpc
import pytest

from common.money import from_money
from tests.gateway.conftest import bearer, chat_request, stream_request
from tests.gateway.spend_kit import (
    MARKUP,
    billing_server,
    cap_info,
    customer,
    metered_cost,
    settled,
    spend_stack,
    status,
)
from tollgate.billing.v1 import spend_pb2 as spb


@pytest.fixture(scope="module")
async def billing(make_database, metering_address):
    async with billing_server(make_database, metering_address) as b:
        yield b


@pytest.fixture(scope="module")
async def stack(make_stack, billing, metering_address):
    return await spend_stack(make_stack, billing, metering_address)


async def test_a_request_over_the_cap_is_refused_before_any_provider(stack) -> None:
    await customer(stack.billing, "tiny", "0.000001")
    secret, _ = await stack.create_key(customer_id="tiny")
    model = await stack.upsert_model([{"provider": "provider_a"}])
    before = stack.served()

    code, _, body = await stack.post_chat(
        secret, {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 64}
    )
    assert code == 402
    err = body["error"]
    assert err["type"] == err["code"] == "spend_cap_reached" and err["param"] is None
    limit = err["limit"]
    assert limit["scope"] == "customer" and Decimal(limit["hard_cap"]) == Decimal("0.000001")
    assert limit["currency_code"] == "USD" and limit["control_id"].startswith("spc_")
    assert limit["reset_time"].startswith("20")

    code, _, streamed = await stack.post_chat(
        secret,
        {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 64, "stream": True},
    )
    assert code == 402 and streamed["error"]["limit"] == limit

    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stack.inference.CreateChatCompletion(
            chat_request(model, max_tokens=64), metadata=bearer(secret), timeout=5
        )
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    ei = cap_info(info.value)
    assert ei.domain == "tollgate.gateway" and ei.reason == "SPEND_CAP_REACHED"
    assert dict(ei.metadata) == limit
    assert stack.served() == before  # no provider was called

    # A rate limit is RESOURCE_EXHAUSTED too, told apart by its reason (and 429 over HTTP).
    limited, _ = await stack.create_key(customer_id="tiny", rate_limits={"requests_per_minute": 1})
    await customer(stack.billing, "free1", None)
    free_secret, _ = await stack.create_key(customer_id="free1", rate_limits={"requests_per_minute": 1})
    await stack.inference.CreateChatCompletion(chat_request(model), metadata=bearer(free_secret), timeout=5)
    with pytest.raises(grpc.aio.AioRpcError) as rl:
        await stack.inference.CreateChatCompletion(
            chat_request(model), metadata=bearer(free_secret), timeout=5
        )
    assert rl.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert cap_info(rl.value).reason == "RATE_LIMITED"
    assert limited


async def test_a_test_key_and_a_customer_without_controls_hold_nothing(stack) -> None:
    await customer(stack.billing, "nocap", None)
    secret, _ = await stack.create_key(customer_id="nocap")
    model = await stack.upsert_model([{"provider": "provider_a"}])
    reply = await stack.inference.CreateChatCompletion(
        chat_request(model), metadata=bearer(secret), timeout=5
    )
    assert reply.choices
    capped = await customer(stack.billing, "capped-test", "0.000001")
    assert capped is not None
    from tollgate.gateway.v1 import admin_pb2

    test_secret, _ = await stack.create_key(customer_id="capped-test", mode=admin_pb2.API_KEY_MODE_TEST)
    reply = await stack.inference.CreateChatCompletion(
        chat_request(model, max_tokens=64), metadata=bearer(test_secret), timeout=5
    )
    assert reply.choices  # a test key is never held against the cap
    assert (await status(stack.billing, "capped-test")).active_lease_count == 0


async def test_degrade_serves_the_cheaper_model(stack) -> None:
    cheap = await stack.upsert_model([{"provider": "provider_b"}])
    dear = await stack.upsert_model(
        [{"provider": "provider_c", "prices": (Decimal("2000"), Decimal("8000"))}]
    )
    await customer(
        stack.billing,
        "degr",
        "0.05",
        on_cap=spb.CAP_ACTION_DEGRADE,
        degrade_model=cheap,
    )
    secret, _ = await stack.create_key(customer_id="degr")
    # The dear model's hold (~ 64 x 8000 / 1e6 = $0.51) cannot fit a $0.05 cap; the cheap one's can.
    reply = await stack.inference.CreateChatCompletion(
        chat_request(dear, max_tokens=64), metadata=bearer(secret), timeout=5
    )
    assert reply.route.model == cheap and reply.route.provider == "provider_b"
    st = await settled(stack.billing, "degr")
    cost = await metered_cost(stack.billing, "degr", 1)
    assert from_money(st.spent) == (cost * MARKUP).quantize(Decimal("0.000000001"), rounding="ROUND_CEILING")


async def test_64_clients_near_the_cap_never_exceed_it_and_spend_equals_metered_usage(stack) -> None:
    cap = Decimal("0.02")
    await customer(stack.billing, "hammer", str(cap))
    secret, _ = await stack.create_key(customer_id="hammer")
    # cheapest first (b), failing a third of the time so requests fail over to the dearer c.
    model = await stack.upsert_model([{"provider": "provider_b"}, {"provider": "provider_c"}])
    stack.providers["provider_b"].control(error_rate=0.33, seed=7)
    outcomes: dict[str, int] = {}
    dearer_before = stack.served()["provider_c"]

    async def client(i: int) -> None:
        for j in range(5):
            try:
                await stack.inference.CreateChatCompletion(
                    chat_request(model, f"request {i} {j}", max_tokens=16),
                    metadata=bearer(secret),
                    timeout=10,
                )
                outcomes["ok"] = outcomes.get("ok", 0) + 1
            except grpc.aio.AioRpcError as e:
                name = e.code().name
                if e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                    assert cap_info(e).reason == "SPEND_CAP_REACHED"
                outcomes[name] = outcomes.get(name, 0) + 1

    try:
        await asyncio.gather(*(client(i) for i in range(64)))
    finally:
        stack.providers["provider_b"].control(error_rate=0.0)
    assert outcomes.get("ok", 0) > 10 and outcomes.get("RESOURCE_EXHAUSTED", 0) > 0, outcomes
    assert set(outcomes) <= {"ok", "RESOURCE_EXHAUSTED"}, outcomes
    assert stack.served()["provider_c"] > dearer_before  # some requests failed over to the dearer model

    st = await settled(stack.billing, "hammer")
    assert from_money(st.held) == 0 and st.active_lease_count == 0
    spent = from_money(st.spent)
    assert 0 < spent <= cap
    cost = await metered_cost(stack.billing, "hammer", outcomes["ok"])
    priced = cost * MARKUP
    # Each request's price is rounded up to the nano once: at most a nano per request above exact.
    assert priced <= spent <= priced + Decimal("0.000000001") * 320
    assert spent.quantize(Decimal("0.01")) == priced.quantize(Decimal("0.01"))


async def test_a_stream_settles_to_its_metered_price_and_a_cancelled_one_releases(stack) -> None:
    await customer(stack.billing, "streamer", "1")
    secret, _ = await stack.create_key(customer_id="streamer")
    model = await stack.upsert_model([{"provider": "provider_a"}])
    chunks = [
        c
        async for c in stack.inference.StreamChatCompletion(
            stream_request(model, max_tokens=16), metadata=bearer(secret), timeout=5
        )
    ]
    assert chunks
    # A caller that goes away mid-stream: its partial usage is recorded and settled, the rest released.
    stack.providers["provider_a"].control(inter_token_ms=200, completion_tokens=20)
    try:
        call = stack.inference.StreamChatCompletion(
            stream_request(model, max_tokens=16), metadata=bearer(secret), timeout=5
        )
        async for _ in call:
            break
        call.cancel()
    finally:
        stack.providers["provider_a"].control(inter_token_ms=0, completion_tokens=8)
    st = await settled(stack.billing, "streamer")
    assert from_money(st.held) == 0 and st.active_lease_count == 0
    cost = await metered_cost(stack.billing, "streamer", 1)
    assert cost > 0
    assert from_money(st.spent) == (cost * MARKUP).quantize(Decimal("0.000000001"), rounding="ROUND_CEILING")


async def test_concurrent_first_requests_share_one_lease_acquisition(stack) -> None:
    """40 requests of a new customer at once: one AcquireSpendLease (its lease covers 50 holds), the
    other 39 wait for it instead of asking billing themselves."""
    from prometheus_client import REGISTRY

    def granted() -> float:
        return (
            REGISTRY.get_sample_value(
                "tollgate_gateway_spend_lease_acquisition_seconds_count", {"outcome": "granted"}
            )
            or 0.0
        )

    await customer(stack.billing, "crowd", "100")
    secret, _ = await stack.create_key(customer_id="crowd")
    model = await stack.upsert_model([{"provider": "provider_a"}])
    before = granted()
    replies = await asyncio.gather(
        *(
            stack.inference.CreateChatCompletion(
                chat_request(model, "same prompt", max_tokens=16), metadata=bearer(secret), timeout=10
            )
            for _ in range(40)
        )
    )
    assert all(r.choices for r in replies)
    assert granted() - before == 1
    st = await settled(stack.billing, "crowd")
    assert from_money(st.held) == 0 and st.active_lease_count == 0
    cost = await metered_cost(stack.billing, "crowd", 40)
    assert from_money(st.spent) >= cost * MARKUP
    assert from_money(st.spent) - cost * MARKUP <= Decimal("0.000000040")
