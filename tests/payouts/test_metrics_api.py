"""A payout run shows on payouts' Prometheus port: counted by outcome and timed."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from payouts.domain.periods import Period
from tests.conftest import auth_channel, security
from tests.payouts.conftest import payouts_database
from tollgate.payouts.v1 import payouts_pb2 as ppb
from tollgate.payouts.v1 import payouts_pb2_grpc


@pytest.fixture(scope="module")
async def payouts(make_database, metering_fast, billing_address) -> AsyncIterator[tuple[object, int]]:
    from payouts.app import start
    from payouts.config import Settings

    running = await start(
        Settings(
            database_url=await payouts_database(make_database),
            grpc_address="127.0.0.1:0",
            metrics_port=0,
            billing_address=billing_address,
            metering_address=metering_fast,
            call_deadline_seconds=5,
            feed_poll_seconds=0,
            security=security("payouts"),
        )
    )
    assert running.metrics_port, "metrics_port=0 must give an ephemeral port"
    async with auth_channel(f"127.0.0.1:{running.port}") as ch:
        yield payouts_pb2_grpc.PayoutsServiceStub(ch), running.metrics_port
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


RUNS = "tollgate_payouts_runs_total"
SECONDS = "tollgate_payouts_run_seconds_count"


async def test_a_payout_run_is_counted_as_completed_and_timed_and_its_replay_too(payouts):
    stub, port = payouts
    before = await scrape(port)
    period = str(Period.of(datetime.now(UTC)))
    request_id = uuid.uuid4().hex
    first = await stub.RunPayouts(ppb.RunPayoutsRequest(request_id=request_id, period=period), timeout=30)
    again = await stub.RunPayouts(ppb.RunPayoutsRequest(request_id=request_id, period=period), timeout=30)
    assert again == first
    after = await scrape(port)
    assert get(after, RUNS, outcome="completed") == get(before, RUNS, outcome="completed") + 2
    assert get(after, SECONDS, outcome="completed") == get(before, SECONDS, outcome="completed") + 2
    assert get(after, RUNS, outcome="rejected") == get(before, RUNS, outcome="rejected")


async def test_a_run_for_a_period_not_yet_started_is_counted_as_rejected(payouts):
    stub, port = payouts
    before = await scrape(port)
    future = str(Period.of(datetime.now(UTC) + timedelta(days=400)))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.RunPayouts(ppb.RunPayoutsRequest(request_id=uuid.uuid4().hex, period=future), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    after = await scrape(port)
    assert get(after, RUNS, outcome="rejected") == get(before, RUNS, outcome="rejected") + 1
    assert get(after, RUNS, outcome="completed") == get(before, RUNS, outcome="completed")
