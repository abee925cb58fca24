"""The PostgreSQL server benchmarks use: TEST_DATABASE_URL's, else the embedded one."""

from __future__ import annotations

import asyncio
import os
import uuid

from common.db import embedded_server_url, ensure_database


async def fresh_database(prefix: str) -> tuple[str, str]:
    """Create an empty database; return (server_url, database_url)."""
    server = os.environ.get("TEST_DATABASE_URL") or await asyncio.to_thread(
        embedded_server_url, ".tollgate/bench-pg"
    )
    name = f"bench_{prefix}_{uuid.uuid4().hex[:8]}"
    return server, await ensure_database(server, name)
