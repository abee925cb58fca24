"""Test keys: api_keys.test, immutable.

A test key's usage is recorded with metering's TEST status (README "Test keys"). The flag is set when
the key is inserted and never changes: a trigger refuses any UPDATE that changes it, so no code path,
present or future, can turn a test key's traffic billable or a live key's free. Keys created before
this revision are live (false), as they always were.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("api_keys", sa.Column("test", sa.Boolean(), nullable=False, server_default="false"))
    op.execute(
        """
        CREATE FUNCTION api_keys_test_is_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.test IS DISTINCT FROM OLD.test THEN
                RAISE EXCEPTION 'api_keys.test cannot change: a key is live or test for its whole life'
                    USING ERRCODE = 'check_violation';
            END IF;
            RETURN NEW;
        END
        $$
        """
    )
    op.execute(
        """
        CREATE TRIGGER tr_api_keys_test_is_immutable BEFORE UPDATE OF test ON api_keys
        FOR EACH ROW EXECUTE FUNCTION api_keys_test_is_immutable()
        """
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER tr_api_keys_test_is_immutable ON api_keys")
    op.execute("DROP FUNCTION api_keys_test_is_immutable()")
    op.drop_column("api_keys", "test")
