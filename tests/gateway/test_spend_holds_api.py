"""Spend holds are released on every exit path (provider error, deadline, a gateway SIGKILLed
mid-traffic), and with billing down the gateway serves within its leases, then refuses with 503."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import grpc
import pytest

from common.money import from_money
from tests.conftest import auth_channel
from tests.gateway.conftest import bearer, chat_request
from tests.gateway.spend_kit import (
    BUILDER,
    LEASE_SECONDS,
    billing_server,
    customer,
    rid,
    settled,
    spend_stack,
    status,
)


@pytest.fixture(scope="module")
async def billing(make_database, metering_address):
    async with billing_server(make_database, metering_address) as b:
        yield b


@pytest.fixture(scope="module")
async def stack(make_stack, billing, metering_address):
    return await spend_stack(make_stack, billing, metering_address)


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
