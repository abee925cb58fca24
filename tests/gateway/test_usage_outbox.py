"""Usage reaches the real metering server exactly once: every attempt, right tokens, exact provider cost,
merged tags; through metering outages and through a SIGKILLed gateway process."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import aiohttp
import asyncpg
import grpc
import pytest

from common.money import to_timestamp
from gateway.clients import ingest_request_bytes
from tests.conftest import auth_channel, free_port, migrated_database, security, security_env
from tests.gateway.conftest import PRICES, bearer, chat_request, stream_request
from tollgate.gateway.v1 import inference_pb2
from tollgate.metering.v1 import metering_pb2, metering_pb2_grpc

REPO = Path(__file__).resolve().parents[2]
S = inference_pb2.RoutingStrategy
MILLION = Decimal(1_000_000)


def cost(provider: str, input_tokens: int, output_tokens: int) -> Decimal:
    i, o = PRICES[provider]
    return (input_tokens * i + output_tokens * o) / MILLION


async def list_events(address: str, builder_id: str, **filters) -> list[metering_pb2.UsageEvent]:
    async with auth_channel(address) as ch:
        stub = metering_pb2_grpc.MeteringServiceStub(ch)
        out, token = [], ""
        while True:
            resp = await stub.ListEvents(
                metering_pb2.ListEventsRequest(
                    builder_id=builder_id, page_size=1000, page_token=token, **filters
                ),
                timeout=10,
            )
            out += resp.events
            token = resp.next_page_token
            if not token:
                return out


async def wait_for_events(address: str, builder_id: str, count: int, wait_s: float = 20.0, **filters):
    deadline = time.monotonic() + wait_s
    while True:
        events = await list_events(address, builder_id, **filters)
        if len(events) >= count or time.monotonic() > deadline:
            return events
        await asyncio.sleep(0.1)


@pytest.fixture(scope="module")
async def stack(make_stack, metering_address):
    return await make_stack(metering_address=metering_address, relay_enabled=True)


@pytest.fixture(autouse=True)
def fresh_providers(stack):
    stack.reset_providers()
    yield
    stack.reset_providers()


async def test_every_attempt_is_an_event_with_tokens_exact_cost_and_merged_tags(stack, metering_address):
    builder = f"b-{uuid.uuid4().hex[:8]}"
    secret, _ = await stack.create_key(
        builder_id=builder,
        app_id="app-x",
        customer_id="cust-9",
        default_tags={"workspace": "ws1", "workflow": "wf1"},
    )
    model = await stack.upsert_model([{"provider": "provider_a"}, {"provider": "provider_b"}])
    stack.providers["provider_a"].control(fail_next=1, error_kinds=["500"])
    rid = f"req-{uuid.uuid4().hex}"
    status, _, body = await stack.post_chat(
        secret,
        {
            "model": model,
            "route": "fixed",
            "messages": [{"role": "user", "content": "count these four words"}],
        },
        headers={
            "x-tollgate-request-id": rid,
            "x-tollgate-run-id": "run-7",
            "x-tollgate-tag-workflow": "wf-override",
            "x-tollgate-ticket-id": "T-1",
        },
    )
    assert status == 200, body

    events = {e.id: e for e in await wait_for_events(metering_address, builder, 2)}
    assert set(events) == {f"{rid}:1", f"{rid}:2"}
    failed, ok = events[f"{rid}:1"], events[f"{rid}:2"]
    assert failed.status == metering_pb2.EVENT_STATUS_FAILED
    assert ok.status == metering_pb2.EVENT_STATUS_SUCCEEDED
    for e in (failed, ok):
        assert (e.builder_id, e.app_id, e.customer_id, e.run_id) == (builder, "app-x", "cust-9", "run-7")
        assert e.tags["workspace"] == "ws1"  # from the key
        assert e.tags["workflow"] == "wf-override"  # the request's header wins
        assert e.tags["ticket_id"] == "T-1"
        assert e.tags["model"] == model
    assert failed.tags["provider"] == "provider_a"
    assert ok.tags["provider"] == "provider_b"
    assert Decimal(ok.quantities["input_tokens"]) == 4
    assert Decimal(ok.quantities["output_tokens"]) == 8
    assert Decimal(ok.quantities["provider_cost"]) == cost("provider_b", 4, 8)  # 0.0000036 USD, exact
    assert Decimal(failed.quantities.get("output_tokens", "0")) == 0


async def test_each_answered_call_with_the_same_request_id_is_billed_under_its_own_event_ids(
    stack, metering_address
):
    builder = f"b-{uuid.uuid4().hex[:8]}"
    secret, _ = await stack.create_key(builder_id=builder)
    model = await stack.upsert_model([{"provider": "provider_c"}])
    rid = f"req-{uuid.uuid4().hex}"
    attempts = []
    for _ in range(3):
        reply = await stack.inference.CreateChatCompletion(
            chat_request(model, request_id=rid), metadata=bearer(secret), timeout=10
        )
        assert reply.request_id == rid
        attempts.append(reply.route.attempt)
    # Each call reserves max_attempts (6) attempt numbers: 1-6, 7-12, 13-18.
    assert attempts == [1, 7, 13]
    events = await wait_for_events(metering_address, builder, 3)
    assert sorted(e.id for e in events) == sorted(f"{rid}:{n}" for n in (1, 7, 13))
    # three answers, three charges: 2 input and 8 output tokens each at provider_c's prices
    assert sum(Decimal(e.quantities["provider_cost"]) for e in events) == 3 * cost("provider_c", 2, 8)


def test_the_relay_frames_stored_events_into_the_same_request_the_stub_would_send():
    events = [
        metering_pb2.UsageEvent(id=f"r-{i}:1", type="ai.request", builder_id="b", quantities={"x": "1" * i})
        for i in range(1, 300, 37)  # lengths across the one- and two-byte varint boundary
    ]
    framed = ingest_request_bytes("batch-7", [e.SerializeToString() for e in events])
    expected = metering_pb2.IngestEventsRequest(request_id="batch-7", events=events)
    assert metering_pb2.IngestEventsRequest.FromString(framed) == expected
    assert framed == expected.SerializeToString()


async def test_an_event_metering_rejects_is_parked_with_its_reason_and_the_rest_delivered(
    stack, metering_address
):
    builder = f"b-{uuid.uuid4().hex[:8]}"
    secret, _ = await stack.create_key(builder_id=builder)
    model = await stack.upsert_model([{"provider": "provider_c"}])
    taken = f"req-{uuid.uuid4().hex}"
    # Metering already holds an event with the id the gateway will use, with other content.
    async with auth_channel(metering_address) as ch:
        first = await metering_pb2_grpc.MeteringServiceStub(ch).IngestEvents(
            metering_pb2.IngestEventsRequest(
                request_id=uuid.uuid4().hex,
                events=[
                    metering_pb2.UsageEvent(
                        id=f"{taken}:1",
                        type="ai.request",
                        occurred_time=to_timestamp(datetime.now(UTC)),
                        builder_id=builder,
                        app_id="app-1",
                        customer_id="cust-1",
                        status=metering_pb2.EVENT_STATUS_SUCCEEDED,
                        quantities={"input_tokens": "999"},
                    )
                ],
            ),
            timeout=10,
        )
    assert first.accepted_count == 1
    rids = [f"ok-{uuid.uuid4().hex}", taken, f"ok-{uuid.uuid4().hex}"]
    for rid in rids:
        await stack.inference.CreateChatCompletion(
            chat_request(model, request_id=rid), metadata=bearer(secret), timeout=10
        )

    conn = await asyncpg.connect(stack.database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        deadline = time.monotonic() + 20
        while True:
            rows = await conn.fetch(
                "SELECT event_id, delivered_time IS NOT NULL AS delivered, parked_reason FROM usage_outbox "
                "WHERE event_id = ANY($1::text[])",
                [f"{rid}:1" for rid in rids],
            )
            if len(rows) == 3 and all(r["delivered"] or r["parked_reason"] for r in rows):
                break
            assert time.monotonic() < deadline, rows
            await asyncio.sleep(0.1)
    finally:
        await conn.close()
    by_id = {r["event_id"]: r for r in rows}
    parked = by_id[f"{taken}:1"]
    assert not parked["delivered"]
    assert parked["parked_reason"].startswith("conflict: ")
    for rid in rids[::2]:
        assert by_id[f"{rid}:1"]["delivered"] and by_id[f"{rid}:1"]["parked_reason"] is None
    events = {e.id: e for e in await wait_for_events(metering_address, builder, 3)}
    assert sorted(events) == sorted(f"{rid}:1" for rid in rids)
    assert events[f"{taken}:1"].quantities["input_tokens"] == "999"  # metering kept the first version


async def test_tags_and_units_from_grpc_fields_and_openai_metadata(stack, metering_address):
    builder = f"b-{uuid.uuid4().hex[:8]}"
    secret, _ = await stack.create_key(
        builder_id=builder, default_tags={"workspace": "ws1", "usage_type": "chat"}
    )
    model = await stack.upsert_model([{"provider": "provider_b"}])
    await stack.inference.CreateChatCompletion(
        chat_request(
            model,
            request_id="g-1",
            tags={"usage_type": "summarise"},
            business_units=inference_pb2.BusinessUnits(run_id="run-g", document_id="doc-1", page_count=14),
        ),
        metadata=bearer(secret),
        timeout=10,
    )
    client = stack.openai(secret)
    await client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "hi"}],
        metadata={
            "tollgate_request_id": "o-1",
            "tollgate_tag_client": "acme",
            "tollgate_outcome": "resolved",
        },
    )
    events = {e.id: e for e in await wait_for_events(metering_address, builder, 2)}
    g, o = events["g-1:1"], events["o-1:1"]
    assert g.tags["usage_type"] == "summarise" and g.tags["workspace"] == "ws1"
    assert g.run_id == "run-g" and g.tags["document_id"] == "doc-1"
    assert Decimal(g.quantities["pages"]) == 14
    assert o.tags["client"] == "acme" and o.tags["outcome"] == "resolved" and o.tags["usage_type"] == "chat"


async def test_estimated_tokens_are_marked_when_the_provider_omits_usage(stack, metering_address):
    builder = f"b-{uuid.uuid4().hex[:8]}"
    secret, _ = await stack.create_key(builder_id=builder)
    model = await stack.upsert_model([{"provider": "provider_a"}])
    stack.providers["provider_a"].control(omit_usage=True)
    reply = await stack.inference.CreateChatCompletion(
        chat_request(model, request_id="est-1"), metadata=bearer(secret), timeout=10
    )
    assert reply.usage.estimated is True
    assert reply.usage.output_tokens > 0
    (event,) = await wait_for_events(metering_address, builder, 1)
    assert event.tags["tokens_estimated"] == "true"
    assert Decimal(event.quantities["output_tokens"]) == reply.usage.output_tokens


async def test_midstream_failure_records_the_partial_usage_as_failed(stack, metering_address):
    builder = f"b-{uuid.uuid4().hex[:8]}"
    secret, _ = await stack.create_key(builder_id=builder)
    model = await stack.upsert_model([{"provider": "provider_a"}, {"provider": "provider_b"}])
    stack.providers["provider_a"].control(fail_next=1, error_kinds=["midstream"], midstream_after=3)
    with pytest.raises(grpc.aio.AioRpcError):
        async for _ in stack.inference.StreamChatCompletion(
            stream_request(model, request_id="mid-1", routing_strategy=S.ROUTING_STRATEGY_FIXED),
            metadata=bearer(secret),
            timeout=10,
        ):
            pass
    (event,) = await wait_for_events(metering_address, builder, 1)
    assert event.id == "mid-1:1"
    assert event.status == metering_pb2.EVENT_STATUS_FAILED
    assert event.tags["provider"] == "provider_a"
    # "provider_a says hello" was streamed: estimated at about 4 characters a token.
    assert Decimal(event.quantities["output_tokens"]) > 0
    assert event.tags["tokens_estimated"] == "true"


# --- outages: metering stopped under load, gateway SIGKILLed under load -------------------------------------


async def start_metering(url: str, port: int):
    from metering.app import start
    from metering.config import Settings

    return await start(
        Settings(
            database_url=url,
            grpc_address=f"127.0.0.1:{port}",
            metrics_port=None,
            security=security("metering"),
        )
    )


async def load(
    http_url: str,
    secret: str,
    model: str,
    n: int,
    concurrency: int,
    prefix: str,
    answered: list[str] | None = None,
) -> list[str]:
    """Sends n requests; returns the request ids whose answer reached us with 200.

    Pass `answered` to watch progress while the load runs (it is filled in as answers arrive).
    """
    answered = [] if answered is None else answered
    ids = iter(range(n))

    async def worker(session: aiohttp.ClientSession) -> None:
        for i in ids:
            rid = f"{prefix}-{i}"
            try:
                async with session.post(
                    f"{http_url}/v1/chat/completions",
                    json={"model": model, "messages": [{"role": "user", "content": "one two"}]},
                    headers={"Authorization": f"Bearer {secret}", "x-tollgate-request-id": rid},
                ) as r:
                    await r.read()
                    if r.status == 200:
                        answered.append(rid)
            except aiohttp.ClientError:
                return  # the gateway went away (killed): this worker stops sending

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return answered


@pytest.mark.slow
async def test_metering_down_under_load_then_back_gets_every_event_exactly_once(make_stack, make_database):
    port = free_port()
    metering_url = await migrated_database(make_database, "metering")
    metering = await start_metering(metering_url, port)
    address = f"127.0.0.1:{port}"
    stack = await make_stack(metering_address=address, relay_enabled=True)
    builder = f"b-{uuid.uuid4().hex[:8]}"
    secret, _ = await stack.create_key(builder_id=builder)
    model = await stack.upsert_model([{"provider": "provider_a"}])

    before = await load(stack.http_url, secret, model, 100, 8, "pre")
    await metering.stop(0)
    during = await load(stack.http_url, secret, model, 300, 16, "down")
    await asyncio.sleep(0.5)  # the relay keeps failing and backing off meanwhile
    metering = await start_metering(metering_url, port)
    try:
        after = await load(stack.http_url, secret, model, 100, 8, "post")
        answered = before + during + after
        assert len(answered) == 500  # metering being down never failed a caller
        events = await wait_for_events(address, builder, len(answered), wait_s=30)
        ids = Counter(e.id for e in events)
        assert sum(ids.values()) == len(answered)
        assert set(ids) == {f"{rid}:1" for rid in answered}
        assert max(ids.values()) == 1
    finally:
        await metering.stop(0)


@pytest.mark.slow
async def test_sigkilled_gateway_loses_no_event_whose_answer_reached_the_caller(
    make_stack, make_database, metering_address, tmp_path
):
    # The in-process stack provides the stand-ins, the catalog file and a key; a subprocess gateway on
    # the same database serves the load and is killed.
    stack = await make_stack(metering_address=metering_address, relay_enabled=False)
    builder = f"b-{uuid.uuid4().hex[:8]}"
    secret, _ = await stack.create_key(builder_id=builder)
    model = await stack.upsert_model([{"provider": "provider_b"}])
    http_port = free_port()
    env = {
        **os.environ,
        **security_env("gateway"),
        "PYTHONPATH": os.pathsep.join([str(REPO / "services"), str(REPO / "gen" / "python")]),
        "GATEWAY_DATABASE_URL": stack.database_url,
        "GATEWAY_GRPC_ADDRESS": f"127.0.0.1:{free_port()}",
        "GATEWAY_HTTP_ADDRESS": f"127.0.0.1:{http_port}",
        "GATEWAY_METRICS_PORT": "0",
        "GATEWAY_CATALOG_FILE": str(stack.catalog_path),
        "GATEWAY_METERING_ADDRESS": metering_address,
        "GATEWAY_REFRESH_SECONDS": "0.5",
        "GATEWAY_RELAY_INTERVAL_SECONDS": "0.05",
        "GATEWAY_LOG_LEVEL": "WARNING",
    }
    http_url = f"http://127.0.0.1:{http_port}"

    async def spawn() -> asyncio.subprocess.Process:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway",
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=tmp_path.joinpath(f"gw-{time.monotonic_ns()}.log").open("wb"),
        )
        async with aiohttp.ClientSession() as s:
            for _ in range(300):
                try:
                    async with s.get(
                        f"{http_url}/v1/models", headers={"Authorization": f"Bearer {secret}"}
                    ) as r:
                        if r.status == 200:
                            return proc
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.05)
        proc.kill()
        raise AssertionError("gateway subprocess did not start")

    proc = await spawn()
    try:
        progress: list[str] = []
        task = asyncio.create_task(load(http_url, secret, model, 100_000, 16, "k", progress))
        # Kill on observed progress, not after a fixed sleep: mid-load however fast the gateway is.
        async with asyncio.timeout(60):
            while len(progress) < 300:  # noqa: ASYNC110 - polling a plain list the load fills
                await asyncio.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        answered = await task
        await proc.wait()
        assert 300 <= len(answered) < 100_000, "the kill should land mid-load"
        proc = await spawn()  # the restarted gateway's relay delivers what the dead one had committed
        events = await wait_for_events(metering_address, builder, len(answered), wait_s=30)
        ids = Counter(e.id for e in events)
        missing = {f"{rid}:1" for rid in answered} - set(ids)
        assert not missing, f"{len(missing)} answered requests lost their usage event"
        assert max(ids.values()) == 1
    finally:
        proc.kill()
        await proc.wait()
