"""Spend caps under test: a real billing server (4 s leases) and metering beside a gateway with spend
controls on; customers on a cost-plus plan (25 % markup) with a hard cap. Imported by the spend test
modules (the fixtures are module-scoped: each module gets its own servers)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from common.money import from_money, to_money, to_timestamp
from tests.conftest import auth_channel, security
from tollgate.billing.v1 import billing_pb2 as bpb
from tollgate.billing.v1 import billing_pb2_grpc, spend_pb2_grpc
from tollgate.billing.v1 import spend_pb2 as spb
from tollgate.metering.v1 import metering_pb2 as mpb
from tollgate.metering.v1 import metering_pb2_grpc

BUILDER = "b1"
MARKUP = Decimal("1.25")
LEASE_SECONDS = 4
PLAN_YAML = """
currency: USD
charges:
  - key: tokens
    meter_key: llm_cost
    display_name: AI model usage
    cost_plus: {markup_percent: 25}
"""


def rid() -> str:
    return uuid.uuid4().hex


def money(amount: str) -> object:
    return to_money(Decimal(amount), "USD")


@asynccontextmanager
async def billing_server(make_database, metering_address: str) -> AsyncIterator[tuple]:
    """(address, BillingService stub, SpendService stub, MeteringService stub, plan id, running server)"""
    from billing.app import start
    from billing.config import Settings
    from tests.conftest import migrated_database

    url = await migrated_database(make_database, "billing")
    running = await start(
        Settings(
            database_url=url,
            grpc_address="127.0.0.1:0",
            metrics_port=None,
            metering_address=metering_address,
            security=security("billing"),
            spend_lease_seconds=LEASE_SECONDS,
            spend_sweep_seconds=0.5,
            margin_watch_seconds=0,
        )
    )
    address = f"127.0.0.1:{running.port}"
    async with auth_channel(address) as bch, auth_channel(metering_address) as mch:
        metering = metering_pb2_grpc.MeteringServiceStub(mch)
        await metering.CreateMeter(
            mpb.CreateMeterRequest(
                request_id=rid(),
                meter=mpb.Meter(
                    builder_id=BUILDER,
                    key="llm_cost",
                    display_name="Model cost",
                    event_types=["ai.request"],
                    aggregation=mpb.AGGREGATION_SUM,
                    quantity="provider_cost",
                ),
            )
        )
        b = billing_pb2_grpc.BillingServiceStub(bch)
        plan = await b.ApplyPlanYaml(
            bpb.ApplyPlanYamlRequest(
                request_id=rid(), builder_id=BUILDER, plan_key="cp", display_name="cp", yaml=PLAN_YAML
            )
        )
        yield address, b, spend_pb2_grpc.SpendServiceStub(bch), metering, plan.plan.id, running
    await running.stop(0)


async def spend_stack(make_stack, billing: tuple, metering_address: str):
    """A gateway with spend controls on against `billing`, relaying usage to metering."""
    address = billing[0]
    s = await make_stack(
        spend_controls=True,
        billing_address=address,
        metering_address=metering_address,
        relay_enabled=True,
        spend_policy_seconds=0.5,
        spend_report_seconds=0.2,
        attempt_timeout_seconds=2.0,
    )
    s.billing = billing  # type: ignore[attr-defined]
    return s


async def customer(billing, cid: str, cap: str | None, **control) -> spb.SpendStatus | None:
    _, b, spend, _, plan_id, _ = billing
    await b.CreateCustomer(
        bpb.CreateCustomerRequest(
            request_id=rid(),
            customer=bpb.Customer(
                id=cid,
                builder_id=BUILDER,
                app_id="app1",
                currency_code="USD",
                display_name=cid,
                billing_email=f"billing@{cid}.example",
            ),
        )
    )
    await b.Subscribe(
        bpb.SubscribeRequest(
            request_id=rid(), builder_id=BUILDER, customer_id=cid, plan_id=plan_id, plan_version=1
        )
    )
    if cap is None:
        return None
    reply = await spend.SetSpendControl(
        spb.SetSpendControlRequest(
            request_id=rid(),
            control=spb.SpendControl(
                builder_id=BUILDER,
                customer_id=cid,
                scope=spb.SpendScope(kind=spb.SPEND_SCOPE_KIND_CUSTOMER),
                hard_cap=money(cap),
                **control,
            ),
        )
    )
    return reply.status


async def status(billing, cid: str) -> spb.SpendStatus:
    reply = await billing[2].ListSpendControls(
        spb.ListSpendControlsRequest(builder_id=BUILDER, customer_id=cid)
    )
    (only,) = reply.controls
    return only


async def settled(billing, cid: str, wait_seconds: float = 4 * LEASE_SECONDS) -> spb.SpendStatus:
    """The control once no lease holds anything (the reporter released them, or they expired)."""
    deadline = time.monotonic() + wait_seconds
    while True:
        st = await status(billing, cid)
        if (from_money(st.held) == 0 and st.active_lease_count == 0) or time.monotonic() > deadline:
            return st
        await asyncio.sleep(0.2)


async def metered_cost(billing, cid: str, events: int, wait_seconds: float = 20) -> Decimal:
    """The customer's provider cost as metering counts it, once `events` succeeded events arrived."""
    metering = billing[3]
    deadline = time.monotonic() + wait_seconds
    while True:
        reply = await metering.QueryUsage(
            mpb.QueryUsageRequest(
                builder_id=BUILDER,
                meter_key="llm_cost",
                customer_id=cid,
                start_time=to_timestamp(datetime(2026, 1, 1, tzinfo=UTC)),
                end_time=to_timestamp(datetime(2030, 1, 1, tzinfo=UTC)),
            )
        )
        count = sum(r.event_count for r in reply.rows)
        if count >= events or time.monotonic() > deadline:
            return sum((Decimal(r.value) for r in reply.rows), Decimal(0))
        await asyncio.sleep(0.3)


def cap_info(exc: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    st = rpc_status.from_call(exc)
    assert st is not None
    for d in st.details:
        if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            d.Unpack(info)
            return info
    raise AssertionError("no ErrorInfo in the status")
