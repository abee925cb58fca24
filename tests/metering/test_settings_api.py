"""A server started with non-default settings honours them: the settle period behind cutoff_settled,
the future tolerance on occurred_time, the batch size limit, the partition cap and the retention
window."""

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
    server_settings,
    utc,
)

from metering.app import start
from tests.conftest import auth_channel
from tollgate.metering.v1 import metering_pb2_grpc


@pytest.fixture(scope="module")
async def tuned_stub(make_database) -> AsyncIterator[metering_pb2_grpc.MeteringServiceStub]:
    url = await migrated_metering_database(make_database)
    settings = server_settings(
        url,
        settle_seconds=2.0,
        future_tolerance_seconds=60,
        max_batch_size=10,
        max_new_partitions_per_batch=1,
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


async def test_partition_cap_and_retention_window_come_from_settings(tuned_stub):
    b = new_id()
    # Two months nobody has written, in one batch: with a cap of 1 only the newer one opens.
    response = await ingest(
        tuned_stub,
        [
            event("march", builder=b, at=utc(2018, 3, 10)),
            event("april", builder=b, at=utc(2018, 4, 10)),
            event("ancient", builder=b, at=utc(1900, 1, 1)),
        ],
    )
    assert [r.outcome for r in response.results] == [INVALID, ACCEPTED, INVALID]
    assert "more than 1 new monthly partitions" in response.results[0].reason
    # The tests' servers keep 36,600 days (metering_kit); 1900 is older than that.
    assert "36600 days in the past" in response.results[2].reason
    assert (await ingest(tuned_stub, [event("march", builder=b, at=utc(2018, 3, 10))])).results[
        0
    ].outcome == ACCEPTED


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
    strict = await start(server_settings(url, settle_seconds=0.004))
    normal = await start(server_settings(url))
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
