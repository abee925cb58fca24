"""metering, billing and payouts as three `python -m` processes wired only by their environment, as
compose wires them: a month billed and paid in billing reaches payouts through its background consumer
(no SyncEarnings), becomes one payout per payee, and Reconcile is clean across the three."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal as D
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from common.migrations import upgrade_head_async
from common.money import from_money, to_money, to_timestamp
from tests.conftest import auth_channel, security_env
from tollgate.billing.v1 import billing_pb2 as bpb
from tollgate.billing.v1 import billing_pb2_grpc
from tollgate.metering.v1 import metering_pb2 as mpb
from tollgate.metering.v1 import metering_pb2_grpc
from tollgate.payouts.v1 import payouts_pb2 as ppb
from tollgate.payouts.v1 import payouts_pb2_grpc

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
BUILDER = "wired-agency"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _serving(address: str, proc: asyncio.subprocess.Process, name: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    async with grpc.aio.insecure_channel(address) as ch:
        health = health_pb2_grpc.HealthStub(ch)
        while loop.time() < deadline:
            if proc.returncode is not None:
                raise AssertionError(f"{name} exited with {proc.returncode}")
            with contextlib.suppress(grpc.aio.AioRpcError):
                reply = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            await asyncio.sleep(0.05)
    raise AssertionError(f"{name} never became SERVING")


@pytest.fixture(scope="module")
async def suite(make_database, tmp_path_factory) -> AsyncIterator[dict[str, str]]:
    logs = tmp_path_factory.mktemp("wired")
    urls = {}
    for name in ("metering", "billing", "payouts"):
        urls[name] = await make_database(name)
        await upgrade_head_async(
            REPO / "services" / name / "migrations", urls[name], f"alembic_version_{name}"
        )
    ports = {name: _port() for name in urls}
    address = {name: f"127.0.0.1:{port}" for name, port in ports.items()}
    envs = {
        "metering": {"METERING_SETTLE_SECONDS": "1"},
        "billing": {"BILLING_METERING_ADDRESS": address["metering"]},
        "payouts": {
            "PAYOUTS_BILLING_ADDRESS": address["billing"],
            "PAYOUTS_METERING_ADDRESS": address["metering"],
            "PAYOUTS_FEED_POLL_SECONDS": "0.2",
            "PAYOUTS_DEFAULT_HOLD_DAYS": "0",
            "PAYOUTS_DEFAULT_MINIMUM": "10",
        },
    }
    procs = []
    try:
        for name in ("metering", "billing", "payouts"):
            prefix = name.upper()
            env = {
                **os.environ,
                f"{prefix}_DATABASE_URL": urls[name],
                f"{prefix}_GRPC_ADDRESS": address[name],
                f"{prefix}_METRICS_PORT": "off",
                **security_env(name),
                **envs[name],
            }
            with (logs / f"{name}.log").open("ab") as log:
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", name, cwd=REPO, env=env, stdout=log, stderr=log
                )
            procs.append(proc)
            await _serving(address[name], proc, name)
        yield address
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()


def _month_starts() -> tuple[datetime, datetime]:
    now = datetime.now(UTC)
    y, m = (now.year, now.month - 2) if now.month > 2 else (now.year - 1, now.month + 10)
    first = datetime(y, m, 1, tzinfo=UTC)
    second = datetime(y + (m == 12), m % 12 + 1, 1, tzinfo=UTC)
    return first, second


async def test_a_paid_month_flows_to_payouts_without_a_manual_sync_and_reconciles(suite):
    start, end = _month_starts()
    async with (
        auth_channel(suite["metering"]) as mch,
        auth_channel(suite["billing"]) as bch,
        auth_channel(suite["payouts"]) as pch,
    ):
        metering = metering_pb2_grpc.MeteringServiceStub(mch)
        billing = billing_pb2_grpc.BillingServiceStub(bch)
        payouts = payouts_pb2_grpc.PayoutsServiceStub(pch)
        await metering.CreateMeter(
            mpb.CreateMeterRequest(
                request_id="m1",
                meter=mpb.Meter(builder_id=BUILDER, key="tickets", display_name="Tickets",
                                event_types=["ticket.handled"], aggregation=mpb.AGGREGATION_COUNT),
            )
        )  # fmt: skip
        await billing.SetPlatformFee(
            bpb.SetPlatformFeeRequest(
                request_id="f1",
                platform_fee=bpb.PlatformFee(builder_id=BUILDER, percent_of_line="10", percent_of_margin="0"),
            )
        )
        plan = await billing.CreatePlan(
            bpb.CreatePlanRequest(
                request_id="p1",
                plan=bpb.Plan(builder_id=BUILDER, key="desk", display_name="Desk", currency_code="USD"),
            )
        )
        await billing.PublishPlanVersion(
            bpb.PublishPlanVersionRequest(
                request_id="v1",
                builder_id=BUILDER,
                version=bpb.PlanVersion(
                    plan_id=plan.plan.id,
                    base_fee=to_money(D("20.00"), "USD"),
                    charges=[bpb.Charge(key="tickets", meter_key="tickets", display_name="Tickets",
                                        per_unit=bpb.PerUnitPrice(unit_price="1.50"))],
                ),
            )
        )  # fmt: skip
        await billing.CreateCustomer(
            bpb.CreateCustomerRequest(
                request_id="c1",
                customer=bpb.Customer(id="acme", builder_id=BUILDER, app_id="app-1", currency_code="USD",
                                      display_name="Acme"),
            )
        )  # fmt: skip
        await billing.Subscribe(
            bpb.SubscribeRequest(
                request_id="s1", builder_id=BUILDER, customer_id="acme", plan_id=plan.plan.id,
                start_time=to_timestamp(start),
            )
        )  # fmt: skip
        events = [
            mpb.UsageEvent(
                id=f"t{i}", type="ticket.handled", occurred_time=to_timestamp(start.replace(day=5)),
                builder_id=BUILDER, app_id="app-1", customer_id="acme", status=mpb.EVENT_STATUS_SUCCEEDED,
                tags={"workflow": "triage"},
            )
            for i in range(30)
        ]  # fmt: skip
        await metering.IngestEvents(mpb.IngestEventsRequest(request_id="i1", events=events))
        await asyncio.sleep(1.2)  # metering's settle window, so the close reads a settled cutoff
        await billing.ClosePeriod(
            bpb.ClosePeriodRequest(
                request_id="close-1", builder_id=BUILDER, period_end_time=to_timestamp(end)
            ),
            timeout=60,
        )
        invoice = (await billing.ListInvoices(bpb.ListInvoicesRequest(builder_id=BUILDER))).invoices[0]
        # 20.00 base fee + 30 tickets x 1.50 = 65.00; the platform takes 10%: 6.50; the builder 58.50.
        assert from_money(invoice.total) == D("65.00")
        await billing.RecordPayment(
            bpb.RecordPaymentRequest(
                request_id="pay-1", builder_id=BUILDER, invoice_id=invoice.id, amount=invoice.amount_due,
                external_reference="bank-ref-1",
            )
        )  # fmt: skip

        # No SyncEarnings: the background consumer picks the entries up, then releases the 0-day hold.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        payable = None
        while payable != D("58.50") and loop.time() < deadline:
            await asyncio.sleep(0.1)
            try:
                balance = await payouts.GetBalance(
                    ppb.GetBalanceRequest(payee_id=BUILDER, currency_code="USD")
                )
            except grpc.aio.AioRpcError as exc:  # the payee appears with its first entry
                assert exc.code() == grpc.StatusCode.NOT_FOUND
                continue
            payable = from_money(balance.payable)
        assert payable == D("58.50")

        period = f"{datetime.now(UTC):%Y-%m}"
        run = await payouts.RunPayouts(ppb.RunPayoutsRequest(request_id="run-1", period=period))
        assert run.created_count == 1 and [from_money(t) for t in run.totals] == [D("58.50")]
        platform = await payouts.GetBalance(
            ppb.GetBalanceRequest(payee_id="platform:tollgate", currency_code="USD")
        )
        fee = {a.account.purpose: from_money(a.balance) for a in platform.accounts}
        assert fee[ppb.ACCOUNT_PURPOSE_FEE_REVENUE] == D("6.50")
        assert fee[ppb.ACCOUNT_PURPOSE_CLEARING] == D("-65.00")
        for p in (f"{start:%Y-%m}", period):
            report = await payouts.Reconcile(ppb.ReconcileRequest(period=p))
            assert report.clean, [c for c in report.checks if not c.ok]
        usage = [c for c in (await payouts.Reconcile(ppb.ReconcileRequest(period=f"{start:%Y-%m}"))).checks
                 if c.name == "usage_matches_metering"]  # fmt: skip
        assert [(c.expected, c.actual) for c in usage] == [("30", "30")]
