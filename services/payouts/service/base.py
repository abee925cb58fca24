"""What every use case shares: the engine, the clients, the clock, and request-id idempotency."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from common.idempotency import builder_scope, claim, complete, fingerprint
from payouts import store
from payouts.clients import BillingClient, MeteringClient

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Policy:
    """The defaults a payee gets when the feed creates it, and how the feed is read."""

    default_hold_days: int = 7
    default_minimum: Decimal = Decimal("50")
    feed_page_size: int = 500


def scope(method: str, who: str) -> str:
    """The idempotency scope: the method and the payee (a digest of it), or the method alone for
    platform-wide calls ("operator")."""
    return builder_scope(method, "" if who == "operator" else who)


def iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None


def dec(value: Decimal) -> str:
    return format(value, "f")


class Base:
    def __init__(
        self,
        engine: AsyncEngine,
        billing: BillingClient,
        metering: MeteringClient,
        policy: Policy,
        clock: Clock = utc_now,
    ) -> None:
        self.engine = engine
        self.billing = billing
        self.metering = metering
        self.policy = policy
        self.clock = clock

    async def idempotent(
        self,
        scope_key: str,
        request_id: str,
        body: Any,
        work: Callable[[AsyncConnection], Awaitable[dict[str, Any]]],
    ) -> dict[str, Any]:
        """Run `work` in one transaction with the request id: a retry gets the first reply."""
        async with self.engine.begin() as conn:
            prior = await claim(conn, store.idempotency_keys, scope_key, request_id, fingerprint(body))
            if prior is not None:
                return prior
            reply = await work(conn)
            await complete(conn, store.idempotency_keys, scope_key, request_id, reply)
            return reply

    async def idempotent_outside(
        self, scope_key: str, request_id: str, body: Any, work: Callable[[], Awaitable[dict[str, Any]]]
    ) -> dict[str, Any]:
        """For work that spans several transactions of its own (feed pages, hold sweeps), each
        idempotent by itself: the key is claimed and committed first, the reply stored after."""
        async with self.engine.begin() as conn:
            prior = await claim(conn, store.idempotency_keys, scope_key, request_id, fingerprint(body))
            if prior is not None:
                return prior
        reply = await work()
        async with self.engine.begin() as conn:
            await complete(conn, store.idempotency_keys, scope_key, request_id, reply)
        return reply
