"""Shared fixtures: a PostgreSQL server, fresh migrated databases, free ports.

The server is TEST_DATABASE_URL when set (CI points it at the local PostgreSQL), else a testcontainers
PostgreSQL when a Docker engine answers, else the embedded pgserver. Every test module that asks for
a database gets its own, built by `alembic upgrade head`, so migrations are tested too.
"""

from __future__ import annotations

import os
import socket
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from common.db import async_url, drop_database, ensure_database
from common.migrations import upgrade_head_async

REPO = Path(__file__).resolve().parent.parent


def _docker_answers() -> bool:
    try:
        import docker  # testcontainers depends on it

        docker.from_env(timeout=3).ping()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def pg_server_url() -> str:
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        yield url
        return
    if _docker_answers():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16-alpine", driver="asyncpg") as pg:
            yield pg.get_connection_url()
        return
    import pgserver

    with tempfile.TemporaryDirectory(prefix="tollgate-pg-") as data_dir:
        server = pgserver.get_server(data_dir, cleanup_mode="stop")
        try:
            yield async_url(server.get_uri())
        finally:
            server.cleanup()  # stop it before its data folder is removed


MakeDatabase = Callable[[str], Awaitable[str]]


@pytest.fixture(scope="session")
async def make_database(pg_server_url: str) -> AsyncIterator[MakeDatabase]:
    """A factory: await make_database("metering") -> URL of a new, empty database."""
    created: list[str] = []

    async def factory(prefix: str) -> str:
        name = f"t_{prefix}_{uuid.uuid4().hex[:10]}"
        created.append(name)
        return await ensure_database(pg_server_url, name)

    yield factory
    if os.environ.get("TOLLGATE_KEEP_TEST_DATABASES"):
        return
    for name in created:
        try:
            await drop_database(pg_server_url, name)
        except Exception:  # a database a killed subprocess still holds; the next run's problem
            pass


async def migrated_database(make_database: MakeDatabase, context: str) -> str:
    """A new database with the context's migrations applied to head."""
    url = await make_database(context)
    await upgrade_head_async(REPO / "services" / context / "migrations", url, f"alembic_version_{context}")
    return url


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
async def metering_address(make_database: MakeDatabase) -> AsyncIterator[str]:
    """A real metering server on a free loopback port, with its own migrated database."""
    from metering.app import start
    from metering.config import Settings

    url = await migrated_database(make_database, "metering")
    running = await start(Settings(database_url=url, grpc_address="127.0.0.1:0", metrics_port=None))
    yield f"127.0.0.1:{running.port}"
    await running.stop(0)
