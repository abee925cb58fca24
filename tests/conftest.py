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
from functools import cache, lru_cache
from pathlib import Path

import grpc
import pytest

from common.db import async_url, drop_database, ensure_database
from common.migrations import upgrade_head_async
from common.security import (
    LocalCredentials,
    SecuritySettings,
    TokenSource,
    ensure_local_credentials,
    open_channel,
)

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


# ---- credentials: every service in the tests checks callers, as in production -------------------------


@lru_cache(maxsize=1)
def test_credentials() -> LocalCredentials:
    """One credentials folder for the whole test session (signing key, trust file, service tokens)."""
    return ensure_local_credentials(tempfile.mkdtemp(prefix="tollgate-credentials-"))


def security(service: str) -> SecuritySettings:
    """A service's security settings in tests: the session's trust file and the service's own token."""
    return SecuritySettings.local(service, test_credentials().directory)


def security_env(service: str) -> dict[str, str]:
    """The same, as the environment of a `python -m <service>` subprocess."""
    return {f"{service.upper()}_CREDENTIALS_DIR": str(test_credentials().directory)}


@cache
def token(kind: str = "operator", name: str = "tests") -> str:
    """A credential: token("operator"), token("builder", "b1"), token("service", "billing")."""
    return test_credentials().issuer().mint(kind, name)  # type: ignore[arg-type]


def auth_metadata(kind: str = "operator", name: str = "tests") -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token(kind, name)}"),)


def auth_channel(address: str, *, credential: str | None = None, **kwargs) -> grpc.aio.Channel:
    """A client channel whose calls carry `credential` (the operator's by default)."""
    return open_channel(
        address, token=TokenSource(value=credential or token()), options=kwargs.get("options", ())
    )


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
    running = await start(
        Settings(
            database_url=url, grpc_address="127.0.0.1:0", metrics_port=None, security=security("metering")
        )
    )
    yield f"127.0.0.1:{running.port}"
    await running.stop(0)
