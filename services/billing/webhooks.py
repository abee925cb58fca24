"""The webhook delivery loop: every replica polls for due deliveries and POSTs each alert, signed, to
its builder's endpoint (README "Webhooks").

One poll is one transaction: lock up to a batch of due pending deliveries (FOR UPDATE SKIP LOCKED, so
a delivery another replica is working is skipped, never sent twice at once), POST them concurrently,
record each attempt, commit. A replica that dies mid-batch rolls back: those deliveries are due again
and another replica sends them; the receiver deduplicates by Tollgate-Alert-Id (at-least-once).

The signing secret and URL are read from the endpoint at each attempt (a rotated secret signs at
once; a changed URL receives the pending deliveries). The secret is never logged. Redirects are not
followed: a 3xx is a failed attempt, so a delivery never lands on a host the allow-list did not pass.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from billing import metrics
from billing.domain.webhooks import alert_body, host_allowed, retry_delay_seconds
from billing.store import webhooks as webhook_store
from common.webhooks import ALERT_ID_HEADER, SIGNATURE_HEADER, sign

log = structlog.get_logger("billing.webhooks")

MAX_ERROR_CHARS = 500


@dataclass(frozen=True)
class Outcome:
    url: str
    status_code: int  # 0: no answer
    error: str  # "" when delivered

    @property
    def delivered(self) -> bool:
        return 200 <= self.status_code < 300


class WebhookDispatcher:
    """The loop of one replica. `start` it after the server is up; `stop` waits for the batch in
    flight (at most one POST timeout) so its attempts are recorded, then closes the HTTP session."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        poll_seconds: float = 1.0,
        timeout_seconds: float = 10.0,
        retry_base_seconds: float = 1.0,
        retry_max_seconds: float = 600.0,
        max_attempts: int = 12,
        batch_size: int = 20,
        allowed_hosts: tuple[str, ...] = (),
    ) -> None:
        self.engine = engine
        self.poll_seconds = poll_seconds
        self.timeout_seconds = timeout_seconds
        self.retry_base_seconds = retry_base_seconds
        self.retry_max_seconds = retry_max_seconds
        self.max_attempts = max_attempts
        self.batch_size = batch_size
        self.allowed_hosts = allowed_hosts
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.timeout_seconds),
            headers={"User-Agent": "tollgate-billing-webhooks/1"},
        )
        self._task = asyncio.create_task(self._run(), name="billing.webhooks")

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), self.timeout_seconds + 5)
            except TimeoutError:
                self._task.cancel()
                try:
                    await self._task
                except asyncio.CancelledError:
                    pass
        if self._session is not None:
            await self._session.close()

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                worked = await self.deliver_due()
            except Exception:
                log.exception("billing.webhook.poll_failed")
                worked = 0
            if worked >= self.batch_size:
                continue  # a full batch: more may be due now
            try:
                await asyncio.wait_for(self._stopping.wait(), self.poll_seconds)
            except TimeoutError:
                pass

    async def deliver_due(self) -> int:
        """One poll: attempt every due delivery of one batch; returns how many were attempted."""
        async with self.engine.begin() as conn:
            rows = await webhook_store.claim_due(conn, self.batch_size)
            if not rows:
                return 0
            outcomes = await asyncio.gather(*(self._attempt(row) for row in rows))
            results = []
            for row, outcome in zip(rows, outcomes, strict=True):
                attempt = row["attempt_count"] + 1
                retry_in = None
                if not outcome.delivered and attempt < self.max_attempts and row["secret"] is not None:
                    retry_in = retry_delay_seconds(attempt, self.retry_base_seconds, self.retry_max_seconds)
                await webhook_store.record_attempt(
                    conn,
                    row["delivery_id"],
                    url=outcome.url,
                    status_code=outcome.status_code,
                    error=outcome.error,
                    delivered=outcome.delivered,
                    retry_in_seconds=retry_in,
                )
                results.append((row, outcome, attempt, retry_in))
        for row, outcome, attempt, retry_in in results:
            fields = {
                "delivery_id": row["delivery_id"],
                "alert_id": row["id"],
                "builder_id": row["builder_id"],
                "attempt": attempt,
                "status_code": outcome.status_code,
            }
            if outcome.delivered:
                metrics.WEBHOOK_ATTEMPTS.labels(metrics.WEBHOOK_DELIVERED).inc()
                log.info("billing.webhook.delivered", **fields)
            elif retry_in is not None:
                metrics.WEBHOOK_ATTEMPTS.labels(metrics.WEBHOOK_RETRYING).inc()
                log.info("billing.webhook.retrying", retry_in_seconds=retry_in, error=outcome.error, **fields)
            else:
                metrics.WEBHOOK_ATTEMPTS.labels(metrics.WEBHOOK_FAILED).inc()
                log.warning("billing.webhook.failed", error=outcome.error, **fields)
        return len(rows)

    async def _attempt(self, row: dict[str, Any]) -> Outcome:
        if row["secret"] is None:
            return Outcome(row["delivery_url"], 0, "the builder has no webhook endpoint")
        url = row["endpoint_url"]
        try:
            parts = urlsplit(url)
            host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            return Outcome(url, 0, "the endpoint URL cannot be read")
        if not host_allowed(host, port, self.allowed_hosts):
            return Outcome(url, 0, f"host {host}:{port} is not in BILLING_WEBHOOK_ALLOWED_HOSTS; not sent")
        body = alert_body(row)
        headers = {
            "Content-Type": "application/json",
            ALERT_ID_HEADER: row["id"],
            SIGNATURE_HEADER: sign(row["secret"], body, int(time.time())),
        }
        assert self._session is not None
        try:
            async with self._session.post(url, data=body, headers=headers, allow_redirects=False) as resp:
                status = resp.status
        except TimeoutError:
            return Outcome(url, 0, f"no answer within {self.timeout_seconds:g} s")
        except aiohttp.ClientError as exc:
            return Outcome(url, 0, _clip(f"the request failed: {type(exc).__name__}: {exc}"))
        except Exception as exc:  # a bug must not wedge the batch: count it as a failed attempt
            log.exception("billing.webhook.attempt_crashed", delivery_id=row["delivery_id"])
            return Outcome(url, 0, _clip(f"the attempt failed inside billing: {type(exc).__name__}"))
        if 200 <= status < 300:
            return Outcome(url, status, "")
        return Outcome(url, status, f"the endpoint answered HTTP {status}")


def _clip(text: str) -> str:
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 3] + "..."
