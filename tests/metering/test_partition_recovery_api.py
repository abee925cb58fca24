"""A month's partition dropped behind the server's cache (an operator archiving a month while metering
runs): the next batch for that month hits PostgreSQL's "no partition for row" error, the server
recreates the month and stores the batch, and nothing it logs on the way carries the event's values."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
import structlog
from metering_kit import (
    ACCEPTED,
    event,
    ingest,
    migrated_metering_database,
    server_settings,
    utc,
)

from metering.app import start
from tests.conftest import auth_channel
from tollgate.metering.v1 import metering_pb2 as pb
from tollgate.metering.v1 import metering_pb2_grpc


@pytest.fixture(scope="module")
async def server(make_database) -> AsyncIterator[tuple[str, metering_pb2_grpc.MeteringServiceStub]]:
    url = await migrated_metering_database(make_database)
    running = await start(server_settings(url))
    async with auth_channel(f"127.0.0.1:{running.port}") as ch:
        yield url, metering_pb2_grpc.MeteringServiceStub(ch)
    await running.stop(0)


async def test_a_partition_dropped_behind_the_cache_is_recreated_and_the_log_holds_no_event_values(server):
    url, stub = server
    at = utc(2019, 5, 10, 8, 30)
    assert (await ingest(stub, [event("first", builder="b-drop", at=at)])).results[0].outcome == ACCEPTED
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute("DROP TABLE events_p2019_05")
    finally:
        await conn.close()

    secret = event("event-id-7f3a", builder="b-drop", customer="customer-9c41", at=at, run_id="run-5e2d")
    with structlog.testing.capture_logs() as logs:
        response = await ingest(stub, [secret])
    assert response.results[0].outcome == ACCEPTED
    listed = await stub.ListEvents(pb.ListEventsRequest(builder_id="b-drop"), timeout=10)
    assert [e.id for e in listed.events] == ["event-id-7f3a"]  # "first" went with the dropped month

    assert "metering.partition.missing" in [entry["event"] for entry in logs]
    logged = repr(logs)
    for value in ("event-id-7f3a", "customer-9c41", "run-5e2d", "2019-05-10"):
        assert value not in logged, value
