"""Webhook endpoints and the delivery log: the queries of service/webhooks.py and billing/webhooks.py
(the tables are in store/spend.py with the alerts they deliver).

Times come from the database's clock, so every replica agrees on what is due: a poll claims what is
due at its transaction's start (now(), which the (state, next_attempt_time) index can serve); the times
it writes are clock_timestamp(), taken after the POSTs its transaction spans.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, literal, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from billing.store.spend import alerts, webhook_deliveries, webhook_endpoints

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


def new_delivery_id() -> str:
    return f"whd_{uuid.uuid4().hex}"


# ---- endpoints --------------------------------------------------------------------------------------


async def get_endpoint(
    conn: AsyncConnection, builder_id: str, *, for_update: bool = False
) -> dict[str, Any] | None:
    query = select(webhook_endpoints).where(webhook_endpoints.c.builder_id == builder_id)
    if for_update:
        query = query.with_for_update()
    row = (await conn.execute(query)).mappings().first()
    return dict(row) if row is not None else None


async def insert_endpoint(conn: AsyncConnection, builder_id: str, url: str, secret: str) -> bool:
    """False when another transaction created the builder's endpoint first (then update it instead)."""
    inserted = await conn.execute(
        insert(webhook_endpoints)
        .values(builder_id=builder_id, url=url, secret=secret)
        .on_conflict_do_nothing(index_elements=["builder_id"])
        .returning(webhook_endpoints.c.builder_id)
    )
    return inserted.first() is not None


async def update_endpoint(conn: AsyncConnection, builder_id: str, url: str, secret: str | None) -> None:
    values: dict[str, Any] = {"url": url, "update_time": func.now()}
    if secret is not None:
        values["secret"] = secret
    await conn.execute(
        webhook_endpoints.update().where(webhook_endpoints.c.builder_id == builder_id).values(**values)
    )


# ---- deliveries ---------------------------------------------------------------------------------------


async def enqueue_delivery(conn: AsyncConnection, alert_id: str) -> str | None:
    """Queue the delivery of an alert to its builder's endpoint, due at once; call it in the alert's
    transaction. None when the builder has no endpoint (nothing to deliver to). Idempotent: an alert
    has one delivery (UNIQUE(alert_id)); a second call returns the first delivery's id."""
    source = (
        select(
            literal(new_delivery_id()).label("id"),
            alerts.c.builder_id,
            alerts.c.id.label("alert_id"),
            webhook_endpoints.c.url,
            literal(PENDING).label("state"),
            func.clock_timestamp().label("next_attempt_time"),
        )
        .select_from(alerts.join(webhook_endpoints, webhook_endpoints.c.builder_id == alerts.c.builder_id))
        .where(alerts.c.id == alert_id)
    )
    inserted = await conn.execute(
        insert(webhook_deliveries)
        .from_select(["id", "builder_id", "alert_id", "url", "state", "next_attempt_time"], source)
        .on_conflict_do_nothing(index_elements=["alert_id"])
        .returning(webhook_deliveries.c.id)
    )
    row = inserted.first()
    if row is not None:
        return row.id
    existing = await conn.execute(
        select(webhook_deliveries.c.id).where(webhook_deliveries.c.alert_id == alert_id)
    )
    found = existing.first()
    return found.id if found is not None else None


async def claim_due(conn: AsyncConnection, limit: int) -> list[dict[str, Any]]:
    """Lock up to `limit` pending deliveries that are due, oldest due first, with their alert and the
    builder's endpoint as it is now (current URL and secret: a rotated secret signs at once). Rows
    another transaction holds are skipped, so two replicas never work the same delivery at once; the
    lock lasts until this transaction ends, with the attempt recorded."""
    query = (
        select(
            webhook_deliveries.c.id.label("delivery_id"),
            webhook_deliveries.c.attempt_count,
            webhook_deliveries.c.url.label("delivery_url"),
            webhook_endpoints.c.url.label("endpoint_url"),
            webhook_endpoints.c.secret,
            alerts,
        )
        .select_from(
            webhook_deliveries.join(alerts, alerts.c.id == webhook_deliveries.c.alert_id).outerjoin(
                webhook_endpoints, webhook_endpoints.c.builder_id == webhook_deliveries.c.builder_id
            )
        )
        .where(
            webhook_deliveries.c.state == PENDING,
            webhook_deliveries.c.next_attempt_time <= func.now(),
        )
        .order_by(webhook_deliveries.c.next_attempt_time, webhook_deliveries.c.id)
        .limit(limit)
        .with_for_update(of=webhook_deliveries, skip_locked=True)
    )
    return [dict(r) for r in (await conn.execute(query)).mappings()]


async def record_attempt(
    conn: AsyncConnection,
    delivery_id: str,
    *,
    url: str,
    status_code: int,
    error: str,
    delivered: bool,
    retry_in_seconds: float | None,
) -> None:
    """Count one attempt: delivered, retried in `retry_in_seconds`, or (None) failed for good."""
    values: dict[str, Any] = {
        "url": url,
        "attempt_count": webhook_deliveries.c.attempt_count + 1,
        "last_status_code": status_code,
        "last_error": error,
    }
    if delivered:
        values.update(state=DELIVERED, deliver_time=func.clock_timestamp(), next_attempt_time=None)
    elif retry_in_seconds is None:
        values.update(state=FAILED, next_attempt_time=None)
    else:
        values["next_attempt_time"] = func.clock_timestamp() + timedelta(seconds=retry_in_seconds)
    await conn.execute(
        webhook_deliveries.update().where(webhook_deliveries.c.id == delivery_id).values(**values)
    )


async def list_deliveries(
    conn: AsyncConnection,
    builder_id: str,
    alert_id: str,
    limit: int,
    after: tuple[datetime, str] | None,
) -> list[dict[str, Any]]:
    """A builder's deliveries, newest first (create_time, then id, descending), after a cursor."""
    d = webhook_deliveries
    query = select(d).where(d.c.builder_id == builder_id)
    if alert_id:
        query = query.where(d.c.alert_id == alert_id)
    if after is not None:
        query = query.where(
            or_(
                d.c.create_time < after[0],
                and_(d.c.create_time == after[0], d.c.id < after[1]),
            )
        )
    query = query.order_by(d.c.create_time.desc(), d.c.id.desc()).limit(limit)
    return [dict(r) for r in (await conn.execute(query)).mappings()]
