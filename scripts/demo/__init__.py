"""The demo stories `make demo` plays against a running suite, one module per context."""

from __future__ import annotations

from pathlib import Path

import grpc

from common.security import TokenSource, open_channel

# The local credentials folder `scripts/suite.py` creates before starting the services.
CREDENTIALS = Path(__file__).resolve().parents[2] / ".tollgate" / "credentials"


def operator_channel(address: str) -> grpc.aio.Channel:
    """A channel to a service whose calls carry the local operator's credential."""
    return open_channel(address, token=TokenSource(path=CREDENTIALS / "operator.token"))
