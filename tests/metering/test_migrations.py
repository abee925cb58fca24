"""Schema upgrades keep what was stored: a database written at revision 0001 (rows put there the
way 0001's store wrote them) reads back the same through today's server after `alembic upgrade head`,
its event ids stay taken, and new events land in old and new months alike."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from decimal import Decimal

import asyncpg
from alembic import command
from metering_kit import (
    ACCEPTED,
    CONFLICT,
    COUNT,
    DUPLICATE,
    REPO,
    SUM,
    create_meter,
    event,
    ingest,
    meter,
    query,
    server_settings,
    utc,
)

from common.db import libpq_url
from common.migrations import alembic_config, upgrade_head_async
from metering.app import start
from tests.conftest import auth_channel
from tollgate.metering.v1 import metering_pb2 as pb
from tollgate.metering.v1 import metering_pb2_grpc

MIGRATIONS = REPO / "services" / "metering" / "migrations"
VERSION_TABLE = "alembic_version_metering"
AUG = utc(2026, 8, 1)


async def _fill_at_0001(url: str) -> None:
    """Rows as 0001's store wrote them: registry row + event row, one August partition."""
    conn = await asyncpg.connect(libpq_url(url))
    try:
        await conn.execute(
            "CREATE TABLE events_p2026_08 PARTITION OF events "
            "FOR VALUES FROM ('2026-08-01 00:00:00+00') TO ('2026-09-01 00:00:00+00')"
        )
        rows = [
            (
                "mig-builder",
                f"old-{i}",
                "ai.request",
                AUG + timedelta(hours=i),
                "app-1",
                f"c{i % 3}",
                1,
                f"run-{i // 4}",
                json.dumps({"workflow": "intake"}),
                json.dumps({"t": f"{i}.25"}),
            )
            for i in range(40)
        ]
        await conn.executemany(
            "INSERT INTO event_ids (builder_id, event_id, content_hash) VALUES ($1, $2, $3)",
            [(r[0], r[1], b"\x00" * 32) for r in rows],
        )
        await conn.executemany(
            "INSERT INTO events (builder_id, event_id, type, occurred_time, app_id, customer_id, status, "
            "run_id, tags, quantities) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10::jsonb)",
            rows,
        )
    finally:
        await conn.close()


async def test_upgrade_from_0001_keeps_events_ids_and_answers(make_database):
    url = await make_database("metering")
    await asyncio.to_thread(command.upgrade, alembic_config(MIGRATIONS, url, VERSION_TABLE), "0001")
    await _fill_at_0001(url)
    await upgrade_head_async(MIGRATIONS, url, VERSION_TABLE)

    running = await start(server_settings(url))
    try:
        async with auth_channel(f"127.0.0.1:{running.port}") as ch:
            stub = metering_pb2_grpc.MeteringServiceStub(ch)
            b = "mig-builder"
            await create_meter(stub, meter(b, "tokens", SUM, quantity="t"))
            await create_meter(stub, meter(b, "requests", COUNT))
            sep = utc(2026, 9, 1)
            tokens = await query(stub, b, "tokens", AUG, sep, by_customer=True)
            expected = {f"c{k}": sum(Decimal(f"{i}.25") for i in range(40) if i % 3 == k) for k in range(3)}
            assert {r.customer_id: Decimal(r.value) for r in tokens.rows} == expected

            listed = await stub.ListEvents(pb.ListEventsRequest(builder_id=b, page_size=5), timeout=10)
            assert [e.id for e in listed.events] == [f"old-{i}" for i in range(39, 34, -1)]
            assert dict(listed.events[0].tags) == {"workflow": "intake"}
            # One run's events through the run index 0003 rebuilt on the moved partition.
            by_run = await stub.ListEvents(pb.ListEventsRequest(builder_id=b, run_id="run-2"), timeout=10)
            assert [e.id for e in by_run.events] == ["old-11", "old-10", "old-9", "old-8"]

            # The old ids are still taken (the placeholder hash makes them differ in content).
            again = await ingest(stub, [event("old-0", builder=b, at=AUG)])
            assert again.results[0].outcome in (DUPLICATE, CONFLICT)

            # New events land in the moved August partition and in a month created after the upgrade.
            fresh = await ingest(
                stub, [event("new-aug", builder=b, at=AUG + timedelta(days=3)), event("new-jan", builder=b)]
            )
            assert [r.outcome for r in fresh.results] == [ACCEPTED, ACCEPTED]
            counted = await query(stub, b, "requests", utc(2026, 1, 1), sep)
            assert [Decimal(r.value) for r in counted.rows] == [Decimal(42)]
    finally:
        await running.stop(0)
