"""What every group of billing use cases shares: the transaction-and-idempotency helper, request
checks, page tokens, and the reads several groups make (the plan in force, the platform fee, an
invoice). Each module of this package is one class of use cases over ServiceCore.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from billing import store
from billing.clients import MeteringClient
from billing.domain import (
    NO_PLATFORM_FEE,
    BillingPeriod,
    PlatformFeeRule,
    Split,
    minor_units,
    period_containing,
)
from billing.domain.money import has_at_most_places
from billing.domain.text import quote
from billing.service.views import (
    InvoiceView,
    V,
    from_json,
    invoice_view,
    to_json,
)
from common.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)
from common.idempotency import builder_scope, claim, complete, fingerprint
from common.paging import decode_token

log = structlog.get_logger("billing.service")

KEY = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
# The most a prepaid wallet may hold (whole units of its currency), far below NUMERIC(38, 9)'s 10^29:
# a top-up that would pass it is FAILED_PRECONDITION (stated in the proto's TopUpWalletRequest).
MAX_WALLET_BALANCE = Decimal(10) ** 15
EPSILON = timedelta(microseconds=1)
# A customer id no event carries: the cutoff probe asks metering for its clock, not for data.
PROBE_CUSTOMER = "billing.cutoff-probe"


_MIN_TIME = datetime(2000, 1, 1, tzinfo=UTC)
_MAX_TIME = datetime(2100, 1, 1, tzinfo=UTC)
_CURSOR_TEXT = re.compile(r"[^\x00-\x1f\x7f]{1,128}")


def _not_our_token() -> InvalidArgument:
    return InvalidArgument("page_token is not a token this service issued", field="page_token")


def _cursor(token: str, shape: dict[str, type]) -> dict[str, Any] | None:
    """Decode a page token and check it has exactly the keys and types billing writes into it, so a
    well-formed token billing did not issue is INVALID_ARGUMENT, never a bad query."""
    cursor = decode_token(token)
    if cursor is None:
        return None
    if set(cursor) != set(shape):
        raise _not_our_token()
    for key, kind in shape.items():
        value = cursor[key]
        if kind is int:
            if type(value) is not int or not 0 <= value < 2**63:
                raise _not_our_token()
        elif not isinstance(value, str) or not _CURSOR_TEXT.fullmatch(value):
            raise _not_our_token()
    return cursor


def _new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def _require(value: str, field: str, *, max_len: int = 128) -> str:
    if not value:
        raise InvalidArgument(f"{field} is required", field=field)
    if len(value) > max_len:
        raise InvalidArgument(f"{field} must be at most {max_len} characters", field=field)
    return value


def _money_amount(amount: Decimal, currency: str, expected_currency: str, field: str) -> Decimal:
    if currency != expected_currency:
        raise InvalidArgument(
            f"{field} must be in {expected_currency}, got {currency or 'no currency'}",
            field=f"{field}.currency_code",
        )
    if amount <= 0:
        raise InvalidArgument(f"{field} must be greater than zero", field=field)
    if not has_at_most_places(amount, minor_units(currency)):
        raise InvalidArgument(f"{field} must be whole {currency} minor units, got {amount}", field=field)
    return amount


@dataclass(frozen=True)
class TimelinePart:
    """A sub-range [start, end) of a period priced by one plan version, on the usage metered in
    [usage_start, usage_end)."""

    start: datetime
    end: datetime
    key: tuple[str, int]
    usage_start: datetime
    usage_end: datetime


@dataclass(frozen=True)
class StoredLine:
    """An invoice line read back from storage, shaped as the domain's earnings functions need."""

    charge_key: str | None
    meter_key: str | None
    split: Split
    workflow_quantities: tuple[tuple[str, Decimal], ...]


def _stored_line(row: dict[str, Any]) -> StoredLine:
    return StoredLine(
        charge_key=row["charge_key"] or None,
        meter_key=row["meter_key"] or None,
        split=Split(row["provider_cost"], row["platform_fee"], row["builder_margin"]),
        workflow_quantities=tuple((k, Decimal(v)) for k, v in row["workflow_weights"]),
    )


def past_period(start: datetime | None, path: str, now: datetime) -> BillingPeriod:
    """The calendar month starting at `start`, which must have ended (simulations, reports)."""
    if start is None:
        raise InvalidArgument(f"{path} is required", field=path)
    period = period_containing(start)
    if period.start != start:
        raise InvalidArgument(f"{path} must be the first of a month at 00:00 UTC", field=path)
    if period.end > now:
        raise FailedPrecondition(f"the month starting {period.label} has not ended yet", field=path)
    return period


class ServiceCore:
    """The engine, the metering client, the clock and the close's settings, shared by every use case."""

    def __init__(
        self,
        engine: AsyncEngine,
        metering: MeteringClient,
        *,
        settle_timeout_seconds: float = 60.0,
        cutoff_lag_seconds: float = 0.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        close_concurrency: int = 2,
        spend_lease_seconds: int = 30,
    ) -> None:
        self.engine = engine
        # Closes of one builder run one after another in this process, queued without a connection.
        self._close_locks: dict[str, tuple[asyncio.Lock, list[int]]] = {}
        # At most this many closes hold a database connection at once, whatever the number waiting.
        self._close_slots = asyncio.Semaphore(close_concurrency)
        self.metering = metering
        self.settle_timeout_seconds = settle_timeout_seconds
        self.cutoff_lag = timedelta(seconds=cutoff_lag_seconds)
        self.clock = clock
        self.spend_lease_seconds = spend_lease_seconds

    async def _idempotent(
        self,
        rpc: str,
        builder_id: str,
        request_id: str,
        body: Any,
        work: Callable[[AsyncConnection], Awaitable[V]],
        reply_type: type[V],
    ) -> V:
        """Run `work` once per (rpc, builder, request id) in one transaction with the claim; its typed
        reply is stored as JSON (views.to_json) and a retry decodes the stored one (views.from_json)."""
        _require(request_id, "request_id")
        scope = builder_scope(rpc, builder_id)
        async with self.engine.begin() as conn:
            prior = await claim(conn, store.idempotency_keys, scope, request_id, fingerprint(body))
            if prior is not None:
                return from_json(reply_type, prior)
            reply = await work(conn)
            await complete(conn, store.idempotency_keys, scope, request_id, to_json(reply))
            return reply

    # ---- shared reads ---------------------------------------------------------------------------

    @staticmethod
    def _in_force(sub: dict[str, Any], period_start: datetime) -> tuple[str, int]:
        if sub["change_time"] is not None and sub["change_time"] <= period_start:
            return sub["next_plan_id"], sub["next_plan_version"]
        return sub["plan_id"], sub["plan_version"]

    @staticmethod
    def _timeline(sub: dict[str, Any], period: BillingPeriod) -> list[TimelinePart]:
        """The parts of `period` the subscription is active in, each with its plan version and the
        range its usage is read over: one part, or two when a plan change took effect inside the
        period (an immediate change). A start or a cancellation inside the period cuts the active
        range; the usage of the first part is read from the period's start, that of the last part to
        the period's end unless the subscription was cancelled inside it. Empty when not active."""
        start = max(sub["start_time"], period.start)
        cancelled = sub.get("end_time") is not None and sub["end_time"] < period.end
        end = sub["end_time"] if cancelled else period.end
        if end <= start:
            return []
        current = (sub["plan_id"], sub["plan_version"])
        changed = sub["change_time"]
        if changed is not None and start < changed < end:
            following = (sub["next_plan_id"], sub["next_plan_version"])
            return [
                TimelinePart(start, changed, current, period.start, changed),
                TimelinePart(changed, end, following, changed, end),
            ]
        key = (
            (sub["next_plan_id"], sub["next_plan_version"])
            if changed is not None and changed <= start
            else current
        )
        return [TimelinePart(start, end, key, period.start, end)]

    async def _fee_rule(self, conn: AsyncConnection, builder_id: str) -> PlatformFeeRule:
        row = await store.get_platform_fee(conn, builder_id)
        if row is None:
            return NO_PLATFORM_FEE
        return PlatformFeeRule(row["percent_of_line"], row["percent_of_margin"])

    async def _invoice(
        self, conn: AsyncConnection, builder_id: str, invoice_id: str, *, for_update: bool = False
    ) -> dict[str, Any]:
        _require(builder_id, "builder_id")
        _require(invoice_id, "invoice_id", max_len=64)
        inv = await store.get_invoice(conn, builder_id, invoice_id, for_update=for_update)
        if inv is None:
            raise NotFound(f"invoice {quote(invoice_id)} not found", field="invoice_id")
        return inv

    async def _invoice_view(self, conn: AsyncConnection, inv: dict[str, Any]) -> InvoiceView:
        lines = await store.lines_of(conn, [inv["id"]])
        return invoice_view(inv, lines[inv["id"]])
