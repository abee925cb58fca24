"""Consuming billing's earnings feed, exactly once, and releasing holds.

One page = one transaction: lock the cursor row, ask billing for the page after it, post every
entry's transfer, record the entries, move the cursor, commit. A crash anywhere before the commit
leaves the cursor where it was and nothing posted; the transfer ids (entry:<sequence>) make even a
replayed page post nothing twice. Two consumers (two replicas, or SyncEarnings during the background
poll) queue on the cursor row and the second re-reads the cursor the first moved.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

from payouts import store
from payouts.domain.ledger import PROVIDER_POOL, LedgerError, entry_transfer, release_transfer
from payouts.service.base import Base, scope

log = structlog.get_logger("payouts.feed")

RELEASE_BATCH = 5000


class Feed(Base):
    _feed_lock: asyncio.Lock | None = None

    def _lock(self) -> asyncio.Lock:
        if self._feed_lock is None:
            self._feed_lock = asyncio.Lock()
        return self._feed_lock

    async def apply_next_page(self) -> int:
        """Apply one page of the feed; the number of entries it held (0: caught up)."""
        async with self.engine.begin() as conn:
            token, last = await store.lock_cursor(conn)
            page = await self.billing.list_earnings(token, self.policy.feed_page_size)
            if not page.entries:
                return 0
            wanted = {
                (e.payee_id, e.currency, "provider" if e.payee_id == PROVIDER_POOL else "builder")
                for e in page.entries
                if e.payee_id is not None
            }
            hold_days = await store.ensure_payees(
                conn, wanted, self.policy.default_minimum, self.policy.default_hold_days
            )
            transfers = []
            rows: list[dict[str, Any]] = []
            for e in page.entries:
                t = entry_transfer(e, hold_days.get((e.payee_id, e.currency), 0) if e.payee_id else 0)
                if t is not None:
                    transfers.append(t)
                rows.append(
                    {
                        "sequence": e.sequence,
                        "builder_id": e.builder_id,
                        "app_id": e.app_id,
                        "customer_id": e.customer_id,
                        "invoice_id": e.invoice_id,
                        "line_position": e.line_position,
                        "workflow": e.workflow,
                        "meter_key": e.meter_key,
                        "kind": e.kind.value,
                        "reason": e.reason,
                        "amount": e.amount,
                        "currency_code": e.currency,
                        "source_id": e.source_id,
                        "create_time": e.create_time,
                        "transfer_id": t.id if t else None,
                    }
                )
            await store.insert_feed_entries(conn, rows)
            try:
                await store.post(conn, transfers)
            except LedgerError as exc:
                # A bound the feed would break means the ledger and billing disagree: stop, loudly.
                log.error("payouts.feed.refused", error=str(exc), first_sequence=page.entries[0].sequence)
                raise
            last = max(last, page.entries[-1].sequence)
            await store.save_cursor(conn, page.next_token, last)
        log.info("payouts.feed.page_applied", entries=len(page.entries), last_sequence=last)
        return len(page.entries)

    async def catch_up(self) -> tuple[int, int]:
        """Apply pages until billing has nothing new: (entries applied, last sequence)."""
        applied = 0
        async with self._lock():
            while True:
                n = await self.apply_next_page()
                applied += n
                if n == 0:
                    break
        async with self.engine.connect() as conn:
            last = await store.read_cursor(conn)
        return applied, last

    async def sync_earnings(self, request_id: str) -> dict[str, Any]:
        async def work() -> dict[str, Any]:
            applied, last = await self.catch_up()
            return {"applied_count": applied, "last_sequence": last}

        return await self.idempotent_outside(scope("SyncEarnings", "operator"), request_id, {}, work)

    async def release_due(self, *, wait: bool = False) -> int:
        """Release every hold that has ended by now, in batches; the number released. With `wait`,
        holds another sweep is releasing are waited for rather than skipped."""
        released = 0
        now = self.clock()
        after = None
        while True:
            async with self.engine.begin() as conn:
                due = await store.due_holds(conn, now, RELEASE_BATCH, after, wait=wait)
                if not due:
                    break
                fresh = await store.post(conn, [release_transfer(t, now) for t in due])
                await store.drop_holds(conn, [t.id for t in due])
            released += len(fresh)
            last = due[-1]
            after = (last.available_time, last.id)
        if released:
            log.info("payouts.holds.released", count=released)
        return released

    async def release_holds(self, request_id: str) -> dict[str, Any]:
        async def work() -> dict[str, Any]:
            return {"released_count": await self.release_due()}

        return await self.idempotent_outside(scope("ReleaseHolds", "operator"), request_id, {}, work)
