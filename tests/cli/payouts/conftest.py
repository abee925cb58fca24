"""Real metering, billing and payouts for `tollgate payouts` and `tollgate reconcile`: payouts' own test
fixtures for metering and billing, and a payouts server whose clock the test turns (holds last days)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal

import pytest

from tests.conftest import auth_channel, security
from tests.payouts.conftest import Dial, billing_address, metering_fast, payouts_database  # noqa: F401
from tollgate.billing.v1 import billing_pb2_grpc
from tollgate.metering.v1 import metering_pb2_grpc

HOLD_DAYS = 14


@dataclass
class Suite:
    billing: billing_pb2_grpc.BillingServiceStub
    metering: metering_pb2_grpc.MeteringServiceStub
    clock: Dial
    addresses: dict[str, str]


@pytest.fixture(scope="module")
async def suite(make_database, metering_fast: str, billing_address: str) -> AsyncIterator[Suite]:  # noqa: F811
    from payouts.app import start
    from payouts.config import Settings

    clock = Dial()
    running = await start(
        Settings(
            database_url=await payouts_database(make_database),
            grpc_address="127.0.0.1:0",
            metrics_port=None,
            billing_address=billing_address,
            metering_address=metering_fast,
            call_deadline_seconds=5,
            feed_poll_seconds=0,  # the command syncs the feed itself
            default_hold_days=HOLD_DAYS,
            default_minimum=Decimal(0),
            security=security("payouts"),
        ),
        clock=clock,
    )
    async with auth_channel(billing_address) as bch, auth_channel(metering_fast) as mch:
        yield Suite(
            billing_pb2_grpc.BillingServiceStub(bch),
            metering_pb2_grpc.MeteringServiceStub(mch),
            clock,
            {"billing": billing_address, "metering": metering_fast, "payouts": f"127.0.0.1:{running.port}"},
        )
    await running.stop(0)
