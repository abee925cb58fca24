"""Fixtures for billing's service and API tests: a real metering server (with a short settle window,
so a close does not wait metering's production 30 s) and a real billing server on loopback, each with
its own migrated PostgreSQL database. Helpers live in billing_kit.py next to this file."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, fields
from pathlib import Path

import pytest

# --import-mode=importlib puts no test folder on sys.path; the helper module is imported by name.
_HERE = str(Path(__file__).resolve().parent)
_REPO = Path(__file__).resolve().parents[2]
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from common.migrations import upgrade_head_async  # noqa: E402
from tests.conftest import auth_channel, security  # noqa: E402
from tollgate.billing.v1 import billing_pb2_grpc  # noqa: E402
from tollgate.metering.v1 import metering_pb2_grpc  # noqa: E402

# Metering reports a cutoff as settled once it is this old; billing's close waits for it.
METERING_SETTLE_SECONDS = 0.5


@pytest.fixture(scope="module")
async def fast_metering_address(make_database) -> AsyncIterator[str]:
    from metering.app import start
    from metering.config import Settings

    url = await make_database("metering")
    kwargs = {
        "database_url": url,
        "grpc_address": "127.0.0.1:0",
        "metrics_port": None,
        "security": security("metering"),
        # Billing's tests play fixed months of 2026: keep them inside metering's retention window for good.
        "max_event_age_days": 36_600,
    }
    if "settle_seconds" in {f.name for f in fields(Settings)}:
        kwargs["settle_seconds"] = METERING_SETTLE_SECONDS
    running = await start(Settings(**kwargs))
    yield f"127.0.0.1:{running.port}"
    await running.stop(0)


@dataclass
class Stack:
    billing: billing_pb2_grpc.BillingServiceStub
    metering: metering_pb2_grpc.MeteringServiceStub
    billing_address: str
    metering_address: str
    database_url: str


@pytest.fixture(scope="module")
async def stack(make_database, fast_metering_address: str) -> AsyncIterator[Stack]:
    from billing.app import start
    from billing.config import Settings

    # The same as tests/conftest.py migrated_database: the schema comes from `alembic upgrade head`.
    url = await make_database("billing")
    await upgrade_head_async(_REPO / "services" / "billing" / "migrations", url, "alembic_version_billing")
    running = await start(
        Settings(
            database_url=url,
            grpc_address="127.0.0.1:0",
            metrics_port=None,
            metering_address=fast_metering_address,
            metering_retry_seconds=20,
            # No background previews: tests that compare tables around calls (tests/fuzz) need quiet.
            margin_watch_seconds=0,
            security=security("billing"),
            # Webhooks only to loopback: whatever URL a test (or the fuzzer) sets, billing posts nowhere else.
            webhook_allowed_hosts=("127.0.0.1",),
        )
    )
    address = f"127.0.0.1:{running.port}"
    async with (
        auth_channel(address) as bch,
        auth_channel(fast_metering_address) as mch,
    ):
        yield Stack(
            billing_pb2_grpc.BillingServiceStub(bch),
            metering_pb2_grpc.MeteringServiceStub(mch),
            address,
            fast_metering_address,
            url,
        )
    await running.stop(0)
