"""The in-memory state the hot path reads: keys, catalog, rate-limit buckets and route health
(reloaded from the database every `refresh_seconds`; no database read on a request)."""

from __future__ import annotations

import hmac
import time
from datetime import datetime

from common import errors
from gateway.domain.catalog import Model, Provider, Route, resolve_routes
from gateway.domain.health import BreakerPolicy, RouteHealth
from gateway.domain.keys import ApiKey, RateLimits, hash_secret
from gateway.domain.ratelimit import Bucket
from gateway.service.failures import RateLimited

UNAUTHENTICATED_MESSAGE = "the API key is missing, unknown or revoked"
_DUMMY_HASH = "0" * 64


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
                raise RateLimited(
                    f"rate limit exceeded: the key's {lim.tokens_per_minute} tokens per minute are used up",
                    round(wait, 3),
                )
        if req is not None:
            wait = req.take(now)
            if wait:
                raise RateLimited(
                    f"rate limit exceeded: the key allows {lim.requests_per_minute} requests per minute",
                    round(wait, 3),
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
