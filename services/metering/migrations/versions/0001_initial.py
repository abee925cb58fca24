"""Meters, idempotency keys, the permanent event-id registry and the monthly-partitioned events table.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
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
        "meters",
        sa.Column("id", postgresql.UUID(as_uuid=False), nullable=False),
        sa.Column("builder_id", sa.String(128), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("display_name", sa.String(256), nullable=False, server_default=""),
        sa.Column("event_types", postgresql.ARRAY(sa.Text), nullable=False),
        sa.Column("aggregation", sa.SmallInteger, nullable=False),
        sa.Column("quantity", sa.String(64), nullable=False, server_default=""),
        sa.Column("unique_tag", sa.String(64), nullable=False, server_default=""),
        sa.Column("tag_filters", postgresql.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("statuses", postgresql.ARRAY(sa.SmallInteger), nullable=False),
        sa.Column("bucket_quantity", sa.String(64), nullable=False, server_default=""),
        sa.Column("buckets", postgresql.JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
        sa.Column("state", sa.SmallInteger, nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("archive_time", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_meters"),
        sa.UniqueConstraint("builder_id", "key", name="uq_meters_builder_id_key"),
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("scope", sa.String(64), nullable=False),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("reply", postgresql.JSONB, nullable=True),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("scope", "request_id", name="pk_idempotency_keys"),
    )
    # The dedup registry: one row per (builder, event id), forever. Not partitioned, so the primary
    # key alone guarantees an id is accepted once whatever its occurred_time.
    op.create_table(
        "event_ids",
        sa.Column("builder_id", sa.String(128), nullable=False),
        sa.Column("event_id", sa.String(128), nullable=False),
        sa.Column("content_hash", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("builder_id", "event_id", name="pk_event_ids"),
    )
    # PostgreSQL 15 has no identity columns on partitioned tables: seq draws from its own sequence.
    # Partitions (events_pYYYY_MM) are created on demand by the store; indexes cascade to them.
    op.execute("CREATE SEQUENCE events_seq_seq AS bigint CACHE 1000")
    op.execute(
        """
        CREATE TABLE events (
            seq bigint NOT NULL DEFAULT nextval('events_seq_seq'),
            builder_id text NOT NULL,
            event_id text NOT NULL,
            type text NOT NULL,
            occurred_time timestamptz NOT NULL,
            app_id text NOT NULL DEFAULT '',
            customer_id text NOT NULL,
            status smallint NOT NULL,
            run_id text,
            tags jsonb NOT NULL DEFAULT '{}'::jsonb,
            quantities jsonb NOT NULL DEFAULT '{}'::jsonb,
            ingested_time timestamptz NOT NULL DEFAULT clock_timestamp()
        ) PARTITION BY RANGE (occurred_time)
        """
    )
    op.execute("ALTER SEQUENCE events_seq_seq OWNED BY events.seq")
    # QueryUsage for one customer, and ListEvents filtered by customer.
    op.execute(
        "CREATE INDEX ix_events_builder_id_customer_id_occurred_time "
        "ON events (builder_id, customer_id, occurred_time)"
    )
    # QueryUsage for all customers of a builder, and ListEvents newest first (scanned backwards).
    op.execute(
        "CREATE INDEX ix_events_builder_id_occurred_time_seq ON events (builder_id, occurred_time, seq)"
    )
    # ListEvents for one run.
    op.execute(
        "CREATE INDEX ix_events_builder_id_run_id_occurred_time "
        "ON events (builder_id, run_id, occurred_time, seq) WHERE run_id IS NOT NULL"
    )


def downgrade() -> None:
    op.execute("DROP TABLE events")
    op.drop_table("event_ids")
    op.drop_table("idempotency_keys")
    op.drop_table("meters")
