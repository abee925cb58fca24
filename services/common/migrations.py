"""Alembic per service: each context has its own script folder and its own version table.

Each context's migrations/env.py is two lines: `from common.migrations import run_env; run_env(...)`.
Every service runs its migrations at start-up under a PostgreSQL advisory lock named after its version
table, so replicas started at the same moment (or across a release that adds a migration) migrate once.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, pool, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from common.db import async_url


def alembic_config(script_location: str | Path, database_url: str, version_table: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    cfg.set_main_option("sqlalchemy.url", async_url(database_url).replace("%", "%%"))
    cfg.attributes["version_table"] = version_table
    return cfg


def upgrade_head(script_location: str | Path, database_url: str, version_table: str) -> None:
    """Run every pending migration. Blocking: call through asyncio.to_thread from async code."""
    command.upgrade(alembic_config(script_location, database_url, version_table), "head")


async def upgrade_head_async(script_location: str | Path, database_url: str, version_table: str) -> None:
    await asyncio.to_thread(upgrade_head, script_location, database_url, version_table)


def run_env(target_metadata: MetaData | None, default_version_table: str) -> None:
    """The body of a context's migrations/env.py (online mode only: we always have a database)."""
    cfg = context.config
    version_table = cfg.attributes.get("version_table", default_version_table)
    url = cfg.get_main_option("sqlalchemy.url")

    def do_run(connection: Connection) -> None:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            version_table=version_table,
            transaction_per_migration=True,
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()

    async def run() -> None:
        engine = create_async_engine(url, poolclass=pool.NullPool, hide_parameters=True)
        try:
            async with engine.connect() as conn:
                # Replicas that start together serialize here: the first migrates, the others wait on
                # the session lock, then find the database at head and do nothing.
                await conn.execute(text("SELECT pg_advisory_lock(hashtext(:name))"), {"name": version_table})
                await conn.commit()
                try:
                    await conn.run_sync(do_run)
                    await conn.commit()
                finally:
                    await conn.execute(
                        text("SELECT pg_advisory_unlock(hashtext(:name))"), {"name": version_table}
                    )
                    await conn.commit()
        finally:
            await engine.dispose()

    asyncio.run(run())
