"""AdminService: keys, providers and models (the catalog), route health; reloads the in-memory state."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from common import errors
from common.idempotency import builder_scope, claim, complete, fingerprint
from common.paging import encode_token, page_size
from gateway.domain import limits
from gateway.domain.catalog import Model, Provider, validate_model, validate_provider
from gateway.domain.keys import (
    ApiKey,
    RateLimits,
    hash_secret,
    new_key_id,
    new_secret,
    shown_prefix,
    validate_new_key,
)
from gateway.service.state import Catalog, HealthBoard, KeyCache
from gateway.store import Store, idempotency

log = structlog.get_logger("gateway.service")


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
