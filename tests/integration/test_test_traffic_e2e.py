# ruff: noqa: F811  (pytest fixtures imported from the agency month and used by name)
"""Issue 11's test traffic proof: a builder's own test key, used through the gateway's HTTP door beside a
live key of the same customer, puts nothing on the client's invoice, and what it cost at the providers
is visible to the builder in GetUnitEconomics (test_traffic), to the nano.

The four servers and the month's clock are the agency month's (tests/integration/test_agency_month_e2e.py):
billing runs one month ahead so the current month can be closed.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from common.money import from_money, to_money, to_timestamp
from tests.conftest import auth_channel
from tests.gateway.conftest import make_stack  # noqa: F401  (the gateway fixture, reused here)
from tests.gateway.test_usage_outbox import wait_for_events
from tests.integration.test_agency_month_e2e import (  # noqa: F401  (module fixtures, reused)
    INPUT_PRICE,
    METERING_SETTLE_SECONDS,
    OUTPUT_PRICE,
    ask,
    billing_address,
    gateway,
    metering_address,
    month_start,
    rid,
)
from tollgate.billing.v1 import billing_pb2 as bpb
from tollgate.billing.v1 import billing_pb2_grpc
from tollgate.gateway.v1 import admin_pb2
from tollgate.metering.v1 import metering_pb2 as mpb
from tollgate.metering.v1 import metering_pb2_grpc

pytestmark = pytest.mark.slow

BUILDER = f"tester-{uuid.uuid4().hex[:6]}"
MARKUP = Decimal(50)


async def test_a_test_keys_traffic_is_not_invoiced_and_its_cost_is_the_builders_own(
    gateway, billing_address, metering_address
):
    now = datetime.now(UTC)
    start, end = month_start(now), month_start(now, 1)
    async with auth_channel(billing_address) as bch, auth_channel(metering_address) as mch:
        billing = billing_pb2_grpc.BillingServiceStub(bch)
        metering = metering_pb2_grpc.MeteringServiceStub(mch)
        await metering.CreateMeter(
            mpb.CreateMeterRequest(
                request_id=rid(),
                meter=mpb.Meter(
                    builder_id=BUILDER,
                    key="llm_cost",
                    display_name="AI cost",
                    event_types=["ai.request"],
                    aggregation=mpb.AGGREGATION_SUM,
                    quantity="provider_cost",
                ),
            ),
            timeout=10,
        )
        plan = await billing.CreatePlan(
            bpb.CreatePlanRequest(
                request_id=rid(),
                plan=bpb.Plan(builder_id=BUILDER, key="tokens", display_name="Tokens", currency_code="USD"),
            ),
            timeout=10,
        )
        await billing.PublishPlanVersion(
            bpb.PublishPlanVersionRequest(
                request_id=rid(),
                builder_id=BUILDER,
                version=bpb.PlanVersion(
                    plan_id=plan.plan.id,
                    base_fee=to_money(Decimal("0"), "USD"),
                    charges=[
                        bpb.Charge(
                            key="tokens",
                            meter_key="llm_cost",
                            display_name="AI model usage",
                            cost_plus=bpb.CostPlusPrice(markup_percent=str(MARKUP)),
                        )
                    ],
                ),
            ),
            timeout=10,
        )
        await billing.CreateCustomer(
            bpb.CreateCustomerRequest(
                request_id=rid(),
                customer=bpb.Customer(
                    id="acme", builder_id=BUILDER, app_id="bot", currency_code="USD", display_name="Acme"
                ),
            ),
            timeout=10,
        )
        await billing.Subscribe(
            bpb.SubscribeRequest(
                request_id=rid(),
                builder_id=BUILDER,
                customer_id="acme",
                plan_id=plan.plan.id,
                start_time=to_timestamp(start),
            ),
            timeout=10,
        )

        prices = (INPUT_PRICE, OUTPUT_PRICE)
        model = await gateway.upsert_model(
            [{"provider": "provider_a", "prices": prices}, {"provider": "provider_b", "prices": prices}]
        )
        order = {"x-tollgate-provider-order": "provider_a,provider_b"}
        live_secret, _ = await gateway.create_key(builder_id=BUILDER, app_id="bot", customer_id="acme")
        test_secret, test_key = await gateway.create_key(
            builder_id=BUILDER, app_id="bot", customer_id="acme", mode=admin_pb2.API_KEY_MODE_TEST
        )
        assert test_secret.startswith("tg_test_")
        live, test = gateway.openai(live_secret), gateway.openai(test_secret)

        live_cost = Decimal(0)
        for text in ("summarise the ticket", "draft a reply"):
            live_cost += await ask(live, model, text, extra_headers=order)
        test_cost = Decimal(0)
        for text in ("staging check one", "staging check two", "a longer staging check with more words"):
            test_cost += await ask(test, model, text, extra_headers=order)
        # one test request fails over: its failed attempt is a TEST event too, and costs nothing
        gateway.providers["provider_a"].control(fail_next=1)
        test_cost += await ask(test, model, "staging failover", failover=True, extra_headers=order)

        events = await wait_for_events(metering_address, BUILDER, 2 + 5)
        statuses = sorted(mpb.EventStatus.Name(e.status) for e in events)
        assert statuses == ["EVENT_STATUS_SUCCEEDED"] * 2 + ["EVENT_STATUS_TEST"] * 5
        await asyncio.sleep(METERING_SETTLE_SECONDS * 2)

        closed = await billing.ClosePeriod(
            bpb.ClosePeriodRequest(request_id=rid(), builder_id=BUILDER, period_end_time=to_timestamp(end)),
            timeout=60,
        )
        assert closed.finalized_count == 1
        (invoice,) = (
            await billing.ListInvoices(bpb.ListInvoicesRequest(builder_id=BUILDER), timeout=10)
        ).invoices
        usage_lines = [x for x in invoice.lines if x.charge_key == "tokens"]
        assert len(usage_lines) == 1
        # only the live key's cost is on the client's invoice: cost x 1.5, rounded once to the cent
        assert Decimal(usage_lines[0].quantity) == live_cost
        assert from_money(invoice.total) == (live_cost * (1 + MARKUP / 100)).quantize(Decimal("0.01"))
        assert from_money(usage_lines[0].split.provider_cost) == live_cost.quantize(Decimal("0.01"))

        economics = await billing.GetUnitEconomics(
            bpb.GetUnitEconomicsRequest(builder_id=BUILDER, period_start_time=to_timestamp(start)), timeout=30
        )
        assert [(t.meter_key, Decimal(t.provider_cost), t.event_count) for t in economics.test_traffic] == [
            ("llm_cost", test_cost, 5)
        ]
        # the builder's own cost never reaches a client's revenue
        assert sum(from_money(m.revenue) for m in economics.meters) == from_money(invoice.total)
        assert test_key.id  # the key that made them


async def test_usage_queries_can_read_a_meter_with_the_test_status(metering_address):
    async with auth_channel(metering_address) as mch:
        metering = metering_pb2_grpc.MeteringServiceStub(mch)
        now = datetime.now(UTC)
        with pytest.raises(Exception) as refused:
            await metering.QueryUsage(
                mpb.QueryUsageRequest(
                    builder_id=BUILDER,
                    meter_key="llm_cost",
                    start_time=to_timestamp(month_start(now)),
                    end_time=to_timestamp(month_start(now, 1)),
                    statuses=[mpb.EVENT_STATUS_TEST, 9],
                ),
                timeout=10,
            )
        assert refused.value.code().name == "INVALID_ARGUMENT"
        assert "statuses[1]" in refused.value.details()
