"""spend controls, leases, alerts, webhooks; refunds and credit-note settlement

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("builder_id", sa.String(length=128), nullable=False),
        sa.Column("customer_id", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("dedupe_key", sa.String(length=256), nullable=False),
        sa.Column("control_id", sa.String(length=64), server_default="", nullable=False),
        sa.Column("threshold_percent", sa.Integer(), server_default="0", nullable=False),
        sa.Column("charge_key", sa.String(length=64), server_default="", nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("currency_code", sa.String(length=3), nullable=False),
        sa.Column("amount", sa.Numeric(precision=38, scale=9), nullable=False),
        sa.Column("limit_amount", sa.Numeric(precision=38, scale=9), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
        sa.UniqueConstraint("builder_id", "dedupe_key", name=op.f("uq_alerts_builder_id_dedupe_key")),
    )
    op.create_index(
        op.f("ix_alerts_builder_id_create_time"), "alerts", ["builder_id", "create_time"], unique=False
    )
    op.create_table(
        "webhook_endpoints",
        sa.Column("builder_id", sa.String(length=128), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("secret", sa.String(length=128), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("update_time", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("builder_id", name=op.f("pk_webhook_endpoints")),
    )
    op.create_table(
        "spend_controls",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("builder_id", sa.String(length=128), nullable=False),
        sa.Column("customer_id", sa.String(length=128), nullable=False),
        sa.Column("scope_kind", sa.String(length=16), nullable=False),
        sa.Column("api_key_id", sa.String(length=64), server_default="", nullable=False),
        sa.Column("tag_key", sa.String(length=64), server_default="", nullable=False),
        sa.Column("tag_value", sa.String(length=256), server_default="", nullable=False),
        sa.Column("currency_code", sa.String(length=3), nullable=False),
        sa.Column("hard_cap", sa.Numeric(precision=38, scale=9), nullable=True),
        sa.Column("alert_budget", sa.Numeric(precision=38, scale=9), nullable=True),
        sa.Column("threshold_percents", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("on_cap", sa.String(length=16), nullable=False),
        sa.Column("degrade_model", sa.String(length=128), server_default="", nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("update_time", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "hard_cap IS NULL OR hard_cap >= 0", name=op.f("ck_spend_controls_hard_cap_not_negative")
        ),
        sa.ForeignKeyConstraint(
            ["builder_id", "customer_id"],
            ["customers.builder_id", "customers.id"],
            name=op.f("fk_spend_controls_builder_id_customers"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_spend_controls")),
        sa.UniqueConstraint(
            "builder_id",
            "customer_id",
            "scope_kind",
            "api_key_id",
            "tag_key",
            "tag_value",
            name=op.f("uq_spend_controls_builder_id_customer_id_scope_kind_api_key_id_tag_key_tag_value"),
        ),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("builder_id", sa.String(length=128), nullable=False),
        sa.Column("alert_id", sa.String(length=64), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempt_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_status_code", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), server_default="", nullable=False),
        sa.Column("next_attempt_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deliver_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("create_time", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["alert_id"], ["alerts.id"], name=op.f("fk_webhook_deliveries_alert_id_alerts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
        sa.UniqueConstraint("alert_id", name=op.f("uq_webhook_deliveries_alert_id")),
    )
    op.create_index(
        op.f("ix_webhook_deliveries_builder_id_create_time"),
        "webhook_deliveries",
        ["builder_id", "create_time"],
        unique=False,
    )
    op.create_index(
        op.f("ix_webhook_deliveries_state_next_attempt_time"),
        "webhook_deliveries",
        ["state", "next_attempt_time"],
        unique=False,
    )
    op.create_table(
        "refunds",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("builder_id", sa.String(length=128), nullable=False),
        sa.Column("customer_id", sa.String(length=128), nullable=False),
        sa.Column("invoice_id", sa.String(length=64), nullable=False),
        sa.Column("credit_note_id", sa.String(length=64), nullable=False),
        sa.Column("currency_code", sa.String(length=3), nullable=False),
        sa.Column("amount", sa.Numeric(precision=38, scale=9), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("external_reference", sa.String(length=128), server_default="", nullable=False),
        sa.Column("failure_reason", sa.Text(), server_default="", nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("update_time", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("amount > 0", name=op.f("ck_refunds_amount_positive")),
        sa.ForeignKeyConstraint(
            ["credit_note_id"], ["credit_notes.id"], name=op.f("fk_refunds_credit_note_id_credit_notes")
        ),
        sa.ForeignKeyConstraint(["invoice_id"], ["invoices.id"], name=op.f("fk_refunds_invoice_id_invoices")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refunds")),
    )
    op.create_index(
        op.f("ix_refunds_builder_id_create_time"), "refunds", ["builder_id", "create_time"], unique=False
    )
    op.create_table(
        "spend_periods",
        sa.Column("control_id", sa.String(length=64), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("spent", sa.Numeric(precision=38, scale=9), server_default="0", nullable=False),
        sa.Column("held", sa.Numeric(precision=38, scale=9), server_default="0", nullable=False),
        sa.Column(
            "reached_percents", postgresql.JSONB(astext_type=sa.Text()), server_default="[]", nullable=False
        ),
        sa.CheckConstraint("held >= 0", name=op.f("ck_spend_periods_held_not_negative")),
        sa.CheckConstraint("spent >= 0", name=op.f("ck_spend_periods_spent_not_negative")),
        sa.ForeignKeyConstraint(
            ["control_id"],
            ["spend_controls.id"],
            name=op.f("fk_spend_periods_control_id_spend_controls"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("control_id", "period_start", name=op.f("pk_spend_periods")),
    )
    op.create_table(
        "spend_leases",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("builder_id", sa.String(length=128), nullable=False),
        sa.Column("control_id", sa.String(length=64), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("holder", sa.String(length=128), nullable=False),
        sa.Column("granted", sa.Numeric(precision=38, scale=9), nullable=False),
        sa.Column("consumed", sa.Numeric(precision=38, scale=9), server_default="0", nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("expire_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("update_time", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("consumed >= 0", name=op.f("ck_spend_leases_consumed_not_negative")),
        sa.CheckConstraint("granted >= 0", name=op.f("ck_spend_leases_granted_not_negative")),
        sa.ForeignKeyConstraint(
            ["control_id", "period_start"],
            ["spend_periods.control_id", "spend_periods.period_start"],
            name=op.f("fk_spend_leases_control_id_spend_periods"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_spend_leases")),
    )
    op.create_index(
        op.f("ix_spend_leases_control_id_period_start"),
        "spend_leases",
        ["control_id", "period_start"],
        unique=False,
    )
    op.create_index(
        op.f("ix_spend_leases_state_expire_time"), "spend_leases", ["state", "expire_time"], unique=False
    )
    op.add_column(
        "credit_notes", sa.Column("settlement", sa.String(length=16), server_default="", nullable=False)
    )
    op.add_column(
        "credit_notes",
        sa.Column("due_reduced", sa.Numeric(precision=38, scale=9), server_default="0", nullable=False),
    )
    op.add_column(
        "credit_notes",
        sa.Column("wallet_credited", sa.Numeric(precision=38, scale=9), server_default="0", nullable=False),
    )
    op.add_column(
        "credit_notes",
        sa.Column("refunded", sa.Numeric(precision=38, scale=9), server_default="0", nullable=False),
    )


def downgrade() -> None:
    op.drop_column("credit_notes", "refunded")
    op.drop_column("credit_notes", "wallet_credited")
    op.drop_column("credit_notes", "due_reduced")
    op.drop_column("credit_notes", "settlement")
    op.drop_index(op.f("ix_spend_leases_state_expire_time"), table_name="spend_leases")
    op.drop_index(op.f("ix_spend_leases_control_id_period_start"), table_name="spend_leases")
    op.drop_table("spend_leases")
    op.drop_table("spend_periods")
    op.drop_index(op.f("ix_refunds_builder_id_create_time"), table_name="refunds")
    op.drop_table("refunds")
    op.drop_index(op.f("ix_webhook_deliveries_state_next_attempt_time"), table_name="webhook_deliveries")
    op.drop_index(op.f("ix_webhook_deliveries_builder_id_create_time"), table_name="webhook_deliveries")
    op.drop_table("webhook_deliveries")
    op.drop_table("spend_controls")
    op.drop_table("webhook_endpoints")
    op.drop_index(op.f("ix_alerts_builder_id_create_time"), table_name="alerts")
    op.drop_table("alerts")
