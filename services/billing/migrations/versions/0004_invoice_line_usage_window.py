"""invoice_lines: the metering read each line priced (its usage window and ingestion cutoffs)

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_COLUMNS = ("usage_start_time", "usage_end_time", "ingested_after_time", "ingested_before_time")


def upgrade() -> None:
    for name in _COLUMNS:
        op.add_column("invoice_lines", sa.Column(name, sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    for name in reversed(_COLUMNS):
        op.drop_column("invoice_lines", name)
