"""Billing's tables and queries: the only code that touches the billing database.

This module holds customers, plans, subscriptions, invoices, payments, wallets and earnings; the
submodules hold the rest by use case (spend: controls, leases, alerts, webhooks; refunds).

Amounts: NUMERIC(38, 9) everywhere. Unrounded amounts (tier rows, unit prices) keep nine places;
rounded amounts (line amounts, splits, totals, payments, wallets, earnings) are stored in the same
type but always sit on the currency's minor-unit grid (the domain rounds them, see domain/money.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    func,
    or_,
    select,
    text,
    tuple_,
)
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from common.db import new_metadata
from common.idempotency import idempotency_table

metadata = new_metadata()
idempotency_keys = idempotency_table(metadata)

AMOUNT = Numeric(38, 9)

customers = Table(
    "customers",
    metadata,
    Column("builder_id", String(128), primary_key=True),
    Column("id", String(128), primary_key=True),
    Column("app_id", String(128), nullable=False),
    Column("currency_code", String(3), nullable=False),
    Column("display_name", String(256), nullable=False),
    Column("billing_email", String(256), nullable=False),
    Column("create_time", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

plans = Table(
    "plans",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("builder_id", String(128), nullable=False),
    Column("key", String(64), nullable=False),
    Column("display_name", String(256), nullable=False),
    Column("currency_code", String(3), nullable=False),
    Column("create_time", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("builder_id", "key"),
)

# A version is written once and never updated: invoices name (plan_id, version) and must re-price the
# same way forever.
plan_versions = Table(
    "plan_versions",
    metadata,
    Column("plan_id", String(64), primary_key=True),
    Column("version", Integer, primary_key=True),
    # The domain's plan dict (domain.plan.plan_to_dict): decimals as strings, exact.
    Column("spec", JSONB, nullable=False),
    Column("publish_time", DateTime(timezone=True), nullable=False, server_default=func.now()),
    ForeignKeyConstraint(["plan_id"], ["plans.id"]),
)

subscriptions = Table(
    "subscriptions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("builder_id", String(128), nullable=False),
    Column("customer_id", String(128), nullable=False),
    Column("plan_id", String(64), nullable=False),
    Column("plan_version", Integer, nullable=False),
    Column("start_time", DateTime(timezone=True), nullable=False),
    # A pending change: from change_time (a period boundary) the next version is in force.
    Column("next_plan_id", String(64), nullable=True),
    Column("next_plan_version", Integer, nullable=True),
    Column("change_time", DateTime(timezone=True), nullable=True),
    # Set by a cancellation: nothing from end_time on is invoiced.
    Column("end_time", DateTime(timezone=True), nullable=True),
    UniqueConstraint("builder_id", "customer_id"),
    ForeignKeyConstraint(["builder_id", "customer_id"], ["customers.builder_id", "customers.id"]),
)

platform_fees = Table(
    "platform_fees",
    metadata,
    Column("builder_id", String(128), primary_key=True),
    Column("percent_of_line", Numeric(12, 6), nullable=False),
    Column("percent_of_margin", Numeric(12, 6), nullable=False),
    Column("update_time", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# The gap-free invoice numbering: one row per builder, locked FOR UPDATE inside the finalizing
# transaction, so a number is only ever taken by a transaction that commits the invoice.
invoice_counters = Table(
    "invoice_counters",
    metadata,
    Column("builder_id", String(128), primary_key=True),
    Column("last_number", BigInteger, nullable=False),
)

invoices = Table(
    "invoices",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("builder_id", String(128), nullable=False),
    Column("customer_id", String(128), nullable=False),
    Column("app_id", String(128), nullable=False),
    Column("number", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),
    Column("currency_code", String(3), nullable=False),
    Column("period_start", DateTime(timezone=True), nullable=False),
    Column("period_end", DateTime(timezone=True), nullable=False),
    Column("usage_cutoff", DateTime(timezone=True), nullable=False),
    Column("plan_id", String(64), nullable=False),
    Column("plan_version", Integer, nullable=False),
    Column("total", AMOUNT, nullable=False),
    Column("wallet_applied", AMOUNT, nullable=False),
    Column("credited", AMOUNT, nullable=False, server_default=text("0")),
    Column("amount_paid", AMOUNT, nullable=False, server_default=text("0")),
    # Set once, when wallet + payments + credits first cover the total and the earnings were appended.
    Column("paid_time", DateTime(timezone=True), nullable=True),
    Column("finalize_time", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("void_time", DateTime(timezone=True), nullable=True),
    Column("void_reason", Text, nullable=True),
    # One invoice per customer and period, whatever the number of concurrent closes.
    UniqueConstraint("builder_id", "customer_id", "period_start"),
    UniqueConstraint("builder_id", "number"),
    CheckConstraint("status IN ('finalized', 'void')", name="status"),
    Index(None, "builder_id", "period_start"),
)

invoice_lines = Table(
    "invoice_lines",
    metadata,
    Column("invoice_id", String(64), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("charge_key", String(64), nullable=False),
    Column("meter_key", String(64), nullable=False),
    Column("display_name", String(256), nullable=False),
    Column("quantity", AMOUNT, nullable=False),
    Column("included_quantity", AMOUNT, nullable=False),
    Column("unit_price", AMOUNT, nullable=True),
    Column("tiers", JSONB, nullable=False),
    Column("amount_unrounded", AMOUNT, nullable=False),
    Column("amount", AMOUNT, nullable=False),
    Column("provider_cost", AMOUNT, nullable=False),
    Column("platform_fee", AMOUNT, nullable=False),
    Column("builder_margin", AMOUNT, nullable=False),
    Column("usage_by_tag", JSONB, nullable=False),
    # The period whose usage this line prices (the invoice's own, or a closed one for late usage),
    # and the full usage of that period known after this line: the next late-usage check compares
    # metering against it.
    Column("usage_period_start", DateTime(timezone=True), nullable=True),
    Column("usage_snapshot", JSONB, nullable=True),
    # Usage by workflow, used to attribute the line's split in the earnings feed.
    Column("workflow_weights", JSONB, nullable=False),
    # The metering read this line priced (migration 0004), so ExplainInvoiceLine can list exactly its
    # events: occurred in [usage_start_time, usage_end_time), ingested before ingested_before_time and
    # (for a late-usage adjustment) at or after ingested_after_time. NULL on lines finalized before
    # 0004 and on base-fee lines.
    Column("usage_start_time", DateTime(timezone=True), nullable=True),
    Column("usage_end_time", DateTime(timezone=True), nullable=True),
    Column("ingested_after_time", DateTime(timezone=True), nullable=True),
    Column("ingested_before_time", DateTime(timezone=True), nullable=True),
    ForeignKeyConstraint(["invoice_id"], ["invoices.id"]),
)

payments = Table(
    "payments",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("builder_id", String(128), nullable=False),
    Column("invoice_id", String(64), nullable=False),
    Column("amount", AMOUNT, nullable=False),
    Column("external_reference", String(128), nullable=False),
    Column("create_time", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("builder_id", "external_reference"),
    ForeignKeyConstraint(["invoice_id"], ["invoices.id"]),
)

credit_notes = Table(
    "credit_notes",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("builder_id", String(128), nullable=False),
    Column("invoice_id", String(64), nullable=False),
    Column("amount", AMOUNT, nullable=False),
    Column("reason", Text, nullable=False),
    # Per invoice line, the [provider_cost, platform_fee, builder_margin] this note took (domain
    # allocate_credit), so later notes and the earnings feed continue from exact remainders.
    Column("allocation", JSONB, nullable=False),
    # True when issued after the invoice was fully paid: its allocation went to the feed, negative.
    Column("after_payment", Boolean, nullable=False),
    # How the note was settled (migration 0003): the part that reduced what was due, and the part
    # covering money received, credited to the wallet or refunded ("" settlement when there was none).
    Column("settlement", String(16), nullable=False, server_default=""),
    Column("due_reduced", AMOUNT, nullable=False, server_default="0"),
    Column("wallet_credited", AMOUNT, nullable=False, server_default="0"),
    Column("refunded", AMOUNT, nullable=False, server_default="0"),
    Column("create_time", DateTime(timezone=True), nullable=False, server_default=func.now()),
    ForeignKeyConstraint(["invoice_id"], ["invoices.id"]),
)

wallets = Table(
    "wallets",
    metadata,
    Column("builder_id", String(128), primary_key=True),
    Column("customer_id", String(128), primary_key=True),
    Column("balance", AMOUNT, nullable=False),
    CheckConstraint("balance >= 0", name="balance_not_negative"),
)

wallet_transactions = Table(
    "wallet_transactions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("builder_id", String(128), nullable=False),
    Column("customer_id", String(128), nullable=False),
    Column("amount", AMOUNT, nullable=False),
    Column("invoice_id", String(64), nullable=True),
    Column("create_time", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index(None, "builder_id", "customer_id", "create_time"),
)

# Append-only. Appends take a transaction-level advisory lock (EARNINGS_LOCK) so sequence order is
# commit order: a reader paging by sequence never skips an entry that commits later with a smaller one.
earnings = Table(
    "earnings",
    metadata,
    Column("sequence", BigInteger, Identity(always=True), primary_key=True),
    Column("builder_id", String(128), nullable=False),
    Column("app_id", String(128), nullable=False),
    Column("customer_id", String(128), nullable=False),
    Column("invoice_id", String(64), nullable=False),
    Column("line_position", Integer, nullable=False),
    Column("workflow", String(256), nullable=False),
    Column("meter_key", String(64), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("reason", String(32), nullable=False),
    Column("currency_code", String(3), nullable=False),
    Column("amount", AMOUNT, nullable=False),
    Column("source_id", String(64), nullable=False),
    Column("create_time", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index(None, "builder_id", "sequence"),
)

EARNINGS_LOCK = 0x7B111_0001


def _rows(result: Any) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in result]


async def peek_idempotency(conn: AsyncConnection, scope: str, request_id: str) -> dict[str, Any] | None:
    """A read-only look at a claimed request id (fingerprint, and reply once completed); no lock."""
    row = (
        await conn.execute(
            select(idempotency_keys.c.fingerprint, idempotency_keys.c.reply).where(
                idempotency_keys.c.scope == scope, idempotency_keys.c.request_id == request_id
            )
        )
    ).first()
    return dict(row._mapping) if row else None


# ---- customers ------------------------------------------------------------------------------------


async def insert_customer(conn: AsyncConnection, values: dict[str, Any]) -> dict[str, Any] | None:
    row = (
        await conn.execute(insert(customers).values(**values).on_conflict_do_nothing().returning(customers))
    ).first()
    return dict(row._mapping) if row else None


async def get_customer(conn: AsyncConnection, builder_id: str, customer_id: str) -> dict[str, Any] | None:
    row = (
        await conn.execute(
            select(customers).where(customers.c.builder_id == builder_id, customers.c.id == customer_id)
        )
    ).first()
    return dict(row._mapping) if row else None


async def list_customers(
    conn: AsyncConnection, builder_id: str, after: str | None, limit: int
) -> list[dict[str, Any]]:
    q = select(customers).where(customers.c.builder_id == builder_id)
    if after is not None:
        q = q.where(customers.c.id > after)
    return _rows(await conn.execute(q.order_by(customers.c.id).limit(limit)))


# ---- plans ----------------------------------------------------------------------------------------


async def insert_plan(conn: AsyncConnection, values: dict[str, Any]) -> dict[str, Any] | None:
    row = (
        await conn.execute(insert(plans).values(**values).on_conflict_do_nothing().returning(plans))
    ).first()
    return dict(row._mapping) if row else None


async def get_plan(conn: AsyncConnection, builder_id: str, plan_id: str) -> dict[str, Any] | None:
    row = (
        await conn.execute(select(plans).where(plans.c.builder_id == builder_id, plans.c.id == plan_id))
    ).first()
    return dict(row._mapping) if row else None


async def get_plan_by_key(conn: AsyncConnection, builder_id: str, key: str) -> dict[str, Any] | None:
    row = (
        await conn.execute(select(plans).where(plans.c.builder_id == builder_id, plans.c.key == key))
    ).first()
    return dict(row._mapping) if row else None


async def lock_plan(conn: AsyncConnection, plan_id: str) -> None:
    await conn.execute(select(plans.c.id).where(plans.c.id == plan_id).with_for_update())


async def list_plans(conn: AsyncConnection, builder_id: str, after: str | None, limit: int) -> list[dict]:
    q = select(plans).where(plans.c.builder_id == builder_id)
    if after is not None:
        q = q.where(plans.c.key > after)
    return _rows(await conn.execute(q.order_by(plans.c.key).limit(limit)))


async def builder_plan_specs(conn: AsyncConnection, builder_id: str) -> list[dict]:
    """The spec of every version of every plan of a builder."""
    rows = await conn.execute(
        select(plan_versions.c.spec)
        .join(plans, plans.c.id == plan_versions.c.plan_id)
        .where(plans.c.builder_id == builder_id)
        .order_by(plan_versions.c.plan_id, plan_versions.c.version)
    )
    return [r.spec for r in rows]


async def plan_versions_of(conn: AsyncConnection, plan_ids: Sequence[str]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {pid: [] for pid in plan_ids}
    if not plan_ids:
        return out
    rows = await conn.execute(
        select(plan_versions)
        .where(plan_versions.c.plan_id.in_(plan_ids))
        .order_by(plan_versions.c.plan_id, plan_versions.c.version)
    )
    for r in rows:
        out[r.plan_id].append(dict(r._mapping))
    return out


async def get_plan_version(conn: AsyncConnection, plan_id: str, version: int) -> dict[str, Any] | None:
    row = (
        await conn.execute(
            select(plan_versions).where(
                plan_versions.c.plan_id == plan_id, plan_versions.c.version == version
            )
        )
    ).first()
    return dict(row._mapping) if row else None


async def latest_plan_version(conn: AsyncConnection, plan_id: str) -> dict[str, Any] | None:
    row = (
        await conn.execute(
            select(plan_versions)
            .where(plan_versions.c.plan_id == plan_id)
            .order_by(plan_versions.c.version.desc())
            .limit(1)
        )
    ).first()
    return dict(row._mapping) if row else None


async def insert_plan_version(
    conn: AsyncConnection, plan_id: str, version: int, spec: dict
) -> dict[str, Any]:
    row = (
        await conn.execute(
            insert(plan_versions).values(plan_id=plan_id, version=version, spec=spec).returning(plan_versions)
        )
    ).one()
    return dict(row._mapping)


async def plan_specs(conn: AsyncConnection, keys: Iterable[tuple[str, int]]) -> dict[tuple[str, int], dict]:
    keys = list(set(keys))
    if not keys:
        return {}
    rows = await conn.execute(
        select(plan_versions.c.plan_id, plan_versions.c.version, plan_versions.c.spec).where(
            tuple_(plan_versions.c.plan_id, plan_versions.c.version).in_(keys)
        )
    )
    return {(r.plan_id, r.version): r.spec for r in rows}


# ---- subscriptions and fees -----------------------------------------------------------------------


async def insert_subscription(conn: AsyncConnection, values: dict[str, Any]) -> dict[str, Any] | None:
    row = (
        await conn.execute(
            insert(subscriptions).values(**values).on_conflict_do_nothing().returning(subscriptions)
        )
    ).first()
    return dict(row._mapping) if row else None


async def get_subscription(
    conn: AsyncConnection, builder_id: str, customer_id: str, *, for_update: bool = False
) -> dict[str, Any] | None:
    q = select(subscriptions).where(
        subscriptions.c.builder_id == builder_id, subscriptions.c.customer_id == customer_id
    )
    if for_update:
        q = q.with_for_update()
    row = (await conn.execute(q)).first()
    return dict(row._mapping) if row else None


async def update_subscription(conn: AsyncConnection, sub_id: str, values: dict[str, Any]) -> dict[str, Any]:
    row = (
        await conn.execute(
            subscriptions.update()
            .where(subscriptions.c.id == sub_id)
            .values(**values)
            .returning(subscriptions)
        )
    ).one()
    return dict(row._mapping)


async def billable_customers(
    conn: AsyncConnection, builder_id: str, period_start: datetime, period_end: datetime
) -> list[dict]:
    """Customers with a subscription active in [period_start, period_end), with what the close needs."""
    q = (
        select(
            customers.c.id.label("customer_id"),
            customers.c.app_id,
            customers.c.currency_code,
            subscriptions.c.plan_id,
            subscriptions.c.plan_version,
            subscriptions.c.start_time,
            subscriptions.c.next_plan_id,
            subscriptions.c.next_plan_version,
            subscriptions.c.change_time,
            subscriptions.c.end_time,
        )
        .select_from(
            customers.join(
                subscriptions,
                (subscriptions.c.builder_id == customers.c.builder_id)
                & (subscriptions.c.customer_id == customers.c.id),
            )
        )
        .where(
            customers.c.builder_id == builder_id,
            subscriptions.c.start_time < period_end,
            # A subscription that ended before the period starts has nothing left to invoice.
            or_(
                subscriptions.c.end_time.is_(None),
                and_(
                    subscriptions.c.end_time > period_start,
                    subscriptions.c.end_time > subscriptions.c.start_time,
                ),
            ),
        )
        .order_by(customers.c.id)
    )
    return _rows(await conn.execute(q))


async def set_platform_fee(conn: AsyncConnection, builder_id: str, line: Decimal, margin: Decimal) -> dict:
    stmt = insert(platform_fees).values(builder_id=builder_id, percent_of_line=line, percent_of_margin=margin)
    stmt = stmt.on_conflict_do_update(
        index_elements=[platform_fees.c.builder_id],
        set_={"percent_of_line": line, "percent_of_margin": margin, "update_time": func.now()},
    ).returning(platform_fees)
    return dict((await conn.execute(stmt)).one()._mapping)


async def get_platform_fee(conn: AsyncConnection, builder_id: str) -> dict[str, Any] | None:
    row = (await conn.execute(select(platform_fees).where(platform_fees.c.builder_id == builder_id))).first()
    return dict(row._mapping) if row else None


# ---- invoices -------------------------------------------------------------------------------------


async def lock_builder(conn: AsyncConnection, builder_id: str) -> None:
    """Serialize closes of one builder: held until the transaction ends."""
    await conn.execute(select(func.pg_advisory_xact_lock(func.hashtextextended("close:" + builder_id, 0))))


async def invoiced_customers(conn: AsyncConnection, builder_id: str, period_start: datetime) -> set[str]:
    rows = await conn.execute(
        select(invoices.c.customer_id).where(
            invoices.c.builder_id == builder_id, invoices.c.period_start == period_start
        )
    )
    return {r.customer_id for r in rows}


async def period_summary(conn: AsyncConnection, builder_id: str, period_start: datetime) -> list[dict]:
    rows = await conn.execute(
        select(invoices.c.currency_code, func.count().label("n"), func.sum(invoices.c.total).label("total"))
        .where(
            invoices.c.builder_id == builder_id,
            invoices.c.period_start == period_start,
            invoices.c.status == "finalized",
        )
        .group_by(invoices.c.currency_code)
        .order_by(invoices.c.currency_code)
    )
    return _rows(rows)


async def take_invoice_numbers(conn: AsyncConnection, builder_id: str, count: int) -> int:
    """Reserve `count` consecutive numbers; returns the first. The counter row stays locked."""
    await conn.execute(
        insert(invoice_counters).values(builder_id=builder_id, last_number=0).on_conflict_do_nothing()
    )
    last = (
        await conn.execute(
            select(invoice_counters.c.last_number)
            .where(invoice_counters.c.builder_id == builder_id)
            .with_for_update()
        )
    ).scalar_one()
    await conn.execute(
        invoice_counters.update()
        .where(invoice_counters.c.builder_id == builder_id)
        .values(last_number=last + count)
    )
    return last + 1


async def bulk_insert(conn: AsyncConnection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Bulk insert through asyncpg's COPY: the hot path of a close with thousands of invoices."""
    if not rows:
        return
    columns = list(rows[0].keys())
    records = [tuple(r[c] for c in columns) for r in rows]
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    await driver.copy_records_to_table(table.name, records=records, columns=columns)


async def get_invoice(
    conn: AsyncConnection, builder_id: str, invoice_id: str, *, for_update: bool = False
) -> dict[str, Any] | None:
    q = select(invoices).where(invoices.c.builder_id == builder_id, invoices.c.id == invoice_id)
    if for_update:
        q = q.with_for_update()
    row = (await conn.execute(q)).first()
    return dict(row._mapping) if row else None


async def lines_of(conn: AsyncConnection, invoice_ids: Sequence[str]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {i: [] for i in invoice_ids}
    if not invoice_ids:
        return out
    rows = await conn.execute(
        select(invoice_lines)
        .where(invoice_lines.c.invoice_id.in_(invoice_ids))
        .order_by(invoice_lines.c.invoice_id, invoice_lines.c.position)
    )
    for r in rows:
        out[r.invoice_id].append(dict(r._mapping))
    return out


async def list_invoices(
    conn: AsyncConnection,
    builder_id: str,
    customer_id: str | None,
    status: str | None,
    after: tuple[datetime, int] | None,
    limit: int,
) -> list[dict]:
    q = select(invoices).where(invoices.c.builder_id == builder_id)
    if customer_id:
        q = q.where(invoices.c.customer_id == customer_id)
    if status:
        q = q.where(invoices.c.status == status)
    if after is not None:
        start, number = after
        q = q.where(
            (invoices.c.period_start < start)
            | ((invoices.c.period_start == start) & (invoices.c.number > number))
        )
    q = q.order_by(invoices.c.period_start.desc(), invoices.c.number).limit(limit)
    return _rows(await conn.execute(q))


async def update_invoice(conn: AsyncConnection, invoice_id: str, values: dict[str, Any]) -> dict[str, Any]:
    row = (
        await conn.execute(
            invoices.update().where(invoices.c.id == invoice_id).values(**values).returning(invoices)
        )
    ).one()
    return dict(row._mapping)


async def billed_usage(
    conn: AsyncConnection, builder_id: str, period_start: datetime
) -> dict[tuple[str, str], dict[str, Any]]:
    """The latest usage snapshot per (customer, charge) billed for a period (original or adjusted)."""
    rows = await conn.execute(
        select(
            invoices.c.customer_id,
            invoice_lines.c.charge_key,
            invoice_lines.c.usage_snapshot,
            invoices.c.number,
            invoices.c.plan_id,
            invoices.c.plan_version,
        )
        .select_from(invoice_lines.join(invoices, invoices.c.id == invoice_lines.c.invoice_id))
        .where(
            invoices.c.builder_id == builder_id,
            invoice_lines.c.usage_period_start == period_start,
            invoice_lines.c.usage_snapshot.is_not(None),
            invoices.c.status == "finalized",
        )
        .order_by(invoices.c.number)
    )
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        out[(r.customer_id, r.charge_key)] = dict(r._mapping)
    return out


async def period_invoices(conn: AsyncConnection, builder_id: str, period_start: datetime) -> dict[str, dict]:
    rows = await conn.execute(
        select(invoices).where(
            invoices.c.builder_id == builder_id,
            invoices.c.period_start == period_start,
            invoices.c.status == "finalized",
        )
    )
    return {r.customer_id: dict(r._mapping) for r in rows}


# ---- payments, credit notes, wallets --------------------------------------------------------------


async def get_payment_by_reference(conn: AsyncConnection, builder_id: str, reference: str) -> dict | None:
    row = (
        await conn.execute(
            select(payments).where(
                payments.c.builder_id == builder_id, payments.c.external_reference == reference
            )
        )
    ).first()
    return dict(row._mapping) if row else None


async def insert_payment(conn: AsyncConnection, values: dict[str, Any]) -> dict[str, Any]:
    return dict((await conn.execute(insert(payments).values(**values).returning(payments))).one()._mapping)


async def insert_credit_note(conn: AsyncConnection, values: dict[str, Any]) -> dict[str, Any]:
    row = (await conn.execute(insert(credit_notes).values(**values).returning(credit_notes))).one()
    return dict(row._mapping)


async def credit_notes_of(conn: AsyncConnection, invoice_id: str) -> list[dict]:
    return _rows(
        await conn.execute(
            select(credit_notes)
            .where(credit_notes.c.invoice_id == invoice_id)
            .order_by(credit_notes.c.create_time)
        )
    )


async def lock_wallets(
    conn: AsyncConnection, builder_id: str, customer_ids: Sequence[str] | None = None
) -> dict[str, Decimal]:
    q = select(wallets.c.customer_id, wallets.c.balance).where(
        wallets.c.builder_id == builder_id, wallets.c.balance > 0
    )
    if customer_ids is not None:
        q = q.where(wallets.c.customer_id.in_(customer_ids))
    rows = await conn.execute(q.order_by(wallets.c.customer_id).with_for_update())
    return {r.customer_id: r.balance for r in rows}


async def add_to_wallet(
    conn: AsyncConnection,
    tx_id: str,
    builder_id: str,
    customer_id: str,
    amount: Decimal,
    invoice_id: str | None,
) -> Decimal:
    stmt = insert(wallets).values(builder_id=builder_id, customer_id=customer_id, balance=amount)
    stmt = stmt.on_conflict_do_update(
        index_elements=[wallets.c.builder_id, wallets.c.customer_id],
        set_={"balance": wallets.c.balance + amount},
    ).returning(wallets.c.balance)
    balance = (await conn.execute(stmt)).scalar_one()
    await conn.execute(
        insert(wallet_transactions).values(
            id=tx_id, builder_id=builder_id, customer_id=customer_id, amount=amount, invoice_id=invoice_id
        )
    )
    return balance


async def debit_wallets(
    conn: AsyncConnection, builder_id: str, debits: dict[str, Decimal], tx_rows: list[dict[str, Any]]
) -> None:
    if not debits:
        return
    raw = await conn.get_raw_connection()
    await raw.driver_connection.executemany(
        "UPDATE wallets SET balance = balance - $3 WHERE builder_id = $1 AND customer_id = $2",
        [(builder_id, cid, amount) for cid, amount in debits.items()],
    )
    await bulk_insert(conn, wallet_transactions, tx_rows)


async def get_wallet(conn: AsyncConnection, builder_id: str, customer_id: str) -> tuple[Decimal, list[dict]]:
    balance = (
        await conn.execute(
            select(wallets.c.balance).where(
                wallets.c.builder_id == builder_id, wallets.c.customer_id == customer_id
            )
        )
    ).scalar_one_or_none()
    txs = _rows(
        await conn.execute(
            select(wallet_transactions)
            .where(
                wallet_transactions.c.builder_id == builder_id,
                wallet_transactions.c.customer_id == customer_id,
            )
            .order_by(wallet_transactions.c.create_time.desc(), wallet_transactions.c.id)
            .limit(50)
        )
    )
    return (balance if balance is not None else Decimal(0)), txs


# ---- earnings -------------------------------------------------------------------------------------


async def append_earnings(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    await conn.execute(select(func.pg_advisory_xact_lock(EARNINGS_LOCK)))
    await conn.execute(insert(earnings), rows)


async def earnings_of_invoice(conn: AsyncConnection, invoice_id: str) -> list[dict]:
    return _rows(await conn.execute(select(earnings).where(earnings.c.invoice_id == invoice_id)))


async def list_earnings(conn: AsyncConnection, builder_id: str | None, after: int, limit: int) -> list[dict]:
    q = select(earnings).where(earnings.c.sequence > after)
    if builder_id:
        q = q.where(earnings.c.builder_id == builder_id)
    return _rows(await conn.execute(q.order_by(earnings.c.sequence).limit(limit)))


# The submodules' tables join the same metadata (imported last: they import AMOUNT and metadata).
from billing.store import refunds as refunds  # noqa: E402
from billing.store import spend as spend  # noqa: E402
