"""Alembic environment for payouts: its own version table, its own metadata."""

from common.migrations import run_env
from payouts.store import metadata

run_env(metadata, "alembic_version_payouts")
