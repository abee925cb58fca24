"""Where the services answer, which credential to present, and what a failed call means to the shell.

Addresses default to `make run`'s ports (scripts/suite.py DEFAULT_PORTS; a test keeps the two equal) and
are overridden by flags or TOLLGATE_<SERVICE>_ADDRESS. The credential is, in order: --token /
TOLLGATE_TOKEN; else the operator token in --credentials-dir / TOLLGATE_CREDENTIALS_DIR; else the
`.tollgate/credentials/operator.token` that `make run` writes, found from the current folder upwards (as
git finds .git) or next to this installation.

The command is a short-lived, one-call-at-a-time client, so it uses the blocking gRPC API: no event loop
to own, and it runs unchanged inside a test whose servers live on another thread's loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tollgate.billing.v1 import billing_pb2_grpc
from tollgate.gateway.v1 import admin_pb2_grpc
from tollgate.metering.v1 import metering_pb2_grpc
from tollgate.payouts.v1 import payouts_pb2_grpc

# make run's gRPC ports (scripts/suite.py DEFAULT_PORTS) and the gateway's OpenAI-compatible door.
DEFAULT_ADDRESSES = {
    "metering": "127.0.0.1:50051",
    "gateway": "127.0.0.1:50052",
    "billing": "127.0.0.1:50053",
    "payouts": "127.0.0.1:50054",
}
DEFAULT_GATEWAY_URL = "http://127.0.0.1:8080/v1"
SERVICES = tuple(DEFAULT_ADDRESSES)
OPERATOR_TOKEN = "operator.token"
# Most calls answer in milliseconds; a period close may wait on metering's settle window.
DEFAULT_TIMEOUT_SECONDS = 30.0

_STUBS = {
    "metering": metering_pb2_grpc.MeteringServiceStub,
    "gateway": admin_pb2_grpc.GatewayAdminServiceStub,
    "billing": billing_pb2_grpc.BillingServiceStub,
    "payouts": payouts_pb2_grpc.PayoutsServiceStub,
}


class Exit(IntEnum):
    """The command's exit codes (stated in `tollgate --help` and the README)."""

    OK = 0
    ERROR = 1  # anything else: a bug, an unexpected status
    USAGE = 2  # a bad command line (unknown option, missing argument), or a file that cannot be read
    AUTH = 3  # UNAUTHENTICATED or PERMISSION_DENIED, or no credential found
    REQUEST = 4  # NOT_FOUND, INVALID_ARGUMENT, ALREADY_EXISTS, FAILED_PRECONDITION, OUT_OF_RANGE
    UNAVAILABLE = 5  # the service cannot be reached or did not answer in time
    DIFFERENCES = 6  # `reconcile` ran and found figures that disagree


EXIT_CODES_HELP = (
    "Exit codes: 0 ok; 1 unexpected error; 2 usage (bad option or file); 3 unauthenticated or not "
    "allowed; 4 not found or invalid argument; 5 service unavailable or timed out; 6 reconcile not clean."
)

_EXIT_OF_STATUS = {
    grpc.StatusCode.UNAUTHENTICATED: Exit.AUTH,
    grpc.StatusCode.PERMISSION_DENIED: Exit.AUTH,
    grpc.StatusCode.NOT_FOUND: Exit.REQUEST,
    grpc.StatusCode.INVALID_ARGUMENT: Exit.REQUEST,
    grpc.StatusCode.ALREADY_EXISTS: Exit.REQUEST,
    grpc.StatusCode.FAILED_PRECONDITION: Exit.REQUEST,
    grpc.StatusCode.OUT_OF_RANGE: Exit.REQUEST,
    grpc.StatusCode.RESOURCE_EXHAUSTED: Exit.REQUEST,
    grpc.StatusCode.UNAVAILABLE: Exit.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED: Exit.UNAVAILABLE,
}


class CliError(Exception):
    """A failure to report on one line, with the exit code it maps to."""

    def __init__(self, message: str, code: Exit = Exit.ERROR) -> None:
        super().__init__(message)
        self.message = " ".join(message.split())  # one line, whatever the server sent
        self.code = code


def find_credentials_dir(explicit: str | None = None) -> Path | None:
    if explicit:
        return Path(explicit)
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        candidate = folder / ".tollgate" / "credentials"
        if candidate.is_dir():
            return candidate
    beside = Path(__file__).resolve().parents[2] / ".tollgate" / "credentials"
    return beside if beside.is_dir() else None


@dataclass
class Client:
    """The connection settings of one invocation, and its channels (opened on first use)."""

    addresses: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_ADDRESSES))
    token: str | None = None
    credentials_dir: str | None = None
    timeout: float = DEFAULT_TIMEOUT_SECONDS
    tls_ca_file: str | None = None
    gateway_url: str = DEFAULT_GATEWAY_URL
    _channels: dict[str, grpc.Channel] = field(default_factory=dict, repr=False)

    # ---- the credential ------------------------------------------------------------------------

    def credential(self) -> str:
        if self.token:
            return self.token.strip()
        folder = find_credentials_dir(self.credentials_dir)
        path = folder / OPERATOR_TOKEN if folder else None
        if path is None or not path.is_file():
            where = f" (no {path})" if path else ""
            raise CliError(
                f"no credential{where}: start the suite with `make run` (it writes "
                ".tollgate/credentials/operator.token), or pass --token / TOLLGATE_TOKEN or "
                "--credentials-dir / TOLLGATE_CREDENTIALS_DIR",
                Exit.AUTH,
            )
        return path.read_text().strip()

    # ---- channels and calls ----------------------------------------------------------------------

    def channel(self, service: str) -> grpc.Channel:
        if service not in self._channels:
            address = self.addresses[service]
            if self.tls_ca_file:
                creds = grpc.ssl_channel_credentials(Path(self.tls_ca_file).read_bytes())
                self._channels[service] = grpc.secure_channel(address, creds)
            else:
                self._channels[service] = grpc.insecure_channel(address)
        return self._channels[service]

    def call(self, service: str, method: str, request: Any, *, timeout: float | None = None) -> Any:
        """One RPC with the caller's credential and a deadline; a failure becomes a CliError."""
        metadata = (("authorization", f"Bearer {self.credential()}"),)
        stub = _STUBS[service](self.channel(service))
        try:
            return getattr(stub, method)(request, metadata=metadata, timeout=timeout or self.timeout)
        except grpc.RpcError as exc:
            raise self._error(service, method, exc) from None

    def pages(self, service: str, method: str, request: Any, items: str) -> list[Any]:
        """Every item of a paged List* call, following next_page_token."""
        out: list[Any] = []
        while True:
            reply = self.call(service, method, request)
            out.extend(getattr(reply, items))
            if not reply.next_page_token:
                return out
            request.page_token = reply.next_page_token

    def health(self, service: str, timeout: float = 2.0) -> str:
        """SERVING, NOT_SERVING or UNREACHABLE. The health check needs no credential."""
        try:
            reply = health_pb2_grpc.HealthStub(self.channel(service)).Check(
                health_pb2.HealthCheckRequest(), timeout=timeout
            )
        except grpc.RpcError:
            return "UNREACHABLE"
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)

    def _error(self, service: str, method: str, exc: grpc.RpcError) -> CliError:
        code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
        details = (exc.details() if hasattr(exc, "details") else "") or ""
        address = self.addresses[service]
        if code == grpc.StatusCode.UNAVAILABLE:
            return CliError(
                f"{service} at {address} is unavailable ({details[:120]}); is the suite running "
                f"(`make run`)? Another address: --{service}-address or "
                f"TOLLGATE_{service.upper()}_ADDRESS",
                Exit.UNAVAILABLE,
            )
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return CliError(
                f"{service} at {address} did not answer {method} within {self.timeout:g} s "
                "(raise it with --timeout)",
                Exit.UNAVAILABLE,
            )
        if code == grpc.StatusCode.UNAUTHENTICATED:
            return CliError(
                f"{service} refused the credential: {details} (check --token / TOLLGATE_TOKEN or the "
                "operator token under --credentials-dir)",
                Exit.AUTH,
            )
        return CliError(f"{service} {method}: {code.name}: {details}", _EXIT_OF_STATUS.get(code, Exit.ERROR))

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()
