"""Metering benchmarks: ingest throughput through gRPC and QueryUsage latency over 1,000,000 events.

The server runs as its own process (`python -m metering`), so client and server do not share a CPU
core's worth of interpreter; the client pre-serializes its batches before the clock starts, so the
figure measures the server (decode, validate, dedup, write), not the client's protobuf encoding.

Prints lines like:
    metering.ingest events_per_s=41234 events=220000 batches=220 batch_size=1000 dup_ratio=0.10 streams=4
    metering.query name=month_by_customer p50_ms=123.4 p95_ms=140.2 runs=20 rows=1000
Targets on the 2-core box: ingest >= 30,000 events/s; month-by-customer query < 300 ms.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy.engine import make_url

from bench._db import credentials_env, fresh_database, operator_channel
from common.db import drop_database
from tollgate.metering.v1 import metering_pb2 as pb
from tollgate.metering.v1 import metering_pb2_grpc

REPO = Path(__file__).resolve().parent.parent
BUILDER = "bench-builder"
CUSTOMERS = 1000
TOTAL_EVENTS = 1_000_000
INGEST_BATCHES = 220
INGEST_BATCH_SIZE = 1000
DUP_RATIO = 0.10
INGEST_STREAMS = 4
LOAD_BATCH_SIZE = 5000
LOAD_STREAMS = 3
QUERY_RUNS = 20
WORKFLOWS = ["intake", "triage", "summary", "extract", "reply"]
INGEST_METHOD = "/tollgate.metering.v1.MeteringService/IngestEvents"


def _months() -> tuple[datetime, datetime, datetime]:
    """The two whole months before the current one: [first, second, end)."""
    now = datetime.now(UTC)
    this = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    second = (this - timedelta(days=1)).replace(day=1)
    first = (second - timedelta(days=1)).replace(day=1)
    return first, second, this


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EventFactory:
    """Event i is a pure function of i, so a re-sent id carries exactly the same content."""

    def __init__(self, start: datetime, end: datetime) -> None:
        self.start = start
        self.span = int((end - start).total_seconds())

    def make(self, i: int) -> pb.UsageEvent:
        h = (i * 2654435761) & 0xFFFFFFFF
        ev = pb.UsageEvent(
            id=f"ev-{i}",
            type="ai.request",
            builder_id=BUILDER,
            app_id=f"app-{h % 5}",
            customer_id=f"cust-{i % CUSTOMERS:04d}",
            status=pb.EVENT_STATUS_SUCCEEDED if h % 50 else pb.EVENT_STATUS_FAILED,
            run_id=f"run-{i // 4}",
            tags={"workflow": WORKFLOWS[h % 5], "workspace": f"ws-{h % 3}"},
            quantities={
                "input_tokens": str(200 + h % 3000),
                "output_tokens": str(20 + h % 700),
                "provider_cost": f"0.{h % 1000000:06d}",
            },
        )
        ev.occurred_time.FromDatetime(self.start + timedelta(seconds=h % self.span, microseconds=i % 1000))
        return ev

    def batch(self, ids: list[int]) -> bytes:
        return pb.IngestEventsRequest(
            request_id=uuid.uuid4().hex, events=[self.make(i) for i in ids]
        ).SerializeToString()


async def _start_server(database_url: str, log_path: Path) -> tuple[asyncio.subprocess.Process, str]:
    port = _free_port()
    env = {**os.environ, **credentials_env("metering")}
    env.update(
        METERING_DATABASE_URL=database_url,
        METERING_GRPC_ADDRESS=f"127.0.0.1:{port}",
        METERING_METRICS_PORT="off",
        METERING_LOG_LEVEL="WARNING",
    )
    with log_path.open("ab") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "metering", cwd=REPO, env=env, stdout=log, stderr=log
        )
    address = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    async with grpc.aio.insecure_channel(address) as ch:
        health = health_pb2_grpc.HealthStub(ch)
        while time.monotonic() < deadline:
            if proc.returncode is not None:
                raise RuntimeError(f"metering exited with {proc.returncode}; see {log_path}")
            try:
                answer = await health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    return proc, address
            except grpc.aio.AioRpcError:
                pass
            await asyncio.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"metering never became SERVING; see {log_path}")


async def _send_all(channel: grpc.aio.Channel, payloads: list[bytes], streams: int) -> tuple[int, int]:
    """Send the pre-serialized batches over `streams` concurrent callers; return (accepted, duplicates)."""
    call = channel.unary_unary(INGEST_METHOD, response_deserializer=pb.IngestEventsResponse.FromString)
    queue = list(reversed(payloads))
    accepted = duplicates = 0

    async def worker() -> None:
        nonlocal accepted, duplicates
        while queue:
            response = await call(queue.pop(), timeout=120)
            if response.invalid_count or response.conflict_count:
                raise RuntimeError(f"unexpected invalid/conflict results: {response.results[:2]}")
            accepted += response.accepted_count
            duplicates += response.duplicate_count

    await asyncio.gather(*(worker() for _ in range(streams)))
    return accepted, duplicates


async def _ingest_throughput(channel: grpc.aio.Channel, factory: EventFactory) -> int:
    rng = random.Random(7)
    fresh_per_batch = int(INGEST_BATCH_SIZE * (1 - DUP_RATIO))
    payloads: list[bytes] = []
    next_id = 0
    for n in range(INGEST_BATCHES):
        ids = list(range(next_id, next_id + fresh_per_batch))
        next_id += fresh_per_batch
        # Re-sends of ids an earlier batch (or this one, for the first) already carries.
        pool = next_id if n else fresh_per_batch
        ids += [rng.randrange(pool) for _ in range(INGEST_BATCH_SIZE - fresh_per_batch)]
        rng.shuffle(ids)
        payloads.append(factory.batch(ids))
    sent = INGEST_BATCHES * INGEST_BATCH_SIZE
    started = time.perf_counter()
    accepted, duplicates = await _send_all(channel, payloads, INGEST_STREAMS)
    elapsed = time.perf_counter() - started
    assert accepted == next_id, (accepted, next_id)
    assert accepted + duplicates == sent
    print(
        f"metering.ingest events_per_s={sent / elapsed:.0f} events={sent} accepted={accepted} "
        f"duplicates={duplicates} batches={INGEST_BATCHES} batch_size={INGEST_BATCH_SIZE} "
        f"dup_ratio={DUP_RATIO:.2f} streams={INGEST_STREAMS} seconds={elapsed:.1f}",
        flush=True,
    )
    return next_id


async def _load(channel: grpc.aio.Channel, factory: EventFactory, start_id: int) -> None:
    """Fill up to TOTAL_EVENTS stored events; batches are built and serialized in a thread."""
    remaining = list(range(start_id, TOTAL_EVENTS))
    chunks = [remaining[i : i + LOAD_BATCH_SIZE] for i in range(0, len(remaining), LOAD_BATCH_SIZE)]
    started = time.perf_counter()
    call = channel.unary_unary(INGEST_METHOD, response_deserializer=pb.IngestEventsResponse.FromString)
    ready: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=LOAD_STREAMS * 2)

    async def producer() -> None:
        for chunk in chunks:
            await ready.put(await asyncio.to_thread(factory.batch, chunk))
        for _ in range(LOAD_STREAMS):
            await ready.put(None)

    accepted = 0

    async def worker() -> None:
        nonlocal accepted
        while (payload := await ready.get()) is not None:
            response = await call(payload, timeout=300)
            # Read-modify-write after the await: `accepted += await ...` would lose concurrent adds.
            accepted += response.accepted_count

    await asyncio.gather(producer(), *(worker() for _ in range(LOAD_STREAMS)))
    elapsed = time.perf_counter() - started
    assert accepted == len(remaining), (accepted, len(remaining))
    print(
        f"metering.load stored_events={TOTAL_EVENTS} loaded_now={accepted} seconds={elapsed:.1f} "
        f"events_per_s={accepted / elapsed:.0f} (client building batches too)",
        flush=True,
    )


def _request(meter_key: str, start: datetime, end: datetime, **kw) -> pb.QueryUsageRequest:
    request = pb.QueryUsageRequest(builder_id=BUILDER, meter_key=meter_key, **kw)
    request.start_time.FromDatetime(start)
    request.end_time.FromDatetime(end)
    return request


async def _latency(stub, name: str, request: pb.QueryUsageRequest) -> float:
    await stub.QueryUsage(request, timeout=60)  # warm-up: plans, caches
    times: list[float] = []
    rows = 0
    for _ in range(QUERY_RUNS):
        t0 = time.perf_counter()
        response = await stub.QueryUsage(request, timeout=60)
        times.append((time.perf_counter() - t0) * 1000)
        rows = len(response.rows)
    times.sort()
    p50 = statistics.median(times)
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
    print(
        f"metering.query name={name} p50_ms={p50:.1f} p95_ms={p95:.1f} runs={QUERY_RUNS} rows={rows}",
        flush=True,
    )
    return p50


async def main() -> None:
    first, second, end = _months()
    server_url, database_url = await fresh_database("metering")
    db_name = make_url(database_url).database
    log_path = Path(tempfile.gettempdir()) / f"bench-metering-{uuid.uuid4().hex[:6]}.log"
    proc, address = await _start_server(database_url, log_path)
    try:
        options = [("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)]
        async with operator_channel(address, options=options) as channel:
            stub = metering_pb2_grpc.MeteringServiceStub(channel)
            factory = EventFactory(first, end)
            loaded = await _ingest_throughput(channel, factory)
            await _load(channel, factory, loaded)

            meter = pb.Meter(
                builder_id=BUILDER,
                key="input_tokens",
                display_name="Input tokens",
                event_types=["ai.request"],
                aggregation=pb.AGGREGATION_SUM,
                quantity="input_tokens",
            )
            await stub.CreateMeter(pb.CreateMeterRequest(request_id="bench-meter", meter=meter), timeout=30)
            count_meter = pb.Meter(
                builder_id=BUILDER,
                key="requests",
                display_name="Requests",
                event_types=["ai.request"],
                aggregation=pb.AGGREGATION_COUNT,
                statuses=[pb.EVENT_STATUS_SUCCEEDED, pb.EVENT_STATUS_FAILED],
            )
            await stub.CreateMeter(
                pb.CreateMeterRequest(request_id="bench-count", meter=count_meter), timeout=30
            )
            everything = await stub.QueryUsage(_request("requests", first, end), timeout=120)
            print(f"metering.stored events_counted={everything.rows[0].value}", flush=True)

            await _latency(
                stub, "month_one_customer", _request("input_tokens", second, end, customer_id="cust-0042")
            )
            await _latency(
                stub, "month_by_customer", _request("input_tokens", second, end, group_by_customer=True)
            )
            await _latency(
                stub,
                "month_by_day_one_customer",
                _request(
                    "input_tokens", second, end, customer_id="cust-0042", window_size=pb.WINDOW_SIZE_DAY
                ),
            )
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if os.environ.get("METERING_BENCH_KEEP_DB"):
            # For EXPLAIN ANALYZE by hand; drop it afterwards.
            print(f"metering.bench kept database {db_name}", flush=True)
        else:
            try:
                await drop_database(server_url, db_name)
            except Exception as exc:  # the figures are printed already; a leftover database is not fatal
                print(f"metering.bench could not drop {db_name}: {exc}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
