"""Routing over real gRPC and HTTP with three stand-in providers: strategies, preferences, fallbacks.

Prices (per million tokens): provider_b is cheapest, then provider_a, then provider_c. Which provider
served is read both from the gateway's answer (route) and from the stand-ins' own counters.
"""

from __future__ import annotations

import grpc
import pytest

from tests.gateway.conftest import bearer, chat_request
from tollgate.gateway.v1 import inference_pb2

ALL = [{"provider": "provider_a"}, {"provider": "provider_b"}, {"provider": "provider_c"}]
S = inference_pb2.RoutingStrategy


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
        chat_request(model, **kw), metadata=bearer(secret), timeout=10
    )


async def test_default_strategy_is_cheapest_first(stack, secret):
    model = await stack.upsert_model(ALL)
    reply = await call(stack, secret, model)
    assert reply.route.provider == "provider_b"
    assert reply.route.offering_id == "off_b"
    assert reply.route.upstream_model == "provider_b-up"
    assert reply.route.attempt == 1
    assert reply.choices[0].message.content.startswith("provider_b ")
    assert stack.served() == {"provider_a": 0, "provider_b": 1, "provider_c": 0}
    assert stack.providers["provider_b"].stats()["last_request"]["model"] == "provider_b-up"


async def test_cheapest_counts_input_and_output_prices(stack, secret):
    # a is cheaper on input, c is cheaper on output; with a long answer expected, output price decides.
    model = await stack.upsert_model(
        [
            {"provider": "provider_a", "prices": ("0.10", "5.00")},
            {"provider": "provider_c", "prices": ("1.00", "1.00")},
        ]
    )
    reply = await call(stack, secret, model, max_tokens=1000, routing_strategy=S.ROUTING_STRATEGY_CHEAPEST)
    assert reply.route.provider == "provider_c"


async def test_fixed_strategy_follows_catalog_order(stack, secret):
    model = await stack.upsert_model([ALL[2], ALL[0], ALL[1]])
    reply = await call(stack, secret, model, routing_strategy=S.ROUTING_STRATEGY_FIXED)
    assert reply.route.provider == "provider_c"
    assert stack.served() == {"provider_a": 0, "provider_b": 0, "provider_c": 1}


async def test_latency_strategy_converges_on_the_fastest_offering(stack, secret):
    stack.providers["provider_a"].control(latency_ms=40)
    stack.providers["provider_b"].control(latency_ms=20)
    stack.providers["provider_c"].control(latency_ms=0)
    model = await stack.upsert_model(ALL)
    for _ in range(4):  # unobserved offerings go first, so each gets measured
        await call(stack, secret, model, routing_strategy=S.ROUTING_STRATEGY_LATENCY)
    routes = [
        (await call(stack, secret, model, routing_strategy=S.ROUTING_STRATEGY_LATENCY)).route.provider
        for _ in range(3)
    ]
    assert routes == ["provider_c"] * 3
    health = await stack.route_health(model)
    assert 0 < health["provider_c"].ewma_latency_ms < health["provider_b"].ewma_latency_ms
    assert health["provider_b"].ewma_latency_ms < health["provider_a"].ewma_latency_ms
    assert health["provider_a"].ewma_latency_ms >= 40


async def test_preference_order_puts_named_providers_first(stack, secret):
    model = await stack.upsert_model(ALL)
    prefs = inference_pb2.ProviderPreferences(order=["provider_c", "provider_a"])
    reply = await call(stack, secret, model, provider_preferences=prefs)
    assert reply.route.provider == "provider_c"
    # When the first preference fails, the second is next, ahead of the cheaper provider_b.
    stack.providers["provider_c"].control(fail_next=1, error_kinds=["503"])
    reply = await call(stack, secret, model, provider_preferences=prefs)
    assert (reply.route.provider, reply.route.attempt) == ("provider_a", 2)


async def test_preference_only_restricts_and_never_falls_outside(stack, secret):
    model = await stack.upsert_model(ALL)
    prefs = inference_pb2.ProviderPreferences(only=["provider_a"])
    assert (await call(stack, secret, model, provider_preferences=prefs)).route.provider == "provider_a"
    stack.providers["provider_a"].control(fail_next=1, error_kinds=["500"])
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call(stack, secret, model, provider_preferences=prefs)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert stack.providers["provider_b"].stats()["requests"] == 0
    assert stack.providers["provider_c"].stats()["requests"] == 0


async def test_preference_ignore_skips_the_cheapest(stack, secret):
    model = await stack.upsert_model(ALL)
    prefs = inference_pb2.ProviderPreferences(ignore=["provider_b"])
    reply = await call(stack, secret, model, provider_preferences=prefs)
    assert reply.route.provider == "provider_a"
    assert stack.providers["provider_b"].stats()["requests"] == 0


async def test_preferences_that_leave_no_provider_are_rejected(stack, secret):
    model = await stack.upsert_model(ALL)
    prefs = inference_pb2.ProviderPreferences(only=["provider_a"], ignore=["provider_a"])
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call(stack, secret, model, provider_preferences=prefs)
    assert err.value.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION)
    assert sum(p.stats()["requests"] for p in stack.providers.values()) == 0


async def test_fallback_model_serves_when_every_offering_of_the_primary_fails(stack, secret):
    primary = await stack.upsert_model([{"provider": "provider_c"}])
    fallback = await stack.upsert_model([{"provider": "provider_a"}])
    stack.providers["provider_c"].control(fail_next=1, error_kinds=["502"])
    reply = await call(stack, secret, primary, models=[fallback])
    assert reply.route.model == fallback
    assert reply.route.provider == "provider_a"
    assert reply.route.attempt == 2
    assert stack.providers["provider_c"].stats()["by_outcome"] == {"error_502": 1}


async def test_models_list_alone_names_primary_then_fallbacks(stack, secret):
    first = await stack.upsert_model([{"provider": "provider_b"}])
    second = await stack.upsert_model([{"provider": "provider_c"}])
    reply = await call(stack, secret, "", models=[first, second])
    assert (reply.route.model, reply.route.provider) == (first, "provider_b")


async def test_unknown_model_is_not_found_naming_it(stack, secret):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call(stack, secret, "no-such-model")
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert "no-such-model" in err.value.details()


async def test_disabled_offering_is_never_routed_to(stack, secret):
    model = await stack.upsert_model(
        [{"provider": "provider_b", "enabled": False}, {"provider": "provider_a"}]
    )
    reply = await call(stack, secret, model)
    assert reply.route.provider == "provider_a"
    assert stack.providers["provider_b"].stats()["requests"] == 0


async def test_catalog_yaml_model_is_served_with_upstream_credentials(stack, secret):
    # chat-small comes from the YAML file; the stand-ins demand their own keys (from env variables).
    reply = await call(stack, secret, "chat-small")
    assert reply.route.provider == "provider_b"
    assert reply.route.upstream_model == "provider_b-small"
    assert stack.providers["provider_b"].stats()["by_outcome"] == {"ok": 1}


async def test_http_front_door_shows_which_provider_served(stack, secret):
    model = await stack.upsert_model(ALL)
    status, headers, body = await stack.post_chat(
        secret, {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    )
    assert status == 200, body
    assert body["choices"][0]["message"]["content"].startswith("provider_b ")
    assert headers.get("x-tollgate-provider") == "provider_b"
    assert stack.served()["provider_b"] == 1


async def test_http_front_door_accepts_fallback_models_and_provider_preferences(stack, secret):
    primary = await stack.upsert_model([{"provider": "provider_c"}])
    fallback = await stack.upsert_model(ALL)
    stack.providers["provider_c"].control(fail_next=1, error_kinds=["500"])
    status, headers, body = await stack.post_chat(
        secret,
        {
            "model": primary,
            "models": [fallback],
            "provider": {"ignore": ["provider_b"]},
            "messages": [{"role": "user", "content": "hi"}],
        },
    )
    assert status == 200, body
    assert headers.get("x-tollgate-provider") == "provider_a"
    assert stack.providers["provider_c"].stats()["by_outcome"] == {"error_500": 1}


async def test_callers_cannot_supply_a_base_url_or_provider_credentials(stack, secret):
    model = await stack.upsert_model([{"provider": "provider_a"}])
    status, headers, body = await stack.post_chat(
        secret,
        {
            "model": model,
            "messages": [{"role": "user", "content": "hi"}],
            "base_url": "http://127.0.0.1:1/v1",
            "api_base": "http://127.0.0.1:1/v1",
            "api_key": "sk-caller",
            "provider": {"order": ["provider_a"]},
            "extra_headers": {"Authorization": "Bearer sk-caller"},
        },
        headers={"x-tollgate-base-url": "http://127.0.0.1:1/v1", "x-api-key": "sk-caller"},
    )
    # Served by the catalog's offering with the catalog's credential (the stand-in answers 401 to any
    # other key), and none of the caller's routing fields reached the provider.
    assert status == 200, body
    assert headers["x-tollgate-provider"] == "provider_a"
    sent = stack.providers["provider_a"].stats()["last_request"]["fields"]
    assert sent == ["messages", "model"], sent
