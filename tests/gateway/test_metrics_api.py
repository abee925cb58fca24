"""What an operator reads on the gateway's Prometheus port after real traffic through both doors:
requests by door, model, provider and status; tokens and provider cost equal to the usage answered;
breaker state per offering; the outbox backlog and relay lag. Label values are catalog names only.

The registry is the process's own, shared by every gateway a test session starts, so each test uses a
fresh model (labels of its own) or reads a difference before and after its traffic."""

from __future__ import annotations

import asyncio
import time
import uuid
from decimal import Decimal

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.gateway.conftest import PRICES, bearer, chat_request

MILLION = Decimal(1_000_000)


@pytest.fixture(scope="module")
async def stack(make_stack):
    return await make_stack(metrics_port=0, metrics_sample_seconds=0.05)


async def scrape(stack) -> str:
    port = stack.running.metrics_port
    assert port, "metrics_port=0 must give an ephemeral port"
    async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}/metrics") as r:
        assert r.status == 200
        return await r.text()


def samples(text: str, name: str) -> dict[frozenset, float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name:
                out[frozenset(s.labels.items())] = s.value
    return out


def value(text: str, name: str, **labels: str) -> float:
    return samples(text, name).get(frozenset(labels.items()), 0.0)


async def test_http_requests_are_counted_by_model_provider_status_and_door(stack):
    secret, _ = await stack.create_key()
    model = await stack.upsert_model([{"provider": "provider_b"}])
    for _ in range(3):
        status, _, _ = await stack.post_chat(
            secret, {"model": model, "messages": [{"role": "user", "content": "hi"}]}
        )
        assert status == 200
    status, _, _ = await stack.post_chat(secret, {"model": model, "messages": "not a list"})
    assert status == 400

    text = await scrape(stack)
    req = "tollgate_gateway_requests_total"
    assert value(text, req, door="http", model=model, provider="provider_b", status="200") == 3
    assert value(text, req, door="http", model=model, provider="none", status="400") == 1
    assert value(text, req, door="grpc", model=model, provider="provider_b", status="OK") == 0


async def test_grpc_requests_are_counted_under_the_grpc_door(stack):
    secret, _ = await stack.create_key()
    model = await stack.upsert_model([{"provider": "provider_a"}])
    resp = await stack.inference.CreateChatCompletion(chat_request(model), metadata=bearer(secret), timeout=5)
    assert resp.route.provider == "provider_a"

    text = await scrape(stack)
    req = "tollgate_gateway_requests_total"
    assert value(text, req, door="grpc", model=model, provider="provider_a", status="OK") == 1
    assert value(text, req, door="http", model=model, provider="provider_a", status="200") == 0


async def test_a_model_not_in_the_catalog_is_counted_as_unknown_never_under_the_name_sent(stack):
    secret, _ = await stack.create_key()
    made_up = f"no-such-model-{uuid.uuid4().hex}"
    before = value(
        await scrape(stack),
        "tollgate_gateway_requests_total",
        door="http",
        model="unknown",
        provider="none",
        status="404",
    )
    status, _, _ = await stack.post_chat(
        secret, {"model": made_up, "messages": [{"role": "user", "content": "x"}]}
    )
    assert status == 404

    text = await scrape(stack)
    after = value(
        text, "tollgate_gateway_requests_total", door="http", model="unknown", provider="none", status="404"
    )
    assert after == before + 1
    assert made_up not in text


async def test_token_and_cost_counters_equal_the_usage_returned(stack):
    secret, _ = await stack.create_key()
    model = await stack.upsert_model([{"provider": "provider_a"}])
    client = stack.openai(secret)
    total_in = total_out = 0
    for i in range(4):
        r = await client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "tell me something " * (i + 1)}]
        )
        total_in += r.usage.prompt_tokens
        total_out += r.usage.completion_tokens
    assert total_in > 0 and total_out > 0

    text = await scrape(stack)
    assert (
        value(text, "tollgate_gateway_tokens_total", model=model, provider="provider_a", direction="input")
        == total_in
    )
    assert (
        value(text, "tollgate_gateway_tokens_total", model=model, provider="provider_a", direction="output")
        == total_out
    )
    price_in, price_out = PRICES["provider_a"]
    expected = (total_in * price_in + total_out * price_out) / MILLION
    cost = value(text, "tollgate_gateway_provider_cost_total", model=model, provider="provider_a")
    assert cost == pytest.approx(float(expected), rel=1e-9)


async def test_upstream_latency_and_time_to_first_token_are_observed_per_offering(stack):
    secret, _ = await stack.create_key()
    model = await stack.upsert_model([{"provider": "provider_c", "id": f"off_{uuid.uuid4().hex[:6]}"}])
    offering = (await stack.route_health(model))["provider_c"].offering_id
    client = stack.openai(secret)
    await client.chat.completions.create(model=model, messages=[{"role": "user", "content": "a"}])
    chunks = [
        c
        async for c in await client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "b"}], stream=True
        )
    ]
    assert chunks

    text = await scrape(stack)
    labels = {"provider": "provider_c", "offering": offering}
    assert value(text, "tollgate_gateway_upstream_latency_seconds_count", **labels) == 2
    assert value(text, "tollgate_gateway_time_to_first_token_seconds_count", **labels) == 1
    assert value(text, "tollgate_gateway_time_to_first_token_seconds_sum", **labels) > 0


async def test_breaker_gauge_reads_open_after_consecutive_failures(stack):
    secret, _ = await stack.create_key()
    model = await stack.upsert_model([{"provider": "provider_a"}])
    gauge = {"model": model, "offering": "off_a", "provider": "provider_a"}
    assert samples(await scrape(stack), "tollgate_gateway_breaker_state")[frozenset(gauge.items())] == 0

    stack.providers["provider_a"].control(fail_next=3, error_kinds=["500"])
    try:
        for _ in range(3):
            status, _, _ = await stack.post_chat(
                secret, {"model": model, "messages": [{"role": "user", "content": "x"}]}
            )
            assert status == 502
        status, _, body = await stack.post_chat(
            secret, {"model": model, "messages": [{"role": "user", "content": "x"}]}
        )
        assert status == 503, body
    finally:
        stack.providers["provider_a"].control(fail_next=0)

    text = await scrape(stack)
    assert value(text, "tollgate_gateway_breaker_state", **gauge) == 2
    req = "tollgate_gateway_requests_total"
    assert value(text, req, door="http", model=model, provider="none", status="502") == 3
    assert value(text, req, door="http", model=model, provider="none", status="503") == 1


async def test_outbox_backlog_counts_undelivered_events_and_lag_is_their_age(stack):
    # The stack's relay is off and metering unreachable: every attempt's event waits in the outbox.
    secret, _ = await stack.create_key()
    model = await stack.upsert_model([{"provider": "provider_b"}])
    for _ in range(2):
        status, _, _ = await stack.post_chat(
            secret, {"model": model, "messages": [{"role": "user", "content": "x"}]}
        )
        assert status == 200
    pending = (await stack.running.store.outbox_counts())["pending"]
    assert pending >= 2

    deadline = time.monotonic() + 5
    while True:
        text = await scrape(stack)
        if value(text, "tollgate_gateway_outbox_backlog") == pending or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert value(text, "tollgate_gateway_outbox_backlog") == pending
    assert 0 < value(text, "tollgate_gateway_relay_lag_seconds") < 120
