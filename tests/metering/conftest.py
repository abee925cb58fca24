"""Fixtures for the metering API tests: one real server per module, a channel and a stub on it.
Helpers shared by the modules live in metering_kit.py next to this file."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

# --import-mode=importlib puts no test folder on sys.path; the helper module is imported by name.
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from metering_kit import migrated_metering_database, server_settings  # noqa: E402

from tests.conftest import auth_channel  # noqa: E402
from tollgate.metering.v1 import metering_pb2_grpc  # noqa: E402


@pytest.fixture(scope="module")
async def metering_address(make_database) -> AsyncIterator[str]:
    """A real metering server on a free loopback port, with its own migrated database. Overrides the
    suite-wide fixture of tests/conftest.py only to widen the retention window (metering_kit)."""
    from metering.app import start

    running = await start(server_settings(await migrated_metering_database(make_database)))
    yield f"127.0.0.1:{running.port}"
    await running.stop(0)


@pytest.fixture(scope="module")
async def channel(metering_address: str) -> AsyncIterator[grpc.aio.Channel]:
    options = [("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)]
    async with auth_channel(metering_address, options=options) as ch:
        yield ch


@pytest.fixture(scope="module")
def stub(channel: grpc.aio.Channel) -> metering_pb2_grpc.MeteringServiceStub:
    return metering_pb2_grpc.MeteringServiceStub(channel)
