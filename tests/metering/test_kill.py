"""`python -m metering` as a real process: SIGKILL in the middle of a batch loses no acknowledged event
and double-counts none when the client retries; SIGTERM drains gracefully."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path

import aiohttp
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from metering_kit import (
    ACCEPTED,
    COUNT,
    DUPLICATE,
    TEST_MAX_EVENT_AGE_DAYS,
    create_meter,
    event,
    free_port,
    ingest,
    meter,
    migrated_metering_database,
    new_id,
    total,
    utc,
)

from tests.conftest import auth_channel, security_env
from tollgate.metering.v1 import metering_pb2 as pb
from tollgate.metering.v1 import metering_pb2_grpc

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
JAN, FEB = utc(2026, 1, 1), utc(2026, 2, 1)
BATCH = 2000


async def start_process(
    database_url: str, log_path: Path, grace: float = 10.0, metrics_port: int | None = None
) -> tuple[asyncio.subprocess.Process, str]:
    port = free_port()
    env = {**os.environ, **security_env("metering")}
    env.update(
        METERING_DATABASE_URL=database_url,
        METERING_GRPC_ADDRESS=f"127.0.0.1:{port}",
        METERING_METRICS_PORT=str(metrics_port) if metrics_port else "off",
        METERING_LOG_LEVEL="INFO",
        METERING_SHUTDOWN_GRACE_SECONDS=str(grace),
        METERING_MAX_EVENT_AGE_DAYS=str(TEST_MAX_EVENT_AGE_DAYS),
    )
    log = log_path.open("ab")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "metering", cwd=REPO, env=env, stdout=log, stderr=log
    )
    log.close()
    address = f"127.0.0.1:{port}"
    await wait_serving(address, proc, log_path)
    return proc, address


async def wait_serving(
    address: str, proc: asyncio.subprocess.Process, log_path: Path, limit: float = 60
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    async with auth_channel(address) as ch:
        health = health_pb2_grpc.HealthStub(ch)
        while loop.time() < deadline:
            if proc.returncode is not None:
                raise AssertionError(f"metering exited with {proc.returncode}: {_tail(log_path)}")
            with contextlib.suppress(grpc.aio.AioRpcError):
                answer = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            await asyncio.sleep(0.1)
    raise AssertionError(f"metering never became SERVING: {_tail(log_path)}")


def _tail(log_path: Path) -> str:
    return log_path.read_text(errors="replace")[-2000:]


async def stop_process(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 15)
        except TimeoutError:
            proc.kill()
            await proc.wait()


def batch_events(builder: str, n: int) -> list[pb.UsageEvent]:
    return [
        event(
            f"k{n}-{i}",
            builder=builder,
            customer=f"c{i % 7}",
            at=utc(2026, 1, 1 + n % 28, i % 24),
            quantities={"input_tokens": str(i)},
        )
        for i in range(BATCH)
    ]


async def test_sigkill_mid_batch_loses_no_acknowledged_event_and_counts_none_twice(make_database, tmp_path):
    url = await migrated_metering_database(make_database)
    builder = new_id()
    log_path = tmp_path / "metering.log"
    proc, address = await start_process(url, log_path)
    restarted = None
    try:
        acked: dict[int, pb.IngestEventsResponse] = {}
        attempted: set[int] = set()
        in_flight: set[int] = set()
        next_batch = 0
        killed = asyncio.Event()

        async with auth_channel(address) as ch:
            stub = metering_pb2_grpc.MeteringServiceStub(ch)
            await create_meter(stub, meter(builder, "requests", COUNT))

            async def sender() -> None:
                nonlocal next_batch
                while not killed.is_set() and next_batch < 200:
                    n = next_batch
                    next_batch += 1
                    events = batch_events(builder, n)
                    attempted.add(n)
                    in_flight.add(n)
                    try:
                        acked[n] = await ingest(stub, events, request_id=f"batch-{n}")
                    except grpc.aio.AioRpcError:
                        return
                    finally:
                        in_flight.discard(n)

            async def killer() -> None:
                while len(acked) < 3 or not in_flight:  # noqa: ASYNC110 - polls the senders' state
                    await asyncio.sleep(0.005)
                await asyncio.sleep(0.03)  # let the in-flight batch reach the server and start writing
                assert in_flight, "no batch in flight at the kill"
                proc.send_signal(signal.SIGKILL)
                killed.set()

            await asyncio.gather(sender(), sender(), killer())
        assert await proc.wait() == -signal.SIGKILL
        unacked = attempted - set(acked)
        assert unacked, "the kill landed between batches"
        for response in acked.values():
            assert response.accepted_count == BATCH

        restarted, address = await start_process(url, log_path)
        async with auth_channel(address) as ch:
            stub = metering_pb2_grpc.MeteringServiceStub(ch)
            # The client retries what it never heard back about...
            for n in sorted(unacked):
                retry = await ingest(stub, batch_events(builder, n), request_id=f"batch-{n}-retry")
                assert {r.outcome for r in retry.results} <= {ACCEPTED, DUPLICATE}, retry.results[:3]
                assert retry.accepted_count + retry.duplicate_count == BATCH
            # ...and, being careful, everything it did hear back about: all already stored.
            for n in sorted(acked):
                resend = await ingest(stub, batch_events(builder, n), request_id=f"batch-{n}-again")
                assert resend.duplicate_count == BATCH, (n, resend.accepted_count, resend.conflict_count)
            assert await total(stub, builder, "requests", JAN, FEB) == BATCH * len(attempted)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        if restarted is not None:
            await stop_process(restarted)


async def test_sigterm_turns_health_not_serving_and_finishes_the_call_in_flight(make_database, tmp_path):
    url = await migrated_metering_database(make_database)
    builder = new_id()
    log_path = tmp_path / "metering.log"
    proc, address = await start_process(url, log_path, grace=10.0)
    try:

        def payload(attempt: int) -> bytes:
            # Serialized up front, so the call puts bytes on the wire at once.
            events = [
                event(f"t{attempt}-{i}", builder=builder, quantities={"pages": "1"}) for i in range(10_000)
            ]
            return pb.IngestEventsRequest(request_id=f"big-{attempt}", events=events).SerializeToString()

        stored = 0
        async with auth_channel(address) as ch:
            ingest_raw = ch.unary_unary(
                "/tollgate.metering.v1.MeteringService/IngestEvents",
                response_deserializer=pb.IngestEventsResponse.FromString,
            )
            health = health_pb2_grpc.HealthStub(ch)
            watch = health.Watch(
                health_pb2.HealthCheckRequest(service="tollgate.metering.v1.MeteringService")
            )
            assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING

            # Signal while a 10,000-event batch is being handled; a server fast enough to finish
            # one within 50 ms just gets another.
            for attempt in range(5):
                call = asyncio.ensure_future(ingest_raw(payload(attempt), timeout=30))
                await asyncio.sleep(0.05)
                if not call.done():
                    break
                stored += (await call).accepted_count
            else:
                pytest.fail("every batch finished within 50 ms; nothing was in flight to drain")
            proc.send_signal(signal.SIGTERM)

            update = await asyncio.wait_for(watch.read(), 5)
            assert update.status == health_pb2.HealthCheckResponse.NOT_SERVING
            watch.cancel()
            response = await call
            assert response.accepted_count == 10_000
            stored += response.accepted_count
        assert await asyncio.wait_for(proc.wait(), 15) == 0

        # Nothing of the drained batch was lost: a fresh process sees every event once.
        metrics_port = free_port()
        proc, address = await start_process(url, log_path, metrics_port=metrics_port)
        async with auth_channel(address) as ch:
            stub = metering_pb2_grpc.MeteringServiceStub(ch)
            await create_meter(stub, meter(builder, "requests", COUNT))
            assert await total(stub, builder, "requests", JAN, FEB) == stored
        # The process exports its call metrics on the side port.
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{metrics_port}/metrics") as reply:
                body = await reply.text()
        assert any(
            line.startswith("tollgate_grpc_server_handled_total{")
            and 'grpc_method="QueryUsage"' in line
            and 'grpc_code="OK"' in line
            for line in body.splitlines()
        ), body[:500]
    finally:
        await stop_process(proc)
