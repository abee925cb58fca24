"""Refunds: money owed back to a customer for a credit note on a paid invoice (tables and queries).

A refund is PENDING until the operator marks it PAID (with the processor's reference) or FAILED (its
amount then goes to the customer's wallet in the same transaction, so nothing owed is lost).
"""

from __future__ import annotations

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
)

from billing.store import AMOUNT, metadata

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
