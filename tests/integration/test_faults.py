"""Issue 12's fault proof: the four services as `python -m` processes on their own databases, each wired
only by its environment (as scripts/suite.py wires them), and faults injected while traffic flows
through the gateway's HTTP door and while a period closes and payouts run:

- metering SIGKILLed and restarted under traffic: every answered request's event lands exactly once;
- PostgreSQL stopped and started under traffic: the services reconnect, nothing lost or doubled;
- a stand-in provider dropping connections: requests fail over, every answer billed once;
- billing SIGKILLed during ClosePeriod and payouts during RunPayouts, both restarted and retried with
  the same request id: one invoice per customer, one payout per payee and period, Reconcile clean.

The PostgreSQL here is an embedded server (pgserver) of this module alone, never the shared one other
tests use, since this module stops and starts it. Usage for the close is backdated and ingested into
metering directly: the gateway stamps its events now, and ClosePeriod needs an ended period. The two
stand-in providers run in the test process, so their knobs (dropped connections) and counters are at hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import tempfile
import uuid
import warnings
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal as D
from pathlib import Path

import aiohttp
import asyncpg
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from common.db import async_url, ensure_database, libpq_url
from common.migrations import upgrade_head_async
from common.money import from_money, to_money, to_timestamp
from tests.conftest import auth_channel, free_port, security_env
from tollgate.billing.v1 import billing_pb2 as bpb
from tollgate.billing.v1 import billing_pb2_grpc
from tollgate.gateway.v1 import admin_pb2, admin_pb2_grpc
from tollgate.metering.v1 import metering_pb2 as mpb
from tollgate.metering.v1 import metering_pb2_grpc
from tollgate.payouts.v1 import payouts_pb2 as ppb
from tollgate.payouts.v1 import payouts_pb2_grpc

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
CATALOG = REPO / "deploy" / "catalog.yaml"
PROVIDER_KEY = "sk-faults-provider"
MODEL = "gpt-4o-mini"  # provider_a is the cheaper offering, provider_b the failover
SERVICES = ("metering", "billing", "payouts", "gateway")


def rid() -> str:
    return uuid.uuid4().hex


# ---- the embedded PostgreSQL of this module ----------------------------------------------------------


class EmbeddedPostgres:
    """A pgserver of its own, stopped and started in place (same data folder, same socket)."""

    def __init__(self, data_dir: Path) -> None:
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        import pgserver

        self.server = pgserver.get_server(data_dir, cleanup_mode="stop")
        self.url = async_url(self.server.get_uri())

    def stop(self) -> None:
        from pgserver._commands import pg_ctl

        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.server.pgdata, user=self.server.system_user)

    def start(self) -> None:
        self.server.ensure_postgres_running()
        assert async_url(self.server.get_uri()) == self.url, "the restarted server moved its socket"

    def cleanup(self) -> None:
        self.server.cleanup()


# ---- the suite as processes ------------------------------------------------------------------------


@dataclass
class Suite:
    pg: EmbeddedPostgres
    logs: Path
    urls: dict[str, str]
    address: dict[str, str]
    http_url: str
    envs: dict[str, dict[str, str]]
    providers: dict[str, object]
    procs: dict[str, asyncio.subprocess.Process] = field(default_factory=dict)

    async def start(self, name: str) -> None:
        with (self.logs / f"{name}.log").open("ab") as log:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", name, cwd=REPO, env=self.envs[name], stdout=log, stderr=log
            )
        self.procs[name] = proc
        await self._serving(name, proc)

    async def kill(self, name: str) -> None:
        proc = self.procs[name]
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGKILL)
        await proc.wait()

    async def _serving(self, name: str, proc: asyncio.subprocess.Process) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        async with grpc.aio.insecure_channel(self.address[name]) as ch:
            health = health_pb2_grpc.HealthStub(ch)
            while loop.time() < deadline:
                if proc.returncode is not None:
                    tail = (self.logs / f"{name}.log").read_text(errors="replace")[-2000:]
                    raise AssertionError(f"{name} exited with {proc.returncode}: {tail}")
                with contextlib.suppress(grpc.aio.AioRpcError):
                    reply = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                await asyncio.sleep(0.05)
        raise AssertionError(f"{name} never became SERVING")

    async def stop_all(self) -> None:
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()
                await proc.wait()


@pytest.fixture(scope="module")
async def suite(tmp_path_factory) -> AsyncIterator[Suite]:
    from fakeprovider.app import start as start_provider

    logs = tmp_path_factory.mktemp("faults")
    pg_dir = Path(tempfile.mkdtemp(prefix="tollgate-faults-pg-"))
    pg = await asyncio.to_thread(EmbeddedPostgres, pg_dir)
    providers = {
        name: await start_provider("127.0.0.1", 0, name=name, api_key=PROVIDER_KEY)
        for name in ("provider_a", "provider_b")
    }
    suite = None
    try:
        urls = {}
        for name in SERVICES:
            urls[name] = await ensure_database(pg.url, f"faults_{name}")
            await upgrade_head_async(
                REPO / "services" / name / "migrations", urls[name], f"alembic_version_{name}"
            )
        address = {name: f"127.0.0.1:{free_port()}" for name in SERVICES}
        http_port = free_port()
        common = {**os.environ, "PYTHONUNBUFFERED": "1"}
        extra = {
            "metering": {"METERING_SETTLE_SECONDS": "1"},
            "billing": {"BILLING_METERING_ADDRESS": address["metering"]},
            "payouts": {
                "PAYOUTS_BILLING_ADDRESS": address["billing"],
                "PAYOUTS_METERING_ADDRESS": address["metering"],
                "PAYOUTS_FEED_POLL_SECONDS": "0.2",
                "PAYOUTS_DEFAULT_HOLD_DAYS": "0",
                "PAYOUTS_DEFAULT_MINIMUM": "1",
            },
            "gateway": {
                "GATEWAY_HTTP_ADDRESS": f"127.0.0.1:{http_port}",
                "GATEWAY_METERING_ADDRESS": address["metering"],
                "GATEWAY_CATALOG_FILE": str(CATALOG),
                "GATEWAY_REFRESH_SECONDS": "0.5",
                "GATEWAY_RELAY_INTERVAL_SECONDS": "0.05",
                "GATEWAY_RELAY_BACKOFF_MAX_SECONDS": "0.5",
                "DEMO_PROVIDER_A_BASE_URL": providers["provider_a"].base_url,
                "DEMO_PROVIDER_B_BASE_URL": providers["provider_b"].base_url,
                "TOLLGATE_PROVIDER_DEMO_KEY": PROVIDER_KEY,
            },
        }
        envs = {
            name: {
                **common,
                f"{name.upper()}_DATABASE_URL": urls[name],
                f"{name.upper()}_GRPC_ADDRESS": address[name],
                f"{name.upper()}_METRICS_PORT": "off",
                **security_env(name),
                **extra[name],
            }
            for name in SERVICES
        }
        suite = Suite(pg, logs, urls, address, f"http://127.0.0.1:{http_port}", envs, providers)
        for name in SERVICES:
            await suite.start(name)
        yield suite
    finally:
        if suite is not None:
            await suite.stop_all()
        for p in providers.values():
            await p.stop()
        await asyncio.to_thread(pg.cleanup)
        shutil.rmtree(pg_dir, ignore_errors=True)


# ---- traffic through the HTTP door ------------------------------------------------------------------


async def api_key(suite: Suite, builder: str) -> str:
    async with auth_channel(suite.address["gateway"]) as ch:
        admin = admin_pb2_grpc.GatewayAdminServiceStub(ch)
        reply = await admin.CreateApiKey(
            admin_pb2.CreateApiKeyRequest(
                request_id=rid(), builder_id=builder, app_id="app-1", customer_id="c1", display_name="faults"
            ),
            timeout=10,
        )
    return reply.secret


@dataclass
class Traffic:
    """Requests sent until stopped; `answered` holds the request ids whose answer was a 200."""

    suite: Suite
    secret: str
    prefix: str
    answered: list[str] = field(default_factory=list)
    failed: Counter = field(default_factory=Counter)
    stopped: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task | None = None

    def begin(self, concurrency: int = 8) -> Traffic:
        self.task = asyncio.create_task(self._run(concurrency))
        return self

    async def wait_answers(self, n: int, limit: float = 30) -> None:
        async with asyncio.timeout(limit):
            while len(self.answered) < n:  # noqa: ASYNC110 - polling a list the workers fill
                await asyncio.sleep(0.01)

    async def end(self) -> list[str]:
        self.stopped.set()
        assert self.task is not None
        await self.task
        return self.answered

    async def _run(self, concurrency: int) -> None:
        counter = iter(range(1_000_000))

        async def worker(session: aiohttp.ClientSession) -> None:
            while not self.stopped.is_set():
                request_id = f"{self.prefix}-{next(counter)}"
                try:
                    async with session.post(
                        f"{self.suite.http_url}/v1/chat/completions",
                        json={"model": MODEL, "messages": [{"role": "user", "content": "one two three"}]},
                        headers={
                            "Authorization": f"Bearer {self.secret}",
                            "x-tollgate-request-id": request_id,
                        },
                    ) as r:
                        await r.read()
                        if r.status == 200:
                            self.answered.append(request_id)
                        else:
                            self.failed[r.status] += 1
                except (aiohttp.ClientError, TimeoutError):
                    self.failed["connection"] += 1
                    await asyncio.sleep(0.05)

        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as session:
            await asyncio.gather(*(worker(session) for _ in range(concurrency)))


async def events_of(suite: Suite, builder: str) -> list[mpb.UsageEvent]:
    async with auth_channel(suite.address["metering"]) as ch:
        stub = metering_pb2_grpc.MeteringServiceStub(ch)
        out, token = [], ""
        while True:
            page = await stub.ListEvents(
                mpb.ListEventsRequest(builder_id=builder, page_size=1000, page_token=token), timeout=10
            )
            out += page.events
            token = page.next_page_token
            if not token:
                return out


async def settled_events(suite: Suite, builder: str, answered: list[str], limit: float = 30):
    """The builder's events once every answered request has its successful event (or the limit)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while True:
        events = await events_of(suite, builder)
        succeeded = {e.id.rsplit(":", 1)[0] for e in events if e.status == mpb.EVENT_STATUS_SUCCEEDED}
        if set(answered) <= succeeded or loop.time() > deadline:
            return events
        await asyncio.sleep(0.2)


def assert_each_answer_billed_once(events: list[mpb.UsageEvent], answered: list[str]) -> None:
    ids = Counter(e.id for e in events)
    doubled = {i: n for i, n in ids.items() if n > 1}
    assert not doubled, f"events stored twice: {list(doubled)[:5]}"
    succeeded = Counter(e.id.rsplit(":", 1)[0] for e in events if e.status == mpb.EVENT_STATUS_SUCCEEDED)
    lost = [r for r in answered if succeeded[r] == 0]
    assert not lost, f"{len(lost)} answered requests have no usage event, e.g. {lost[:5]}"
    twice = [r for r in answered if succeeded[r] > 1]
    assert not twice, f"{len(twice)} answered requests billed more than once, e.g. {twice[:5]}"


# ---- faults under traffic ---------------------------------------------------------------------------


async def test_metering_sigkilled_under_traffic_gets_every_answered_event_exactly_once(suite):
    builder = f"b-{rid()[:8]}"
    traffic = Traffic(suite, await api_key(suite, builder), "mk").begin()
    try:
        await traffic.wait_answers(100)
        await suite.kill("metering")
        down_at = len(traffic.answered)
        await traffic.wait_answers(down_at + 100)  # the gateway answers while metering is dead
        await suite.start("metering")
        await traffic.wait_answers(len(traffic.answered) + 100)
    finally:
        answered = await traffic.end()
    assert not traffic.failed, f"metering down must never fail a caller: {traffic.failed}"
    events = await settled_events(suite, builder, answered)
    assert_each_answer_billed_once(events, answered)
    assert len(events) == len(answered)  # no failed attempts here: one event per answer, no extra


async def restart_postgres_under_traffic(suite: Suite, prefix: str) -> tuple[str, Traffic]:
    """PostgreSQL stopped for 1.5 s and started again while the gateway serves traffic, until 200 more
    requests were answered after the restart (the services reconnected)."""
    builder = f"b-{rid()[:8]}"
    traffic = Traffic(suite, await api_key(suite, builder), prefix).begin()
    try:
        await traffic.wait_answers(100)
        await asyncio.to_thread(suite.pg.stop)
        await asyncio.sleep(1.5)  # traffic keeps coming while the database is gone
        await asyncio.to_thread(suite.pg.start)
        after = len(traffic.answered)
        await traffic.wait_answers(after + 200, limit=45)
    finally:
        await traffic.end()
    return builder, traffic


async def test_postgresql_restarted_under_traffic_loses_and_doubles_nothing(suite):
    builder, traffic = await restart_postgres_under_traffic(suite, "pg")
    answered = traffic.answered
    for name, proc in suite.procs.items():
        assert proc.returncode is None, f"{name} died when PostgreSQL restarted"
    events = await settled_events(suite, builder, answered)
    assert_each_answer_billed_once(events, answered)
    # Every service answers again off its own database (pool_pre_ping replaced the dead connections).
    async with auth_channel(suite.address["billing"]) as ch:
        billing = billing_pb2_grpc.BillingServiceStub(ch)
        await billing.ListInvoices(bpb.ListInvoicesRequest(builder_id=builder), timeout=10)
    async with auth_channel(suite.address["payouts"]) as ch:
        payouts = payouts_pb2_grpc.PayoutsServiceStub(ch)
        report = await payouts.Reconcile(
            ppb.ReconcileRequest(period=f"{datetime.now(UTC):%Y-%m}"), timeout=30
        )
        assert report.clean


async def test_postgresql_restarting_refuses_requests_with_a_retryable_503_never_a_500(suite):
    refused: Counter = Counter()
    for restart in range(2):  # the bug shows at every restart so far; two make a lucky pass unlikely
        _, traffic = await restart_postgres_under_traffic(suite, f"pg500r{restart}")
        refused += traffic.failed
    assert refused[503] > 0, "the outage refused nothing: the fault was not exercised"
    assert set(refused) == {503}, f"statuses while PostgreSQL restarted: {dict(refused)}"


async def test_a_provider_dropping_connections_fails_over_and_bills_every_answer_once(suite):
    builder = f"b-{rid()[:8]}"
    a, b = suite.providers["provider_a"], suite.providers["provider_b"]
    a.reset()
    b.reset()
    a.control(error_rate=0.5, error_kinds=["reset"], seed=7)
    try:
        traffic = Traffic(suite, await api_key(suite, builder), "drop").begin()
        try:
            await traffic.wait_answers(300)
        finally:
            answered = await traffic.end()
        resets = a.stats()["by_outcome"].get("reset", 0)
        answers_given = Counter({p.stats()["name"]: p.stats()["by_outcome"].get("ok", 0) for p in (a, b)})
    finally:
        a.reset()
    assert not traffic.failed, f"every request should fail over to provider_b: {traffic.failed}"
    events = await settled_events(suite, builder, answered)
    assert_each_answer_billed_once(events, answered)
    dropped = [e for e in events if e.status == mpb.EVENT_STATUS_FAILED]
    assert dropped, "provider_a dropped no connection: the fault was not exercised"
    assert all(e.tags["provider"] == "provider_a" for e in dropped)
    assert all(D(e.quantities["provider_cost"]) == 0 for e in dropped), "a dropped attempt was charged"
    # A reset on a reused keep-alive connection is sent once more on a fresh one (not an attempt of its
    # own), so a failed attempt is one or two resets; and every answer a provider gave is billed once.
    assert resets >= len(dropped)
    billed = Counter(e.tags["provider"] for e in events if e.status == mpb.EVENT_STATUS_SUCCEEDED)
    assert billed == answers_given and sum(billed.values()) == len(answered)
    failed_over = {e.id.rsplit(":", 1)[0] for e in dropped} & set(answered)
    assert failed_over and all(
        e.tags["provider"] == "provider_b"
        for e in events
        if e.status == mpb.EVENT_STATUS_SUCCEEDED and e.id.rsplit(":", 1)[0] in failed_over
    )


# ---- faults during a close and a payout run ---------------------------------------------------------


BUILDERS = 3
CUSTOMERS = 25
TICKET_PRICE = D("1.50")


def ended_month() -> tuple[datetime, datetime]:
    now = datetime.now(UTC)
    y, m = (now.year, now.month - 2) if now.month > 2 else (now.year - 1, now.month + 10)
    return datetime(y, m, 1, tzinfo=UTC), datetime(y + (m == 12), m % 12 + 1, 1, tzinfo=UTC)


async def set_up(billing, metering, builder: str, start: datetime) -> None:
    await metering.CreateMeter(
        mpb.CreateMeterRequest(
            request_id=rid(),
            meter=mpb.Meter(builder_id=builder, key="tickets", display_name="Tickets",
                            event_types=["ticket.handled"], aggregation=mpb.AGGREGATION_COUNT),
        ),
        timeout=10,
    )  # fmt: skip
    await billing.SetPlatformFee(
        bpb.SetPlatformFeeRequest(
            request_id=rid(),
            platform_fee=bpb.PlatformFee(builder_id=builder, percent_of_line="10", percent_of_margin="0"),
        ),
        timeout=10,
    )
    plan = await billing.CreatePlan(
        bpb.CreatePlanRequest(
            request_id=rid(),
            plan=bpb.Plan(builder_id=builder, key="desk", display_name="Desk", currency_code="USD"),
        ),
        timeout=10,
    )
    await billing.PublishPlanVersion(
        bpb.PublishPlanVersionRequest(
            request_id=rid(),
            builder_id=builder,
            version=bpb.PlanVersion(
                plan_id=plan.plan.id,
                base_fee=to_money(D("20.00"), "USD"),
                charges=[bpb.Charge(key="tickets", meter_key="tickets", display_name="Tickets",
                                    per_unit=bpb.PerUnitPrice(unit_price=str(TICKET_PRICE)))],
            ),
        ),
        timeout=10,
    )  # fmt: skip
    for c in range(CUSTOMERS):
        await billing.CreateCustomer(
            bpb.CreateCustomerRequest(
                request_id=rid(),
                customer=bpb.Customer(id=f"c{c}", builder_id=builder, app_id="app-1", currency_code="USD",
                                      display_name=f"C{c}"),
            ),
            timeout=10,
        )  # fmt: skip
        await billing.Subscribe(
            bpb.SubscribeRequest(
                request_id=rid(), builder_id=builder, customer_id=f"c{c}", plan_id=plan.plan.id,
                start_time=to_timestamp(start),
            ),
            timeout=10,
        )  # fmt: skip


def tickets(customer: int) -> int:
    return 1 + customer % 4


async def query(url: str, sql: str, *args) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(libpq_url(url))
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def kill_when(suite: Suite, name: str, call: asyncio.Task, progressed, limit: float = 5) -> bool:
    """SIGKILL `name` as soon as `progressed()` says its work began (or the limit passes); whether the
    call was still in flight when the kill landed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not call.done() and loop.time() < deadline and not await progressed():  # noqa: ASYNC110
        await asyncio.sleep(0.005)
    in_flight = not call.done()
    await suite.kill(name)
    with contextlib.suppress(grpc.aio.AioRpcError):
        await call
    return in_flight


async def test_billing_killed_mid_close_and_payouts_mid_run_make_one_invoice_and_one_payout_each(suite):
    start, end = ended_month()
    builders = [f"agency-{i}-{rid()[:6]}" for i in range(BUILDERS)]
    async with (
        auth_channel(suite.address["metering"]) as mch,
        auth_channel(suite.address["billing"]) as bch,
    ):
        metering = metering_pb2_grpc.MeteringServiceStub(mch)
        billing = billing_pb2_grpc.BillingServiceStub(bch)
        for builder in builders:
            await set_up(billing, metering, builder, start)
            events = [
                mpb.UsageEvent(
                    id=f"{builder}-{c}-{t}", type="ticket.handled", builder_id=builder, app_id="app-1",
                    occurred_time=to_timestamp(start.replace(day=5)), customer_id=f"c{c}",
                    status=mpb.EVENT_STATUS_SUCCEEDED,
                )
                for c in range(CUSTOMERS) for t in range(tickets(c))
            ]  # fmt: skip
            await metering.IngestEvents(mpb.IngestEventsRequest(request_id=rid(), events=events), timeout=30)
        await asyncio.sleep(1.2)  # metering's settle window, so the close reads a settled cutoff

    # ClosePeriod of the first builder, billing SIGKILLed as its first invoices appear; the same request
    # ids retried against the restarted billing.
    close_ids = {b: f"close-{b}" for b in builders}

    async def close(billing, builder: str) -> bpb.ClosePeriodResponse:
        return await billing.ClosePeriod(
            bpb.ClosePeriodRequest(
                request_id=close_ids[builder], builder_id=builder, period_end_time=to_timestamp(end)
            ),
            timeout=60,
        )

    # The close reads the usage first (waiting for metering's cutoff to settle, ~1 s here), then writes
    # every invoice in one short transaction under the builder's advisory lock. The first builder's close
    # is killed 0.3 s in (reading), the second's as soon as its transaction holds the lock (writing).
    loop = asyncio.get_running_loop()
    watcher = await asyncpg.connect(libpq_url(suite.urls["billing"]))

    async def close_killed(builder: str, progressed) -> bool:
        async with auth_channel(suite.address["billing"]) as bch:
            billing = billing_pb2_grpc.BillingServiceStub(bch)
            call = asyncio.create_task(close(billing, builder))
            in_flight = await kill_when(suite, "billing", call, progressed)
        left = await watcher.fetchval("SELECT count(*) FROM invoices WHERE builder_id = $1", builder)
        assert left in (0, CUSTOMERS), f"the killed close left {left} of {CUSTOMERS} invoices"
        await suite.start("billing")
        return in_flight

    async def writing() -> bool:
        return bool(
            await watcher.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            )
        )

    try:
        sent = loop.time()

        async def reading() -> bool:
            return loop.time() - sent > 0.3

        close_killed_in_flight = await close_killed(builders[0], reading)
        await close_killed(builders[1], writing)  # in flight or just done: the retry must agree
    finally:
        await watcher.close()
    async with auth_channel(suite.address["billing"]) as bch:
        billing = billing_pb2_grpc.BillingServiceStub(bch)
        for builder in builders:
            await close(billing, builder)
        await close(billing, builders[0])  # and once more: a retry of a finished close changes nothing
        await close(billing, builders[1])
        per_customer = await query(
            suite.urls["billing"],
            "SELECT builder_id, customer_id, count(*) FROM invoices WHERE builder_id = ANY($1) "
            "AND status = 'finalized' GROUP BY builder_id, customer_id",
            builders,
        )
        assert sorted((r[0], r[1], r[2]) for r in per_customer) == sorted(
            (b, f"c{c}", 1) for b in builders for c in range(CUSTOMERS)
        )
        paid: dict[str, D] = {}
        for builder in builders:
            listed = await billing.ListInvoices(
                bpb.ListInvoicesRequest(builder_id=builder, page_size=1000), timeout=10
            )
            assert len(listed.invoices) == CUSTOMERS
            for inv in listed.invoices:
                c = int(inv.customer_id[1:])
                assert from_money(inv.total) == D("20.00") + tickets(c) * TICKET_PRICE
                await billing.RecordPayment(
                    bpb.RecordPaymentRequest(
                        request_id=rid(),
                        builder_id=builder,
                        invoice_id=inv.id,
                        amount=inv.amount_due,
                        external_reference=f"bank-{inv.id}",
                    ),
                    timeout=10,
                )
                paid[builder] = paid.get(builder, D(0)) + from_money(inv.total)
    builder_share = {b: (total * D("0.90")).quantize(D("0.01")) for b, total in paid.items()}

    async with auth_channel(suite.address["payouts"]) as pch:
        payouts = payouts_pb2_grpc.PayoutsServiceStub(pch)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        payable: dict[str, D] = {}
        while payable != builder_share and loop.time() < deadline:
            await asyncio.sleep(0.2)
            for builder in builders:
                with contextlib.suppress(grpc.aio.AioRpcError):  # NOT_FOUND until its first entry
                    balance = await payouts.GetBalance(
                        ppb.GetBalanceRequest(payee_id=builder, currency_code="USD"), timeout=10
                    )
                    payable[builder] = from_money(balance.payable)
        assert payable == builder_share

        period = f"{datetime.now(UTC):%Y-%m}"

        async def run() -> ppb.RunPayoutsResponse:
            return await payouts.RunPayouts(
                ppb.RunPayoutsRequest(request_id="run-faults", period=period), timeout=60
            )

        async def run_holds_its_lock() -> bool:  # the run's transaction took the period's advisory lock
            rows = await query(
                suite.urls["payouts"],
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            )
            return rows[0][0] > 0

        await kill_when(suite, "payouts", asyncio.create_task(run()), run_holds_its_lock)
    await suite.start("payouts")
    async with auth_channel(suite.address["payouts"]) as pch:
        payouts = payouts_pb2_grpc.PayoutsServiceStub(pch)
        await payouts.RunPayouts(ppb.RunPayoutsRequest(request_id="run-faults", period=period), timeout=60)
        again = await payouts.RunPayouts(ppb.RunPayoutsRequest(request_id=rid(), period=period), timeout=60)
        assert again.created_count == 0
        rows = await query(
            suite.urls["payouts"],
            "SELECT payee_id, period, count(*), sum(amount) FROM payouts WHERE payee_id = ANY($1) "
            "GROUP BY payee_id, period",
            builders,
        )
        assert sorted((r[0], r[1], r[2], r[3]) for r in rows) == sorted(
            (b, period, 1, builder_share[b]) for b in builders
        )
        for p in (f"{start:%Y-%m}", period):
            report = await payouts.Reconcile(ppb.ReconcileRequest(period=p), timeout=60)
            assert report.clean, [c for c in report.checks if not c.ok]
            if p == f"{start:%Y-%m}":  # billing's invoices agree with metering's backdated usage
                usage = [c for c in report.checks if c.name == "usage_matches_metering"]
                assert usage and all(c.expected == c.actual for c in usage)
    assert close_killed_in_flight, "billing finished the close before the kill: the fault missed the close"
