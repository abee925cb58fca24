"""The schema `alembic upgrade head` builds is the one store.py describes (tables, columns, types,
indexes, constraints), so the code never meets a column the migrations did not make."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

from payouts.store import metadata
from tests.payouts.conftest import payouts_database


async def test_migrations_build_exactly_the_schema_store_describes(make_database):
    url = await payouts_database(make_database)
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(sync, opts={"compare_type": True}), metadata
                )
            )
    finally:
        await engine.dispose()
    # The version table is Alembic's own, not the store's.
    diff = [d for d in diff if not (d[0] == "remove_table" and d[1].name == "alembic_version_payouts")]
    assert diff == []
