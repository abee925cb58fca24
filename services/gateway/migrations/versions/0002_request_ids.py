"""Request ids and outbox event ids scoped by builder.

request_ids: one row per (builder, client-supplied chat request id) with the body's fingerprint and
the attempt numbers reserved so far (README "Request ids"). usage_outbox: event ids are unique per
builder, as in metering, so two builders using the same request id both get their events recorded.
Rows written before this revision get builder_id '' (they are delivered or parked within the
retention window and never compared with new rows of a real builder).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "request_ids",
        sa.Column("builder_id", sa.String(128), nullable=False),
        sa.Column("request_id", sa.String(100), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("reserved_attempts", sa.BigInteger(), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("builder_id", "request_id", name="pk_request_ids"),
    )
    op.add_column("usage_outbox", sa.Column("builder_id", sa.String(128), nullable=False, server_default=""))
    op.drop_constraint("uq_usage_outbox_event_id", "usage_outbox", type_="unique")
    op.create_unique_constraint(
        "uq_usage_outbox_builder_id_event_id", "usage_outbox", ["builder_id", "event_id"]
    )


def downgrade() -> None:
    op.drop_constraint("uq_usage_outbox_builder_id_event_id", "usage_outbox", type_="unique")
    op.create_unique_constraint("uq_usage_outbox_event_id", "usage_outbox", ["event_id"])
    op.drop_column("usage_outbox", "builder_id")
    op.drop_table("request_ids")
