"""Alembic environment for metering: its own version table, its own metadata."""

from common.migrations import run_env
from metering.store import metadata

run_env(metadata, "alembic_version_metering")
