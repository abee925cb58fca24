"""Late usage: the reads a close (and a preview) needs to find usage of closed periods that arrived
after they were invoiced. No tables of its own: it reads invoices and invoice_lines.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncConnection

from billing.store import _rows, invoice_lines, invoices


async def last_read_cutoffs(
    conn: AsyncConnection, builder_id: str, before: datetime, customer_id: str | None = None
) -> dict[str, datetime]:
    """Per customer, the latest usage cutoff of its finalized invoices of periods before `before`:
    when its closed periods were last read from metering."""
    q = (
        select(invoices.c.customer_id, func.max(invoices.c.usage_cutoff).label("cutoff"))
        .where(
            invoices.c.builder_id == builder_id,
            invoices.c.period_start < before,
            invoices.c.status == "finalized",
        )
        .group_by(invoices.c.customer_id)
    )
    if customer_id is not None:
        q = q.where(invoices.c.customer_id == customer_id)
    return {r.customer_id: r.cutoff for r in await conn.execute(q)}


async def latest_snapshots(
    conn: AsyncConnection,
    builder_id: str,
    since: datetime,
    before: datetime,
    customer_id: str | None = None,
) -> list[dict[str, Any]]:
    """Per (customer, charge, closed period starting in [since, before), part), the latest usage snapshot
    billed for it: that of the period's own line or of its latest late-usage adjustment line (highest
    invoice number), on finalized invoices only. Each row carries the cutoff that snapshot was read with
    (its invoice's usage cutoff) and the plan version the period was billed with (that of the period's
    own finalized invoice; a period whose invoice was voided has no row)."""
    line_inv = invoices.alias("line_inv")
    # A split period's lines each price one part of it (their snapshot names the part).
    part = func.coalesce(invoice_lines.c.usage_snapshot["part"]["usage_start"].astext, "")
    own = invoices.alias("own")
    q = (
        select(
            line_inv.c.customer_id,
            invoice_lines.c.charge_key,
            invoice_lines.c.usage_period_start,
            invoice_lines.c.usage_snapshot,
            line_inv.c.usage_cutoff.label("read_cutoff"),
            line_inv.c.number,
            own.c.plan_id,
            own.c.plan_version,
        )
        .select_from(
            invoice_lines.join(line_inv, line_inv.c.id == invoice_lines.c.invoice_id).join(
                own,
                (own.c.builder_id == line_inv.c.builder_id)
                & (own.c.customer_id == line_inv.c.customer_id)
                & (own.c.period_start == invoice_lines.c.usage_period_start)
                & (own.c.status == "finalized"),
            )
        )
        .where(
            line_inv.c.builder_id == builder_id,
            line_inv.c.status == "finalized",
            invoice_lines.c.usage_snapshot.is_not(None),
            invoice_lines.c.usage_period_start >= since,
            invoice_lines.c.usage_period_start < before,
        )
        .ext(
            distinct_on(
                line_inv.c.customer_id, invoice_lines.c.charge_key, invoice_lines.c.usage_period_start, part
            )
        )
        .order_by(
            line_inv.c.customer_id,
            invoice_lines.c.charge_key,
            invoice_lines.c.usage_period_start,
            part,
            line_inv.c.number.desc(),
        )
    )
    if customer_id is not None:
        q = q.where(line_inv.c.customer_id == customer_id)
    return _rows(await conn.execute(q))
