"""Fixtures for payouts' API tests: real metering (short settle window), real billing and a real
payouts server on loopback, each with its own migrated PostgreSQL database. The payouts server's
clock is a dial the tests turn (hold periods are days long); billing and metering keep real time.
Helpers live in payouts_kit.py next to this file."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

_HERE = str(Path(__file__).resolve().parent)
_REPO = Path(__file__).resolve().parents[2]
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from common.migrations import upgrade_head_async  # noqa: E402
from tests.conftest import auth_channel, security  # noqa: E402
from tollgate.billing.v1 import billing_pb2_grpc  # noqa: E402
from tollgate.metering.v1 import metering_pb2_grpc  # noqa: E402
from tollgate.payouts.v1 import payouts_pb2_grpc  # noqa: E402

METERING_SETTLE_SECONDS = 0.5


class Dial:
    """A clock that runs with real time plus an offset the test sets."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@pytest.fixture(scope="module")
async def metering_fast(make_database) -> AsyncIterator[str]:
    from metering.app import start
    from metering.config import Settings

    url = await make_database("metering")
    kwargs = {
        "database_url": url,
        "grpc_address": "127.0.0.1:0",
        "metrics_port": None,
        "security": security("metering"),
    }
    if "settle_seconds" in {f.name for f in fields(Settings)}:
        kwargs["settle_seconds"] = METERING_SETTLE_SECONDS
    running = await start(Settings(**kwargs))
    yield f"127.0.0.1:{running.port}"
    await running.stop(0)


@pytest.fixture(scope="module")
async def billing_address(make_database, metering_fast: str) -> AsyncIterator[str]:
    from billing.app import start
    from billing.config import Settings

    url = await make_database("billing")
    await upgrade_head_async(_REPO / "services" / "billing" / "migrations", url, "alembic_version_billing")
    running = await start(
        Settings(
            database_url=url,
            grpc_address="127.0.0.1:0",
            metrics_port=None,
            metering_address=metering_fast,
            metering_retry_seconds=20,
            security=security("billing"),
        )
    )
    yield f"127.0.0.1:{running.port}"
    await running.stop(0)


@dataclass
class Stack:
    billing: billing_pb2_grpc.BillingServiceStub
    metering: metering_pb2_grpc.MeteringServiceStub
    payouts: payouts_pb2_grpc.PayoutsServiceStub
    clock: Dial
    database_url: str
    billing_address: str
    metering_address: str


async def payouts_database(make_database) -> str:
    url = await make_database("payouts")
    await upgrade_head_async(_REPO / "services" / "payouts" / "migrations", url, "alembic_version_payouts")
    return url


@pytest.fixture(scope="module")
async def stack(make_database, metering_fast: str, billing_address: str) -> AsyncIterator[Stack]:
    from payouts.app import start
    from payouts.config import Settings

    url = await payouts_database(make_database)
    clock = Dial()
    running = await start(
        Settings(
            database_url=url,
            grpc_address="127.0.0.1:0",
            metrics_port=None,
            billing_address=billing_address,
            metering_address=metering_fast,
            call_deadline_seconds=5,
            feed_poll_seconds=0,
            feed_page_size=7,
            default_hold_days=14,
            security=security("payouts"),
        ),
        clock=clock,
    )
    async with (
        auth_channel(billing_address) as bch,
        auth_channel(metering_fast) as mch,
        auth_channel(f"127.0.0.1:{running.port}") as pch,
    ):
        yield Stack(
            billing_pb2_grpc.BillingServiceStub(bch),
            metering_pb2_grpc.MeteringServiceStub(mch),
            payouts_pb2_grpc.PayoutsServiceStub(pch),
            clock,
            url,
            billing_address,
            metering_fast,
        )
    await running.stop(0)
