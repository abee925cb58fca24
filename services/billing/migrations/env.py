"""Alembic environment for billing: its own version table, its own metadata."""

from billing.store import metadata
from common.migrations import run_env

run_env(metadata, "alembic_version_billing")
