"""Spend controls, their per-period counters and leases, alerts, and webhook delivery: tables and
queries (the SQL of billing/service/spend.py and billing/webhooks.py).

Money columns are NUMERIC(38, 9) in the customer's currency, at the customer's price, unrounded.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Column,
    DateTime,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    func,
    or_,
    select,
    tuple_,
)
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from billing.store import AMOUNT, metadata

# One control per customer and scope; a scope the kind does not use stores "" in its columns, so the
# unique constraint sees every scope whole.
spend_controls = Table(
    "spend_controls",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("builder_id", String(128), nullable=False),
    Column("customer_id", String(128), nullable=False),
    Column("scope_kind", String(16), nullable=False),  # customer | api_key | tag
    Column("api_key_id", String(64), nullable=False, server_default=""),
    Column("tag_key", String(64), nullable=False, server_default=""),
    Column("tag_value", String(256), nullable=False, server_default=""),
    Column("currency_code", String(3), nullable=False),
    Column("hard_cap", AMOUNT, nullable=True),
    Column("alert_budget", AMOUNT, nullable=True),
    Column("threshold_percents", JSONB, nullable=False),  # ascending whole percents
    Column("on_cap", String(16), nullable=False),  # refuse | degrade
    Column("degrade_model", String(128), nullable=False, server_default=""),
    Column("create_time", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("update_time", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("builder_id", "customer_id", "scope_kind", "api_key_id", "tag_key", "tag_value"),
    ForeignKeyConstraint(["builder_id", "customer_id"], ["customers.builder_id", "customers.id"]),
    CheckConstraint("hard_cap IS NULL OR hard_cap >= 0", name="hard_cap_not_negative"),
)

# A control's period: the row every grant locks (FOR UPDATE), so that spent + held never passes the
# cap whatever the concurrency. held = sum over ACTIVE leases of (granted - consumed), clipped at 0.
spend_periods = Table(
    "spend_periods",
    metadata,
    Column("control_id", String(64), primary_key=True),
    Column("period_start", DateTime(timezone=True), primary_key=True),
    Column("period_end", DateTime(timezone=True), nullable=False),
    Column("spent", AMOUNT, nullable=False, server_default="0"),
    Column("held", AMOUNT, nullable=False, server_default="0"),
    # Thresholds already alerted this period (whole percents).
    Column("reached_percents", JSONB, nullable=False, server_default="[]"),
    ForeignKeyConstraint(["control_id"], ["spend_controls.id"], ondelete="CASCADE"),
    CheckConstraint("spent >= 0", name="spent_not_negative"),
    CheckConstraint("held >= 0", name="held_not_negative"),
)

spend_leases = Table(
    "spend_leases",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("builder_id", String(128), nullable=False),
    Column("control_id", String(64), nullable=False),
    Column("period_start", DateTime(timezone=True), nullable=False),
    Column("holder", String(128), nullable=False),
    Column("granted", AMOUNT, nullable=False),
    Column("consumed", AMOUNT, nullable=False, server_default="0"),
    Column("state", String(16), nullable=False),  # active | released | expired
    Column("expire_time", DateTime(timezone=True), nullable=False),
    Column("create_time", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("update_time", DateTime(timezone=True), nullable=False, server_default=func.now()),
    ForeignKeyConstraint(
        ["control_id", "period_start"],
        ["spend_periods.control_id", "spend_periods.period_start"],
        ondelete="CASCADE",
    ),
    CheckConstraint("granted >= 0", name="granted_not_negative"),
    CheckConstraint("consumed >= 0", name="consumed_not_negative"),
    Index(None, "state", "expire_time"),
    Index(None, "control_id", "period_start"),
)

# Raised once per cause: dedupe_key names it (for example "threshold:<control>:<period>:<percent>",
# "cap:<control>:<period>", "margin:<invoice or preview period>:<customer>:<charge>").
alerts = Table(
    "alerts",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("builder_id", String(128), nullable=False),
    Column("customer_id", String(128), nullable=False),
    Column("kind", String(32), nullable=False),  # spend_threshold | hard_cap_reached | negative_margin
    Column("dedupe_key", String(256), nullable=False),
    Column("control_id", String(64), nullable=False, server_default=""),
    Column("threshold_percent", Integer, nullable=False, server_default="0"),
    Column("charge_key", String(64), nullable=False, server_default=""),
    Column("period_start", DateTime(timezone=True), nullable=False),
    Column("currency_code", String(3), nullable=False),
    Column("amount", AMOUNT, nullable=False),
    Column("limit_amount", AMOUNT, nullable=False),
    Column("message", Text, nullable=False),
    Column("create_time", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("builder_id", "dedupe_key"),
    Index(None, "builder_id", "create_time"),
)

# One endpoint per builder. The secret is kept to sign with (it is a shared secret: it cannot be
# stored hashed); it is never logged and only returned when created or rotated.
webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("builder_id", String(128), primary_key=True),
    Column("url", String(2048), nullable=False),
    Column("secret", String(128), nullable=False),
    Column("create_time", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("update_time", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# One delivery per alert (the alert id is the receiver's deduplication key); written in the alert's
# transaction when the builder has an endpoint, then worked by the delivery loop.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("builder_id", String(128), nullable=False),
    Column("alert_id", String(64), nullable=False),
    Column("url", String(2048), nullable=False),
    Column("state", String(16), nullable=False),  # pending | delivered | failed
    Column("attempt_count", Integer, nullable=False, server_default="0"),
    Column("last_status_code", Integer, nullable=False, server_default="0"),
    Column("last_error", Text, nullable=False, server_default=""),
    Column("next_attempt_time", DateTime(timezone=True), nullable=True),
    Column("deliver_time", DateTime(timezone=True), nullable=True),
    Column("create_time", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("alert_id"),
    ForeignKeyConstraint(["alert_id"], ["alerts.id"]),
    Index(None, "state", "next_attempt_time"),
    Index(None, "builder_id", "create_time"),
)


def _one(row: Any) -> dict[str, Any] | None:
    return dict(row._mapping) if row is not None else None


# ---- controls -------------------------------------------------------------------------------------

_SCOPE = ("builder_id", "customer_id", "scope_kind", "api_key_id", "tag_key", "tag_value")


async def upsert_control(conn: AsyncConnection, values: dict[str, Any], now: datetime) -> dict[str, Any]:
    """One control per customer and scope: a second set replaces the first (its id and counters stay)."""
    stmt = insert(spend_controls).values(**values, create_time=now, update_time=now)
    settable = ("currency_code", "hard_cap", "alert_budget", "threshold_percents", "on_cap", "degrade_model")
    stmt = stmt.on_conflict_do_update(
        index_elements=list(_SCOPE),
        set_={**{k: stmt.excluded[k] for k in settable}, "update_time": now},
    ).returning(spend_controls)
    return dict((await conn.execute(stmt)).one()._mapping)


async def get_control(conn: AsyncConnection, builder_id: str, control_id: str) -> dict[str, Any] | None:
    q = select(spend_controls).where(
        spend_controls.c.builder_id == builder_id, spend_controls.c.id == control_id
    )
    return _one((await conn.execute(q)).first())


async def delete_control(conn: AsyncConnection, builder_id: str, control_id: str) -> dict[str, Any] | None:
    """Its periods and leases go with it (ON DELETE CASCADE); its alerts stay. Locks its leases, then
    its periods, before the control: the order reports and the sweep take them, so a delete never
    deadlocks with them."""
    await conn.execute(
        select(spend_leases.c.id)
        .where(spend_leases.c.control_id == control_id)
        .order_by(spend_leases.c.id)
        .with_for_update()
    )
    await conn.execute(
        select(spend_periods.c.period_start)
        .where(spend_periods.c.control_id == control_id)
        .order_by(spend_periods.c.period_start)
        .with_for_update()
    )
    q = (
        spend_controls.delete()
        .where(spend_controls.c.builder_id == builder_id, spend_controls.c.id == control_id)
        .returning(spend_controls)
    )
    return _one((await conn.execute(q)).first())


async def controls_of(conn: AsyncConnection, builder_id: str, customer_id: str) -> list[dict[str, Any]]:
    q = (
        select(spend_controls)
        .where(spend_controls.c.builder_id == builder_id, spend_controls.c.customer_id == customer_id)
        .order_by(spend_controls.c.id)
    )
    return [dict(r._mapping) for r in await conn.execute(q)]


async def list_controls(
    conn: AsyncConnection, builder_id: str, customer_id: str, after: tuple[str, str] | None, limit: int
) -> list[dict[str, Any]]:
    c = spend_controls.c
    q = select(spend_controls).where(c.builder_id == builder_id)
    if customer_id:
        q = q.where(c.customer_id == customer_id)
    if after is not None:
        q = q.where(tuple_(c.customer_id, c.id) > tuple_(*after))
    return [dict(r._mapping) for r in await conn.execute(q.order_by(c.customer_id, c.id).limit(limit))]


# ---- periods and leases ---------------------------------------------------------------------------


async def lock_period(
    conn: AsyncConnection, control_id: str, start: datetime, end: datetime
) -> dict[str, Any] | None:
    """The control's row for the period, created on first use, locked FOR UPDATE until commit: every
    grant, report and expiry of the control's period goes through this lock. None when the control
    was deleted meanwhile (the transaction must then end: after a foreign key error it is aborted)."""
    try:
        await conn.execute(
            insert(spend_periods)
            .values(control_id=control_id, period_start=start, period_end=end)
            .on_conflict_do_nothing()
        )
    except IntegrityError:
        return None
    q = (
        select(spend_periods)
        .where(spend_periods.c.control_id == control_id, spend_periods.c.period_start == start)
        .with_for_update()
    )
    return _one((await conn.execute(q)).first())


async def update_period(
    conn: AsyncConnection, control_id: str, start: datetime, values: dict[str, Any]
) -> None:
    await conn.execute(
        spend_periods.update()
        .where(spend_periods.c.control_id == control_id, spend_periods.c.period_start == start)
        .values(**values)
    )


async def period_status(
    conn: AsyncConnection, control_ids: Sequence[str], start: datetime
) -> dict[str, dict[str, Any]]:
    """Each control's period row (absent: nothing spent yet) with its count of active leases."""
    if not control_ids:
        return {}
    active = (
        select(func.count())
        .where(
            spend_leases.c.control_id == spend_periods.c.control_id,
            spend_leases.c.period_start == spend_periods.c.period_start,
            spend_leases.c.state == "active",
        )
        .scalar_subquery()
    )
    q = select(spend_periods, active.label("active_leases")).where(
        spend_periods.c.control_id.in_(list(control_ids)), spend_periods.c.period_start == start
    )
    return {r.control_id: dict(r._mapping) for r in await conn.execute(q)}


async def insert_lease(conn: AsyncConnection, values: dict[str, Any]) -> dict[str, Any]:
    return dict(
        (await conn.execute(insert(spend_leases).values(**values).returning(spend_leases))).one()._mapping
    )


async def get_lease(
    conn: AsyncConnection, builder_id: str, lease_id: str, *, for_update: bool = False
) -> dict[str, Any] | None:
    q = select(spend_leases).where(spend_leases.c.builder_id == builder_id, spend_leases.c.id == lease_id)
    if for_update:
        q = q.with_for_update()
    return _one((await conn.execute(q)).first())


async def update_lease(conn: AsyncConnection, lease_id: str, values: dict[str, Any]) -> dict[str, Any]:
    q = spend_leases.update().where(spend_leases.c.id == lease_id).values(**values).returning(spend_leases)
    return dict((await conn.execute(q)).one()._mapping)


async def claim_due_leases(conn: AsyncConnection, now: datetime, limit: int) -> list[dict[str, Any]]:
    """Active leases past their expire_time, locked; SKIP LOCKED: a lease another replica's sweep (or a
    report) holds is left to it, so each lease is expired by one worker."""
    q = (
        select(spend_leases)
        .where(spend_leases.c.state == "active", spend_leases.c.expire_time < now)
        .order_by(spend_leases.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return [dict(r._mapping) for r in await conn.execute(q)]


async def lock_periods(conn: AsyncConnection, keys: Sequence[tuple[str, datetime]]) -> dict[tuple, dict]:
    """Lock several period rows in one order (control id, start), so sweeps never deadlock each other."""
    if not keys:
        return {}
    c = spend_periods.c
    q = (
        select(spend_periods)
        .where(tuple_(c.control_id, c.period_start).in_([tuple_(k, s) for k, s in keys]))
        .order_by(c.control_id, c.period_start)
        .with_for_update()
    )
    return {(r.control_id, r.period_start): dict(r._mapping) for r in await conn.execute(q)}


# ---- alerts -----------------------------------------------------------------------------------------


async def raise_alert(conn: AsyncConnection, values: dict[str, Any], now: datetime) -> dict[str, Any] | None:
    """Insert an alert once per (builder, dedupe_key); the first time, queue its webhook delivery in the
    same transaction when the builder has an endpoint. Returns the new alert, or None when it was raised
    before."""
    row = (
        await conn.execute(
            insert(alerts)
            .values(**values, create_time=now)
            .on_conflict_do_nothing(index_elements=["builder_id", "dedupe_key"])
            .returning(alerts)
        )
    ).first()
    if row is None:
        return None
    alert = dict(row._mapping)
    # Imported here: store/webhooks.py reads this module's tables.
    from billing.store.webhooks import enqueue_delivery

    await enqueue_delivery(conn, alert["id"])
    return alert


async def list_alerts(
    conn: AsyncConnection, builder_id: str, customer_id: str, before: tuple[datetime, str] | None, limit: int
) -> list[dict[str, Any]]:
    c = alerts.c
    q = select(alerts).where(c.builder_id == builder_id)
    if customer_id:
        q = q.where(c.customer_id == customer_id)
    if before is not None:
        t, i = before
        q = q.where(or_(c.create_time < t, and_(c.create_time == t, c.id < i)))
    return [
        dict(r._mapping)
        for r in await conn.execute(q.order_by(c.create_time.desc(), c.id.desc()).limit(limit))
    ]


async def subscribed_now(conn: AsyncConnection, now: datetime) -> list[tuple[str, str]]:
    """(builder, customer) of every subscription active at `now`: the margin watch's round."""
    from billing.store import subscriptions as subs

    q = (
        select(subs.c.builder_id, subs.c.customer_id)
        .where(subs.c.start_time <= now, or_(subs.c.end_time.is_(None), subs.c.end_time > now))
        .order_by(subs.c.builder_id, subs.c.customer_id)
    )
    return [(r.builder_id, r.customer_id) for r in await conn.execute(q)]
