"""The usage outbox: a group-commit writer on the hot path and a relay that delivers to metering.

Writer: handlers hand over their events and await a future; one task drains everything queued
while the previous commit was in flight into ONE transaction with ONE INSERT, then resolves the
futures. A caller's response is sent only after its future resolved, so every event of an answered
request is in PostgreSQL before the answer leaves, whatever happens to this process afterwards.

Relay: sends undelivered rows oldest first in batches to metering IngestEvents, holding the rows
with FOR UPDATE SKIP LOCKED (several gateway instances can relay side by side), marks them delivered
on ACCEPTED/DUPLICATE, parks them with the reason on CONFLICT/INVALID, and on any RPC failure rolls
back and retries with exponential backoff and full jitter. Metering deduplicates by event id, so a
batch delivered twice (crash between metering's commit and ours) is counted once.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid

import grpc
import structlog

from common.money import to_timestamp
from gateway import metrics
from gateway.clients import MeteringClient
from gateway.domain.usage import FAILED, SUCCEEDED, TEST, UsageRecord
from gateway.store import DATABASE_UNAVAILABLE, Store
from tollgate.metering.v1 import metering_pb2

log = structlog.get_logger("gateway.outbox")

_STATUS = {
    SUCCEEDED: metering_pb2.EVENT_STATUS_SUCCEEDED,
    FAILED: metering_pb2.EVENT_STATUS_FAILED,
    TEST: metering_pb2.EVENT_STATUS_TEST,
}

_LINGER_SECONDS = 0.05


def encode(record: UsageRecord) -> bytes:
    return metering_pb2.UsageEvent(
        id=record.id,
        type=record.type,
        occurred_time=to_timestamp(record.occurred_time),
        builder_id=record.builder_id,
        app_id=record.app_id,
        customer_id=record.customer_id,
        status=_STATUS[record.status],
        run_id=record.run_id,
        tags=record.tags,
        quantities=record.quantities,
    ).SerializeToString()


class OutboxUnavailable(Exception):
    """The outbox could not commit: the request must fail rather than answer without its usage."""


class OutboxWriter:
    """Group commit. `writers` tasks (each with its own connection) take turns: whatever queued while
    a commit was in flight goes into the next one, so batches grow with load and a lone request
    still commits at once."""

    def __init__(self, store: Store, *, batch_max: int, synchronous_commit: str, writers: int = 2) -> None:
        self._store = store
        self._batch_max = batch_max
        self._sync = synchronous_commit
        self._writers = writers
        self._builders: list[str] = []
        self._ids: list[str] = []
        self._payloads: list[bytes] = []
        self._waiters: list[tuple[asyncio.Future[None], int]] = []
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self.on_commit: list = []  # callbacks (the relay's wake-up)

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._run(), name=f"gateway-outbox-writer-{i}") for i in range(self._writers)
        ]

    async def write(self, records: list[UsageRecord]) -> None:
        """Resolve once these events are committed; raise OutboxUnavailable if they could not be."""
        if not records:
            return
        if self._closing:
            raise OutboxUnavailable("the gateway is shutting down")
        for r in records:
            self._builders.append(r.builder_id)
            self._ids.append(r.id)
            self._payloads.append(encode(r))
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append((fut, len(records)))
        self._wake.set()
        await asyncio.shield(fut)

    async def _commit(self, state: dict, builders: list[str], ids: list[str], payloads: list[bytes]) -> None:
        delay = 0.05
        for attempt in range(6):
            try:
                if state.get("conn") is None or state["conn"].is_closed():
                    state["conn"] = await self._store.connect_outbox_writer(self._sync)
                await self._store.append_outbox(state["conn"], builders, ids, payloads)
                return
            except DATABASE_UNAVAILABLE as exc:
                log.warning("gateway.outbox.commit_failed", attempt=attempt + 1, error=type(exc).__name__)
                await _close(state)
                if attempt == 5:
                    raise OutboxUnavailable(type(exc).__name__) from exc
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)

    def _take(
        self,
    ) -> tuple[list[tuple[asyncio.Future[None], int]], list[str], list[str], list[bytes]]:
        """Whole requests up to the batch limit; the rest waits for the next commit."""
        take, n = 0, 0
        for _, count in self._waiters:
            if n and n + count > self._batch_max:
                break
            take += 1
            n += count
        waiters = self._waiters[:take]
        builders, ids, payloads = self._builders[:n], self._ids[:n], self._payloads[:n]
        del self._waiters[:take], self._builders[:n], self._ids[:n], self._payloads[:n]
        return waiters, builders, ids, payloads

    async def _run(self) -> None:
        state: dict = {}
        try:
            while True:
                if not self._waiters:
                    if self._closing:
                        return
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                waiters, builders, ids, payloads = self._take()
                try:
                    await self._commit(state, builders, ids, payloads)
                except Exception as exc:
                    for fut, _ in waiters:
                        if not fut.done():
                            fut.set_exception(OutboxUnavailable("usage could not be recorded"))
                    log.error(
                        "gateway.outbox.batch_failed_requests_not_answered",
                        events=len(ids),
                        error=type(exc).__name__,  # never the message: it can quote the rows
                    )
                    continue
                for fut, _ in waiters:
                    if not fut.done():
                        fut.set_result(None)
                metrics.OUTBOX_WRITTEN.inc(len(ids))
                metrics.OUTBOX_COMMITS.inc()
                for cb in self.on_commit:
                    cb()
        finally:
            await _close(state)

    async def close(self) -> None:
        """Commit everything queued, then stop."""
        self._closing = True
        self._wake.set()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t


async def _close(state: dict) -> None:
    conn = state.pop("conn", None)
    if conn is not None:
        with contextlib.suppress(Exception):
            await conn.close(timeout=2)


class Relay:
    def __init__(
        self,
        store: Store,
        metering: MeteringClient,
        *,
        batch_size: int,
        interval: float,
        backoff_initial: float,
        backoff_max: float,
        retention_hours: float,
    ) -> None:
        self._store = store
        self._metering = metering
        self._batch = batch_size
        self._interval = interval
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._retention = retention_hours
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.delivered = 0
        self.parked = 0

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="gateway-outbox-relay")

    async def deliver_once(self) -> int:
        """Deliver one batch; returns how many rows it settled. Raises when metering is unreachable."""
        async with self._store.pool.acquire() as conn, conn.transaction():
            seqs, payloads = await self._store.claim_pending(conn, self._batch)
            if not seqs:
                return 0
            rejected = await self._metering.ingest(uuid.uuid4().hex, payloads)
            parked = []
            for r in rejected:
                parked.append((seqs[r.index], f"{r.outcome}: {r.reason}"[:1000]))
                log.warning(
                    "gateway.outbox.event_parked", event_id=r.event_id, outcome=r.outcome, reason=r.reason
                )
            if parked:
                gone = {seq for seq, _ in parked}
                await self._store.mark_delivered(conn, [s for s in seqs if s not in gone])
                await self._store.park(conn, parked)
            else:
                await self._store.mark_delivered(conn, seqs)
        self.delivered += len(seqs) - len(parked)
        self.parked += len(parked)
        metrics.OUTBOX_DELIVERED.inc(len(seqs) - len(parked))
        metrics.OUTBOX_PARKED.inc(len(parked))
        metrics.RELAY_LAST_BATCH.set(len(seqs))
        return len(seqs)

    async def _run(self) -> None:
        failures = 0
        last_prune = time.monotonic()
        while not self._stopping:
            try:
                n = await self.deliver_once()
                if failures:
                    log.info("gateway.relay.recovered", failed_batches=failures)
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                metrics.RELAY_FAILURES.inc()
                delay = min(self._backoff_max, self._backoff_initial * (2 ** min(failures - 1, 20)))
                delay = random.uniform(delay / 2, delay)  # jitter: instances do not retry in lockstep
                if failures == 1 or failures % 20 == 0:
                    log.warning(
                        "gateway.relay.delivery_failed",
                        failures=failures,
                        retry_in_seconds=round(delay, 3),
                        error=type(exc).__name__,
                        # metering's status text; never a database error's text, which can quote rows
                        detail=exc.details()[:200] if isinstance(exc, grpc.aio.AioRpcError) else "",
                    )
                await asyncio.sleep(delay)
                continue
            if n >= self._batch:
                continue
            if self._retention > 0 and time.monotonic() - last_prune > 600:
                last_prune = time.monotonic()
                with contextlib.suppress(Exception):
                    await self._store.prune_delivered(self._retention)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await self._wake.wait()
            # Under load every group commit wakes the relay: linger briefly so one metering call
            # carries many events instead of a handful (gateway, metering and both databases share
            # the cores with the request path).
            await asyncio.sleep(_LINGER_SECONDS)

    async def close(self, drain_seconds: float = 2.0) -> None:
        """Try to deliver what is pending for a short while, then stop; the rest waits in Postgres."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        with contextlib.suppress(Exception):
            async with asyncio.timeout(drain_seconds):
                while await self.deliver_once():
                    pass
