"""Issue 9's end-to-end proof: an agency's month through the gateway's HTTP door becomes, to the cent,
the builder's payout, the providers' reward and the platform's fee; the builder's statement matches
the invoices, a credit note after payment shows as a clawback, and Reconcile is clean.

Metering, gateway, billing and payouts run as real gRPC servers on loopback, each on its own
PostgreSQL database; the stand-in providers answer over real HTTP. The builder (an agency) has two
clients, each with its own API key: Acme's support bot (runs declared with `x-tollgate-run-id`) and
Globex's document parser (documents and their pages with `x-tollgate-document-id` / `-page-count`,
and a run id through OpenAI's `metadata`). One request of each fails on provider_a and fails over to
provider_b. Every expected amount below is computed by hand from the token counts in the gateway's
replies times the catalog prices, and the plan's and platform fee's rules.

Time: the gateway stamps events with real time and billing closes only a period that has ended, so
billing runs with a clock one month ahead (`billing.app.start(clock=...)`, a test-only keyword). What
that clock decides: that the current month may be closed, and the invoices' finalize, paid and void
times. What it does not: the usage cutoff (metering's own clock), the earnings entries' times (billing's
database `now()`), and everything in payouts (its real clock: entry times, hold release, run periods),
so payouts sees the current month, as it would on the first days of the next one.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest

from common.money import from_money, to_money, to_timestamp
from tests.conftest import auth_channel, migrated_database, security, token
from tests.gateway.conftest import make_stack  # noqa: F401  (the gateway fixture, reused here)
from tests.gateway.test_usage_outbox import wait_for_events
from tollgate.billing.v1 import billing_pb2 as bpb
from tollgate.billing.v1 import billing_pb2_grpc
from tollgate.metering.v1 import metering_pb2 as mpb
from tollgate.metering.v1 import metering_pb2_grpc
from tollgate.payouts.v1 import payouts_pb2 as ppb
from tollgate.payouts.v1 import payouts_pb2_grpc

pytestmark = pytest.mark.slow

BUILDER = f"agency-{uuid.uuid4().hex[:6]}"
PROVIDERS = "provider:all"
PLATFORM = "platform:tollgate"
METERING_SETTLE_SECONDS = 0.5
# USD per million tokens: $0.01 an input token, $0.02 an output token, so every cost is whole cents.
INPUT_PRICE, OUTPUT_PRICE = Decimal("10000"), Decimal("20000")
BASE_FEE, RUN_PRICE, PAGE_PRICE, MARKUP = Decimal("20.00"), Decimal("0.50"), Decimal("0.05"), Decimal(100)
FEE_OF_LINE, FEE_OF_MARGIN = Decimal(5), Decimal(10)  # percent
CENT = Decimal("0.01")
ZERO = Decimal(0)


def month_start(now: datetime, months_ahead: int = 0) -> datetime:
    y, m = now.year, now.month + months_ahead
    while m > 12:
        y, m = y + 1, m - 12
    return datetime(y, m, 1, tzinfo=UTC)


def rid() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class Line:
    """One invoice line by hand: amount, provider cost, then the split rule of billing's README."""

    amount: Decimal
    cost: Decimal = ZERO

    @property
    def fee(self) -> Decimal:
        raw = self.amount * FEE_OF_LINE / 100 + max(ZERO, self.amount - self.cost) * FEE_OF_MARGIN / 100
        return raw.quantize(CENT, ROUND_HALF_UP)

    @property
    def margin(self) -> Decimal:
        return self.amount - self.cost - self.fee


@dataclass(frozen=True)
class Bill:
    lines: tuple[Line, ...]

    def total(self) -> Decimal:
        return sum((x.amount for x in self.lines), ZERO)

    def cost(self) -> Decimal:
        return sum((x.cost for x in self.lines), ZERO)

    def fee(self) -> Decimal:
        return sum((x.fee for x in self.lines), ZERO)

    def margin(self) -> Decimal:
        return sum((x.margin for x in self.lines), ZERO)


# ---- the four servers ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def metering_address(make_database) -> AsyncIterator[str]:
    from metering.app import start
    from metering.config import Settings

    url = await migrated_database(make_database, "metering")
    running = await start(
        Settings(
            database_url=url,
            grpc_address="127.0.0.1:0",
            metrics_port=None,
            security=security("metering"),
            settle_seconds=METERING_SETTLE_SECONDS,
        )
    )
    yield f"127.0.0.1:{running.port}"
    await running.stop(0)


@pytest.fixture(scope="module")
async def billing_address(make_database, metering_address) -> AsyncIterator[str]:
    from billing.app import start
    from billing.config import Settings

    url = await migrated_database(make_database, "billing")
    # One month ahead, running with real time: the current month has ended for billing (see the
    # module docstring for what this clock decides and what it does not).
    now = datetime.now(UTC)
    ahead = month_start(now, 1) + timedelta(hours=1) - now
    running = await start(
        Settings(
            database_url=url,
            grpc_address="127.0.0.1:0",
            metrics_port=None,
            metering_address=metering_address,
            metering_retry_seconds=20,
            security=security("billing"),
        ),
        clock=lambda: datetime.now(UTC) + ahead,
    )
    yield f"127.0.0.1:{running.port}"
    await running.stop(0)


@pytest.fixture(scope="module")
async def payouts_address(make_database, billing_address, metering_address) -> AsyncIterator[str]:
    from payouts.app import start
    from payouts.config import Settings

    url = await migrated_database(make_database, "payouts")
    running = await start(
        Settings(
            database_url=url,
            grpc_address="127.0.0.1:0",
            metrics_port=None,
            billing_address=billing_address,
            metering_address=metering_address,
            call_deadline_seconds=10,
            feed_poll_seconds=0,  # the test forces each step: SyncEarnings, ReleaseHolds, RunPayouts
            feed_page_size=5,  # several pages, so the cursor is exercised too
            default_hold_days=0,
            default_minimum=Decimal("1"),
            security=security("payouts"),
        )
    )
    yield f"127.0.0.1:{running.port}"
    await running.stop(0)


@pytest.fixture(scope="module")
async def gateway(make_stack, metering_address):  # noqa: F811
    return await make_stack(metering_address=metering_address, relay_enabled=True)


# ---- the month --------------------------------------------------------------------------------------


async def explain_every_line(billing, invoices: dict[str, bpb.Invoice]) -> None:
    """Every usage line explains to its quantity: the token line lists the inference attempts with
    their provider cost, the runs line credits each run once, and the CSV export sums the same."""
    for customer, inv in invoices.items():
        for line in inv.lines:
            if line.kind == bpb.LINE_KIND_BASE_FEE:
                continue
            request = bpb.ExplainInvoiceLineRequest(
                builder_id=BUILDER, invoice_id=inv.id, position=line.position, view=bpb.EXPLAIN_VIEW_EVENTS
            )
            reply = await billing.ExplainInvoiceLine(request, timeout=30)
            quantity = Decimal(line.quantity)
            assert Decimal(reply.total_quantity) == quantity, (customer, line.charge_key)
            assert sum((Decimal(e.contributed_quantity) for e in reply.events), ZERO) == quantity
            if line.charge_key == "tokens":
                assert reply.events and all(
                    Decimal(e.contributed_quantity) == Decimal(e.quantities["provider_cost"])
                    for e in reply.events
                )
            request.view, request.group_by[:] = bpb.EXPLAIN_VIEW_GROUPS, ["run_id"]
            groups = (await billing.ExplainInvoiceLine(request, timeout=30)).groups
            assert sum((Decimal(g.quantity) for g in groups), ZERO) == quantity
            if line.charge_key == "runs":
                assert [g.quantity for g in groups if g.tags.get("run_id")] == ["1"] * int(quantity)
            export = await billing.ExportInvoiceLine(
                bpb.ExportInvoiceLineRequest(builder_id=BUILDER, invoice_id=inv.id, position=line.position),
                timeout=30,
            )
            rows = export.csv.splitlines()[1:]
            assert sum((Decimal(r.rsplit(",", 1)[1]) for r in rows), ZERO) == quantity


async def set_up_agency(billing, metering, start: datetime) -> None:
    meters = [
        mpb.Meter(
            key="llm_cost",
            event_types=["ai.request"],
            aggregation=mpb.AGGREGATION_SUM,
            quantity="provider_cost",
        ),
        mpb.Meter(key="runs", event_types=["ai.request"], aggregation=mpb.AGGREGATION_UNIQUE_COUNT),
        mpb.Meter(key="pages", event_types=["ai.request"], aggregation=mpb.AGGREGATION_SUM, quantity="pages"),
    ]
    for meter in meters:
        meter.builder_id, meter.display_name = BUILDER, meter.key
        await metering.CreateMeter(mpb.CreateMeterRequest(request_id=rid(), meter=meter), timeout=10)
    await billing.SetPlatformFee(
        bpb.SetPlatformFeeRequest(
            request_id=rid(),
            platform_fee=bpb.PlatformFee(
                builder_id=BUILDER, percent_of_line=str(FEE_OF_LINE), percent_of_margin=str(FEE_OF_MARGIN)
            ),
        ),
        timeout=10,
    )
    plan = await billing.CreatePlan(
        bpb.CreatePlanRequest(
            request_id=rid(),
            plan=bpb.Plan(builder_id=BUILDER, key="agency", display_name="Agency", currency_code="USD"),
        ),
        timeout=10,
    )
    await billing.PublishPlanVersion(
        bpb.PublishPlanVersionRequest(
            request_id=rid(),
            builder_id=BUILDER,
            version=bpb.PlanVersion(
                plan_id=plan.plan.id,
                base_fee=to_money(BASE_FEE, "USD"),
                charges=[
                    bpb.Charge(
                        key="tokens",
                        meter_key="llm_cost",
                        display_name="AI model usage",
                        cost_plus=bpb.CostPlusPrice(markup_percent=str(MARKUP)),
                    ),
                    bpb.Charge(
                        key="runs",
                        meter_key="runs",
                        display_name="Runs",
                        per_unit=bpb.PerUnitPrice(unit_price=str(RUN_PRICE)),
                    ),
                    bpb.Charge(
                        key="pages",
                        meter_key="pages",
                        display_name="Pages",
                        per_unit=bpb.PerUnitPrice(unit_price=str(PAGE_PRICE)),
                    ),
                ],
            ),
        ),
        timeout=10,
    )
    for customer, app in (("acme", "support-bot"), ("globex", "doc-parser")):
        await billing.CreateCustomer(
            bpb.CreateCustomerRequest(
                request_id=rid(),
                customer=bpb.Customer(
                    id=customer,
                    builder_id=BUILDER,
                    app_id=app,
                    currency_code="USD",
                    display_name=customer.title(),
                ),
            ),
            timeout=10,
        )
        await billing.Subscribe(
            bpb.SubscribeRequest(
                request_id=rid(),
                builder_id=BUILDER,
                customer_id=customer,
                plan_id=plan.plan.id,
                start_time=to_timestamp(start),
            ),
            timeout=10,
        )


async def ask(client, model: str, text: str, *, failover: bool = False, **kw: Any) -> Decimal:
    """One chat completion through the HTTP door; its provider cost by hand from the reply's tokens."""
    raw = await client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": text}], **kw
    )
    reply = raw.parse()
    # provider_a is first on every request; a failover answers from provider_b on the second attempt
    assert raw.headers["x-tollgate-provider"] == ("provider_b" if failover else "provider_a")
    assert raw.headers["x-tollgate-attempt"] == ("2" if failover else "1")
    assert reply.usage.prompt_tokens > 0 and reply.usage.completion_tokens > 0
    return (
        reply.usage.prompt_tokens * INPUT_PRICE + reply.usage.completion_tokens * OUTPUT_PRICE
    ) / 1_000_000


def amounts(money_list) -> list[Decimal]:
    return [from_money(m) for m in money_list]


def summary_of(statement) -> list[Decimal]:
    """revenue, provider cost, platform fee, earnings."""
    s = statement.summary
    return amounts([s.revenue, s.provider_cost, s.platform_fee, s.earnings])


def ledger_of(statement) -> list[Decimal]:
    """opening balance, earnings, clawbacks, payouts, closing balance."""
    g = statement.ledger
    return amounts([g.opening_balance, g.earnings, g.clawbacks, g.payouts, g.closing_balance])


async def test_an_agency_month_through_the_gateway_is_paid_out_to_the_cent_and_reconciles(
    gateway, billing_address, metering_address, payouts_address
):
    now = datetime.now(UTC)
    start, end, period = month_start(now), month_start(now, 1), f"{now:%Y-%m}"
    async with (
        auth_channel(billing_address) as bch,
        auth_channel(metering_address) as mch,
        auth_channel(payouts_address) as pch,
        auth_channel(payouts_address, credential=token("builder", BUILDER)) as builder_ch,
    ):
        billing = billing_pb2_grpc.BillingServiceStub(bch)
        metering = metering_pb2_grpc.MeteringServiceStub(mch)
        payouts = payouts_pb2_grpc.PayoutsServiceStub(pch)
        as_builder = payouts_pb2_grpc.PayoutsServiceStub(builder_ch)
        await set_up_agency(billing, metering, start)

        prices = (INPUT_PRICE, OUTPUT_PRICE)
        model = await gateway.upsert_model(
            [{"provider": "provider_a", "prices": prices}, {"provider": "provider_b", "prices": prices}]
        )
        order = {"x-tollgate-provider-order": "provider_a,provider_b"}
        acme_secret, _ = await gateway.create_key(
            builder_id=BUILDER, app_id="support-bot", customer_id="acme", default_tags={"workflow": "triage"}
        )
        globex_secret, _ = await gateway.create_key(
            builder_id=BUILDER,
            app_id="doc-parser",
            customer_id="globex",
            default_tags={"workflow": "extraction"},
        )
        acme, globex = gateway.openai(acme_secret), gateway.openai(globex_secret)

        # Acme: 3 ticket runs, 5 answers; the second answer of run t-2 fails over once.
        acme_cost = ZERO
        for run, texts in (
            ("t-1", ["my order is late", "thanks"]),
            ("t-2", ["refund please", "ok"]),
            ("t-3", ["where is the invoice for march and april"]),
        ):
            for n, text in enumerate(texts):
                failover = run == "t-2" and n == 1
                if failover:
                    gateway.providers["provider_a"].control(fail_next=1)
                acme_cost += await ask(
                    acme, model, text, failover=failover, extra_headers={**order, "x-tollgate-run-id": run}
                )
        # Globex: 3 documents (12 + 30 + 7 pages), one request each, run id in OpenAI's metadata;
        # the second document fails over once.
        globex_cost, pages = ZERO, {"d-1": 12, "d-2": 30, "d-3": 7}
        for doc, count in pages.items():
            failover = doc == "d-2"
            if failover:
                gateway.providers["provider_a"].control(fail_next=1)
            globex_cost += await ask(
                globex,
                model,
                f"extract the totals of document {doc} " * 3,
                failover=failover,
                extra_headers={**order, "x-tollgate-document-id": doc, "x-tollgate-page-count": str(count)},
                metadata={"tollgate_run_id": f"run-{doc}"},
            )
        # 8 answers + 2 failed attempts reach metering through the gateway's outbox and relay
        events = await wait_for_events(metering_address, BUILDER, 10)
        assert sorted(e.status for e in events) == sorted(
            [mpb.EVENT_STATUS_SUCCEEDED] * 8 + [mpb.EVENT_STATUS_FAILED] * 2
        )
        await asyncio.sleep(METERING_SETTLE_SECONDS * 2)

        # ---- billing: close the month, check the invoices by hand, pay them ----
        closed = await billing.ClosePeriod(
            bpb.ClosePeriodRequest(request_id=rid(), builder_id=BUILDER, period_end_time=to_timestamp(end)),
            timeout=60,
        )
        assert closed.finalized_count == 2
        expected = {
            "acme": Bill(
                (
                    Line(BASE_FEE),
                    Line(acme_cost * (1 + MARKUP / 100), acme_cost),
                    Line(3 * RUN_PRICE),
                    Line(ZERO),
                )
            ),
            "globex": Bill(
                (
                    Line(BASE_FEE),
                    Line(globex_cost * (1 + MARKUP / 100), globex_cost),
                    Line(3 * RUN_PRICE),
                    Line(sum(pages.values()) * PAGE_PRICE),
                )
            ),
        }
        invoices = {
            i.customer_id: i
            for i in (
                await billing.ListInvoices(bpb.ListInvoicesRequest(builder_id=BUILDER), timeout=10)
            ).invoices
        }
        assert set(invoices) == {"acme", "globex"}
        # the usage cutoff is metering's real time (this month), not billing's clock (next month)
        for inv in invoices.values():
            assert start < inv.usage_cutoff_time.ToDatetime(UTC) <= datetime.now(UTC) < end
        for customer, bill in expected.items():
            inv = invoices[customer]
            assert from_money(inv.total) == bill.total(), customer
            got = [
                (
                    from_money(x.amount),
                    from_money(x.split.provider_cost),
                    from_money(x.split.platform_fee),
                    from_money(x.split.builder_margin),
                )
                for x in inv.lines
            ]
            assert got == [(x.amount, x.cost, x.fee, x.margin) for x in bill.lines], customer
        await explain_every_line(billing, invoices)
        for customer, inv in invoices.items():
            paid = await billing.RecordPayment(
                bpb.RecordPaymentRequest(
                    request_id=rid(),
                    builder_id=BUILDER,
                    invoice_id=inv.id,
                    amount=inv.amount_due,
                    external_reference=f"bank-{customer}",
                ),
                timeout=10,
            )
            assert paid.invoice.payment_status == bpb.PAYMENT_STATUS_PAID, customer

        revenue = sum((b.total() for b in expected.values()), ZERO)
        cost = acme_cost + globex_cost
        fee = sum((b.fee() for b in expected.values()), ZERO)
        margin = sum((b.margin() for b in expected.values()), ZERO)
        assert revenue == cost + fee + margin and margin > 0 and cost > 1 and fee > 0

        # ---- payouts: consume the feed, release the 0-day holds, run the period's payouts ----
        synced = await payouts.SyncEarnings(ppb.SyncEarningsRequest(request_id=rid()), timeout=30)
        assert synced.applied_count > 0
        # one hold per non-zero builder margin and provider cost of a line (fees are not held)
        held = sum((x.margin != 0) + (x.cost != 0) for bill in expected.values() for x in bill.lines)
        released = await payouts.ReleaseHolds(ppb.ReleaseHoldsRequest(request_id=rid()), timeout=30)
        assert released.released_count == held
        balance = await payouts.GetBalance(ppb.GetBalanceRequest(payee_id=BUILDER, currency_code="USD"))
        assert from_money(balance.payable) == margin
        run = await payouts.RunPayouts(ppb.RunPayoutsRequest(request_id=rid(), period=period), timeout=30)
        assert run.created_count == 2 and amounts(run.totals) == [margin + cost]
        listed = await payouts.ListPayouts(ppb.ListPayoutsRequest(period=period), timeout=10)
        assert {p.payee_id: from_money(p.amount) for p in listed.payouts} == {
            BUILDER: margin,
            PROVIDERS: cost,
        }
        bank = await payouts.ExportPayoutRun(ppb.ExportPayoutRunRequest(period=period), timeout=10)
        rows = sorted(tuple(row.split(",")[i] for i in (0, 2, 3)) for row in bank.csv.splitlines()[1:])
        assert rows == sorted([(BUILDER, f"{margin:.2f}", "USD"), (PROVIDERS, f"{cost:.2f}", "USD")])
        platform = await payouts.GetBalance(ppb.GetBalanceRequest(payee_id=PLATFORM, currency_code="USD"))
        by_purpose = {a.account.purpose: from_money(a.balance) for a in platform.accounts}
        assert by_purpose[ppb.ACCOUNT_PURPOSE_FEE_REVENUE] == fee
        assert by_purpose[ppb.ACCOUNT_PURPOSE_CLEARING] == -revenue

        # ---- the builder's statement, read with the builder's own credential ----
        statement = (
            await as_builder.GetStatement(ppb.GetStatementRequest(currency_code="USD", period=period))
        ).statement
        assert statement.payee_id == BUILDER
        summary = summary_of(statement)
        assert summary == [revenue, cost, fee, margin]
        ledger = ledger_of(statement)
        assert ledger == [ZERO, margin, ZERO, margin, ZERO]
        by_customer = {x.key: from_money(x.earnings) for x in statement.lines if x.dimension == "customer"}
        assert by_customer == {c: b.margin() for c, b in expected.items()}
        by_app = {x.key: from_money(x.earnings) for x in statement.lines if x.dimension == "app"}
        assert by_app == {"support-bot": expected["acme"].margin(), "doc-parser": expected["globex"].margin()}
        # the keys' workflow tag rides gateway -> metering -> billing -> payouts on the usage lines; the
        # base fees (line 0) have neither workflow nor meter
        acme_lines, globex_lines = expected["acme"].lines, expected["globex"].lines
        by_workflow = {x.key: from_money(x.earnings) for x in statement.lines if x.dimension == "workflow"}
        assert by_workflow == {
            "": acme_lines[0].margin + globex_lines[0].margin,
            "triage": sum((x.margin for x in acme_lines[1:]), ZERO),
            "extraction": sum((x.margin for x in globex_lines[1:]), ZERO),
        }
        by_meter = {x.key: from_money(x.earnings) for x in statement.lines if x.dimension == "meter"}
        assert by_meter == {
            "": acme_lines[0].margin + globex_lines[0].margin,
            "llm_cost": acme_lines[1].margin + globex_lines[1].margin,
            "runs": acme_lines[2].margin + globex_lines[2].margin,
            "pages": globex_lines[3].margin,  # Acme's pages line is $0: no entry
        }
        await assert_reconciled(payouts, period, invoices=2)

        # ---- a credit note after payment: Globex's invoice credited whole, clawed back from the payees ----
        globex_bill = expected["globex"]
        await billing.IssueCreditNote(
            bpb.IssueCreditNoteRequest(
                request_id=rid(),
                builder_id=BUILDER,
                invoice_id=invoices["globex"].id,
                amount=invoices["globex"].total,
                reason="documents re-run for free",
                # paid in full: all of it is money received, paid back as a refund
                settlement=bpb.CREDIT_SETTLEMENT_REFUND,
            ),
            timeout=10,
        )
        synced = await payouts.SyncEarnings(ppb.SyncEarningsRequest(request_id=rid()), timeout=30)
        assert synced.applied_count > 0
        builder_balance = await payouts.GetBalance(
            ppb.GetBalanceRequest(payee_id=BUILDER, currency_code="USD")
        )
        assert from_money(builder_balance.payable) == -globex_bill.margin()
        providers = await payouts.GetBalance(ppb.GetBalanceRequest(payee_id=PROVIDERS, currency_code="USD"))
        assert from_money(providers.payable) == -globex_cost
        platform = await payouts.GetBalance(ppb.GetBalanceRequest(payee_id=PLATFORM, currency_code="USD"))
        by_purpose = {a.account.purpose: from_money(a.balance) for a in platform.accounts}
        assert by_purpose[ppb.ACCOUNT_PURPOSE_FEE_REVENUE] == fee - globex_bill.fee()

        # the entries' time (billing's database clock) puts the credit note in this same period
        statement = (
            await as_builder.GetStatement(ppb.GetStatementRequest(currency_code="USD", period=period))
        ).statement
        summary = summary_of(statement)
        acme_bill = expected["acme"]
        assert summary == [acme_bill.total(), acme_bill.cost(), acme_bill.fee(), acme_bill.margin()]
        ledger = ledger_of(statement)
        assert ledger == [ZERO, margin, globex_bill.margin(), margin, -globex_bill.margin()]
        # the CSV export says the same; the next period opens where this one closed
        exported = await as_builder.ExportStatement(
            ppb.ExportStatementRequest(currency_code="USD", period=period)
        )
        csv_ledger = {
            row.split(",")[1]: Decimal(row.split(",")[2])
            for row in exported.csv.splitlines()
            if row.startswith("ledger,")
        }
        assert list(csv_ledger.values()) == ledger
        following = (
            await as_builder.GetStatement(ppb.GetStatementRequest(currency_code="USD", period=f"{end:%Y-%m}"))
        ).statement
        assert ledger_of(following) == [-globex_bill.margin(), ZERO, ZERO, ZERO, -globex_bill.margin()]
        # the providers' statement: their reward, paid out, then Globex's provider cost clawed back
        statement = (
            await payouts.GetStatement(
                ppb.GetStatementRequest(payee_id=PROVIDERS, currency_code="USD", period=period)
            )
        ).statement
        assert summary_of(statement)[0] == acme_cost
        assert ledger_of(statement) == [ZERO, cost, globex_cost, cost, -globex_cost]
        assert by_purpose[ppb.ACCOUNT_PURPOSE_CLEARING] == -acme_bill.total()
        # a second run for the period creates nothing (the negative balances carry over)
        again = await payouts.RunPayouts(ppb.RunPayoutsRequest(request_id=rid(), period=period), timeout=30)
        assert again.created_count == 0 and amounts(again.totals) == [margin + cost]
        await assert_reconciled(payouts, period, invoices=2)


async def assert_reconciled(payouts, period: str, invoices: int) -> None:
    report = await payouts.Reconcile(ppb.ReconcileRequest(period=period), timeout=30)
    assert report.clean, [c for c in report.checks if not c.ok]
    assert all(Decimal(c.difference) == 0 for c in report.checks)
    names = [c.name for c in report.checks]
    # not vacuous: the invoices were compared with the entries, and their usage with metering's
    assert names.count("earnings_match_paid_invoices") >= 1
    usage = [c for c in report.checks if c.name == "usage_matches_metering"]
    assert len(usage) >= invoices and all(c.expected == c.actual for c in usage)
