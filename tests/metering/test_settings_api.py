"""A server started with non-default settings honours them: the settle period behind cutoff_settled,
the future tolerance on occurred_time, and the batch size limit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal

import grpc
import pytest
from metering_kit import (
    ACCEPTED,
    COUNT,
    INVALID,
    assert_invalid_field,
    create_meter,
    event,
    ingest,
    meter,
    migrated_metering_database,
    new_id,
    now,
    query,
    utc,
)

from metering.app import start
from metering.config import Settings
from tests.conftest import auth_channel, security
from tollgate.metering.v1 import metering_pb2_grpc


@pytest.fixture(scope="module")
async def tuned_stub(make_database) -> AsyncIterator[metering_pb2_grpc.MeteringServiceStub]:
    url = await migrated_metering_database(make_database)
    settings = Settings(
        database_url=url,
        grpc_address="127.0.0.1:0",
        metrics_port=None,
        security=security("metering"),
        settle_seconds=2.0,
        future_tolerance_seconds=60,
        max_batch_size=10,
    )
    running = await start(settings)
    async with auth_channel(f"127.0.0.1:{running.port}") as ch:
        yield metering_pb2_grpc.MeteringServiceStub(ch)
    await running.stop(0)


async def test_cutoff_is_settled_only_once_older_than_the_settle_period(tuned_stub):
    b = new_id()
    await create_meter(tuned_stub, meter(b, "requests", COUNT))
    await ingest(tuned_stub, [event("e1", builder=b)])
    start, end = utc(2026, 1, 1), utc(2026, 2, 1)
    fresh = await query(tuned_stub, b, "requests", start, end, ingested_before=now() - timedelta(seconds=0.5))
    old = await query(tuned_stub, b, "requests", start, end, ingested_before=now() - timedelta(seconds=4))
    assert fresh.cutoff_settled is False
    assert old.cutoff_settled is True


async def test_future_tolerance_comes_from_settings(tuned_stub):
    b = new_id()
    ok = event("soon", builder=b, at=now() + timedelta(seconds=30))
    late = event("too-soon", builder=b, at=now() + timedelta(seconds=120))
    response = await ingest(tuned_stub, [ok, late])
    assert [r.outcome for r in response.results] == [ACCEPTED, INVALID]


async def test_batch_limit_comes_from_settings(tuned_stub):
    b = new_id()
    assert (await ingest(tuned_stub, [event(f"e{i}", builder=b) for i in range(10)])).accepted_count == 10
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await ingest(tuned_stub, [event(f"f{i}", builder=b) for i in range(11)])
    assert_invalid_field(caught.value, "events")


async def test_a_settled_answer_never_changes_when_late_events_arrive(tuned_stub):

    b = new_id()
    await create_meter(tuned_stub, meter(b, "requests", COUNT))
    await ingest(tuned_stub, [event(f"on-time-{i}", builder=b) for i in range(5)])
    await asyncio.sleep(0.05)
    cutoff = now()
    await asyncio.sleep(2.2)  # past the 2 s settle period
    start, end = utc(2026, 1, 1), utc(2026, 2, 1)
    first = await query(tuned_stub, b, "requests", start, end, ingested_before=cutoff)
    assert first.cutoff_settled is True
    assert [Decimal(r.value) for r in first.rows] == [Decimal(5)]
    await ingest(tuned_stub, [event(f"late-{i}", builder=b) for i in range(3)])
    again = await query(tuned_stub, b, "requests", start, end, ingested_before=cutoff)
    assert list(again.rows) == list(first.rows) and again.cutoff_settled is True
    assert [Decimal(r.value) for r in (await query(tuned_stub, b, "requests", start, end)).rows] == [
        Decimal(8)
    ]


async def test_a_batch_cut_off_by_the_ingest_time_bound_stores_nothing_and_is_safe_to_retry(make_database):
    url = await migrated_metering_database(make_database)
    # A 1 ms statement bound: no 10,000-event batch fits in it.
    strict = await start(
        Settings(
            database_url=url,
            grpc_address="127.0.0.1:0",
            metrics_port=None,
            settle_seconds=0.004,
            security=security("metering"),
        )
    )
    normal = await start(
        Settings(
            database_url=url, grpc_address="127.0.0.1:0", metrics_port=None, security=security("metering")
        )
    )
    b = new_id()
    events = [event(f"e{i}", builder=b, quantities={"pages": "2"}) for i in range(10_000)]
    try:
        async with (
            auth_channel(f"127.0.0.1:{strict.port}") as strict_ch,
            auth_channel(f"127.0.0.1:{normal.port}") as normal_ch,
        ):
            strict_stub = metering_pb2_grpc.MeteringServiceStub(strict_ch)
            normal_stub = metering_pb2_grpc.MeteringServiceStub(normal_ch)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await ingest(strict_stub, events)
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "retry" in caught.value.details()

            # Nothing half-written: the retry (through a server with the usual bound) accepts every
            # event, so none of them had been registered or stored by the cut-off attempt.
            retry = await ingest(normal_stub, events)
            assert retry.accepted_count == 10_000
            await create_meter(normal_stub, meter(b, "requests", COUNT))
            response = await query(normal_stub, b, "requests", utc(2026, 1, 1), utc(2026, 2, 1))
            assert [Decimal(r.value) for r in response.rows] == [Decimal(10_000)]
    finally:
        await strict.stop(0)
        await normal.stop(0)
