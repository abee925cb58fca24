"""Billing benchmark: close one month for 10,000 customers over 1,000,000 metered events.

Metering runs as a subprocess (`python -m metering`) with its own database; billing runs in-process
with its own. Events are ingested through metering's gRPC API in batches of 10,000; customers and
subscriptions are created through billing's gRPC API. Only ClosePeriod is timed. Target: < 60 s.

Knobs (environment): BENCH_BILLING_CUSTOMERS (10000), BENCH_BILLING_EVENTS (1000000).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import grpc

from bench._db import bench_credentials, credentials_env, fresh_database, operator_channel
from common.logging import configure_logging
from common.money import format_decimal, from_money, to_timestamp
from common.security import SecuritySettings
from tollgate.billing.v1 import billing_pb2 as bpb
from tollgate.billing.v1 import billing_pb2_grpc
from tollgate.metering.v1 import metering_pb2 as mpb
from tollgate.metering.v1 import metering_pb2_grpc

BUILDER = "bench-agency"
PLAN_YAML = """
currency: USD
base_fee: "19.00"
charges:
  - key: requests
    meter_key: requests
    display_name: Assistant requests
    included_quantity: 50
    graduated:
      tiers:
        - {up_to: 100, unit_price: "0.05"}
        - {up_to: null, unit_price: "0.03"}
  - key: tokens
    meter_key: llm_cost
    display_name: AI model usage
    cost_plus: {markup_percent: 25}
"""


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _wait_ready(channel: grpc.aio.Channel) -> None:
    await asyncio.wait_for(channel.channel_ready(), 60.0)


async def _pool(jobs: list, concurrency: int) -> None:
    gate = asyncio.Semaphore(concurrency)

    async def run(job):
        async with gate:
            await job

    await asyncio.gather(*(run(j) for j in jobs))


async def main() -> None:
    customers = int(os.environ.get("BENCH_BILLING_CUSTOMERS", "10000"))
    total_events = int(os.environ.get("BENCH_BILLING_EVENTS", "1000000"))
    _, metering_url = await fresh_database("billing_metering")
    _, billing_url = await fresh_database("billing")
    port = _free_port()
    env = {
        **os.environ,
        "METERING_DATABASE_URL": metering_url,
        "METERING_GRPC_ADDRESS": f"127.0.0.1:{port}",
        "METERING_METRICS_PORT": "off",
        "METERING_LOG_LEVEL": "WARNING",
        "METERING_SETTLE_SECONDS": "10",
        **credentials_env("metering"),
    }
    configure_logging("billing", "WARNING", json=False)
    proc = subprocess.Popen([sys.executable, "-m", "metering"], env=env)  # noqa: ASYNC220 - started once
    running = None
    try:
        from billing.app import start
        from billing.config import Settings

        metering_address = f"127.0.0.1:{port}"
        options = [("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)]
        async with operator_channel(metering_address, options=options) as mch:
            await _wait_ready(mch)
            metering = metering_pb2_grpc.MeteringServiceStub(mch)
            for meter in (
                mpb.Meter(
                    builder_id=BUILDER,
                    key="requests",
                    display_name="Requests",
                    event_types=["ai.request"],
                    aggregation=mpb.AGGREGATION_COUNT,
                ),
                mpb.Meter(
                    builder_id=BUILDER,
                    key="llm_cost",
                    display_name="Model cost",
                    event_types=["ai.request"],
                    aggregation=mpb.AGGREGATION_SUM,
                    quantity="provider_cost",
                ),
            ):
                await metering.CreateMeter(mpb.CreateMeterRequest(request_id=uuid.uuid4().hex, meter=meter))

            now = datetime.now(UTC)
            y, m = (now.year, now.month - 1) if now.month > 1 else (now.year - 1, 12)
            start_of_month = datetime(y, m, 1, tzinfo=UTC)
            end_of_month = datetime(now.year, now.month, 1, tzinfo=UTC)
            occurred = to_timestamp(start_of_month.replace(day=15))
            workflows = ("intake", "review", "reply")

            t0 = time.perf_counter()
            batch = 10_000

            async def send(first: int) -> None:
                events = [
                    mpb.UsageEvent(
                        id=f"e{i}",
                        type="ai.request",
                        occurred_time=occurred,
                        builder_id=BUILDER,
                        app_id="app",
                        customer_id=f"c{i % customers:05d}",
                        status=mpb.EVENT_STATUS_SUCCEEDED,
                        tags={"workflow": workflows[i % 3]},
                        quantities={"provider_cost": str(Decimal(i % 97) / Decimal(10_000))},
                    )
                    for i in range(first, min(first + batch, total_events))
                ]
                await metering.IngestEvents(
                    mpb.IngestEventsRequest(request_id=f"b{first}", events=events), timeout=300
                )

            await _pool([send(f) for f in range(0, total_events, batch)], 2)
            print(
                f"billing.bench.ingest events={total_events} seconds={time.perf_counter() - t0:.1f}",
                flush=True,
            )

            running = await start(
                Settings(
                    database_url=billing_url,
                    grpc_address="127.0.0.1:0",
                    metrics_port=None,
                    metering_address=metering_address,
                    usage_cutoff_lag_seconds=10,
                    metering_deadline_seconds=300,
                    log_level="WARNING",
                    security=SecuritySettings.local("billing", bench_credentials().directory),
                )
            )
            async with operator_channel(f"127.0.0.1:{running.port}", options=options) as bch:
                billing = billing_pb2_grpc.BillingServiceStub(bch)
                plan = await billing.ApplyPlanYaml(
                    bpb.ApplyPlanYamlRequest(
                        request_id=uuid.uuid4().hex, builder_id=BUILDER, plan_key="assistant", yaml=PLAN_YAML
                    )
                )
                t1 = time.perf_counter()

                async def onboard(i: int) -> None:
                    cid = f"c{i:05d}"
                    await billing.CreateCustomer(
                        bpb.CreateCustomerRequest(
                            request_id=f"cust-{cid}",
                            customer=bpb.Customer(
                                id=cid,
                                builder_id=BUILDER,
                                app_id="app",
                                currency_code="USD",
                                display_name=cid,
                            ),
                        )
                    )
                    await billing.Subscribe(
                        bpb.SubscribeRequest(
                            request_id=f"sub-{cid}",
                            builder_id=BUILDER,
                            customer_id=cid,
                            plan_id=plan.plan.id,
                            start_time=to_timestamp(start_of_month),
                        )
                    )

                await _pool([onboard(i) for i in range(customers)], 32)
                print(
                    f"billing.bench.onboard customers={customers} seconds={time.perf_counter() - t1:.1f}",
                    flush=True,
                )

                t2 = time.perf_counter()
                reply = await billing.ClosePeriod(
                    bpb.ClosePeriodRequest(
                        request_id=uuid.uuid4().hex,
                        builder_id=BUILDER,
                        period_end_time=to_timestamp(end_of_month),
                    ),
                    timeout=600,
                )
                seconds = time.perf_counter() - t2
                totals = " ".join(
                    f"total_{t.currency_code}={format_decimal(from_money(t))}" for t in reply.totals
                )
                print(
                    f"billing.close customers={customers} events={total_events} "
                    f"invoices={reply.finalized_count} seconds={seconds:.1f} {totals}",
                    flush=True,
                )
    finally:
        if running is not None:
            await running.stop(0)
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    asyncio.run(main())
