"""Two replicas of every service on the same databases, as an operator scales the compose topology: all
of them started at the same moment on fresh databases come up (their migrations serialize), and under
traffic the results equal a single replica's: every answered request counted once in metering, one
invoice per customer though both billing replicas close the period at once, one payout per payee and
period though both payouts replicas run it at once, and Reconcile clean.

The gateway stamps its events now, and a period can only close once it has ended, so the close and the
payouts run on backdated usage ingested into metering directly (split over both metering replicas)."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal as D

import aiohttp
import grpc
import pytest

from common.money import from_money, to_money, to_timestamp
from common.security import TokenSource, open_channel
from tests.deploy.local_compose import SERVICES, LocalCompose, Process, local_compose
from tollgate.billing.v1 import billing_pb2 as bpb
from tollgate.billing.v1 import billing_pb2_grpc
from tollgate.gateway.v1 import admin_pb2, admin_pb2_grpc
from tollgate.metering.v1 import metering_pb2 as mpb
from tollgate.metering.v1 import metering_pb2_grpc
from tollgate.payouts.v1 import payouts_pb2 as ppb
from tollgate.payouts.v1 import payouts_pb2_grpc

pytestmark = pytest.mark.slow

REPLICAS = 2
TRAFFIC_BUILDER = "replica-traffic"
REQUESTS = 300
# builder -> customer -> tickets in the closed month. Each invoice: 20.00 base + 1.50 a ticket; the
# platform keeps 10% of each line, the builder earns the rest.
TICKETS = {"agency-one": {"acme": 10, "globex": 20}, "agency-two": {"initech": 30, "umbrella": 4}}
INVOICE = {c: D("20.00") + D("1.50") * n for customers in TICKETS.values() for c, n in customers.items()}
EARNED = {b: sum(INVOICE[c] for c in customers) * D("0.9") for b, customers in TICKETS.items()}


@pytest.fixture(scope="module")
async def replicas(make_database, pg_server_url, tmp_path_factory):
    suite = await local_compose(
        make_database,
        pg_server_url,
        tmp_path_factory.mktemp("replicas"),
        replicas=REPLICAS,
        overrides={  # timings for a test (the compose defaults are minutes), nothing else
            "metering": {"METERING_SETTLE_SECONDS": "1"},
            "payouts": {
                "PAYOUTS_FEED_POLL_SECONDS": "0.2",
                "PAYOUTS_DEFAULT_HOLD_DAYS": "0",
                "PAYOUTS_DEFAULT_MINIMUM": "10",
            },
            "gateway": {"GATEWAY_RELAY_INTERVAL_SECONDS": "0.05"},
        },
    )
    await suite.start()  # every process of every service at the same moment
    try:
        yield suite
    finally:
        await suite.stop()


def channel(suite: LocalCompose, p: Process) -> grpc.aio.Channel:
    return open_channel(p.grpc, token=TokenSource(value=suite.credentials.token("operator")))


def door(p: Process) -> str:
    return f"http://{p.local(SERVICES['gateway']['ports'][0].rpartition(':')[2])}"


def _closed_month() -> tuple[datetime, datetime]:
    now = datetime.now(UTC)
    y, m = (now.year, now.month - 2) if now.month > 2 else (now.year - 1, now.month + 10)
    return datetime(y, m, 1, tzinfo=UTC), datetime(y + (m == 12), m % 12 + 1, 1, tzinfo=UTC)


async def test_replicas_started_at_the_same_moment_on_fresh_databases_all_come_up(replicas):
    await asyncio.gather(*(replicas.wait_healthy(p) for name in ("metering", "billing", "payouts", "gateway")
                           for p in replicas.processes[name]))  # fmt: skip
    assert all(p.proc.returncode is None for p in replicas.all())


async def _all_events(metering, builder: str) -> list[mpb.UsageEvent]:
    events, token = [], ""
    while True:
        page = await metering.ListEvents(
            mpb.ListEventsRequest(builder_id=builder, page_size=1000, page_token=token), timeout=10
        )
        events += page.events
        token = page.next_page_token
        if not token:
            return events


async def test_traffic_over_both_gateway_replicas_is_counted_once_in_metering(replicas):
    gateways, meterings = replicas.processes["gateway"], replicas.processes["metering"]
    await asyncio.gather(*(replicas.wait_healthy(p) for p in gateways + meterings))
    async with channel(replicas, gateways[0]) as gch, channel(replicas, meterings[1]) as mch:
        created = await admin_pb2_grpc.GatewayAdminServiceStub(gch).CreateApiKey(
            admin_pb2.CreateApiKeyRequest(
                request_id="replica-key", builder_id=TRAFFIC_BUILDER, app_id="app-1", customer_id="cust-1",
                display_name="replicas",
            ),
            timeout=10,
        )  # fmt: skip
        doors = [door(p) for p in gateways]
        answered: list[str] = []
        by_door: Counter[str] = Counter()
        gate = asyncio.Semaphore(32)

        async def one(http: aiohttp.ClientSession, i: int) -> None:
            rid = f"r-{i}-{uuid.uuid4().hex[:6]}"
            url = doors[i % len(doors)]
            async with (
                gate,
                http.post(
                    f"{url}/v1/chat/completions",
                    json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"hello {i}"}]},
                    headers={"Authorization": f"Bearer {created.secret}", "x-tollgate-request-id": rid},
                ) as resp,
            ):
                await resp.read()
                if resp.status == 200:
                    answered.append(rid)
                    by_door[url] += 1

        async with aiohttp.ClientSession() as http:
            await asyncio.gather(*(one(http, i) for i in range(REQUESTS)))
        assert len(answered) == REQUESTS
        assert set(by_door) == set(doors), by_door  # both replicas served

        metering = metering_pb2_grpc.MeteringServiceStub(mch)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        succeeded: Counter[str] = Counter()
        while loop.time() < deadline:
            events = await _all_events(metering, TRAFFIC_BUILDER)
            succeeded = Counter(e.id.split(":")[0] for e in events if e.status == mpb.EVENT_STATUS_SUCCEEDED)
            if len(succeeded) >= len(answered):
                break
            await asyncio.sleep(0.3)
        assert set(succeeded) == set(answered)
        assert [rid for rid, n in succeeded.items() if n != 1] == []

        # Both replicas relay from the one outbox side by side: together they delivered each event once.
        delivered: list[float] = []
        while loop.time() < deadline:
            delivered = [await _delivered(p) for p in gateways]
            if sum(delivered) >= len(events):
                break
            await asyncio.sleep(0.2)
        assert sum(delivered) == len(events), delivered


async def _delivered(gateway: Process) -> float:
    """The replica's count of outbox events it delivered to metering, from its Prometheus port."""
    port = gateway.env["GATEWAY_METRICS_PORT"]
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as resp:
        text = await resp.text()
    for line in text.splitlines():
        if line.startswith("tollgate_gateway_outbox_delivered_total "):
            return float(line.split()[1])
    return 0.0


async def _setup_builder(billing, builder: str, start: datetime) -> None:
    await billing.SetPlatformFee(
        bpb.SetPlatformFeeRequest(
            request_id=f"fee-{builder}",
            platform_fee=bpb.PlatformFee(builder_id=builder, percent_of_line="10", percent_of_margin="0"),
        )
    )
    plan = await billing.CreatePlan(
        bpb.CreatePlanRequest(
            request_id=f"plan-{builder}",
            plan=bpb.Plan(builder_id=builder, key="desk", display_name="Desk", currency_code="USD"),
        )
    )
    await billing.PublishPlanVersion(
        bpb.PublishPlanVersionRequest(
            request_id=f"ver-{builder}",
            builder_id=builder,
            version=bpb.PlanVersion(
                plan_id=plan.plan.id,
                base_fee=to_money(D("20.00"), "USD"),
                charges=[bpb.Charge(key="tickets", meter_key="tickets", display_name="Tickets",
                                    per_unit=bpb.PerUnitPrice(unit_price="1.50"))],
            ),
        )
    )  # fmt: skip
    for customer in TICKETS[builder]:
        await billing.CreateCustomer(
            bpb.CreateCustomerRequest(
                request_id=f"cust-{customer}",
                customer=bpb.Customer(id=customer, builder_id=builder, app_id=f"app-{customer}",
                                      currency_code="USD", display_name=customer.title()),
            )
        )  # fmt: skip
        await billing.Subscribe(
            bpb.SubscribeRequest(
                request_id=f"sub-{customer}", builder_id=builder, customer_id=customer, plan_id=plan.plan.id,
                start_time=to_timestamp(start),
            )
        )  # fmt: skip


async def test_closes_and_payout_runs_on_both_replicas_at_once_give_one_invoice_and_one_payout_each(replicas):
    procs = replicas.processes
    await asyncio.gather(
        *(replicas.wait_healthy(p) for n in ("metering", "billing", "payouts") for p in procs[n])
    )
    start, end = _closed_month()
    period = f"{datetime.now(UTC):%Y-%m}"
    async with (
        channel(replicas, procs["metering"][0]) as m0,
        channel(replicas, procs["metering"][1]) as m1,
        channel(replicas, procs["billing"][0]) as b0,
        channel(replicas, procs["billing"][1]) as b1,
        channel(replicas, procs["payouts"][0]) as p0,
        channel(replicas, procs["payouts"][1]) as p1,
    ):
        meterings = [metering_pb2_grpc.MeteringServiceStub(c) for c in (m0, m1)]
        billings = [billing_pb2_grpc.BillingServiceStub(c) for c in (b0, b1)]
        payouts = [payouts_pb2_grpc.PayoutsServiceStub(c) for c in (p0, p1)]
        for i, builder in enumerate(TICKETS):
            await meterings[i].CreateMeter(
                mpb.CreateMeterRequest(
                    request_id=f"meter-{builder}",
                    meter=mpb.Meter(builder_id=builder, key="tickets", display_name="Tickets",
                                    event_types=["ticket.handled"], aggregation=mpb.AGGREGATION_COUNT),
                )
            )  # fmt: skip
            await _setup_builder(billings[1 - i], builder, start)
            for customer, n in TICKETS[builder].items():
                events = [
                    mpb.UsageEvent(
                        id=f"{customer}-t{k}", type="ticket.handled", builder_id=builder,
                        occurred_time=to_timestamp(start.replace(day=5 + k % 20)),
                        app_id=f"app-{customer}", customer_id=customer, status=mpb.EVENT_STATUS_SUCCEEDED,
                    )
                    for k in range(n)
                ]  # fmt: skip
                # half through each metering replica, the second half sent to both (a retried ingest)
                half = n // 2
                await meterings[0].IngestEvents(
                    mpb.IngestEventsRequest(request_id=f"in-{customer}-a", events=events[: half + 2])
                )
                await meterings[1].IngestEvents(
                    mpb.IngestEventsRequest(request_id=f"in-{customer}-b", events=events[half:])
                )
        await asyncio.sleep(1.2)  # metering's settle window, so each close reads a settled cutoff

        for builder in TICKETS:  # both billing replicas close the period at the same moment
            await asyncio.gather(*(
                b.ClosePeriod(
                    bpb.ClosePeriodRequest(request_id=f"close-{builder}-{i}", builder_id=builder,
                                           period_end_time=to_timestamp(end)),
                    timeout=60,
                )
                for i, b in enumerate(billings)
            ))  # fmt: skip
        invoices = []
        for builder in TICKETS:
            invoices += (
                await billings[0].ListInvoices(bpb.ListInvoicesRequest(builder_id=builder, page_size=100))
            ).invoices
        assert sorted((inv.customer_id, from_money(inv.total)) for inv in invoices) == sorted(INVOICE.items())
        for i, inv in enumerate(invoices):
            await billings[i % 2].RecordPayment(
                bpb.RecordPaymentRequest(
                    request_id=f"pay-{inv.id}", builder_id=inv.builder_id, invoice_id=inv.id,
                    amount=inv.amount_due, external_reference=f"bank-{i}",
                )
            )  # fmt: skip

        # both payouts replicas consume billing's earnings feed; each builder's earnings arrive once
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 25
        payable: dict[str, D] = {}
        while payable != EARNED and loop.time() < deadline:
            await asyncio.sleep(0.2)
            for builder in TICKETS:
                try:
                    balance = await payouts[0].GetBalance(
                        ppb.GetBalanceRequest(payee_id=builder, currency_code="USD")
                    )
                except grpc.aio.AioRpcError as exc:  # the payee appears with its first entry
                    assert exc.code() == grpc.StatusCode.NOT_FOUND
                    continue
                payable[builder] = from_money(balance.payable)
        assert payable == EARNED

        runs = await asyncio.gather(*(
            p.RunPayouts(ppb.RunPayoutsRequest(request_id=f"run-{i}", period=period), timeout=60)
            for i, p in enumerate(payouts)
        ))  # fmt: skip
        assert sorted(r.created_count for r in runs) == [0, len(TICKETS)]
        assert [r.payout_count for r in runs] == [len(TICKETS)] * 2
        listed = (await payouts[1].ListPayouts(ppb.ListPayoutsRequest(period=period, page_size=100))).payouts
        assert sorted((p.payee_id, from_money(p.amount)) for p in listed) == sorted(EARNED.items())
        for p in (f"{start:%Y-%m}", period):
            for replica in payouts:
                report = await replica.Reconcile(ppb.ReconcileRequest(period=p), timeout=30)
                assert report.clean, [c for c in report.checks if not c.ok]
