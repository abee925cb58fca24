"""Gateway use cases: authenticate, route with failover, record usage; and the admin use cases.

The hot path touches no database except the outbox's group commit: keys, catalog, breakers and
rate limits live in memory (reloaded from the database every `refresh_seconds`).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from common import errors
from common.idempotency import builder_scope, claim, complete, fingerprint
from common.paging import encode_token, page_size
from gateway import metrics
from gateway.clients import Entitlements
from gateway.config import Settings
from gateway.domain import chat as chat_rules
from gateway.domain import limits, routing
from gateway.domain.catalog import Model, Provider, Route, resolve_routes, validate_model, validate_provider
from gateway.domain.chat import ChatInput
from gateway.domain.health import BreakerPolicy, RouteHealth
from gateway.domain.keys import (
    ApiKey,
    RateLimits,
    hash_secret,
    new_key_id,
    new_secret,
    shown_prefix,
    validate_new_key,
)
from gateway.domain.ratelimit import Bucket
from gateway.domain.usage import UsageRecord, build_event, estimate_tokens, reported_usage
from gateway.outbox import OutboxUnavailable, OutboxWriter
from gateway.store import DATABASE_UNAVAILABLE, Store, idempotency
from gateway.upstream import Upstream, UpstreamError, UpstreamStream

log = structlog.get_logger("gateway.service")

UNAUTHENTICATED_MESSAGE = "the API key is missing, unknown or revoked"
_DUMMY_HASH = "0" * 64


# ---- errors with an HTTP status for the front door (gRPC maps them through their base class) ----


class ProviderRejected(errors.InvalidArgument):
    """The provider refused the request itself (4xx other than 429): not retried, returned to the caller."""

    def __init__(self, message: str, http_status: int) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.code = "upstream_rejected"


class ProviderNotFound(errors.NotFound):
    http_status = 404
    code = "upstream_not_found"


class ProviderMisconfigured(errors.FailedPrecondition):
    http_status = 502
    code = "upstream_credentials"


class AllAttemptsFailed(errors.Unavailable):
    http_status = 502
    code = "upstream_error"


class NoRouteAvailable(errors.Unavailable):
    http_status = 503
    code = "no_route"


class StreamInterrupted(errors.Unavailable):
    http_status = 502
    code = "upstream_stream_interrupted"


class RequestIdReused(errors.AlreadyExists):
    http_status = 409
    code = "request_id_reused"

    def __init__(self) -> None:
        super().__init__(
            "request_id was already used for a different request; use a new request_id",
            field="request_id",
        )


class RequestIdUnchecked(errors.Unavailable):
    http_status = 503
    code = "request_id_unchecked"


class UsageNotRecorded(errors.Unavailable):
    def __init__(self) -> None:
        super().__init__(
            "usage could not be recorded; the request was not answered, retry with the same request_id"
        )
        self.http_status = 503
        self.code = "usage_not_recorded"


def _rejection(e: UpstreamError, route: Route) -> errors.ServiceError:
    detail = f": {e.message}" if e.message else ""
    if e.status in (401, 403):
        return ProviderMisconfigured(f"provider {route.provider} rejected the gateway's credentials")
    if e.status == 404:
        return ProviderNotFound(f"provider {route.provider} answered 404{detail}")
    return ProviderRejected(
        f"provider {route.provider} rejected the request (http {e.status}){detail}",
        http_status=e.status if 400 <= e.status < 500 else 400,
    )


# ---- results ----


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int
    output_tokens: int
    estimated: bool


@dataclass(frozen=True, slots=True)
class Served:
    route: Route
    attempt: int


@dataclass(frozen=True, slots=True)
class Completion:
    id: str
    request_id: str
    created: int
    choices: list[dict[str, Any]]
    usage: Usage
    served: Served
    create_time: datetime


@dataclass(frozen=True, slots=True)
class StreamStart:
    """First item of a stream: who serves it (sent before any content)."""

    id: str
    request_id: str
    created: int
    served: Served


@dataclass(frozen=True, slots=True)
class StreamChunk:
    """Upstream chunks that arrived together: one list of choices (index, delta, finish_reason) each."""

    frames: list[list[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class StreamEnd:
    usage: Usage
    served: Served


# ---- in-memory state ----


class _Attempts:
    """One request's upstream attempts and the usage event each becomes (id `<request_id>:<n>`)."""

    __slots__ = (
        "_chat",
        "_key",
        "_occurred",
        "_prompt_chars",
        "_request_id",
        "_t0",
        "_tags",
        "base",
        "created",
        "events",
        "last_error",
        "n",
        "route",
        "skipped",
    )

    def __init__(self, key: ApiKey, chat: ChatInput, request_id: str, tags: dict[str, str]) -> None:
        self._key = key
        self._chat = chat
        self._request_id = request_id
        self._tags = tags
        self.created = datetime.now(UTC)
        self.events: list[UsageRecord] = []
        self.n = 0  # attempts started by this call
        self.base = 0  # attempt numbers earlier calls with the same request id reserved
        self.skipped = 0  # candidates passed over because their breaker was open
        self.last_error: UpstreamError | None = None
        self.route: Route
        self._occurred = self.created
        self._t0 = 0.0
        self._prompt_chars = -1

    def begin(self, route: Route) -> None:
        self.n += 1
        self.route = route
        self._occurred = datetime.now(UTC) if self.n > 1 else self.created
        self._t0 = time.perf_counter()

    def elapsed_ms(self) -> float:
        """Milliseconds since this attempt began."""
        return (time.perf_counter() - self._t0) * 1000

    def prompt_chars(self) -> int:
        if self._prompt_chars < 0:
            self._prompt_chars = chat_rules.prompt_chars(self._chat.messages)
        return self._prompt_chars

    def prompt_tokens_estimate(self) -> int:
        return estimate_tokens(self.prompt_chars())

    def usage(self, raw: object, output_chars: int) -> tuple[tuple[int, int], bool]:
        """The tokens to record and whether they are estimated (see usage.reported_usage)."""
        reported = reported_usage(raw, self.prompt_chars(), output_chars)
        if reported is not None:
            return reported, False
        return (self.prompt_tokens_estimate(), estimate_tokens(output_chars)), True

    def succeeded(self, tokens: tuple[int, int], estimated: bool, latency_ms: float | None = None) -> None:
        self._add(True, tokens, estimated, latency_ms, "")

    def failed(self, error: str, tokens: tuple[int, int] = (0, 0), *, estimated: bool = False) -> None:
        self._add(False, tokens, estimated, None, error)

    def _add(
        self, ok: bool, tokens: tuple[int, int], estimated: bool, latency_ms: float | None, error: str
    ) -> None:
        key = self._key
        self.events.append(
            build_event(
                request_id=self._request_id,
                attempt=self.base + self.n,
                occurred_time=self._occurred,
                builder_id=key.builder_id,
                app_id=key.app_id,
                customer_id=key.customer_id,
                route=self.route,
                succeeded=ok,
                input_tokens=tokens[0],
                output_tokens=tokens[1],
                estimated=estimated,
                latency_ms=int(self.elapsed_ms() if latency_ms is None else latency_ms),
                tags=self._tags,
                units=self._chat.units,
                error=error,
                test=key.test,
            )
        )


class KeyCache:
    def __init__(self) -> None:
        self._by_hash: dict[str, tuple[str, ApiKey]] = {}

    def replace(self, rows: list[tuple[str, ApiKey]]) -> None:
        self._by_hash = {h: (h, k) for h, k in rows}

    def put(self, secret_hash: str, key: ApiKey) -> None:
        self._by_hash[secret_hash] = (secret_hash, key)

    def mark_revoked(self, key: ApiKey) -> None:
        for h, (_, k) in list(self._by_hash.items()):
            if k.id == key.id:
                self._by_hash[h] = (h, key)

    def authenticate(self, authorization: str | None) -> ApiKey:
        """Same work and same answer for a missing, unknown or revoked key (no timing oracle)."""
        secret = ""
        if authorization and authorization[:7].lower() == "bearer ":
            secret = authorization[7:].strip()
        digest = hash_secret(secret)
        hit = self._by_hash.get(digest)
        stored, key = hit if hit is not None else (_DUMMY_HASH, None)
        ok = hmac.compare_digest(stored, digest)
        if not ok or key is None or key.revoke_time is not None:
            raise errors.Unauthenticated(UNAUTHENTICATED_MESSAGE)
        return key


class Catalog:
    def __init__(self) -> None:
        self.providers: dict[str, Provider] = {}
        self.models: dict[str, Model] = {}
        self.update_times: dict[str, datetime] = {}
        self.routes: dict[str, tuple[Route, ...]] = {}

    def replace(
        self, providers: dict[str, Provider], models: list[Model], times: dict[str, datetime]
    ) -> None:
        self.providers = providers
        self.models = {m.name: m for m in models}
        self.update_times = times
        self.routes = {m.name: resolve_routes(m, providers) for m in models}


class Limiter:
    def __init__(self) -> None:
        self._buckets: dict[str, tuple[Bucket | None, Bucket | None, RateLimits]] = {}

    def _get(self, key: ApiKey, now: float) -> tuple[Bucket | None, Bucket | None, RateLimits]:
        entry = self._buckets.get(key.id)
        if entry is None or entry[2] != key.rate_limits:
            lim = key.rate_limits
            entry = (
                Bucket(lim.requests_per_minute, now) if lim.requests_per_minute else None,
                Bucket(lim.tokens_per_minute, now) if lim.tokens_per_minute else None,
                lim,
            )
            self._buckets[key.id] = entry
        return entry

    def admit(self, key: ApiKey) -> None:
        if not key.rate_limits.requests_per_minute and not key.rate_limits.tokens_per_minute:
            return
        now = time.monotonic()
        req, tok, lim = self._get(key, now)
        if tok is not None:
            wait = tok.wait_until_positive(now)
            if wait:
                raise errors.ResourceExhausted(
                    f"rate limit exceeded: the key's {lim.tokens_per_minute} tokens per minute are used up",
                    retry_after_seconds=round(wait, 3),
                )
        if req is not None:
            wait = req.take(now)
            if wait:
                raise errors.ResourceExhausted(
                    f"rate limit exceeded: the key allows {lim.requests_per_minute} requests per minute",
                    retry_after_seconds=round(wait, 3),
                )

    def charge_tokens(self, key: ApiKey, tokens: int) -> None:
        if key.rate_limits.tokens_per_minute and tokens:
            now = time.monotonic()
            _, tok, _ = self._get(key, now)
            if tok is not None:
                tok.debit(now, tokens)


class HealthBoard:
    def __init__(self, policy: BreakerPolicy) -> None:
        self.policy = policy
        self._by_route: dict[tuple[str, str], RouteHealth] = {}

    def get(self, route: Route) -> RouteHealth:
        h = self._by_route.get(route.key)
        if h is None:
            h = self._by_route[route.key] = RouteHealth(self.policy)
        return h

    def peek(self, model: str, offering_id: str) -> RouteHealth | None:
        return self._by_route.get((model, offering_id))

    def latency_of(self, route: Route) -> float:
        h = self._by_route.get(route.key)
        return h.ewma_ms if h is not None else 0.0


def _upstream_body(route: Route, chat: ChatInput, stream: bool) -> bytes:
    body: dict[str, Any] = {"model": route.upstream_model, "messages": chat.messages}
    body.update(chat.params)
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return json.dumps(body, separators=(",", ":")).encode()


def _fingerprint(key: ApiKey, chat: ChatInput) -> str:
    """What makes two calls with one request id the same request: the key's app and customer and
    everything the caller asked for, except streaming (a unary retry of a stream is the same work)."""
    p = chat.prefs
    u = chat.units
    return fingerprint(
        [
            key.app_id,
            key.customer_id,
            chat.models,
            chat.messages,
            chat.params,
            chat.tags,
            chat.strategy,
            [p.order, p.only, p.ignore],
            [u.run_id, u.document_id, u.page_count, u.ticket_id, u.outcome],
        ]
    )


def _completion_chars(choices: list[dict[str, Any]]) -> int:
    n = 0
    for c in choices:
        m = c.get("message") or c.get("delta") or {}
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, str):
            n += len(content)
    return n


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
        entitlements: Entitlements,
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
        self.entitlements = entitlements
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
        await self.entitlements.check(key.builder_id, key.customer_id)
        att = await self._attempts(key, chat, request_id, tags)
        for h in self._admitted(candidates, att):
            route = att.route
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
        await self.entitlements.check(key.builder_id, key.customer_id)
        att = await self._attempts(key, chat, request_id, tags)
        opened: UpstreamStream | None = None
        health: RouteHealth | None = None
        for h in self._admitted(candidates, att):
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


# ---- admin ----


def _provider_reply(p: Provider, t: datetime) -> dict[str, Any]:
    return {
        "name": p.name,
        "base_url": p.base_url,
        "credential_env": p.credential_env,
        "update_time": t.isoformat(),
    }


def provider_from_reply(d: dict[str, Any]) -> tuple[Provider, datetime]:
    return Provider(d["name"], d["base_url"], d["credential_env"]), datetime.fromisoformat(d["update_time"])


def _model_reply(m: Model, t: datetime) -> dict[str, Any]:
    return {
        "name": m.name,
        "update_time": t.isoformat(),
        "offerings": [
            {
                "id": o.id,
                "provider": o.provider,
                "upstream_model": o.upstream_model,
                "base_url": o.base_url,
                "credential_env": o.credential_env,
                "input_price_per_mtok": str(o.input_price_per_mtok),
                "output_price_per_mtok": str(o.output_price_per_mtok),
                "weight": o.weight,
                "enabled": o.enabled,
            }
            for o in m.offerings
        ],
    }


def model_from_reply(d: dict[str, Any]) -> tuple[Model, datetime]:
    from decimal import Decimal

    from gateway.domain.catalog import Offering

    offs = tuple(
        Offering(
            id=o["id"],
            provider=o["provider"],
            upstream_model=o["upstream_model"],
            input_price_per_mtok=Decimal(o["input_price_per_mtok"]),
            output_price_per_mtok=Decimal(o["output_price_per_mtok"]),
            base_url=o["base_url"],
            credential_env=o["credential_env"],
            weight=o["weight"],
            enabled=o["enabled"],
        )
        for o in d["offerings"]
    )
    return Model(d["name"], offs), datetime.fromisoformat(d["update_time"])


def _require_request_id(request_id: str) -> None:
    limits.check_request_id(request_id)


@dataclass(frozen=True, slots=True)
class RouteHealthView:
    model: str
    offering_id: str
    provider: str
    state: str
    consecutive_failures: int
    ewma_latency_ms: float
    success_count: int
    failure_count: int
    open_time: datetime | None
    last_error: str


class AdminService:
    def __init__(
        self,
        store: Store,
        keys: KeyCache,
        catalog: Catalog,
        health: HealthBoard,
        *,
        allowed_hosts: tuple[str, ...] = (),
    ) -> None:
        self.store = store
        self.allowed_hosts = allowed_hosts
        self.keys = keys
        self.catalog = catalog
        self.health = health
        self._reload_lock = asyncio.Lock()

    async def reload(self) -> None:
        """Refresh the in-memory keys and catalog from the database (changes made by other instances)."""
        async with self._reload_lock:
            rows = await self.store.load_keys()
            providers, models, times = await self.store.load_catalog()
            self.keys.replace(rows)
            self.catalog.replace(providers, models, times)

    async def apply_catalog(self, providers: list[Provider], models: list[Model]) -> None:
        """Upsert a catalog document (the YAML file) in one transaction."""
        async with self.store.engine.begin() as conn:
            for p in providers:
                await self.store.upsert_provider(conn, validate_provider(p, self.allowed_hosts))
            known = await self.store.provider_names(conn)
            for m in models:
                await self.store.upsert_model(conn, validate_model(m, known, self.allowed_hosts))
            await self.store.notify_changed(conn)
        await self.reload()

    async def create_api_key(
        self,
        request_id: str,
        builder_id: str,
        app_id: str,
        customer_id: str,
        display_name: str,
        default_tags: dict[str, str],
        limits: RateLimits,
        test: bool = False,
    ) -> tuple[ApiKey, str]:
        """Issue a key; `test` (fixed for the key's life) makes every usage event of it a TEST one."""
        _require_request_id(request_id)
        validate_new_key(builder_id, app_id, customer_id, display_name, default_tags, limits)
        body = fingerprint(
            [
                "create_api_key",
                builder_id,
                app_id,
                customer_id,
                display_name,
                default_tags,
                limits.requests_per_minute,
                limits.tokens_per_minute,
            ]
            # only a test key adds to the body, so a live key's retry matches replies stored before modes
            + (["test"] if test else [])
        )
        scope = builder_scope("create_api_key", builder_id)
        async with self.store.engine.begin() as conn:
            prior = await claim(conn, idempotency, scope, request_id, body)
            if prior is not None:
                key = await self.store.get_key(conn, prior["api_key_id"])
                assert key is not None
                return key, ""
            secret = new_secret(test)
            key = ApiKey(
                id=new_key_id(),
                builder_id=builder_id,
                app_id=app_id,
                customer_id=customer_id,
                display_name=display_name,
                default_tags=dict(default_tags),
                rate_limits=limits,
                secret_prefix=shown_prefix(secret),
                test=test,
            )
            key = await self.store.insert_key(conn, key, hash_secret(secret))
            await complete(conn, idempotency, scope, request_id, {"api_key_id": key.id})
            await self.store.notify_changed(conn)
        async with self._reload_lock:  # a reload that read the table before our commit must not drop it
            self.keys.put(hash_secret(secret), key)
        log.info(
            "gateway.api_key.created",
            api_key_id=key.id,
            builder_id=builder_id,
            app_id=app_id,
            customer_id=customer_id,
            test=test,
        )
        return key, secret

    async def revoke_api_key(self, request_id: str, api_key_id: str, builder_id: str = "") -> ApiKey:
        """Revoke a key; with builder_id (always, for a builder caller) only that builder's keys: another
        builder's key is NOT_FOUND, exactly like a key that does not exist."""
        _require_request_id(request_id)
        if not api_key_id:
            raise errors.InvalidArgument("api_key_id is required", field="api_key_id")
        scope = builder_scope("revoke_api_key", builder_id)
        async with self.store.engine.begin() as conn:
            await claim(conn, idempotency, scope, request_id, fingerprint(["revoke_api_key", api_key_id]))
            existing = await self.store.get_key(conn, api_key_id)
            if existing is None or (builder_id and existing.builder_id != builder_id):
                raise errors.NotFound("no such API key", field="api_key_id")
            key = await self.store.revoke_key(conn, api_key_id)
            assert key is not None
            await complete(conn, idempotency, scope, request_id, {"api_key_id": key.id})
            await self.store.notify_changed(conn)
        async with self._reload_lock:
            self.keys.mark_revoked(key)
        log.info("gateway.api_key.revoked", api_key_id=key.id)
        return key

    async def list_api_keys(
        self, builder_id: str, customer_id: str, include_revoked: bool, size: int, token: str
    ) -> tuple[list[ApiKey], str]:
        n = page_size(size)
        after = limits.key_cursor(token)
        rows = await self.store.list_keys(builder_id, customer_id, include_revoked, n + 1, after)
        nxt = ""
        if len(rows) > n:
            rows = rows[:n]
            last = rows[-1]
            nxt = encode_token({"t": last.create_time.isoformat(), "id": last.id})  # type: ignore[union-attr]
        return rows, nxt

    async def upsert_provider(self, request_id: str, provider: Provider) -> tuple[Provider, datetime]:
        _require_request_id(request_id)
        p = validate_provider(provider, self.allowed_hosts)
        async with self.store.engine.begin() as conn:
            prior = await claim(
                conn,
                idempotency,
                "upsert_provider",
                request_id,
                fingerprint(["upsert_provider", p.name, p.base_url, p.credential_env]),
            )
            if prior is not None:
                return provider_from_reply(prior)
            t = await self.store.upsert_provider(conn, p)
            await complete(conn, idempotency, "upsert_provider", request_id, _provider_reply(p, t))
            await self.store.notify_changed(conn)
        await self.reload()
        log.info("gateway.provider.upserted", provider=p.name)
        return p, t

    async def upsert_model(self, request_id: str, model: Model) -> tuple[Model, datetime]:
        _require_request_id(request_id)
        async with self.store.engine.begin() as conn:
            known = await self.store.provider_names(conn)
            m = validate_model(model, known, self.allowed_hosts)
            prior = await claim(
                conn,
                idempotency,
                "upsert_model",
                request_id,
                fingerprint(["upsert_model", _model_reply(m, datetime(2000, 1, 1))]),
            )
            if prior is not None:
                return model_from_reply(prior)
            t = await self.store.upsert_model(conn, m)
            await complete(conn, idempotency, "upsert_model", request_id, _model_reply(m, t))
            await self.store.notify_changed(conn)
        await self.reload()
        log.info("gateway.model.upserted", model=m.name, offerings=len(m.offerings))
        return m, t

    def list_models(self, size: int, token: str) -> tuple[list[tuple[Model, datetime | None]], str]:
        n = page_size(size)
        after = limits.name_cursor(token, "name")
        names = [name for name in sorted(self.catalog.models) if name > after]
        page = names[:n]
        nxt = encode_token({"name": page[-1]}) if len(names) > n else ""
        return [(self.catalog.models[name], self.catalog.update_times.get(name)) for name in page], nxt

    def route_health(self, model: str) -> list[RouteHealthView]:
        if model and model not in self.catalog.models:
            raise errors.NotFound(f"model {limits.shown(model)!r} is not in the catalog", field="model")
        now = time.monotonic()
        out = []
        for name in sorted(self.catalog.models):
            if model and name != model:
                continue
            for o in self.catalog.models[name].offerings:
                h = self.health.peek(name, o.id)
                if h is None:
                    out.append(RouteHealthView(name, o.id, o.provider, "closed", 0, 0.0, 0, 0, None, ""))
                    continue
                out.append(
                    RouteHealthView(
                        name,
                        o.id,
                        o.provider,
                        h.view_state(now),
                        h.consecutive_failures,
                        h.ewma_ms,
                        h.success_count,
                        h.failure_count,
                        datetime.fromtimestamp(h.open_wall_time, UTC)
                        if h.open_wall_time is not None
                        else None,
                        h.last_error,
                    )
                )
        return out
