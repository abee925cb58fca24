"""Catalog, API keys, idempotency keys and the usage outbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "providers",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("base_url", sa.Text(), nullable=False),
        sa.Column("credential_env", sa.String(128), nullable=False, server_default=""),
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("name", name="pk_providers"),
    )
    op.create_table(
        "models",
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("name", name="pk_models"),
    )
    op.create_table(
        "offerings",
        sa.Column("model_name", sa.String(128), nullable=False),
        sa.Column("offering_id", sa.String(64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("upstream_model", sa.String(256), nullable=False),
        sa.Column("base_url", sa.Text(), nullable=False, server_default=""),
        sa.Column("credential_env", sa.String(128), nullable=False, server_default=""),
        sa.Column("input_price_per_mtok", sa.Numeric(38, 9), nullable=False),
        sa.Column("output_price_per_mtok", sa.Numeric(38, 9), nullable=False),
        sa.Column("weight", sa.Integer(), nullable=False, server_default="1"),
        sa.Column("enabled", sa.Boolean(), nullable=False, server_default="true"),
        sa.PrimaryKeyConstraint("model_name", "offering_id", name="pk_offerings"),
        sa.ForeignKeyConstraint(
            ["model_name"], ["models.name"], name="fk_offerings_model_name_models", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["provider"], ["providers.name"], name="fk_offerings_provider_providers"),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("secret_prefix", sa.String(16), nullable=False),
        sa.Column("builder_id", sa.String(128), nullable=False),
        sa.Column("app_id", sa.String(128), nullable=False),
        sa.Column("customer_id", sa.String(128), nullable=False),
        sa.Column("display_name", sa.String(256), nullable=False, server_default=""),
        sa.Column("default_tags", postgresql.JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("requests_per_minute", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("tokens_per_minute", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("revoke_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.UniqueConstraint("secret_hash", name="uq_api_keys_secret_hash"),
    )
    op.create_index("ix_api_keys_builder_id_create_time", "api_keys", ["builder_id", "create_time"])
    op.create_table(
        "usage_outbox",
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("event_id", sa.String(160), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("delivered_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("parked_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("seq", name="pk_usage_outbox"),
        sa.UniqueConstraint("event_id", name="uq_usage_outbox_event_id"),
    )
    op.create_index(
        "ix_usage_outbox_pending",
        "usage_outbox",
        ["seq"],
        postgresql_where=sa.text("delivered_time IS NULL AND parked_reason IS NULL"),
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("scope", sa.String(64), nullable=False),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("reply", postgresql.JSONB(), nullable=True),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("scope", "request_id", name="pk_idempotency_keys"),
    )


def downgrade() -> None:
    op.drop_table("idempotency_keys")
    op.drop_index("ix_usage_outbox_pending", table_name="usage_outbox")
    op.drop_table("usage_outbox")
    op.drop_index("ix_api_keys_builder_id_create_time", table_name="api_keys")
    op.drop_table("api_keys")
    op.drop_table("offerings")
    op.drop_table("models")
    op.drop_table("providers")
