"""ChatService: authenticate, route with failover, record usage (unary and streaming).

The hot path touches no database except the outbox's group commit (and a request-id reservation
when the caller supplies one)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing

import structlog

from common import errors
from gateway import metrics
from gateway.config import Settings
from gateway.domain import chat as chat_rules
from gateway.domain import limits, routing
from gateway.domain.catalog import Route
from gateway.domain.chat import ChatInput
from gateway.domain.health import RouteHealth
from gateway.domain.keys import ApiKey
from gateway.domain.usage import UsageRecord, estimate_tokens
from gateway.outbox import OutboxUnavailable, OutboxWriter
from gateway.service.failures import (
    AllAttemptsFailed,
    NoRouteAvailable,
    RequestIdReused,
    RequestIdUnchecked,
    StreamInterrupted,
    UsageNotRecorded,
    _rejection,
)
from gateway.service.results import (
    Completion,
    Served,
    StreamChunk,
    StreamEnd,
    StreamStart,
    Usage,
    _Attempts,
    _completion_chars,
    _fingerprint,
    _upstream_body,
)
from gateway.service.spending import Spending
from gateway.service.state import Catalog, HealthBoard, KeyCache, Limiter
from gateway.spend import SpendGuard
from gateway.store import DATABASE_UNAVAILABLE, Store
from gateway.upstream import Upstream, UpstreamError, UpstreamStream

log = structlog.get_logger("gateway.service")


class ChatService:
    def __init__(
        self,
        settings: Settings,
        keys: KeyCache,
        catalog: Catalog,
        health: HealthBoard,
        limiter: Limiter,
        upstream: Upstream,
        outbox: OutboxWriter,
        spend: SpendGuard,
        store: Store | None = None,
    ) -> None:
        self.s = settings
        self.store = store  # request id reservations only; never read on a call without a request id
        self.keys = keys
        self.catalog = catalog
        self.health = health
        self.limiter = limiter
        self.upstream = upstream
        self.outbox = outbox
        self.spend = spend
        self._background: set[asyncio.Task[None]] = set()

    def authenticate(self, authorization: str | None) -> ApiKey:
        return self.keys.authenticate(authorization)

    def public_models(self) -> list[tuple[str, list[str]]]:
        out = []
        for name in sorted(self.catalog.routes):
            routes = self.catalog.routes[name]
            if routes:
                providers = list(dict.fromkeys(r.provider for r in routes))
                out.append((name, providers))
        return out

    # -- planning --

    def _plan(self, key: ApiKey, chat: ChatInput) -> tuple[str, dict[str, str], list[Route]]:
        tags = chat_rules.validate(chat, key.default_tags)
        model_routes = []
        for i, name in enumerate(chat.models):
            routes = self.catalog.routes.get(name)
            if routes is None:
                field = "model" if i == 0 else "models"
                raise errors.NotFound(f"model {limits.shown(name)!r} is not in the catalog", field=field)
            model_routes.append(routes)
        self.limiter.admit(key)
        est_in = estimate_tokens(chat_rules.prompt_chars(chat.messages))
        est_out = chat.params.get("max_tokens") or self.s.estimated_output_tokens
        candidates = routing.plan(
            model_routes,
            chat.strategy or self.s.default_strategy,
            chat.prefs,
            est_in,
            est_out,
            self.health.latency_of,
        )
        if not candidates:
            raise errors.InvalidArgument(
                "no offering of the requested models matches the provider preferences",
                field="provider_preferences",
            )
        return chat.request_id or uuid.uuid4().hex, tags, candidates

    async def _attempts(
        self, key: ApiKey, chat: ChatInput, request_id: str, tags: dict[str, str]
    ) -> _Attempts:
        """The request's attempts. With a client-supplied request id, first reserve attempt numbers
        for it (README "Request ids"): the same id with another body is refused before any provider
        is called; the same id with the same body is served again under new attempt numbers, so
        every answered call has events of its own and is billed. A generated id cannot collide and
        costs no database round trip."""
        att = _Attempts(key, chat, request_id, tags)
        if chat.request_id:
            try:
                assert self.store is not None
                base = await self.store.reserve_attempts(
                    key.builder_id, request_id, _fingerprint(key, chat), self.s.max_attempts
                )
            except DATABASE_UNAVAILABLE as exc:
                log.warning("gateway.request_id.unchecked", error=type(exc).__name__)
                raise RequestIdUnchecked(
                    "the request id could not be checked; nothing was sent to a provider, retry"
                ) from None
            if base is None:
                raise RequestIdReused()
            att.base = base
        return att

    async def _record(self, events: list[UsageRecord]) -> None:
        try:
            await self.outbox.write(events)
        except OutboxUnavailable:
            raise UsageNotRecorded() from None
        metrics.usage_recorded(events)

    def _record_later(self, events: list[UsageRecord]) -> None:
        """For a caller that went away: commit in the background (nothing waits on the answer)."""
        if not events:
            return
        task = asyncio.ensure_future(self.outbox.write(events))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(
            lambda t: t.cancelled() or t.exception() is not None or metrics.usage_recorded(events)
        )

    # -- failover, shared by unary and streaming --

    def _admitted(self, candidates: list[Route], att: _Attempts) -> Iterator[RouteHealth]:
        """The candidates whose breaker admits an attempt, at most max_attempts; each starts an attempt."""
        for route in candidates:
            if att.n >= self.s.max_attempts:
                return
            h = self.health.get(route)
            if not h.try_acquire(time.monotonic()):
                att.skipped += 1
                continue
            att.begin(route)
            yield h

    async def _attempt_failed(self, att: _Attempts, h: RouteHealth, e: UpstreamError) -> None:
        """Record the failed attempt; a retryable error counts against the offering and the loop goes
        on, any other is the request's fault and is returned to the caller (raises)."""
        att.failed(e.reason)
        if not e.retryable:
            h.release()
            await self._record(att.events)
            raise _rejection(e, att.route) from None
        h.record_failure(time.monotonic(), time.time(), e.reason)
        att.last_error = e
        log.debug("gateway.attempt.failed", attempt=att.n, provider=att.route.provider, reason=e.reason)

    def _attempt_cancelled(
        self, att: _Attempts, h: RouteHealth, tokens: tuple[int, int] = (0, 0), *, estimated: bool = False
    ) -> None:
        """The caller went away: no verdict on the provider; record what was consumed, in the background."""
        h.release()
        att.failed("cancelled", tokens, estimated=estimated)
        self._record_later(att.events)

    async def _give_up(self, att: _Attempts, models: tuple[str, ...]) -> errors.ServiceError:
        if att.events:
            await self._record(att.events)
        if att.n == 0:
            return NoRouteAvailable(
                f"every offering of {', '.join(models)} is unavailable (circuit open); retry later"
            )
        reason = att.last_error.reason if att.last_error else "unknown"
        return AllAttemptsFailed(f"all {att.n} attempts failed; the last failed with {reason}")

    # -- unary --

    async def complete(self, key: ApiKey, chat: ChatInput) -> Completion:
        request_id, tags, candidates = self._plan(key, chat)
        spending, candidates = await Spending.begin(self, key, chat, tags, candidates)
        try:
            att = await self._attempts(key, chat, request_id, tags)
            spending.att = att
            return await self._complete(key, chat, request_id, candidates, att, spending)
        finally:
            spending.end()

    async def _complete(
        self,
        key: ApiKey,
        chat: ChatInput,
        request_id: str,
        candidates: list[Route],
        att: _Attempts,
        spending: Spending,
    ) -> Completion:
        for h in self._admitted(candidates, att):
            route = att.route
            await spending.cover(att, h)
            try:
                doc = await self.upstream.complete(route, _upstream_body(route, chat, False))
            except UpstreamError as e:
                await self._attempt_failed(att, h, e)
                continue
            except asyncio.CancelledError:
                self._attempt_cancelled(att, h)
                raise
            ms = att.elapsed_ms()
            h.record_success(ms)
            metrics.upstream_succeeded(route, ms / 1000)
            choices = doc["choices"]
            usage, estimated = att.usage(doc.get("usage"), _completion_chars(choices))
            att.succeeded(usage, estimated, ms)
            await self._record(att.events)
            self.limiter.charge_tokens(key, usage[0] + usage[1])
            return Completion(
                id=f"chatcmpl-{request_id}",
                request_id=request_id,
                created=int(att.created.timestamp()),
                choices=choices,
                usage=Usage(usage[0], usage[1], estimated),
                served=Served(route, att.base + att.n),
                create_time=att.created,
            )
        raise await self._give_up(att, chat.models)

    # -- streaming --

    async def stream(
        self, key: ApiKey, chat: ChatInput
    ) -> AsyncIterator[StreamStart | StreamChunk | StreamEnd]:
        """StreamStart, StreamChunk..., StreamEnd; errors before StreamStart are ordinary errors."""
        request_id, tags, candidates = self._plan(key, chat)
        spending, candidates = await Spending.begin(self, key, chat, tags, candidates)
        try:
            att = await self._attempts(key, chat, request_id, tags)
            spending.att = att
            # aclosing: a caller that goes away closes the inner stream (which records the cancelled
            # attempt's usage) before the hold is settled.
            async with aclosing(self._stream(key, chat, request_id, candidates, att, spending)) as items:
                async for item in items:
                    yield item
        finally:
            spending.end()

    async def _stream(
        self,
        key: ApiKey,
        chat: ChatInput,
        request_id: str,
        candidates: list[Route],
        att: _Attempts,
        spending: Spending,
    ) -> AsyncIterator[StreamStart | StreamChunk | StreamEnd]:
        opened: UpstreamStream | None = None
        health: RouteHealth | None = None
        for h in self._admitted(candidates, att):
            await spending.cover(att, h)
            try:
                opened = await self.upstream.open_stream(att.route, _upstream_body(att.route, chat, True))
            except UpstreamError as e:
                await self._attempt_failed(att, h, e)
                continue
            except asyncio.CancelledError:
                self._attempt_cancelled(att, h)
                raise
            health = h
            break
        if opened is None or health is None:
            raise await self._give_up(att, chat.models)

        ttft_ms = att.elapsed_ms()
        metrics.first_token(att.route, ttft_ms / 1000)
        served = Served(att.route, att.base + att.n)
        out_chars = 0
        raw_usage: object = None
        usage: tuple[int, int] = (0, 0)
        estimated = True
        recorded = False
        try:
            yield StreamStart(
                id=f"chatcmpl-{request_id}",
                request_id=request_id,
                created=int(att.created.timestamp()),
                served=served,
            )
            batch = opened.first
            rest = opened.rest()
            while True:
                frames = []
                for event in batch:
                    u = event.get("usage")
                    if u is not None:
                        raw_usage = u
                    choices = event.get("choices")
                    if choices:
                        out_chars += _completion_chars(choices)
                        frames.append(choices)
                if frames:
                    yield StreamChunk(frames)
                try:
                    batch = await anext(rest)
                except StopAsyncIteration:
                    break
            health.record_success(ttft_ms)
            metrics.upstream_succeeded(att.route, att.elapsed_ms() / 1000)
            usage, estimated = att.usage(raw_usage, out_chars)
            att.succeeded(usage, estimated)
            recorded = True
            await self._record(att.events)
            self.limiter.charge_tokens(key, usage[0] + usage[1])
        except UpstreamError as e:
            # Output already reached the caller: no switch. Record the partial usage, then fail the stream.
            health.record_failure(time.monotonic(), time.time(), e.reason)
            partial, partial_estimated = att.usage(raw_usage, out_chars)
            att.failed("stream interrupted", partial, estimated=partial_estimated)
            recorded = True
            await self._record(att.events)
            self.limiter.charge_tokens(key, partial[0] + partial[1])
            raise StreamInterrupted(
                f"the provider's stream broke after output was sent ({e.reason}); partial usage was recorded"
            ) from None
        finally:
            opened.close()
            if not recorded:
                partial, partial_estimated = att.usage(raw_usage, out_chars)
                self._attempt_cancelled(att, health, partial, estimated=partial_estimated)
        yield StreamEnd(Usage(usage[0], usage[1], estimated), served)

    async def close(self) -> None:
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
