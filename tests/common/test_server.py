"""common.server against real gRPC servers on loopback: the metering server for the standard health
check, reflection, request ids and rich error details; small throwaway servicers built from the
metering stubs for what a well-behaved service never does on purpose (crash, sleep through shutdown).
"""

from __future__ import annotations

import asyncio
import uuid

import aiohttp
import grpc
import pytest
import structlog
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status

from common import errors
from common.server import RunningServer, start_server
from metering.api import ACCESS
from tests.conftest import auth_channel, security
from tollgate.metering.v1 import metering_pb2 as pb
from tollgate.metering.v1 import metering_pb2_grpc

METERING = "tollgate.metering.v1.MeteringService"
# The probe servers check callers like every service: metering's access table, the tests' trust file.
GUARD = {"verifier": security("metering").verifier("127.0.0.1:0"), "access": {METERING: ACCESS}}


def bad_request_fields(error: grpc.aio.AioRpcError) -> list[tuple[str, str]]:
    status = rpc_status.from_call(error)
    assert status is not None, "no google.rpc.Status in the trailers"
    out = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            out.extend((v.field, v.description) for v in bad.field_violations)
    return out


# ---- against the real metering server --------------------------------------------------------------


async def test_standard_health_check_answers_serving(metering_address):
    async with auth_channel(metering_address) as ch:
        health = health_pb2_grpc.HealthStub(ch)
        overall = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        named = await health.Check(health_pb2.HealthCheckRequest(service=METERING), timeout=5)
    assert overall.status == health_pb2.HealthCheckResponse.SERVING
    assert named.status == health_pb2.HealthCheckResponse.SERVING


async def test_health_of_an_unknown_service_is_not_found(metering_address):
    async with auth_channel(metering_address) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await health_pb2_grpc.HealthStub(ch).Check(
                health_pb2.HealthCheckRequest(service="nope.v1.X"), timeout=5
            )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_reflection_lists_the_metering_service_and_health(metering_address):
    async with auth_channel(metering_address) as ch:
        stub = reflection_pb2_grpc.ServerReflectionStub(ch)

        async def requests():
            yield reflection_pb2.ServerReflectionRequest(list_services="")
            yield reflection_pb2.ServerReflectionRequest(file_containing_symbol=METERING)

        answers = [a async for a in stub.ServerReflectionInfo(requests(), timeout=5)]
    names = {s.name for s in answers[0].list_services_response.service}
    assert METERING in names
    assert "grpc.health.v1.Health" in names
    assert answers[1].file_descriptor_response.file_descriptor_proto, "no descriptor for the service"


async def test_x_request_id_is_bound_into_the_calls_logs(metering_address, capsys):
    rid = f"trace-{uuid.uuid4().hex[:10]}"
    async with auth_channel(metering_address) as ch:
        stub = metering_pb2_grpc.MeteringServiceStub(ch)
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.GetMeter(
                pb.GetMeterRequest(builder_id="b-1", key="missing"),
                metadata=[("x-request-id", rid)],
                timeout=5,
            )
    out = capsys.readouterr()
    lines = [line for line in (out.out + out.err).splitlines() if rid in line]
    assert lines, "the request id never reached the logs"
    assert any("GetMeter" in line for line in lines), lines


async def test_invalid_argument_carries_a_bad_request_field_violation(metering_address):
    async with auth_channel(metering_address) as ch:
        stub = metering_pb2_grpc.MeteringServiceStub(ch)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.QueryUsage(pb.QueryUsageRequest(builder_id="", meter_key="m"), timeout=5)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    fields = bad_request_fields(caught.value)
    assert fields and all(description for _, description in fields)
    assert any(f.endswith("builder_id") for f, _ in fields), fields


# ---- throwaway servicers on common.server.start_server ---------------------------------------------


class Probe(metering_pb2_grpc.MeteringServiceServicer):
    """Each method provokes one behaviour of the shared interceptor."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.started = asyncio.Event()

    async def GetMeter(self, request, context):
        # Echo what the interceptor bound into structlog's context.
        bound = structlog.contextvars.get_contextvars()
        return pb.GetMeterResponse(
            meter=pb.Meter(id=bound.get("request_id", ""), display_name=bound.get("method", ""))
        )

    async def ListMeters(self, request, context):
        raise RuntimeError("database password is hunter2")

    async def ArchiveMeter(self, request, context):
        raise errors.InvalidArgument("key must be 1 to 64 characters", field="key")

    async def CreateMeter(self, request, context):
        raise errors.ResourceExhausted("slow down", retry_after_seconds=2.5)

    async def QueryUsage(self, request, context):
        raise errors.NotFound("meter 'x' not found")

    async def ListEvents(self, request, context):
        self.started.set()
        await asyncio.sleep(0.8)
        return pb.ListEventsResponse(next_page_token="finished")


@pytest.fixture
async def probe_server() -> tuple[RunningServer, Probe]:
    probe = Probe()

    def register(server: grpc.aio.Server) -> list[str]:
        metering_pb2_grpc.add_MeteringServiceServicer_to_server(probe, server)
        return [METERING]

    running = await start_server(address="127.0.0.1:0", register=register, metrics_port=0, **GUARD)
    await running.set_serving()
    yield running, probe
    await running.stop(0)


async def test_request_id_from_metadata_then_from_request_field_is_bound(probe_server):
    running, _ = probe_server
    async with auth_channel(f"127.0.0.1:{running.port}") as ch:
        stub = metering_pb2_grpc.MeteringServiceStub(ch)
        got = await stub.GetMeter(pb.GetMeterRequest(), metadata=[("x-request-id", "abc-123")], timeout=5)
        fresh = await stub.GetMeter(pb.GetMeterRequest(), timeout=5)
    assert got.meter.id == "abc-123"
    assert got.meter.display_name == f"{METERING}/GetMeter"
    assert fresh.meter.id and fresh.meter.id != "abc-123"


async def test_unexpected_exception_is_internal_with_error_id_and_no_traceback(probe_server):
    running, _ = probe_server
    async with auth_channel(f"127.0.0.1:{running.port}") as ch:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await metering_pb2_grpc.MeteringServiceStub(ch).ListMeters(pb.ListMetersRequest(), timeout=5)
    err = caught.value
    assert err.code() == grpc.StatusCode.INTERNAL
    assert "error id" in err.details()
    assert "hunter2" not in err.details() and "Traceback" not in err.details()
    assert "RuntimeError" not in err.details()
    assert "hunter2" not in str(err.trailing_metadata())


async def test_service_errors_map_to_codes_with_field_and_retry_details(probe_server):
    running, _ = probe_server
    async with auth_channel(f"127.0.0.1:{running.port}") as ch:
        stub = metering_pb2_grpc.MeteringServiceStub(ch)
        with pytest.raises(grpc.aio.AioRpcError) as invalid:
            await stub.ArchiveMeter(pb.ArchiveMeterRequest(), timeout=5)
        with pytest.raises(grpc.aio.AioRpcError) as exhausted:
            await stub.CreateMeter(pb.CreateMeterRequest(), timeout=5)
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await stub.QueryUsage(pb.QueryUsageRequest(), timeout=5)
    assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert invalid.value.details() == "key must be 1 to 64 characters"
    assert bad_request_fields(invalid.value) == [("key", "key must be 1 to 64 characters")]

    assert exhausted.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    status = rpc_status.from_call(exhausted.value)
    retry = error_details_pb2.RetryInfo()
    assert any(d.Unpack(retry) for d in status.details if d.Is(error_details_pb2.RetryInfo.DESCRIPTOR))
    assert retry.retry_delay.ToMilliseconds() == 2500

    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert missing.value.details() == "meter 'x' not found"


async def test_metrics_count_calls_by_method_and_code(probe_server):
    running, _ = probe_server
    async with auth_channel(f"127.0.0.1:{running.port}") as ch:
        stub = metering_pb2_grpc.MeteringServiceStub(ch)
        for _ in range(3):
            with pytest.raises(grpc.aio.AioRpcError):
                await stub.QueryUsage(pb.QueryUsageRequest(), timeout=5)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{running.metrics_port}/metrics") as response:
            assert response.status == 200
            body = await response.text()
    counted = [
        line
        for line in body.splitlines()
        if line.startswith("tollgate_grpc_server_handled_total{")
        and 'grpc_method="QueryUsage"' in line
        and 'grpc_code="NOT_FOUND"' in line
    ]
    assert counted and float(counted[0].rsplit(" ", 1)[1]) >= 3
    assert "tollgate_grpc_server_handling_seconds_bucket" in body


async def test_graceful_stop_turns_health_not_serving_and_lets_in_flight_calls_finish():
    probe = Probe()

    def register(server: grpc.aio.Server) -> list[str]:
        metering_pb2_grpc.add_MeteringServiceServicer_to_server(probe, server)
        return [METERING]

    running = await start_server(address="127.0.0.1:0", register=register, **GUARD)
    async with auth_channel(f"127.0.0.1:{running.port}") as ch:
        health = health_pb2_grpc.HealthStub(ch)
        before = await health.Check(health_pb2.HealthCheckRequest(service=METERING), timeout=5)
        assert before.status == health_pb2.HealthCheckResponse.NOT_SERVING  # not ready yet
        await running.set_serving()
        watch = health.Watch(health_pb2.HealthCheckRequest(service=METERING))
        assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING

        slow = asyncio.ensure_future(
            metering_pb2_grpc.MeteringServiceStub(ch).ListEvents(pb.ListEventsRequest(), timeout=10)
        )
        await asyncio.wait_for(probe.started.wait(), 5)
        stopping = asyncio.ensure_future(running.stop(5))
        assert (await asyncio.wait_for(watch.read(), 5)).status == health_pb2.HealthCheckResponse.NOT_SERVING
        watch.cancel()  # a watcher would otherwise hold the server for the whole grace period
        assert (await slow).next_page_token == "finished"
        await asyncio.wait_for(stopping, 4)


async def test_a_database_error_is_logged_without_the_values_the_caller_sent(make_database):
    from sqlalchemy import text

    from common.db import create_engine
    from common.server import loggable_error

    secret = f"secret-{uuid.uuid4().hex}"  # a caller's value, as a request would carry it
    engine = create_engine(await make_database("common"))
    try:
        async with engine.begin() as conn:
            with pytest.raises(Exception) as caught:
                await conn.execute(text("SELECT CAST(:v AS integer)"), {"v": secret})
    finally:
        await engine.dispose()
    assert secret in str(caught.value)  # asyncpg quotes the argument in its message
    fields = loggable_error(caught.value)
    assert secret not in repr(fields)
    assert "exc_info" not in fields and fields["stack"]
    assert fields["error_type"].endswith("DBAPIError")


@pytest.mark.parametrize("body", [b"\x0a\x03\xff\xfe\xfd", b"\xff\xff\xff", b"\x0a\xff\xff\xff\xff\x0f"])
async def test_bytes_that_are_not_a_valid_request_are_invalid_argument(metering_address, body):
    # Invalid UTF-8 in a string field, and wire data that is not protobuf at all: never UNKNOWN.
    async with auth_channel(metering_address) as ch:
        raw = ch.unary_unary("/tollgate.metering.v1.MeteringService/GetMeter")
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await raw(body, timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
    assert "not a valid message" in caught.value.details()


async def test_an_undecodable_body_without_a_credential_is_unauthenticated(metering_address):
    async with grpc.aio.insecure_channel(metering_address) as ch:
        raw = ch.unary_unary("/tollgate.metering.v1.MeteringService/GetMeter")
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await raw(b"\xff\xff\xff", timeout=10)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
