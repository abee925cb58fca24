"""Request-id idempotency, stored in the service's own database in the same transaction as the work.

Protocol, inside one transaction:
    prior = await claim(conn, table, scope, request_id, fingerprint)
    if prior is not None: return prior (the first reply; same id + different body raises AlreadyExists)
    ... do the work ...
    await complete(conn, table, scope, request_id, reply)

`claim` inserts the key first, so a concurrent duplicate blocks on the row lock until the first
transaction commits (then sees its reply) or rolls back (then does the work itself).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy import Column, DateTime, MetaData, String, Table, func, select
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from common.errors import AlreadyExists


def idempotency_table(metadata: MetaData) -> Table:
    return Table(
        "idempotency_keys",
        metadata,
        Column("scope", String(64), primary_key=True),
        Column("request_id", String(128), primary_key=True),
        Column("fingerprint", String(64), nullable=False),
        Column("reply", JSONB, nullable=True),
        Column("create_time", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


def builder_scope(operation: str, builder_id: str) -> str:
    """The scope of a request id: one operation of one builder, so two builders' ids never collide
    (every context's mutations use it). Builder ids are up to 128 characters and the scope column 64, so
    the builder is kept as 128 bits of its SHA-256, which puts a collision out of reach."""
    if not builder_id:
        return operation
    digest = hashlib.sha256(builder_id.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    scope = f"{operation}:{digest}"
    if len(scope) > 64:
        raise ValueError(f"operation name {operation!r} is too long for a scope")
    return scope


def fingerprint(body: Any) -> str:
    """A stable hash of a request body (anything JSON can encode, with str() for the rest)."""
    raw = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(raw.encode()).hexdigest()


async def claim(
    conn: AsyncConnection, table: Table, scope: str, request_id: str, body_fingerprint: str
) -> Any | None:
    """Reserve request_id for this transaction, or return the reply stored by the first request."""
    inserted = await conn.execute(
        insert(table)
        .values(scope=scope, request_id=request_id, fingerprint=body_fingerprint)
        .on_conflict_do_nothing()
        .returning(table.c.request_id)
    )
    if inserted.first() is not None:
        return None
    row = (
        await conn.execute(
            select(table.c.fingerprint, table.c.reply).where(
                table.c.scope == scope, table.c.request_id == request_id
            )
        )
    ).one()
    if row.fingerprint != body_fingerprint:
        raise AlreadyExists(
            f"request_id {request_id!r} was already used with a different request", field="request_id"
        )
    return row.reply


async def complete(conn: AsyncConnection, table: Table, scope: str, request_id: str, reply: Any) -> None:
    await conn.execute(
        table.update().where(table.c.scope == scope, table.c.request_id == request_id).values(reply=reply)
    )
