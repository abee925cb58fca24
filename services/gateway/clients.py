"""Typed wrappers over other contexts' gRPC stubs; every call carries a deadline.

- MeteringClient: delivers outbox batches (IngestEvents).
- SpendClient: billing's SpendService (spend policy, lease acquisition and reports) for gateway/spend.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import grpc

from common.money import format_decimal, from_money, from_timestamp, to_money
from gateway.domain import spend
from tollgate.billing.v1 import spend_pb2, spend_pb2_grpc
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


_KINDS = {
    spend_pb2.RATE_KIND_COST_PLUS: spend.COST_PLUS,
    spend_pb2.RATE_KIND_PER_EVENT: spend.PER_EVENT,
    spend_pb2.RATE_KIND_PER_QUANTITY: spend.PER_QUANTITY,
}
_SCOPES = {
    spend_pb2.SPEND_SCOPE_KIND_CUSTOMER: spend.CUSTOMER,
    spend_pb2.SPEND_SCOPE_KIND_API_KEY: spend.API_KEY,
    spend_pb2.SPEND_SCOPE_KIND_TAG: spend.TAG,
}


def _dec(text: str) -> Decimal:
    return Decimal(text) if text else Decimal(0)


def _control(c: spend_pb2.SpendControl) -> spend.Control:
    return spend.Control(
        id=c.id,
        scope=_SCOPES.get(c.scope.kind, "unknown"),
        api_key_id=c.scope.api_key_id,
        tag_key=c.scope.tag_key,
        tag_value=c.scope.tag_value,
        hard_cap=from_money(c.hard_cap) if c.HasField("hard_cap") else None,
        on_cap=spend.DEGRADE if c.on_cap == spend_pb2.CAP_ACTION_DEGRADE else spend.REFUSE,
        degrade_model=c.degrade_model,
    )


def policy_from_pb(p: spend_pb2.SpendPolicy) -> spend.Policy:
    card = tuple(
        spend.RateItem(
            kind=_KINDS[i.kind],
            statuses=frozenset(i.statuses),
            event_type=i.event_type,
            markup_percent=_dec(i.markup_percent),
            fixed_per_event=_dec(i.fixed_per_event),
            unit_price=_dec(i.unit_price),
            quantity=i.quantity,
        )
        for i in p.rate_card
        if i.kind in _KINDS
    )
    return spend.Policy(
        builder_id=p.builder_id,
        customer_id=p.customer_id,
        currency_code=p.currency_code,
        controls=tuple(_control(c) for c in p.controls),
        rate_card=card,
        period_end_time=from_timestamp(p.period_end_time) if p.HasField("period_end_time") else None,
        lease_seconds=p.lease_seconds or 30,
    )


@dataclass(frozen=True, slots=True)
class Granted:
    lease_id: str
    granted: Decimal
    expire_time: datetime


@dataclass(frozen=True, slots=True)
class Refused:
    """billing's CapReached: which limit refused, its scope, and when it resets."""

    control_id: str
    scope: str
    hard_cap: Decimal
    reset_time: datetime | None
    on_cap: str
    degrade_model: str


class SpendClient:
    def __init__(
        self, connect: Callable[[list[tuple[str, Any]]], grpc.aio.Channel], deadline_seconds: float
    ) -> None:
        # Short reconnect backoff: after a billing outage new leases must be had within a second or two.
        self._channel = connect(
            [
                ("grpc.use_local_subchannel_pool", 1),
                ("grpc.initial_reconnect_backoff_ms", 200),
                ("grpc.min_reconnect_backoff_ms", 200),
                ("grpc.max_reconnect_backoff_ms", 2000),
            ]
        )
        self._stub = spend_pb2_grpc.SpendServiceStub(self._channel)
        self._deadline = deadline_seconds

    async def get_policy(self, builder_id: str, customer_id: str) -> spend.Policy:
        """Raises grpc.aio.AioRpcError (NOT_FOUND for an unknown customer, UNAVAILABLE...)."""
        reply = await self._stub.GetSpendPolicy(
            spend_pb2.GetSpendPolicyRequest(builder_id=builder_id, customer_id=customer_id),
            timeout=self._deadline,
        )
        return policy_from_pb(reply.policy)

    async def acquire(
        self,
        request_id: str,
        policy: spend.Policy,
        control_id: str,
        holder: str,
        amount: Decimal,
        minimum: Decimal,
    ) -> Granted | Refused:
        reply = await self._stub.AcquireSpendLease(
            spend_pb2.AcquireSpendLeaseRequest(
                request_id=request_id,
                builder_id=policy.builder_id,
                customer_id=policy.customer_id,
                control_id=control_id,
                holder=holder,
                amount=to_money(amount, policy.currency_code),
                minimum=to_money(minimum, policy.currency_code),
            ),
            timeout=self._deadline,
        )
        if reply.HasField("lease"):
            lease = reply.lease
            return Granted(lease.id, from_money(lease.granted), from_timestamp(lease.expire_time))
        r = reply.refused
        return Refused(
            control_id=r.control_id or control_id,
            scope=_SCOPES.get(r.scope.kind, "unknown"),
            hard_cap=from_money(r.hard_cap),
            reset_time=from_timestamp(r.reset_time) if r.HasField("reset_time") else None,
            on_cap=spend.DEGRADE if r.on_cap == spend_pb2.CAP_ACTION_DEGRADE else spend.REFUSE,
            degrade_model=r.degrade_model,
        )

    async def report(
        self, request_id: str, builder_id: str, lease_id: str, consumed: Decimal, currency: str, release: bool
    ) -> None:
        await self._stub.ReportSpendLease(
            spend_pb2.ReportSpendLeaseRequest(
                request_id=request_id,
                builder_id=builder_id,
                lease_id=lease_id,
                consumed=to_money(consumed, currency),
                release=release,
            ),
            timeout=self._deadline,
        )

    async def close(self) -> None:
        await self._channel.close()


__all__ = ["Granted", "MeteringClient", "Refused", "SpendClient", "format_decimal", "policy_from_pb"]
