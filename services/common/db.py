"""Database plumbing: engines, the embedded PostgreSQL default, database creation, naming convention."""

from __future__ import annotations

import asyncio
import logging
import re
import warnings
from pathlib import Path

import asyncpg
from sqlalchemy import MetaData
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

# Constraint names come from here so migrations and models agree on them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_metadata() -> MetaData:
    return MetaData(naming_convention=NAMING_CONVENTION)


def async_url(url: str) -> str:
    """Normalise postgres:// and postgresql:// URLs to the asyncpg driver."""
    parsed = make_url(url)
    if parsed.drivername in ("postgres", "postgresql", "postgresql+psycopg2", "postgresql+psycopg"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed.render_as_string(hide_password=False)


def libpq_url(url: str) -> str:
    """The same URL without a driver suffix, as asyncpg.connect wants it."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def create_engine(
    url: str, *, pool_size: int = 10, max_overflow: int = 10, echo: bool = False
) -> AsyncEngine:
    return create_async_engine(
        async_url(url),
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=True,
        echo=echo,
        # Request values (ids, tags, amounts) never reach a log line through a database error's text.
        hide_parameters=True,
        # asyncpg's statement cache is per connection and safe here: the schema only changes through
        # migrations, which run before the pool opens.
        connect_args={"server_settings": {"application_name": "tollgate"}},
    )


_DB_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


async def ensure_database(server_url: str, name: str) -> str:
    """Create database `name` on the server when it is missing; return the URL pointing at it."""
    if not _DB_NAME.match(name):
        raise ValueError(f"unsafe database name {name!r}")
    admin = make_url(server_url).set(database="postgres")
    conn = await asyncpg.connect(libpq_url(admin.render_as_string(hide_password=False)))
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            try:
                await conn.execute(f'CREATE DATABASE "{name}"')
            except asyncpg.DuplicateDatabaseError:
                pass
    finally:
        await conn.close()
    return async_url(make_url(server_url).set(database=name).render_as_string(hide_password=False))


async def drop_database(server_url: str, name: str) -> None:
    if not _DB_NAME.match(name):
        raise ValueError(f"unsafe database name {name!r}")
    admin = make_url(server_url).set(database="postgres")
    conn = await asyncpg.connect(libpq_url(admin.render_as_string(hide_password=False)))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def embedded_server_url(data_dir: str | Path) -> str:
    """Start (or join) the embedded PostgreSQL under data_dir and return its server URL.

    pgserver shares one postmaster per data folder between processes, so every service of a local
    suite joins the same server, each with its own database, as compose does with one container.
    """
    path = Path(data_dir).resolve()
    _embedded_output_to_file(path)
    # platformdirs (under pgserver) warns when XDG_RUNTIME_DIR is unset (containers, CI): harmless here.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    import pgserver  # imported lazily: only the embedded default needs it

    path.mkdir(parents=True, exist_ok=True)
    # 'stop': the server stops when the last process using it (service, suite or test run) exits.
    server = pgserver.get_server(path, cleanup_mode="stop")
    return async_url(server.get_uri())


def embedded_log_file(data_dir: str | Path) -> Path:
    """Where the embedded server's start-up chatter goes: logs/embedded-postgres.log beside the data folder
    (.tollgate/pgdata -> .tollgate/logs/). The server's own log is pgserver's, in <data folder>/log."""
    return Path(data_dir).resolve().parent / "logs" / "embedded-postgres.log"


def _embedded_output_to_file(data_dir: Path) -> None:
    """pgserver logs plain text through the `pgserver` logger: keep it out of the service's JSON log."""
    logger = logging.getLogger("pgserver")
    if any(getattr(h, "_tollgate_embedded", False) for h in logger.handlers):
        return
    target = embedded_log_file(data_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(target, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s pid=%(process)d %(levelname)s %(message)s"))
    handler._tollgate_embedded = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


async def resolve_database_url(database_url: str | None, data_dir: str | Path, name: str) -> str:
    """The configured URL, or a database `name` on the embedded server when none is configured."""
    if database_url:
        return async_url(database_url)
    server_url = await asyncio.to_thread(embedded_server_url, data_dir)
    return await ensure_database(server_url, name)
