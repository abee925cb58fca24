"""Helpers for SpendService's API tests: a billing server with short lease, sweep and margin-watch
periods (beside conftest.py's real metering), customers, meters the gateway's events feed, and SQL
reads of what the API does not show (webhook deliveries)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import grpc
from billing_kit import rid

from common.db import create_engine
from common.migrations import upgrade_head_async
from common.money import to_money
from tests.conftest import auth_channel, security
from tollgate.billing.v1 import billing_pb2 as bpb
from tollgate.billing.v1 import billing_pb2_grpc, spend_pb2_grpc
from tollgate.billing.v1 import spend_pb2 as spb
from tollgate.metering.v1 import metering_pb2 as mpb
from tollgate.metering.v1 import metering_pb2_grpc

_REPO = Path(__file__).resolve().parents[2]


@dataclass
class SpendStack:
    billing: billing_pb2_grpc.BillingServiceStub
    spend: spend_pb2_grpc.SpendServiceStub
    metering: metering_pb2_grpc.MeteringServiceStub
    database_url: str


@asynccontextmanager
async def spend_stack(make_database, metering_address: str, **settings: object) -> AsyncIterator[SpendStack]:
    from billing.app import start
    from billing.config import Settings

    url = await make_database("billing")
    await upgrade_head_async(_REPO / "services" / "billing" / "migrations", url, "alembic_version_billing")
    running = await start(
        Settings(
            database_url=url,
            grpc_address="127.0.0.1:0",
            metrics_port=None,
            metering_address=metering_address,
            metering_retry_seconds=20,
            security=security("billing"),
            # Deliveries are queued, not posted (the webhook tests post them), and never off loopback.
            webhook_poll_seconds=0,
            webhook_allowed_hosts=("127.0.0.1",),
            **settings,  # type: ignore[arg-type]
        )
    )
    address = f"127.0.0.1:{running.port}"
    try:
        async with auth_channel(address) as bch, auth_channel(metering_address) as mch:
            yield SpendStack(
                billing_pb2_grpc.BillingServiceStub(bch),
                spend_pb2_grpc.SpendServiceStub(bch),
                metering_pb2_grpc.MeteringServiceStub(mch),
                url,
            )
    finally:
        await running.stop(0)


def money(amount: str, currency: str = "USD") -> object:
    return to_money(Decimal(amount), currency)


async def create_customer(billing, builder: str, customer: str, currency: str = "USD") -> None:
    await billing.CreateCustomer(
        bpb.CreateCustomerRequest(
            request_id=rid(),
            customer=bpb.Customer(
                id=customer,
                builder_id=builder,
                app_id="app-1",
                currency_code=currency,
                display_name=customer.title(),
                billing_email=f"billing@{customer}.example",
            ),
        )
    )


async def create_ai_meters(metering, builder: str) -> None:
    """Meters over the gateway's "ai.request" events, and one over another event type."""
    meters = [
        mpb.Meter(
            builder_id=builder,
            key="llm_cost",
            display_name="Model cost",
            event_types=["ai.request"],
            aggregation=mpb.AGGREGATION_SUM,
            quantity="provider_cost",
        ),
        mpb.Meter(
            builder_id=builder,
            key="ai_calls",
            display_name="AI calls",
            event_types=["ai.request"],
            aggregation=mpb.AGGREGATION_COUNT,
            statuses=[mpb.EVENT_STATUS_SUCCEEDED, mpb.EVENT_STATUS_FAILED],
        ),
        mpb.Meter(
            builder_id=builder,
            key="input_tokens",
            display_name="Input tokens",
            event_types=["ai.request"],
            aggregation=mpb.AGGREGATION_SUM,
            quantity="input_tokens",
        ),
        mpb.Meter(
            builder_id=builder,
            key="distinct_runs",
            display_name="Runs",
            event_types=["ai.request"],
            aggregation=mpb.AGGREGATION_UNIQUE_COUNT,
        ),
        mpb.Meter(
            builder_id=builder,
            key="tickets",
            display_name="Tickets",
            event_types=["ticket.handled"],
            aggregation=mpb.AGGREGATION_COUNT,
        ),
    ]
    for meter in meters:
        await metering.CreateMeter(mpb.CreateMeterRequest(request_id=rid(), meter=meter))


def control(builder: str, customer: str, **fields: object) -> spb.SpendControl:
    fields.setdefault("scope", spb.SpendScope(kind=spb.SPEND_SCOPE_KIND_CUSTOMER))
    return spb.SpendControl(builder_id=builder, customer_id=customer, **fields)


async def set_control(spend, builder: str, customer: str, **fields: object) -> spb.SpendStatus:
    reply = await spend.SetSpendControl(
        spb.SetSpendControlRequest(request_id=rid(), control=control(builder, customer, **fields))
    )
    return reply.status


async def sql(url: str, query: str, **params: object) -> list[tuple]:
    from sqlalchemy import text

    engine = create_engine(url, pool_size=1)
    try:
        async with engine.begin() as conn:
            result = await conn.execute(text(query), params)
            return [tuple(r) for r in result] if result.returns_rows else []
    finally:
        await engine.dispose()


def code_of(exc: grpc.aio.AioRpcError) -> grpc.StatusCode:
    return exc.code()
