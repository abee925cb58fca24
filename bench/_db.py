"""The PostgreSQL server benchmarks use: TEST_DATABASE_URL's, else the embedded one."""

from __future__ import annotations

import asyncio
import functools
import os
import tempfile
import uuid

import grpc

from common.db import embedded_server_url, ensure_database
from common.security import LocalCredentials, TokenSource, ensure_local_credentials, open_channel


async def fresh_database(prefix: str) -> tuple[str, str]:
    """Create an empty database; return (server_url, database_url)."""
    server = os.environ.get("TEST_DATABASE_URL") or await asyncio.to_thread(
        embedded_server_url, ".tollgate/bench-pg"
    )
    name = f"bench_{prefix}_{uuid.uuid4().hex[:8]}"
    return server, await ensure_database(server, name)


# ---- credentials: the benchmarked services check callers as in production --------------------------


@functools.lru_cache(maxsize=1)
def bench_credentials() -> LocalCredentials:
    return ensure_local_credentials(tempfile.mkdtemp(prefix="tollgate-bench-credentials-"))


def credentials_env(*services: str) -> dict[str, str]:
    """The environment that points `python -m <service>` at the bench's credentials."""
    return {f"{s.upper()}_CREDENTIALS_DIR": str(bench_credentials().directory) for s in services}


def operator_channel(address: str, options: list | tuple = ()) -> grpc.aio.Channel:
    token = TokenSource(value=bench_credentials().token("operator"))
    return open_channel(address, token=token, options=options)
