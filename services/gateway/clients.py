"""Typed wrappers over other contexts' gRPC stubs; every call carries a deadline.

- MeteringClient: delivers outbox batches (IngestEvents).
- Entitlements: the seam where billing's spend checks will plug in. Disabled by default: AllowAll is
  used, and enabling it fails start-up until billing publishes its entitlement contract.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import grpc

from common.settings import SettingsError
from tollgate.metering.v1 import metering_pb2, metering_pb2_grpc


@dataclass(frozen=True, slots=True)
class IngestResult:
    event_id: str
    outcome: str  # accepted | duplicate | conflict | invalid
    reason: str


_OUTCOMES = {
    metering_pb2.INGEST_OUTCOME_ACCEPTED: "accepted",
    metering_pb2.INGEST_OUTCOME_DUPLICATE: "duplicate",
    metering_pb2.INGEST_OUTCOME_CONFLICT: "conflict",
    metering_pb2.INGEST_OUTCOME_INVALID: "invalid",
}


class MeteringClient:
    def __init__(self, address: str, deadline_seconds: float) -> None:
        # Own subchannel pool and short reconnect backoff: after a metering outage the relay must
        # reconnect within a second or two (gRPC's default backoff grows to 120 s), and its failed
        # subchannel must not be shared with other channels in this process.
        self._channel = grpc.aio.insecure_channel(
            address,
            options=[
                ("grpc.use_local_subchannel_pool", 1),
                ("grpc.initial_reconnect_backoff_ms", 200),
                ("grpc.min_reconnect_backoff_ms", 200),
                ("grpc.max_reconnect_backoff_ms", 2000),
                ("grpc.max_send_message_length", 64 * 1024 * 1024),
            ],
        )
        self._stub = metering_pb2_grpc.MeteringServiceStub(self._channel)
        self._deadline = deadline_seconds

    async def ingest(self, batch_id: str, payloads: list[bytes]) -> list[IngestResult]:
        """Send serialized UsageEvents; raises grpc.aio.AioRpcError when metering is unreachable."""
        request = metering_pb2.IngestEventsRequest(
            request_id=batch_id, events=[metering_pb2.UsageEvent.FromString(p) for p in payloads]
        )
        reply = await self._stub.IngestEvents(request, timeout=self._deadline)
        if len(reply.results) != len(payloads):
            raise RuntimeError(f"metering answered {len(reply.results)} results for {len(payloads)} events")
        return [
            IngestResult(r.event_id, _OUTCOMES.get(r.outcome, "invalid"), r.reason) for r in reply.results
        ]

    async def close(self) -> None:
        await self._channel.close()


class Entitlements(Protocol):
    async def check(self, builder_id: str, customer_id: str) -> None:
        """Raise common.errors.ResourceExhausted / PermissionDenied when the customer may not spend."""


class AllowAll:
    """Every customer may spend: the default until billing's entitlement checks are wired."""

    async def check(self, builder_id: str, customer_id: str) -> None:
        return None


def entitlements_for(enabled: bool, billing_address: str) -> Entitlements:
    if enabled:
        raise SettingsError(
            "GATEWAY_ENTITLEMENTS_ENABLED=true is not supported yet: billing's entitlement contract is not "
            f"published (would call {billing_address}); leave it false"
        )
    return AllowAll()
