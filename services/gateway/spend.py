"""SpendGuard: holds every request's maximum price against leases billing granted this process.

- Policy cache per (builder, customer), fresh for GATEWAY_SPEND_POLICY_SECONDS; stale-if-error: a
  policy already known keeps serving while billing is unreachable.
- Per control a pool of leases. available(lease) = granted - consumed - held. A hold reserves from one
  active lease not about to expire; when none covers it, ONE acquisition per control is in flight
  (asyncio.Lock) for max(hold, hold x GATEWAY_SPEND_LEASE_REQUESTS), minimum = the hold; requests that
  arrive meanwhile wait for it and then reserve from the new lease.
- settle(actual) moves a hold to consumed (the actual price rounded UP to nine places: the one rounding
  of spend, so it is never under-counted); release() drops a hold. Every exit path of a request does one.
- The reporter reports each lease's cumulative consumption every GATEWAY_SPEND_REPORT_SECONDS
  (request_id "<holder>:<lease>:<n>", deterministic per lease and report number), releases leases
  that expire soon or sit idle with nothing held, and on shutdown releases all.

The overshoot bound: a control's spend exceeds its cap only by consumption no hold covered, i.e. an
event priced above its request's hold (output beyond the default when max_tokens is not set, or a
provider counting more input tokens than the prompt's bytes plus overheads). Zero when max_tokens is set.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_CEILING, Decimal

import grpc
import structlog

from common import errors
from common.money import NANO, format_decimal
from gateway import metrics
from gateway.clients import Granted, Refused, SpendClient
from gateway.domain import spend

log = structlog.get_logger("gateway.spend")

DOMAIN = "tollgate.gateway"

ZERO = Decimal(0)
# A lease this close to its expiry takes no new holds (a request may run for the attempt timeout):
# at most this, and at most a quarter of the lease's time.
EXPIRY_MARGIN_SECONDS = 5.0
# A lease with nothing held and no hold for this long (at most half its time) is returned to billing.
IDLE_SECONDS = 10.0


def up(amount: Decimal) -> Decimal:
    return amount.quantize(NANO, rounding=ROUND_CEILING)


class SpendCapReached(errors.ResourceExhausted):
    """A request that would cross a hard cap, refused before any provider is called (HTTP 402)."""

    http_status = 402
    code = "spend_cap_reached"

    def __init__(
        self,
        control_id: str,
        scope: str,
        hard_cap: str,
        currency_code: str,
        reset_time: str,
        on_cap: str = "refuse",
        degrade_model: str = "",
    ) -> None:
        super().__init__(
            f"the spend cap of control {control_id} ({scope} scope, {hard_cap} {currency_code}) is reached; "
            f"it resets at {reset_time or 'the end of the period'}"
        )
        self.limit = {
            "control_id": control_id,
            "scope": scope,
            "hard_cap": hard_cap,
            "currency_code": currency_code,
            "reset_time": reset_time,
        }
        self.error_info = (DOMAIN, "SPEND_CAP_REACHED", dict(self.limit))
        self.on_cap = on_cap
        self.degrade_model = degrade_model


class SpendCheckUnavailable(errors.Unavailable):
    """Billing could not be asked and no lease held covers the request: refused, nothing was served."""

    http_status = 503
    code = "spend_check_unavailable"

    def __init__(self) -> None:
        super().__init__(
            "spend_check_unavailable: the spend controls could not be checked (billing is unreachable and "
            "no lease held covers this request); nothing was sent to a provider, retry later"
        )


@dataclass(slots=True, eq=False)
class Lease:
    id: str
    control_id: str
    builder_id: str
    currency_code: str
    granted: Decimal
    expire_mono: float
    consumed: Decimal = ZERO
    held: Decimal = ZERO
    reported: Decimal = ZERO
    reports: int = 0
    last_used: float = 0.0
    released: bool = False
    margin: float = EXPIRY_MARGIN_SECONDS
    idle: float = IDLE_SECONDS

    def available(self) -> Decimal:
        return self.granted - self.consumed - self.held


@dataclass(slots=True)
class Pool:
    leases: list[Lease] = field(default_factory=list)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def reserve(self, amount: Decimal, now: float) -> Lease | None:
        for lease in self.leases:
            if not lease.released and lease.expire_mono - lease.margin > now and lease.available() >= amount:
                lease.held += amount
                lease.last_used = now
                return lease
        return None


@dataclass(slots=True)
class Hold:
    """One request's reservations: per control, the (lease, amount) pairs it holds."""

    policy: spend.Policy
    controls: list[spend.Control]
    amount: Decimal = ZERO
    parts: list[tuple[Lease, Decimal]] = field(default_factory=list)
    done: bool = False


class SpendGuard:
    def __init__(
        self,
        client: SpendClient | None,
        *,
        policy_seconds: float,
        lease_requests: int,
        report_seconds: float,
        holder: str = "",
    ) -> None:
        self.client = client
        self.policy_seconds = policy_seconds
        self.lease_requests = lease_requests
        self.report_seconds = report_seconds
        self.holder = holder or f"gateway-{uuid.uuid4().hex[:12]}"
        self._policies: dict[tuple[str, str], tuple[spend.Policy, float]] = {}
        self._policy_locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._pools: dict[str, Pool] = {}
        self._acquisitions = 0
        self._task: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        return self.client is not None

    # ---- policy ----

    async def policy(self, builder_id: str, customer_id: str) -> spend.Policy:
        k = (builder_id, customer_id)
        hit = self._policies.get(k)
        now = time.monotonic()
        if hit is not None and now - hit[1] < self.policy_seconds:
            return hit[0]
        lock = self._policy_locks.setdefault(k, asyncio.Lock())
        async with lock:
            hit = self._policies.get(k)
            if hit is not None and time.monotonic() - hit[1] < self.policy_seconds:
                return hit[0]
            assert self.client is not None
            try:
                p = await self.client.get_policy(builder_id, customer_id)
            except grpc.aio.AioRpcError as e:
                if e.code() == grpc.StatusCode.NOT_FOUND:
                    # A customer billing does not know has no subscription: nothing to price or cap.
                    p = spend.Policy(builder_id, customer_id, "", (), (), None, 0)
                elif hit is not None:
                    log.warning("gateway.spend.policy_stale", customer_id=customer_id, code=e.code().name)
                    return hit[0]
                else:
                    log.warning(
                        "gateway.spend.policy_unavailable", customer_id=customer_id, code=e.code().name
                    )
                    raise SpendCheckUnavailable() from None
            self._policies[k] = (p, time.monotonic())
            return p

    # ---- holds ----

    async def place(
        self, policy: spend.Policy, api_key_id: str, tags: dict[str, str], amount: Decimal
    ) -> Hold | None:
        """Reserve `amount` under every control that counts the request; None when nothing is held."""
        if policy.free:
            return None
        controls = spend.applicable(policy.controls, api_key_id, tags)
        if not controls:
            return None
        h = Hold(policy, controls)
        try:
            await self.top_up(h, amount)
        except BaseException:
            self.release(h)
            raise
        metrics.spend_hold("placed")
        return h

    async def top_up(self, h: Hold, total: Decimal) -> None:
        """Raise the hold to `total` (rounded up to nanos); refuses with SpendCapReached."""
        need = up(total) - h.amount
        if need <= 0:
            return
        for c in h.controls:
            lease = await self._reserve(h.policy, c, need)
            h.parts.append((lease, need))
        h.amount += need

    async def _reserve(self, policy: spend.Policy, control: spend.Control, amount: Decimal) -> Lease:
        pool = self._pools.get(control.id)
        if pool is None:
            pool = self._pools[control.id] = Pool()
        lease = pool.reserve(amount, time.monotonic())
        if lease is not None:
            return lease
        async with pool.lock:  # one acquisition in flight per control; the others wait, then re-check
            lease = pool.reserve(amount, time.monotonic())
            if lease is not None:
                return lease
            assert self.client is not None
            self._acquisitions += 1
            t0 = time.perf_counter()
            try:
                got = await self.client.acquire(
                    f"{self.holder}:acquire:{self._acquisitions}",
                    policy,
                    control.id,
                    self.holder,
                    max(amount, amount * self.lease_requests),
                    amount,
                )
            except grpc.aio.AioRpcError as e:
                metrics.spend_lease_acquired("unavailable", time.perf_counter() - t0)
                metrics.spend_hold("unavailable")
                log.warning("gateway.spend.acquire_failed", control_id=control.id, code=e.code().name)
                raise SpendCheckUnavailable() from None
            if isinstance(got, Refused):
                metrics.spend_lease_acquired("refused", time.perf_counter() - t0)
                metrics.spend_hold("cap_reached")
                raise SpendCapReached(
                    got.control_id,
                    got.scope,
                    format_decimal(got.hard_cap),
                    policy.currency_code,
                    got.reset_time.isoformat() if got.reset_time else "",
                    got.on_cap,
                    got.degrade_model,
                ) from None
            assert isinstance(got, Granted)
            metrics.spend_lease_acquired("granted", time.perf_counter() - t0)
            now = time.monotonic()
            left = (got.expire_time - datetime.now(UTC)).total_seconds()
            lease = Lease(
                got.lease_id, control.id, policy.builder_id, policy.currency_code, got.granted, now + left
            )
            lease.last_used = now
            lease.margin = min(EXPIRY_MARGIN_SECONDS, left / 4)
            lease.idle = min(IDLE_SECONDS, left / 2)
            pool.leases.append(lease)
            if lease.available() < amount:  # billing granted less than the minimum: never by contract
                raise SpendCheckUnavailable()
            lease.held += amount
            return lease

    def settle(self, h: Hold | None, actual: Decimal) -> None:
        """The request ended with usage priced `actual`: its hold becomes consumption, per control."""
        if h is None or h.done:
            return
        h.done = True
        cost = up(actual)
        left = {c.id: cost for c in h.controls}
        for i, (lease, amount) in enumerate(h.parts):
            lease.held -= amount
            last = all(other.control_id != lease.control_id for other, _ in h.parts[i + 1 :])
            take = left[lease.control_id] if last else min(amount, left[lease.control_id])
            lease.consumed += take
            left[lease.control_id] -= take

    def release(self, h: Hold | None) -> None:
        if h is None or h.done:
            return
        h.done = True
        for lease, amount in h.parts:
            lease.held -= amount

    # ---- reporting ----

    def start(self) -> None:
        if self.client is not None and self._task is None:
            self._task = asyncio.create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.report_seconds)
            try:
                await self.report_once()
            except Exception as exc:  # the loop must outlive any one failure
                log.warning("gateway.spend.report_failed", error=type(exc).__name__)

    async def report_once(self, release_all: bool = False) -> None:
        now = time.monotonic()
        for pool in list(self._pools.values()):
            for lease in list(pool.leases):
                expiring = lease.expire_mono - lease.margin <= now
                idle = lease.held == 0 and now - lease.last_used >= lease.idle
                release = lease.held == 0 and (release_all or expiring or idle)
                if lease.expire_mono <= now and lease.held == 0 and lease.consumed == lease.reported:
                    pool.leases.remove(lease)  # expired at billing: its hold is already free there
                    continue
                if not release and lease.consumed == lease.reported:
                    continue
                await self._report(lease, release)
                if release and lease.released:
                    pool.leases.remove(lease)

    async def _report(self, lease: Lease, release: bool) -> None:
        assert self.client is not None
        consumed = lease.consumed
        if release:
            lease.released = True  # no new holds while the release is in flight
        try:
            await self.client.report(
                f"{self.holder}:{lease.id}:{lease.reports + 1}",
                lease.builder_id,
                lease.id,
                consumed,
                lease.currency_code,
                release,
            )
        except grpc.aio.AioRpcError as e:
            if release:
                lease.released = False
            if e.code() == grpc.StatusCode.ALREADY_EXISTS:
                lease.reports += 1  # that number was used for another body: the next one is free
            log.warning("gateway.spend.report_failed", lease_id=lease.id, code=e.code().name)
            return
        lease.reports += 1
        lease.reported = consumed

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self.client is not None:
            for pool in self._pools.values():
                for lease in pool.leases:
                    lease.held = ZERO  # shutting down: nothing more will be consumed
            try:
                await self.report_once(release_all=True)
            except Exception as exc:
                log.warning("gateway.spend.release_failed", error=type(exc).__name__)
            await self.client.close()
