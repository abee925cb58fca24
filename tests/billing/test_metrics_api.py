"""A period close shows on billing's Prometheus port: counted by outcome and timed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import grpc
import pytest
from billing_kit import at, rid, ts
from prometheus_client.parser import text_string_to_metric_families

from common.migrations import upgrade_head_async
from tests.conftest import auth_channel, security
from tollgate.billing.v1 import billing_pb2 as bpb
from tollgate.billing.v1 import billing_pb2_grpc

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
async def billing(make_database, fast_metering_address) -> AsyncIterator[tuple[object, int]]:
    from billing.app import start
    from billing.config import Settings

    url = await make_database("billing")
    await upgrade_head_async(REPO / "services" / "billing" / "migrations", url, "alembic_version_billing")
    running = await start(
        Settings(
            database_url=url,
            grpc_address="127.0.0.1:0",
            metrics_port=0,
            metering_address=fast_metering_address,
            security=security("billing"),
        )
    )
    assert running.metrics_port, "metrics_port=0 must give an ephemeral port"
    async with auth_channel(f"127.0.0.1:{running.port}") as ch:
        yield billing_pb2_grpc.BillingServiceStub(ch), running.metrics_port
    await running.stop(0)


async def scrape(port: int) -> dict[tuple[str, frozenset], float]:
    async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}/metrics") as r:
        assert r.status == 200
        text = await r.text()
    return {
        (smp.name, frozenset(smp.labels.items())): smp.value
        for family in text_string_to_metric_families(text)
        for smp in family.samples
    }


def get(m: dict, name: str, **labels: str) -> float:
    return m.get((name, frozenset(labels.items())), 0.0)


def month_start(d: datetime, back: int) -> datetime:
    y, m = d.year, d.month - back
    while m <= 0:
        y, m = y - 1, m + 12
    return at(y, m)


async def test_a_period_close_is_counted_as_closed_and_timed(billing):
    stub, port = billing
    before = await scrape(port)
    end = month_start(datetime.now(UTC), 1)
    await stub.ClosePeriod(
        bpb.ClosePeriodRequest(request_id=rid(), builder_id="metrics-b1", period_end_time=ts(end)), timeout=30
    )
    after = await scrape(port)
    closes = "tollgate_billing_period_closes_total"
    assert get(after, closes, outcome="closed") == get(before, closes, outcome="closed") + 1
    count = "tollgate_billing_period_close_seconds_count"
    assert get(after, count, outcome="closed") == get(before, count, outcome="closed") + 1
    assert get(after, closes, outcome="rejected") == get(before, closes, outcome="rejected")


async def test_a_close_of_a_period_not_yet_ended_is_counted_as_rejected(billing):
    stub, port = billing
    before = await scrape(port)
    future = month_start(datetime.now(UTC) + timedelta(days=70), 0)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ClosePeriod(
            bpb.ClosePeriodRequest(request_id=rid(), builder_id="metrics-b1", period_end_time=ts(future)),
            timeout=10,
        )
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    after = await scrape(port)
    closes = "tollgate_billing_period_closes_total"
    assert get(after, closes, outcome="rejected") == get(before, closes, outcome="rejected") + 1
    assert get(after, closes, outcome="closed") == get(before, closes, outcome="closed")
