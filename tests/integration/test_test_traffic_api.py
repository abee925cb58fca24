"""A builder's test traffic never reaches its client's invoice, and its provider cost stays visible to the
builder: gateway, metering and billing over real gRPC, HTTP and PostgreSQL.

One customer, Acme, sends live traffic with a live key and the builder tests its app with a test key of
the same customer in the same month; each side has one failed attempt (the first provider answers 503
once, the gateway fails over). Acme's plan: a $20.00 base fee, model usage passed through at cost plus
100%, and $0.10 per inference attempt, failed ones included (a meter that lists FAILED). Test events
carry metering's TEST status, which none of those meters lists, so Acme is invoiced for the live
traffic only; the builder reads its test spend from a meter listing only TEST, through QueryUsage.

Prices are chosen so every amount is whole cents by hand: 10,000 USD per million input tokens and
20,000 per million output tokens, i.e. $0.01 an input token and $0.02 an output token.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from common.migrations import upgrade_head_async
from common.money import from_money, to_money, to_timestamp
from gateway.domain.catalog import Route
from gateway.domain.chat import BusinessUnits
from gateway.domain.usage import build_event
from gateway.outbox import encode
from tests.conftest import auth_channel, migrated_database, security
from tests.gateway.conftest import make_stack  # noqa: F401  (the gateway fixture, reused here)
from tests.gateway.test_usage_outbox import wait_for_events
from tollgate.billing.v1 import billing_pb2 as bpb
from tollgate.billing.v1 import billing_pb2_grpc
from tollgate.gateway.v1 import admin_pb2
from tollgate.metering.v1 import metering_pb2 as mpb
from tollgate.metering.v1 import metering_pb2_grpc

REPO = Path(__file__).resolve().parents[2]
BUILDER = f"studio-{uuid.uuid4().hex[:6]}"
CUSTOMER = "acme"
APP = "app1"
METERING_SETTLE_SECONDS = 0.5  # metering reports a cutoff settled once this old; a close waits for it
INPUT_PRICE, OUTPUT_PRICE = Decimal("10000"), Decimal("20000")  # USD per million tokens


def month_start(months_back: int = 0) -> datetime:
    now = datetime.now(UTC)
    y, m = now.year, now.month - months_back
    while m <= 0:
        y, m = y - 1, m + 12
    return datetime(y, m, 1, tzinfo=UTC)


def rid() -> str:
    return uuid.uuid4().hex


def token_cost(input_tokens: int, output_tokens: int) -> Decimal:
    """$0.01 an input token, $0.02 an output token: exact cents."""
    return Decimal(input_tokens) * Decimal("0.01") + Decimal(output_tokens) * Decimal("0.02")


@pytest.fixture(scope="module")
async def metering_address(make_database):
    """A real metering server with a short settle window, so a close does not wait the production 30 s."""
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
async def billing_address(make_database, metering_address):
    from billing.app import start
    from billing.config import Settings

    url = await make_database("billing")
    await upgrade_head_async(REPO / "services" / "billing" / "migrations", url, "alembic_version_billing")
    running = await start(
        Settings(
            database_url=url,
            grpc_address="127.0.0.1:0",
            metrics_port=None,
            metering_address=metering_address,
            metering_retry_seconds=20,
            security=security("billing"),
        )
    )
    yield f"127.0.0.1:{running.port}"
    await running.stop(0)


@pytest.fixture(scope="module")
async def gateway(make_stack, metering_address):  # noqa: F811
    return await make_stack(metering_address=metering_address, relay_enabled=True)


@pytest.fixture(scope="module")
async def services(billing_address, metering_address):
    async with auth_channel(billing_address) as bch, auth_channel(metering_address) as mch:
        yield billing_pb2_grpc.BillingServiceStub(bch), metering_pb2_grpc.MeteringServiceStub(mch)


async def set_up_builder(billing, metering, builder: str = BUILDER, start: datetime | None = None) -> None:
    meters = [
        # the billing meters: statuses unset, so succeeded only (metering's default)
        mpb.Meter(
            key="llm_cost",
            event_types=["ai.request"],
            aggregation=mpb.AGGREGATION_SUM,
            quantity="provider_cost",
        ),
        # a builder who charges failed attempts too lists FAILED; a test key's failed attempt is still not one
        mpb.Meter(
            key="attempts",
            event_types=["ai.request"],
            aggregation=mpb.AGGREGATION_COUNT,
            statuses=[mpb.EVENT_STATUS_SUCCEEDED, mpb.EVENT_STATUS_FAILED],
        ),
        # the builder's own view of its test spend: TEST only, summing provider cost; no plan uses it
        mpb.Meter(
            key="test_llm_cost",
            event_types=["ai.request"],
            aggregation=mpb.AGGREGATION_SUM,
            quantity="provider_cost",
            statuses=[mpb.EVENT_STATUS_TEST],
        ),
    ]
    for meter in meters:
        meter.builder_id = builder
        meter.display_name = meter.key
        await metering.CreateMeter(mpb.CreateMeterRequest(request_id=rid(), meter=meter), timeout=10)
    await billing.CreateCustomer(
        bpb.CreateCustomerRequest(
            request_id=rid(),
            customer=bpb.Customer(
                id=CUSTOMER, builder_id=builder, app_id=APP, currency_code="USD", display_name="Acme"
            ),
        ),
        timeout=10,
    )
    plan = await billing.CreatePlan(
        bpb.CreatePlanRequest(
            request_id=rid(),
            plan=bpb.Plan(builder_id=builder, key="pro", display_name="Pro", currency_code="USD"),
        ),
        timeout=10,
    )
    await billing.PublishPlanVersion(
        bpb.PublishPlanVersionRequest(
            request_id=rid(),
            builder_id=builder,
            version=bpb.PlanVersion(
                plan_id=plan.plan.id,
                base_fee=to_money(Decimal("20.00"), "USD"),
                charges=[
                    bpb.Charge(
                        key="tokens",
                        meter_key="llm_cost",
                        display_name="AI model usage",
                        cost_plus=bpb.CostPlusPrice(markup_percent="100"),
                    ),
                    bpb.Charge(
                        key="attempts",
                        meter_key="attempts",
                        display_name="Inference attempts",
                        per_unit=bpb.PerUnitPrice(unit_price="0.10"),
                    ),
                ],
            ),
        ),
        timeout=10,
    )
    await billing.Subscribe(
        bpb.SubscribeRequest(
            request_id=rid(),
            builder_id=builder,
            customer_id=CUSTOMER,
            plan_id=plan.plan.id,
            start_time=to_timestamp(start or month_start()),
        ),
        timeout=10,
    )


async def send(gateway, secret: str, model: str, texts: list[str]) -> Decimal:
    """Send each text through the HTTP door with the openai client; the provider cost, by hand."""
    client = gateway.openai(secret)
    total = Decimal(0)
    for text in texts:
        reply = await client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": text}]
        )
        total += token_cost(reply.usage.prompt_tokens, reply.usage.completion_tokens)
    return total


async def test_test_traffic_is_not_invoiced_and_its_provider_cost_is_the_builders_to_see(
    gateway, services, metering_address
):
    billing, metering = services
    await set_up_builder(billing, metering)
    prices = (INPUT_PRICE, OUTPUT_PRICE)
    model = await gateway.upsert_model(
        [{"provider": "provider_a", "prices": prices}, {"provider": "provider_b", "prices": prices}]
    )
    live_secret, live_key = await gateway.create_key(builder_id=BUILDER, app_id=APP, customer_id=CUSTOMER)
    test_secret, test_key = await gateway.create_key(
        builder_id=BUILDER, app_id=APP, customer_id=CUSTOMER, mode=admin_pb2.API_KEY_MODE_TEST
    )
    assert test_secret.startswith("tg_test_") and test_key.mode == admin_pb2.API_KEY_MODE_TEST
    assert not live_secret.startswith("tg_test_") and live_key.mode == admin_pb2.API_KEY_MODE_LIVE

    # live: 3 answers, the first after a failed attempt on provider_a -> 4 attempts
    gateway.providers["provider_a"].control(fail_next=1)
    live_cost = await send(gateway, live_secret, model, ["summarise the contract", "two", "three more words"])
    # test: 4 answers with much longer prompts, the first after a failed attempt -> 5 attempts
    gateway.providers["provider_a"].control(fail_next=1)
    test_cost = await send(gateway, test_secret, model, ["a staging run of the whole pipeline " * 6] * 4)
    assert live_cost > 0 and test_cost > live_cost

    events = await wait_for_events(metering_address, BUILDER, 9)
    assert len(events) == 9
    by_status: dict[int, int] = {}
    for e in events:
        by_status[e.status] = by_status.get(e.status, 0) + 1
    assert by_status == {mpb.EVENT_STATUS_SUCCEEDED: 3, mpb.EVENT_STATUS_FAILED: 1, mpb.EVENT_STATUS_TEST: 5}

    invoice = (
        await billing.PreviewInvoice(
            bpb.PreviewInvoiceRequest(builder_id=BUILDER, customer_id=CUSTOMER), timeout=20
        )
    ).invoice
    lines = {line.charge_key: line for line in invoice.lines if line.charge_key}
    # by hand: tokens = live cost x 2 (cost plus 100%); attempts = 4 live attempts x $0.10
    assert from_money(lines["tokens"].amount) == live_cost * 2
    assert Decimal(lines["attempts"].quantity) == 4
    assert from_money(lines["attempts"].amount) == Decimal("0.40")
    assert from_money(invoice.total) == Decimal("20.00") + live_cost * 2 + Decimal("0.40")

    # the builder's test spend, to the cent (exactly, in fact), from metering
    now = datetime.now(UTC)
    assert await usage(metering, BUILDER, "test_llm_cost", month_start(), now) == test_cost
    assert await usage(metering, BUILDER, "llm_cost", month_start(), now) == live_cost


async def usage(metering, builder: str, meter_key: str, start: datetime, end: datetime) -> Decimal:
    reply = await metering.QueryUsage(
        mpb.QueryUsageRequest(
            builder_id=builder,
            meter_key=meter_key,
            customer_id=CUSTOMER,
            start_time=to_timestamp(start),
            end_time=to_timestamp(end),
        ),
        timeout=10,
    )
    return sum((Decimal(r.value) for r in reply.rows), Decimal(0))


def gateway_event(
    builder: str, n: int, tokens: tuple[int, int], *, test: bool, succeeded: bool, when: datetime
):
    """An event exactly as the gateway builds and serializes it for one attempt (its outbox payload)."""
    record = build_event(
        request_id=f"req-{n}",
        attempt=1,
        occurred_time=when,
        builder_id=builder,
        app_id=APP,
        customer_id=CUSTOMER,
        route=Route(
            model="m",
            offering_id="off_a",
            provider="provider_a",
            upstream_model="up",
            url="http://127.0.0.1:1/chat/completions",
            credential_env="",
            input_price_per_mtok=INPUT_PRICE,
            output_price_per_mtok=OUTPUT_PRICE,
            weight=1,
            position=0,
        ),
        succeeded=succeeded,
        input_tokens=tokens[0],
        output_tokens=tokens[1],
        estimated=False,
        latency_ms=10,
        tags={"workspace": "ops"},
        units=BusinessUnits(),
        error="" if succeeded else "http 503",
        test=test,
    )
    return mpb.UsageEvent.FromString(encode(record))


async def test_a_closed_months_finalized_invoice_counts_live_events_only(services):
    """The same rule through ClosePeriod. A finalized invoice needs a month that has ended, and the
    gateway stamps events with the time they happen, so the events here are the gateway's own payloads
    (build_event + the outbox's encode) for last month, ingested as its relay would."""
    billing, metering = services
    builder = f"studio-{uuid.uuid4().hex[:6]}"
    start, end = month_start(1), month_start()
    await set_up_builder(billing, metering, builder, start)
    day = start.replace(day=10)
    events = [
        # live: $0.01 x 100 + $0.02 x 50 = $2.00; $0.01 x 30 + $0.02 x 20 = $0.70; a failed attempt, $0
        gateway_event(builder, 1, (100, 50), test=False, succeeded=True, when=day),
        gateway_event(builder, 2, (30, 20), test=False, succeeded=True, when=day),
        gateway_event(builder, 3, (0, 0), test=False, succeeded=False, when=day),
        # test: $20.00, $4.00, and a failed attempt (a broken stream) that consumed $2.00
        gateway_event(builder, 4, (1000, 500), test=True, succeeded=True, when=day),
        gateway_event(builder, 5, (400, 0), test=True, succeeded=True, when=day),
        gateway_event(builder, 6, (200, 0), test=True, succeeded=False, when=day),
    ]
    assert [e.status for e in events[3:]] == [mpb.EVENT_STATUS_TEST] * 3
    reply = await metering.IngestEvents(mpb.IngestEventsRequest(request_id=rid(), events=events), timeout=10)
    assert reply.accepted_count == 6
    await asyncio.sleep(METERING_SETTLE_SECONDS * 2)

    closed = await billing.ClosePeriod(
        bpb.ClosePeriodRequest(request_id=rid(), builder_id=builder, period_end_time=to_timestamp(end)),
        timeout=60,
    )
    assert closed.finalized_count == 1
    invoices = await billing.ListInvoices(bpb.ListInvoicesRequest(builder_id=builder), timeout=10)
    (invoice,) = invoices.invoices
    assert invoice.status == bpb.INVOICE_STATUS_FINALIZED
    lines = {line.charge_key: line for line in invoice.lines if line.charge_key}
    # by hand: tokens = $2.70 x 2 = $5.40; attempts = 3 live attempts x $0.10 = $0.30; + $20.00 base fee
    assert from_money(lines["tokens"].amount) == Decimal("5.40")
    assert Decimal(lines["attempts"].quantity) == 3
    assert from_money(lines["attempts"].amount) == Decimal("0.30")
    assert from_money(invoice.total) == Decimal("25.70")
    # and the builder's test spend for that month: $20.00 + $4.00 + $2.00
    assert await usage(metering, builder, "test_llm_cost", start, end) == Decimal("26.00")
