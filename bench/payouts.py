"""Payouts benchmark.

1. A payout run over BENCH_PAYOUTS_PAYEES (10,000) payees whose ledger holds BENCH_PAYOUTS_ENTRIES
   (1,000,000) transfers: half earnings posted through the store as the feed posts them, half their
   hold releases (ReleaseHolds, timed), then RunPayouts over gRPC (timed; target < 30 s), then a
   second RunPayouts for the same period (creates nothing; timed).
2. Feed consumption from a real billing: BENCH_PAYOUTS_FEED_CUSTOMERS (2,000) customers of one builder
   are invoiced and paid through billing's API (metering as a subprocess), then SyncEarnings reads the
   whole earnings feed in pages of 1,000; reported as entries/s.
3. Feed consumption at scale: BENCH_PAYOUTS_FEED_ENTRIES (1,000,000) earnings entries in a real
   billing's database (`python -m billing` as a subprocess), consumed by SyncEarnings through billing's
   ListEarnings with payouts' service credential, as in production; reported as entries/s, then
   checked: every entry recorded and posted once, the ledger balanced, clearing = minus the feed's sum.
   BENCH_PAYOUTS_STEPS (run,feed,feed_scale) picks the steps.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
import grpc

from bench._db import bench_credentials, credentials_env, fresh_database, operator_channel
from common.db import create_engine, libpq_url
from common.logging import configure_logging
from common.migrations import upgrade_head_async
from common.money import to_timestamp
from common.security import SecuritySettings
from tollgate.billing.v1 import billing_pb2 as bpb
from tollgate.billing.v1 import billing_pb2_grpc
from tollgate.metering.v1 import metering_pb2 as mpb
from tollgate.metering.v1 import metering_pb2_grpc
from tollgate.payouts.v1 import payouts_pb2 as ppb
from tollgate.payouts.v1 import payouts_pb2_grpc

MIGRATIONS = "services/payouts/migrations"
OPTIONS = [("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)]
PLAN_YAML = """
currency: USD
base_fee: "19.00"
charges:
  - key: requests
    meter_key: requests
    display_name: Assistant requests
    per_unit: {unit_price: "0.05"}
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


async def _pool(jobs: list, concurrency: int) -> None:
    gate = asyncio.Semaphore(concurrency)

    async def run(job):
        async with gate:
            await job

    await asyncio.gather(*(run(j) for j in jobs))


async def _payouts_server(url: str, billing: str = "127.0.0.1:1", metering: str = "127.0.0.1:1"):
    from payouts.app import start
    from payouts.config import Settings

    return await start(
        Settings(
            database_url=url,
            grpc_address="127.0.0.1:0",
            metrics_port=None,
            billing_address=billing,
            metering_address=metering,
            feed_poll_seconds=0,
            feed_page_size=1000,
            default_hold_days=0,
            call_deadline_seconds=60,
            log_level="WARNING",
            security=SecuritySettings.local("payouts", bench_credentials().directory),
        )
    )


async def seed_ledger(url: str, payees: int, earnings: int) -> None:
    """`earnings` earnings transfers spread over `payees` builders, posted in pages as the feed does."""
    from payouts import store
    from payouts.domain.ledger import EntryKind, FeedEntry, entry_transfer

    engine = create_engine(url, pool_size=2)
    when = datetime.now(UTC) - timedelta(days=2)
    names = [f"builder-{i:05d}" for i in range(payees)]
    page = 20_000
    try:
        async with engine.begin() as conn:
            await store.ensure_payees(conn, [(n, "USD", "builder") for n in names], Decimal(50), 0)
        for first in range(0, earnings, page):
            batch = []
            for seq in range(first + 1, min(first + page, earnings) + 1):
                amount = Decimal(seq % 1000 + 1) / 100
                entry = FeedEntry(
                    seq, names[seq % payees], "app", f"c{seq % 7}", f"inv{seq // 9}", 0, "wf", "requests",
                    EntryKind.BUILDER_MARGIN, "payment", amount, "USD", "pay", when,
                )  # fmt: skip
                batch.append(entry_transfer(entry, hold_days=0))
            async with engine.begin() as conn:
                await store.post(conn, batch)
    finally:
        await engine.dispose()


async def bench_payout_run() -> None:
    payees = int(os.environ.get("BENCH_PAYOUTS_PAYEES", "10000"))
    entries = int(os.environ.get("BENCH_PAYOUTS_ENTRIES", "1000000"))
    _, url = await fresh_database("payouts")
    await upgrade_head_async(MIGRATIONS, url, "alembic_version_payouts")
    t0 = time.perf_counter()
    await seed_ledger(url, payees, entries // 2)
    seconds = time.perf_counter() - t0
    print(f"payouts.bench.post transfers={entries // 2} seconds={seconds:.1f} "
          f"transfers_per_s={entries // 2 / seconds:.0f}", flush=True)  # fmt: skip
    running = await _payouts_server(url)
    try:
        async with operator_channel(f"127.0.0.1:{running.port}", options=OPTIONS) as ch:
            stub = payouts_pb2_grpc.PayoutsServiceStub(ch)
            t1 = time.perf_counter()
            released = await stub.ReleaseHolds(
                ppb.ReleaseHoldsRequest(request_id=uuid.uuid4().hex), timeout=900
            )
            print(f"payouts.bench.release holds={released.released_count} "
                  f"seconds={time.perf_counter() - t1:.1f}", flush=True)  # fmt: skip
            period = f"{datetime.now(UTC):%Y-%m}"
            t2 = time.perf_counter()
            run = await stub.RunPayouts(
                ppb.RunPayoutsRequest(request_id=uuid.uuid4().hex, period=period), timeout=900
            )
            seconds = time.perf_counter() - t2
            total = " ".join(
                f"total_{t.currency_code}={t.units}.{abs(t.nanos) // 10_000_000:02d}" for t in run.totals
            )
            print(f"payouts.bench.run payees={payees} ledger_transfers={entries} payouts={run.created_count} "
                  f"seconds={seconds:.1f} {total} (target < 30 s)", flush=True)  # fmt: skip
            t3 = time.perf_counter()
            again = await stub.RunPayouts(ppb.RunPayoutsRequest(request_id=uuid.uuid4().hex, period=period))
            print(f"payouts.bench.rerun created={again.created_count} seconds={time.perf_counter() - t3:.2f}",
                  flush=True)  # fmt: skip
            t4 = time.perf_counter()
            report = await stub.Reconcile(ppb.ReconcileRequest(period=period), timeout=900)
            print(f"payouts.bench.reconcile clean={report.clean} checks={len(report.checks)} "
                  f"seconds={time.perf_counter() - t4:.1f}", flush=True)  # fmt: skip
    finally:
        await running.stop(0)


async def bench_feed() -> None:
    customers = int(os.environ.get("BENCH_PAYOUTS_FEED_CUSTOMERS", "2000"))
    builder = "bench-payouts"
    _, metering_url = await fresh_database("payouts_metering")
    _, billing_url = await fresh_database("payouts_billing")
    _, payouts_url = await fresh_database("payouts_feed")
    port = _free_port()
    env = {
        **os.environ,
        "METERING_DATABASE_URL": metering_url,
        "METERING_GRPC_ADDRESS": f"127.0.0.1:{port}",
        "METERING_METRICS_PORT": "off",
        "METERING_LOG_LEVEL": "WARNING",
        "METERING_SETTLE_SECONDS": "2",
        **credentials_env("metering"),
    }
    proc = subprocess.Popen([sys.executable, "-m", "metering"], env=env)  # noqa: ASYNC220 - started once
    billing_running = payouts_running = None
    try:
        from billing.app import start as start_billing
        from billing.config import Settings as BillingSettings

        metering_address = f"127.0.0.1:{port}"
        async with operator_channel(metering_address, options=OPTIONS) as mch:
            await asyncio.wait_for(mch.channel_ready(), 60)
            metering = metering_pb2_grpc.MeteringServiceStub(mch)
            for meter in (
                mpb.Meter(builder_id=builder, key="requests", display_name="Requests",
                          event_types=["ai.request"], aggregation=mpb.AGGREGATION_COUNT),
                mpb.Meter(builder_id=builder, key="llm_cost", display_name="Model cost",
                          event_types=["ai.request"], aggregation=mpb.AGGREGATION_SUM,
                          quantity="provider_cost"),
            ):  # fmt: skip
                await metering.CreateMeter(mpb.CreateMeterRequest(request_id=uuid.uuid4().hex, meter=meter))
            now = datetime.now(UTC)
            y, m = (now.year, now.month - 1) if now.month > 1 else (now.year - 1, 12)
            month_start, month_end = (
                datetime(y, m, 1, tzinfo=UTC),
                datetime(now.year, now.month, 1, tzinfo=UTC),
            )
            occurred = to_timestamp(month_start.replace(day=15))
            workflows = ("intake", "review", "reply")
            events = [
                mpb.UsageEvent(
                    id=f"e{i}", type="ai.request", occurred_time=occurred, builder_id=builder, app_id="app",
                    customer_id=f"c{i % customers:05d}", status=mpb.EVENT_STATUS_SUCCEEDED,
                    tags={"workflow": workflows[i % 3]}, quantities={"provider_cost": f"0.0{i % 89 + 10}"},
                )
                for i in range(customers * 6)
            ]  # fmt: skip
            for first in range(0, len(events), 10_000):
                await metering.IngestEvents(
                    mpb.IngestEventsRequest(request_id=f"b{first}", events=events[first : first + 10_000]),
                    timeout=300,
                )
            billing_running = await start_billing(
                BillingSettings(
                    database_url=billing_url, grpc_address="127.0.0.1:0", metrics_port=None,
                    metering_address=metering_address, usage_cutoff_lag_seconds=2,
                    metering_deadline_seconds=300, log_level="WARNING",
                    security=SecuritySettings.local("billing", bench_credentials().directory),
                )
            )  # fmt: skip
            billing_address = f"127.0.0.1:{billing_running.port}"
            async with operator_channel(billing_address, options=OPTIONS) as bch:
                billing = billing_pb2_grpc.BillingServiceStub(bch)
                await billing.SetPlatformFee(
                    bpb.SetPlatformFeeRequest(
                        request_id=uuid.uuid4().hex,
                        platform_fee=bpb.PlatformFee(
                            builder_id=builder, percent_of_line="5", percent_of_margin="0"
                        ),
                    )
                )
                plan = await billing.ApplyPlanYaml(
                    bpb.ApplyPlanYamlRequest(
                        request_id=uuid.uuid4().hex, builder_id=builder, plan_key="assistant", yaml=PLAN_YAML
                    )
                )

                async def onboard(i: int) -> None:
                    cid = f"c{i:05d}"
                    await billing.CreateCustomer(
                        bpb.CreateCustomerRequest(
                            request_id=f"cust-{cid}",
                            customer=bpb.Customer(id=cid, builder_id=builder, app_id="app",
                                                  currency_code="USD", display_name=cid),
                        )
                    )  # fmt: skip
                    await billing.Subscribe(
                        bpb.SubscribeRequest(
                            request_id=f"sub-{cid}", builder_id=builder, customer_id=cid,
                            plan_id=plan.plan.id, start_time=to_timestamp(month_start),
                        )
                    )  # fmt: skip

                await _pool([onboard(i) for i in range(customers)], 32)
                await asyncio.sleep(2.5)  # past metering's settle window, so the close does not wait
                await billing.ClosePeriod(
                    bpb.ClosePeriodRequest(
                        request_id=uuid.uuid4().hex,
                        builder_id=builder,
                        period_end_time=to_timestamp(month_end),
                    ),
                    timeout=900,
                )
                invoices = []
                token = ""
                while True:
                    page = await billing.ListInvoices(
                        bpb.ListInvoicesRequest(builder_id=builder, page_size=1000, page_token=token)
                    )
                    invoices.extend(page.invoices)
                    token = page.next_page_token
                    if not token:
                        break

                async def pay(inv: bpb.Invoice) -> None:
                    await billing.RecordPayment(
                        bpb.RecordPaymentRequest(
                            request_id=f"pay-{inv.id}", builder_id=builder, invoice_id=inv.id,
                            amount=inv.amount_due, external_reference=f"ref-{inv.id}",
                        )
                    )  # fmt: skip

                await _pool([pay(i) for i in invoices], 32)

            payouts_running = await _payouts_server(payouts_url, billing_address, metering_address)
            async with operator_channel(f"127.0.0.1:{payouts_running.port}", options=OPTIONS) as pch:
                stub = payouts_pb2_grpc.PayoutsServiceStub(pch)
                t0 = time.perf_counter()
                synced = await stub.SyncEarnings(
                    ppb.SyncEarningsRequest(request_id=uuid.uuid4().hex), timeout=900
                )
                seconds = time.perf_counter() - t0
                rate = synced.applied_count / seconds
                print(f"payouts.bench.feed invoices={len(invoices)} entries={synced.applied_count} "
                      f"seconds={seconds:.1f} entries_per_s={rate:.0f}", flush=True)  # fmt: skip
                t1 = time.perf_counter()
                report = await stub.Reconcile(
                    ppb.ReconcileRequest(period=f"{month_start:%Y-%m}"), timeout=900
                )
                took = time.perf_counter() - t1
                print(f"payouts.bench.reconcile_with_billing_and_metering clean={report.clean} "
                      f"checks={len(report.checks)} seconds={took:.1f}", flush=True)  # fmt: skip
    finally:
        if payouts_running is not None:
            await payouts_running.stop(0)
        if billing_running is not None:
            await billing_running.stop(0)
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


# Bench set-up only: what billing appends when invoices are paid (a provider cost, a platform fee and a
# builder margin entry per usage line), written in bulk through the migrated billing schema because
# producing a million entries through billing's API means ~70,000 paid invoices. Payouts never reads
# this table: it reads the entries through billing's ListEarnings like any other.
SEED_EARNINGS = """
INSERT INTO earnings (builder_id, app_id, customer_id, invoice_id, line_position, workflow, meter_key,
                      kind, reason, currency_code, amount, source_id, create_time)
SELECT 'bench-builder-' || lpad((line % $3)::text, 4, '0'),
       'app',
       'c' || lpad((line % 5000)::text, 5, '0'),
       'inv-' || (line / 2),
       line % 2,
       (ARRAY['intake', 'review', 'reply'])[1 + line % 3],
       (ARRAY['requests', 'llm_cost'])[1 + line % 2],
       (ARRAY['provider_cost', 'platform_fee', 'builder_margin'])[1 + (n - 1) % 3],
       'payment',
       'USD',
       -- whole cents > 0, as billing rounds every entry to the currency's minor unit
       ((n * 7919) % 100000 + 1) / 100.0,
       'pay-' || (line / 2),
       $4::timestamptz + make_interval(secs => n / 1000.0)
FROM generate_series($1::bigint, $2::bigint) AS n, LATERAL (SELECT (n - 1) / 3 AS line) AS l
"""


async def _wait_serving(address: str, proc: subprocess.Popen) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    async with operator_channel(address) as ch:
        health = health_pb2_grpc.HealthStub(ch)
        for _ in range(1200):
            if proc.poll() is not None:
                raise RuntimeError(f"billing exited with {proc.returncode}")
            try:
                answer = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:  # not up yet
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("billing never became SERVING")


async def bench_feed_scale() -> None:
    total = int(os.environ.get("BENCH_PAYOUTS_FEED_ENTRIES", "1000000"))
    builders = 1000
    _, billing_url = await fresh_database("payouts_feed_billing")
    _, payouts_url = await fresh_database("payouts_feed_scale")
    await upgrade_head_async("services/billing/migrations", billing_url, "alembic_version_billing")
    when = datetime.now(UTC) - timedelta(days=3)
    t0 = time.perf_counter()
    seed = await asyncpg.connect(libpq_url(billing_url))
    try:
        for first in range(1, total + 1, 100_000):
            await seed.execute(SEED_EARNINGS, first, min(first + 99_999, total), builders, when)
        await seed.execute("ANALYZE earnings")
        billed = await seed.fetchrow("SELECT count(*) n, sum(amount) s, max(sequence) last FROM earnings")
    finally:
        await seed.close()
    print(f"payouts.bench.feed_seed entries={billed['n']} seconds={time.perf_counter() - t0:.1f} "
          "(bench set-up: bulk SQL into billing's earnings table)", flush=True)  # fmt: skip

    port = _free_port()
    env = {
        **os.environ,
        "BILLING_DATABASE_URL": billing_url,
        "BILLING_GRPC_ADDRESS": f"127.0.0.1:{port}",
        "BILLING_METRICS_PORT": "off",
        "BILLING_LOG_LEVEL": "WARNING",
        "BILLING_METERING_ADDRESS": "127.0.0.1:1",
        **credentials_env("billing"),
    }
    proc = subprocess.Popen([sys.executable, "-m", "billing"], env=env)  # noqa: ASYNC220 - started once
    payouts_running = None
    try:
        billing_address = f"127.0.0.1:{port}"
        await _wait_serving(billing_address, proc)
        payouts_running = await _payouts_server(payouts_url, billing_address)
        async with operator_channel(f"127.0.0.1:{payouts_running.port}", options=OPTIONS) as pch:
            stub = payouts_pb2_grpc.PayoutsServiceStub(pch)
            t1 = time.perf_counter()
            synced = await stub.SyncEarnings(
                ppb.SyncEarningsRequest(request_id=uuid.uuid4().hex), timeout=3600
            )
            seconds = time.perf_counter() - t1
        print(f"payouts.feed entries={synced.applied_count} seconds={seconds:.1f} "
              f"entries_per_s={synced.applied_count / seconds:.0f}", flush=True)  # fmt: skip
    finally:
        if payouts_running is not None:
            await payouts_running.stop(0)
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()

    db = await asyncpg.connect(libpq_url(payouts_url))
    try:
        recorded = await db.fetchrow(
            "SELECT count(*) n, count(DISTINCT sequence) d, max(sequence) last FROM feed_entries"
        )
        posted = await db.fetchval("SELECT count(*) FROM transfers WHERE source_kind = 'earnings_entry'")
        balance = await db.fetchval("SELECT sum(balance) FROM accounts")
        clearing = await db.fetchval("SELECT balance FROM accounts WHERE purpose = 'clearing'")
    finally:
        await db.close()
    ok = (
        synced.applied_count == total
        and recorded["n"] == recorded["d"] == total
        and recorded["last"] == billed["last"]
        and posted == total
        and balance == 0
        and clearing == -billed["s"]
    )
    print(f"payouts.feed.check applied_once={ok} recorded={recorded['n']} posted_entry_transfers={posted} "
          f"ledger_sum={balance} clearing={clearing} billed_sum={billed['s']}", flush=True)  # fmt: skip
    if not ok:
        raise AssertionError("the feed did not apply every entry exactly once")


STEPS = {"run": bench_payout_run, "feed": bench_feed, "feed_scale": bench_feed_scale}


async def main() -> None:
    configure_logging("payouts", "WARNING", json=False)
    for name in os.environ.get("BENCH_PAYOUTS_STEPS", ",".join(STEPS)).split(","):
        await STEPS[name.strip()]()


if __name__ == "__main__":
    asyncio.run(main())
