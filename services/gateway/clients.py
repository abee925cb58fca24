"""Typed wrappers over other contexts' gRPC stubs; every call carries a deadline.

- MeteringClient: delivers outbox batches (IngestEvents).
- Entitlements: the seam where billing's spend checks will plug in. Disabled by default: AllowAll is
  used, and enabling it fails start-up until billing publishes its entitlement contract.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import grpc

from common.settings import SettingsError
from tollgate.metering.v1 import metering_pb2


@dataclass(frozen=True, slots=True)
class Rejected:
    """An event metering did not take (conflict or invalid): its position in the batch and why."""

    index: int
    event_id: str
    outcome: str  # conflict | invalid
    reason: str


_OUTCOMES = {
    metering_pb2.INGEST_OUTCOME_CONFLICT: "conflict",
    metering_pb2.INGEST_OUTCOME_INVALID: "invalid",
}
_TAKEN = (metering_pb2.INGEST_OUTCOME_ACCEPTED, metering_pb2.INGEST_OUTCOME_DUPLICATE)


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def ingest_request_bytes(batch_id: str, payloads: list[bytes]) -> bytes:
    """IngestEventsRequest in wire form, framed around events that are already serialized.

    A repeated message field is the concatenation of (tag, length, bytes) records, so the outbox's
    stored UsageEvent bytes go out as they are, without a parse and a re-serialization per event.
    """
    rid = batch_id.encode()
    parts = [b"\x0a", _varint(len(rid)), rid]  # field 1, request_id
    for p in payloads:
        parts += (b"\x12", _varint(len(p)), p)  # field 2, events
    return b"".join(parts)


class MeteringClient:
    def __init__(
        self, connect: Callable[[list[tuple[str, Any]]], grpc.aio.Channel], deadline_seconds: float
    ) -> None:
        # connect(options) opens the channel with the gateway's credential (and TLS): app.py decides.
        # Own subchannel pool and short reconnect backoff: after a metering outage the relay must
        # reconnect within a second or two (gRPC's default backoff grows to 120 s), and its failed
        # subchannel must not be shared with other channels in this process.
        self._channel = connect(
            [
                ("grpc.use_local_subchannel_pool", 1),
                ("grpc.initial_reconnect_backoff_ms", 200),
                ("grpc.min_reconnect_backoff_ms", 200),
                ("grpc.max_reconnect_backoff_ms", 2000),
                ("grpc.max_send_message_length", 64 * 1024 * 1024),
            ],
        )
        # The generated stub's method, but taking the request already in wire form.
        self._ingest = self._channel.unary_unary(
            "/tollgate.metering.v1.MeteringService/IngestEvents",
            request_serializer=None,
            response_deserializer=metering_pb2.IngestEventsResponse.FromString,
        )
        self._deadline = deadline_seconds

    async def ingest(self, batch_id: str, payloads: list[bytes]) -> list[Rejected]:
        """Send serialized UsageEvents; returns the events metering did not take (accepted and
        duplicate both mean stored). Raises grpc.aio.AioRpcError when metering is unreachable."""
        reply = await self._ingest(ingest_request_bytes(batch_id, payloads), timeout=self._deadline)
        if len(reply.results) != len(payloads):
            raise RuntimeError(f"metering answered {len(reply.results)} results for {len(payloads)} events")
        if reply.accepted_count + reply.duplicate_count == len(payloads):
            return []
        return [
            Rejected(i, r.event_id, _OUTCOMES.get(r.outcome, "invalid"), r.reason)
            for i, r in enumerate(reply.results)
            if r.outcome not in _TAKEN
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
