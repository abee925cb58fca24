"""payouts schema: payees, accounts, append-only transfers, holds, feed entries and cursor, payouts

Revision ID: 0001
Revises: (none)
Create Date: 2026-12-04 15:17:21.697578
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "accounts",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("owner", sa.String(length=80), nullable=False),
        sa.Column("currency_code", sa.String(length=3), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("bound", sa.String(length=16), nullable=False),
        sa.Column("balance", sa.Numeric(precision=38, scale=9), server_default="0", nullable=False),
        sa.CheckConstraint(
            "(bound = 'non_negative' AND balance >= 0) OR (bound = 'non_positive' AND balance <= 0) "
            "OR bound = 'none'",
            name=op.f("ck_accounts_within_bound"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
        sa.UniqueConstraint(
            "owner", "currency_code", "purpose", name=op.f("uq_accounts_owner_currency_code_purpose")
        ),
    )
    op.create_table(
        "feed_cursor",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("page_token", sa.Text(), server_default="", nullable=False),
        sa.Column("last_sequence", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("update_time", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_feed_cursor")),
    )
    op.create_table(
        "feed_entries",
        sa.Column("sequence", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("builder_id", sa.String(length=128), nullable=False),
        sa.Column("app_id", sa.String(length=128), nullable=False),
        sa.Column("customer_id", sa.String(length=128), nullable=False),
        sa.Column("invoice_id", sa.String(length=128), nullable=False),
        sa.Column("line_position", sa.Integer(), nullable=False),
        sa.Column("workflow", sa.String(length=128), nullable=False),
        sa.Column("meter_key", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("reason", sa.String(length=24), nullable=False),
        sa.Column("amount", sa.Numeric(precision=38, scale=9), nullable=False),
        sa.Column("currency_code", sa.String(length=3), nullable=False),
        sa.Column("source_id", sa.String(length=128), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("transfer_id", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("sequence", name=op.f("pk_feed_entries")),
    )
    op.create_index(
        "ix_feed_entries_builder_time",
        "feed_entries",
        ["builder_id", "currency_code", "create_time"],
        unique=False,
    )
    op.create_index("ix_feed_entries_invoice", "feed_entries", ["invoice_id"], unique=False)
    op.create_table(
        "idempotency_keys",
        sa.Column("scope", sa.String(length=64), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("reply", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("create_time", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("scope", "request_id", name=op.f("pk_idempotency_keys")),
    )
    op.create_table(
        "payees",
        sa.Column("id", sa.String(length=80), nullable=False),
        sa.Column("currency_code", sa.String(length=3), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("minimum_amount", sa.Numeric(precision=38, scale=9), nullable=False),
        sa.Column("method_reference", sa.String(length=256), server_default="", nullable=False),
        sa.Column("hold_days", sa.Integer(), nullable=False),
        sa.Column("schedule", sa.String(length=16), server_default="monthly", nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("update_time", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("kind IN ('builder', 'provider')", name=op.f("ck_payees_kind_known")),
        sa.CheckConstraint("hold_days BETWEEN 0 AND 365", name=op.f("ck_payees_hold_days_range")),
        sa.CheckConstraint("minimum_amount >= 0", name=op.f("ck_payees_minimum_not_negative")),
        sa.PrimaryKeyConstraint("id", "currency_code", name=op.f("pk_payees")),
    )
    op.create_table(
        "payouts",
        sa.Column("id", sa.String(length=160), nullable=False),
        sa.Column("payee_id", sa.String(length=80), nullable=False),
        sa.Column("currency_code", sa.String(length=3), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("amount", sa.Numeric(precision=38, scale=9), nullable=False),
        sa.Column("available_consumed", sa.Numeric(precision=38, scale=9), nullable=False),
        sa.Column("clawback_offset", sa.Numeric(precision=38, scale=9), nullable=False),
        sa.Column("method_reference", sa.String(length=256), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("external_reference", sa.String(length=128), server_default="", nullable=False),
        sa.Column("failure_reason", sa.String(length=500), server_default="", nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("settle_time", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("state IN ('pending', 'paid', 'failed')", name=op.f("ck_payouts_state_known")),
        sa.CheckConstraint(
            "amount = available_consumed - clawback_offset", name=op.f("ck_payouts_amount_consumed")
        ),
        sa.CheckConstraint("amount > 0", name=op.f("ck_payouts_amount_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payouts")),
        sa.UniqueConstraint(
            "payee_id", "currency_code", "period", name=op.f("uq_payouts_payee_id_currency_code_period")
        ),
    )
    op.create_index("ix_payouts_period", "payouts", ["period", "payee_id", "currency_code"], unique=False)
    op.create_table(
        "transfers",
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("debit_account_id", sa.BigInteger(), nullable=False),
        sa.Column("credit_account_id", sa.BigInteger(), nullable=False),
        sa.Column("amount", sa.Numeric(precision=38, scale=9), nullable=False),
        sa.Column("currency_code", sa.String(length=3), nullable=False),
        sa.Column("reason", sa.String(length=24), nullable=False),
        sa.Column("source_kind", sa.String(length=24), nullable=False),
        sa.Column("source_id", sa.String(length=200), nullable=False),
        sa.Column("corrects", sa.String(length=200), nullable=True),
        sa.Column("payee_id", sa.String(length=80), nullable=True),
        sa.Column("effective_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("available_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("post_time", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("amount > 0", name=op.f("ck_transfers_amount_positive")),
        sa.CheckConstraint("debit_account_id <> credit_account_id", name=op.f("ck_transfers_two_accounts")),
        sa.ForeignKeyConstraint(["corrects"], ["transfers.id"], name=op.f("fk_transfers_corrects_transfers")),
        sa.ForeignKeyConstraint(
            ["credit_account_id"], ["accounts.id"], name=op.f("fk_transfers_credit_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["debit_account_id"], ["accounts.id"], name=op.f("fk_transfers_debit_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transfers")),
        sa.UniqueConstraint("seq", name=op.f("uq_transfers_seq")),
    )
    op.create_index("ix_transfers_effective_time", "transfers", ["effective_time"], unique=False)
    op.create_index(
        "ix_transfers_payee_time", "transfers", ["payee_id", "currency_code", "effective_time"], unique=False
    )
    op.create_index("ix_transfers_source_id", "transfers", ["source_id"], unique=False)
    op.create_table(
        "holds",
        sa.Column("transfer_id", sa.String(length=200), nullable=False),
        sa.Column("available_time", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["transfer_id"], ["transfers.id"], name=op.f("fk_holds_transfer_id_transfers")
        ),
        sa.PrimaryKeyConstraint("transfer_id", name=op.f("pk_holds")),
    )
    op.create_index(
        "ix_holds_available_time_transfer_id", "holds", ["available_time", "transfer_id"], unique=False
    )


def downgrade() -> None:

    op.drop_index("ix_holds_available_time_transfer_id", table_name="holds")
    op.drop_table("holds")
    op.drop_index("ix_transfers_source_id", table_name="transfers")
    op.drop_index("ix_transfers_payee_time", table_name="transfers")
    op.drop_index("ix_transfers_effective_time", table_name="transfers")
    op.drop_table("transfers")
    op.drop_index("ix_payouts_period", table_name="payouts")
    op.drop_table("payouts")
    op.drop_table("payees")
    op.drop_table("idempotency_keys")
    op.drop_index("ix_feed_entries_invoice", table_name="feed_entries")
    op.drop_index("ix_feed_entries_builder_time", table_name="feed_entries")
    op.drop_table("feed_entries")
    op.drop_table("feed_cursor")
    op.drop_table("accounts")
