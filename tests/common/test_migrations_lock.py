"""Replicas that start at the same moment all come up: their migrations run once, one after another.

Each replica is its own process, as in production (Alembic's context is process-global)."""

from __future__ import annotations

import asyncio
import sys

import asyncpg
import pytest

from common.db import libpq_url
from tests.conftest import REPO

MIGRATE = "import sys; from common.migrations import upgrade_head; upgrade_head(*sys.argv[1:4])"


@pytest.mark.parametrize("context", ["metering", "billing", "gateway"])
async def test_replicas_migrating_a_fresh_database_at_once_all_succeed(make_database, context):
    url = await make_database(f"mig_{context}")
    folder = REPO / "services" / context / "migrations"
    table = f"alembic_version_{context}"
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            MIGRATE,
            str(folder),
            url,
            table,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        for _ in range(4)
    ]
    outputs = await asyncio.gather(*(p.communicate() for p in procs))
    failed = [out.decode()[-500:] for p, (out, _) in zip(procs, outputs, strict=True) if p.returncode != 0]
    assert failed == []
    conn = await asyncpg.connect(libpq_url(url))
    try:
        versions = await conn.fetch(f"SELECT version_num FROM {table}")
        locks = await conn.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
    finally:
        await conn.close()
    assert len(versions) == 1
    assert locks == 0, "the migration lock is released"
