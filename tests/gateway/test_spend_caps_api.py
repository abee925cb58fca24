"""Spend caps in the request path, against real billing, metering and gateway servers (the providers are
the stand-ins): a request that would cross a hard cap is refused before any provider is called (HTTP
402 / RESOURCE_EXHAUSTED with a typed reason), DEGRADE serves the cheaper model, 64 concurrent clients
never push spend past the cap, holds are released on every exit path, and settled spend equals the
metered usage priced at the plan to the cent."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from common.money import from_money, to_money, to_timestamp
from tests.conftest import auth_channel, security
from tests.gateway.conftest import bearer, chat_request, stream_request
from tollgate.billing.v1 import billing_pb2 as bpb
from tollgate.billing.v1 import billing_pb2_grpc, spend_pb2_grpc
from tollgate.billing.v1 import spend_pb2 as spb
from tollgate.metering.v1 import metering_pb2 as mpb
from tollgate.metering.v1 import metering_pb2_grpc

BUILDER = "b1"
MARKUP = Decimal("1.25")
LEASE_SECONDS = 4
PLAN_YAML = """
currency: USD
charges:
  - key: tokens
    meter_key: llm_cost
    display_name: AI model usage
    cost_plus: {markup_percent: 25}
"""


def rid() -> str:
    return uuid.uuid4().hex


def money(amount: str) -> object:
    return to_money(Decimal(amount), "USD")


@pytest.fixture(scope="module")
async def billing(make_database, metering_address):
    from billing.app import start
    from billing.config import Settings
    from tests.conftest import migrated_database

    url = await migrated_database(make_database, "billing")
    running = await start(
        Settings(
            database_url=url,
            grpc_address="127.0.0.1:0",
            metrics_port=None,
            metering_address=metering_address,
            security=security("billing"),
            spend_lease_seconds=LEASE_SECONDS,
            spend_sweep_seconds=0.5,
            margin_watch_seconds=0,
        )
    )
    address = f"127.0.0.1:{running.port}"
    async with auth_channel(address) as bch, auth_channel(metering_address) as mch:
        metering = metering_pb2_grpc.MeteringServiceStub(mch)
        await metering.CreateMeter(
            mpb.CreateMeterRequest(
                request_id=rid(),
                meter=mpb.Meter(
                    builder_id=BUILDER,
                    key="llm_cost",
                    display_name="Model cost",
                    event_types=["ai.request"],
                    aggregation=mpb.AGGREGATION_SUM,
                    quantity="provider_cost",
                ),
            )
        )
        b = billing_pb2_grpc.BillingServiceStub(bch)
        plan = await b.ApplyPlanYaml(
            bpb.ApplyPlanYamlRequest(
                request_id=rid(), builder_id=BUILDER, plan_key="cp", display_name="cp", yaml=PLAN_YAML
            )
        )
        yield address, b, spend_pb2_grpc.SpendServiceStub(bch), metering, plan.plan.id, running
    await running.stop(0)


@pytest.fixture(scope="module")
async def stack(make_stack, billing, metering_address):
    address = billing[0]
    s = await make_stack(
        spend_controls=True,
        billing_address=address,
        metering_address=metering_address,
        relay_enabled=True,
        spend_policy_seconds=0.5,
        spend_report_seconds=0.2,
        attempt_timeout_seconds=2.0,
    )
    s.billing = billing  # type: ignore[attr-defined]
    return s


async def customer(billing, cid: str, cap: str | None, **control) -> spb.SpendStatus | None:
    _, b, spend, _, plan_id, _ = billing
    await b.CreateCustomer(
        bpb.CreateCustomerRequest(
            request_id=rid(),
            customer=bpb.Customer(
                id=cid,
                builder_id=BUILDER,
                app_id="app1",
                currency_code="USD",
                display_name=cid,
                billing_email=f"billing@{cid}.example",
            ),
        )
    )
    await b.Subscribe(
        bpb.SubscribeRequest(
            request_id=rid(), builder_id=BUILDER, customer_id=cid, plan_id=plan_id, plan_version=1
        )
    )
    if cap is None:
        return None
    reply = await spend.SetSpendControl(
        spb.SetSpendControlRequest(
            request_id=rid(),
            control=spb.SpendControl(
                builder_id=BUILDER,
                customer_id=cid,
                scope=spb.SpendScope(kind=spb.SPEND_SCOPE_KIND_CUSTOMER),
                hard_cap=money(cap),
                **control,
            ),
        )
    )
    return reply.status


async def status(billing, cid: str) -> spb.SpendStatus:
    reply = await billing[2].ListSpendControls(
        spb.ListSpendControlsRequest(builder_id=BUILDER, customer_id=cid)
    )
    (only,) = reply.controls
    return only


async def settled(billing, cid: str, wait_seconds: float = 4 * LEASE_SECONDS) -> spb.SpendStatus:
    """The control once no lease holds anything (the reporter released them, or they expired)."""
    deadline = time.monotonic() + wait_seconds
    while True:
        st = await status(billing, cid)
        if (from_money(st.held) == 0 and st.active_lease_count == 0) or time.monotonic() > deadline:
            return st
        await asyncio.sleep(0.2)


async def metered_cost(billing, cid: str, events: int, wait_seconds: float = 20) -> Decimal:
    """The customer's provider cost as metering counts it, once `events` succeeded events arrived."""
    metering = billing[3]
    deadline = time.monotonic() + wait_seconds
    while True:
        reply = await metering.QueryUsage(
            mpb.QueryUsageRequest(
                builder_id=BUILDER,
                meter_key="llm_cost",
                customer_id=cid,
                start_time=to_timestamp(datetime(2026, 1, 1, tzinfo=UTC)),
                end_time=to_timestamp(datetime(2030, 1, 1, tzinfo=UTC)),
            )
        )
        count = sum(r.event_count for r in reply.rows)
        if count >= events or time.monotonic() > deadline:
            return sum((Decimal(r.value) for r in reply.rows), Decimal(0))
        await asyncio.sleep(0.3)


def cap_info(exc: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    st = rpc_status.from_call(exc)
    assert st is not None
    for d in st.details:
        if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            d.Unpack(info)
            return info
    raise AssertionError("no ErrorInfo in the status")


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


async def test_holds_are_released_on_provider_error_and_deadline(stack) -> None:
    await customer(stack.billing, "errs", "1")
    secret, _ = await stack.create_key(customer_id="errs")
    model = await stack.upsert_model([{"provider": "provider_a"}])
    stack.providers["provider_a"].control(fail_next=1, error_kinds=["400"])
    with pytest.raises(grpc.aio.AioRpcError):
        await stack.inference.CreateChatCompletion(
            chat_request(model, max_tokens=16), metadata=bearer(secret), timeout=5
        )
    # A slow provider and a caller deadline: the caller goes away, the hold is settled or released.
    stack.providers["provider_a"].control(latency_ms=1500)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stack.inference.CreateChatCompletion(
                chat_request(model, max_tokens=16), metadata=bearer(secret), timeout=0.3
            )
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    finally:
        stack.providers["provider_a"].control(latency_ms=0)
    await asyncio.sleep(0.3)
    st = await settled(stack.billing, "errs")
    assert from_money(st.held) == 0 and st.active_lease_count == 0
    assert from_money(st.spent) == 0  # neither attempt produced billable (succeeded) usage


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


async def test_a_sigkilled_gateways_holds_expire_at_billing(
    stack, make_database, metering_address, tmp_path
) -> None:
    """A gateway process killed mid-traffic never reports or releases: billing's expiry frees its hold."""
    import os
    import signal
    import sys

    from tests.conftest import free_port, migrated_database, security_env

    await customer(stack.billing, "killed", "5")
    url = await migrated_database(make_database, "gateway")
    grpc_address, http_port = f"127.0.0.1:{free_port()}", free_port()
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "GATEWAY_DATABASE_URL": url,
        "GATEWAY_GRPC_ADDRESS": grpc_address,
        "GATEWAY_HTTP_ADDRESS": f"127.0.0.1:{http_port}",
        "GATEWAY_METRICS_PORT": "off",
        "GATEWAY_CATALOG_FILE": str(stack.catalog_path),
        "GATEWAY_METERING_ADDRESS": metering_address,
        "GATEWAY_SPEND_CONTROLS": "on",
        "GATEWAY_BILLING_ADDRESS": stack.billing[0],
        **security_env("gateway"),
    }
    log = (tmp_path / "gateway.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", env=env, stdout=log, stderr=log
    )
    try:
        async with auth_channel(grpc_address) as ch:
            from tollgate.gateway.v1 import admin_pb2, admin_pb2_grpc, inference_pb2_grpc

            admin = admin_pb2_grpc.GatewayAdminServiceStub(ch)
            deadline = time.monotonic() + 60
            while True:
                try:
                    created = await admin.CreateApiKey(
                        admin_pb2.CreateApiKeyRequest(
                            request_id=rid(),
                            builder_id=BUILDER,
                            app_id="app1",
                            customer_id="killed",
                            display_name="k",
                        ),
                        metadata=stack.admin_metadata,
                        timeout=2,
                    )
                    break
                except grpc.aio.AioRpcError:
                    assert proc.returncode is None and time.monotonic() < deadline
                    await asyncio.sleep(0.2)
            inference = inference_pb2_grpc.InferenceServiceStub(ch)
            for p in stack.providers.values():
                p.control(latency_ms=3000)
            calls = [
                asyncio.ensure_future(
                    inference.CreateChatCompletion(
                        chat_request("chat-small", max_tokens=16),
                        metadata=bearer(created.secret),
                        timeout=10,
                    )
                )
                for _ in range(8)
            ]
            held = Decimal(0)
            while held == 0 and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
                held = from_money((await status(stack.billing, "killed")).held)
            assert held > 0
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
            await asyncio.gather(*calls, return_exceptions=True)
    finally:
        for p in stack.providers.values():
            p.control(latency_ms=0)
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        log.close()
    # Within the lease time (plus one expiry sweep) nothing is held any more.
    t0 = time.monotonic()
    st = await settled(stack.billing, "killed", wait_seconds=LEASE_SECONDS + 3)
    assert from_money(st.held) == 0 and st.active_lease_count == 0, time.monotonic() - t0
    assert from_money(st.spent) == 0  # nothing was answered, nothing was reported


async def test_billing_down_serves_within_leases_then_refuses(stack) -> None:
    """Last in the module: it stops billing."""
    await customer(stack.billing, "outage", "1")
    secret, _ = await stack.create_key(customer_id="outage")
    model = await stack.upsert_model([{"provider": "provider_a"}])
    await stack.inference.CreateChatCompletion(
        chat_request(model, max_tokens=16), metadata=bearer(secret), timeout=5
    )
    await customer(stack.billing, "stranger", "1")
    stranger, _ = await stack.create_key(customer_id="stranger")
    await stack.billing[5].stop(0)
    # The lease this process holds still covers requests of the known customer.
    for _ in range(3):
        reply = await stack.inference.CreateChatCompletion(
            chat_request(model, max_tokens=16), metadata=bearer(secret), timeout=5
        )
        assert reply.choices
    # A customer whose policy the gateway never read: refused, nothing sent to a provider.
    before = stack.served()
    code, _, body = await stack.post_chat(
        stranger, {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16}
    )
    assert code == 503 and body["error"]["code"] == "spend_check_unavailable"
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stack.inference.CreateChatCompletion(
            chat_request(model, max_tokens=16), metadata=bearer(stranger), timeout=5
        )
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "spend_check_unavailable" in (info.value.details() or "")
    # Once the lease expires, the known customer is refused too.
    await asyncio.sleep(LEASE_SECONDS)
    code, _, body = await stack.post_chat(
        secret, {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16}
    )
    assert code == 503 and body["error"]["code"] == "spend_check_unavailable"
    assert stack.served() == before
