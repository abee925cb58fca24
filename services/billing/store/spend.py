"""Spend controls, their per-period counters and leases, alerts, and webhook delivery: tables and
queries (the SQL of billing/service/spend.py and billing/webhooks.py).

Money columns are NUMERIC(38, 9) in the customer's currency, at the customer's price, unrounded.
"""

from __future__ import annotations

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
    func,
)
from sqlalchemy.dialects.postgresql import JSONB

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
