"""The `tollgate` command under test: run in-process (Typer's CliRunner) against the real servers of the
billing and gateway fixtures, with the test session's credentials.

The servers live on the test session's event loop, so a command runs on a worker thread
(`await cli(...)`): the command blocks on its gRPC call while the loop keeps serving it.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator

import pytest
import structlog
from typer.testing import CliRunner

# The servers' fixtures, shared rather than copied (pytest picks up fixtures a conftest imports).
from tests.billing.conftest import fast_metering_address, stack  # noqa: F401
from tests.gateway.conftest import make_stack  # noqa: F401
from tollgatecli.app import app


@pytest.fixture(autouse=True)
def server_logs_off_stdout() -> Iterator[None]:
    """CliRunner swaps sys.stdout while a command runs; the servers (another thread) must not log into
    what the command printed, so their structlog lines go to the real stderr meanwhile."""
    previous = structlog.get_config()
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.__stderr__))
    yield
    structlog.configure(**previous)


class Run:
    """`await cli("keys", "list", token=..., gateway=...)`: a Result with exit_code, stdout, stderr."""

    def __init__(self) -> None:
        self.runner = CliRunner()

    def sync(self, *args: str, env: dict[str, str] | None = None):
        return self.runner.invoke(app, list(args), env=env, catch_exceptions=False)

    async def __call__(self, *args: str, env: dict[str, str] | None = None):
        return await asyncio.to_thread(self.sync, *args, env=env)


@pytest.fixture
def cli() -> Run:
    return Run()
