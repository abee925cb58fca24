"""Refunds: money owed back to a customer for a credit note on a paid invoice (tables and queries).

A refund is PENDING until the operator marks it PAID (with the processor's reference) or FAILED (its
amount then goes to the customer's wallet in the same transaction, so nothing owed is lost).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Column,
    DateTime,
    ForeignKeyConstraint,
    Index,
    String,
    Table,
    Text,
    func,
    select,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from billing.store import AMOUNT, _rows, metadata

refunds = Table(
    "refunds",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("builder_id", String(128), nullable=False),
    Column("customer_id", String(128), nullable=False),
    Column("invoice_id", String(64), nullable=False),
    Column("credit_note_id", String(64), nullable=False),
    Column("currency_code", String(3), nullable=False),
    Column("amount", AMOUNT, nullable=False),
    Column("state", String(16), nullable=False),  # pending | paid | failed
    Column("external_reference", String(128), nullable=False, server_default=""),
    Column("failure_reason", Text, nullable=False, server_default=""),
    Column("create_time", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("update_time", DateTime(timezone=True), nullable=False, server_default=func.now()),
    ForeignKeyConstraint(["invoice_id"], ["invoices.id"]),
    ForeignKeyConstraint(["credit_note_id"], ["credit_notes.id"]),
    CheckConstraint("amount > 0", name="amount_positive"),
    Index(None, "builder_id", "create_time"),
)


async def insert_refund(conn: AsyncConnection, values: dict[str, Any]) -> dict[str, Any]:
    row = (await conn.execute(insert(refunds).values(**values).returning(refunds))).one()
    return dict(row._mapping)


async def get_refund(
    conn: AsyncConnection, builder_id: str, refund_id: str, *, for_update: bool = False
) -> dict[str, Any] | None:
    q = select(refunds).where(refunds.c.builder_id == builder_id, refunds.c.id == refund_id)
    if for_update:
        q = q.with_for_update()
    row = (await conn.execute(q)).first()
    return dict(row._mapping) if row else None


async def update_refund(conn: AsyncConnection, refund_id: str, values: dict[str, Any]) -> dict[str, Any]:
    row = (
        await conn.execute(
            refunds.update()
            .where(refunds.c.id == refund_id)
            .values(**values, update_time=func.now())
            .returning(refunds)
        )
    ).one()
    return dict(row._mapping)


async def list_refunds(
    conn: AsyncConnection,
    builder_id: str,
    customer_id: str | None,
    state: str | None,
    before: tuple[datetime, str] | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Newest first: by create_time descending, then id descending (a page continues below `before`)."""
    q = select(refunds).where(refunds.c.builder_id == builder_id)
    if customer_id:
        q = q.where(refunds.c.customer_id == customer_id)
    if state:
        q = q.where(refunds.c.state == state)
    if before is not None:
        time, rid = before
        q = q.where((refunds.c.create_time < time) | ((refunds.c.create_time == time) & (refunds.c.id < rid)))
    q = q.order_by(refunds.c.create_time.desc(), refunds.c.id.desc()).limit(limit)
    return _rows(await conn.execute(q))
