"""If compose says it, a test runs it: docker-compose.yml's services started as local processes with the
compose environment (translated by tests/deploy/local_compose.py), then checked the way compose and an
operator would: every health check passes, the HTTP door answers, and a key made with the operator's
credential serves a chat completion through the catalog's stand-in providers whose usage reaches
metering."""

from __future__ import annotations

import asyncio
import uuid

import aiohttp
import pytest

from common.security import TokenSource, open_channel
from tests.deploy.local_compose import APP_SERVICES, SERVICES, LocalCompose, local_compose
from tollgate.gateway.v1 import admin_pb2, admin_pb2_grpc
from tollgate.metering.v1 import metering_pb2 as mpb
from tollgate.metering.v1 import metering_pb2_grpc

pytestmark = pytest.mark.slow

BUILDER = "compose-builder"


@pytest.fixture(scope="module")
async def topology(make_database, pg_server_url, tmp_path_factory):
    suite = await local_compose(make_database, pg_server_url, tmp_path_factory.mktemp("compose"))
    await suite.start()
    try:
        yield suite
    finally:
        await suite.stop()


def operator_channel(suite: LocalCompose, service: str):
    address = (
        suite.processes[service][0].env[f"{service.upper()}_GRPC_ADDRESS"].replace("0.0.0.0", "127.0.0.1")
    )
    return open_channel(address, token=TokenSource(value=suite.credentials.token("operator")))


def http_door(suite: LocalCompose) -> str:
    published = SERVICES["gateway"]["ports"][0].rpartition(":")[2]
    return f"http://{suite.processes['gateway'][0].local(published)}"


async def test_every_compose_service_runs_and_passes_its_compose_health_check(topology):
    checked = [name for name in APP_SERVICES if "healthcheck" in SERVICES[name]]
    assert sorted(checked) == ["billing", "gateway", "metering", "payouts"]
    await asyncio.gather(*(topology.wait_healthy(p) for name in checked for p in topology.processes[name]))
    for name in checked:  # once up, each check passes as compose runs it
        assert await topology.healthcheck(topology.processes[name][0]), name
    for name in APP_SERVICES:  # the stand-in providers have no health check: they are still running
        assert all(p.proc.returncode is None for p in topology.processes[name]), topology.log(
            topology.processes[name][0]
        )
    async with aiohttp.ClientSession() as http, http.get(f"{http_door(topology)}/healthz") as resp:
        assert resp.status == 200


async def test_an_operator_made_key_serves_a_chat_completion_through_the_catalog_and_metering_counts_it(
    topology,
):
    await asyncio.gather(
        *(topology.wait_healthy(p) for n in ("gateway", "metering") for p in topology.processes[n])
    )
    async with operator_channel(topology, "gateway") as gch, operator_channel(topology, "metering") as mch:
        created = await admin_pb2_grpc.GatewayAdminServiceStub(gch).CreateApiKey(
            admin_pb2.CreateApiKeyRequest(
                request_id="compose-key-1", builder_id=BUILDER, app_id="app-1", customer_id="cust-1",
                display_name="compose key",
            ),
            timeout=10,
        )  # fmt: skip
        rid = f"compose-{uuid.uuid4().hex[:8]}"
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"{http_door(topology)}/v1/chat/completions",
                json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello compose"}]},
                headers={"Authorization": f"Bearer {created.secret}", "x-tollgate-request-id": rid},
            ) as resp,
        ):
            body = await resp.json()
            assert resp.status == 200, body
        assert body["choices"][0]["message"]["content"]
        assert body["usage"]["total_tokens"] > 0
        served_by = resp.headers["x-tollgate-provider"]
        assert served_by in ("provider_a", "provider_b")  # the catalog's stand-ins, reached by its URLs

        metering = metering_pb2_grpc.MeteringServiceStub(mch)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 15
        events: list[mpb.UsageEvent] = []
        while not events and loop.time() < deadline:
            events = list(
                (await metering.ListEvents(mpb.ListEventsRequest(builder_id=BUILDER), timeout=5)).events
            )
            if not events:
                await asyncio.sleep(0.2)
        assert [e.id.split(":")[0] for e in events] == [rid]
        (event,) = events
        assert event.status == mpb.EVENT_STATUS_SUCCEEDED
        assert event.customer_id == "cust-1" and event.app_id == "app-1"
        assert (
            int(event.quantities["input_tokens"]) + int(event.quantities["output_tokens"])
            == (body["usage"]["total_tokens"])
        )
        assert (event.tags["model"], event.tags["provider"]) == ("gpt-4o-mini", served_by)
