"""The gateway under test, wired for real: stand-in providers over HTTP, its own migrated database,
the gRPC and HTTP listeners on free loopback ports, and (where a test needs it) the real metering server.

`make_stack(...)` starts a gateway with three stand-in providers (provider_a, provider_b, provider_c)
and a catalog YAML written to tmp space. Tests get isolation from each other by upserting their own
model (a fresh name) through the admin API, so breaker and latency state never leaks between tests.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import openai
import pytest
import yaml
from fakeprovider.app import FakeProvider
from fakeprovider.app import start as start_provider

from tests.conftest import auth_channel, auth_metadata, migrated_database, security
from tollgate.gateway.v1 import admin_pb2, admin_pb2_grpc, inference_pb2, inference_pb2_grpc
from tollgate.type.v1 import decimal_pb2

PROVIDER_NAMES = ("provider_a", "provider_b", "provider_c")
# Catalog prices (USD per million tokens, input/output): b is cheapest, then a, then c.
PRICES = {
    "provider_a": (Decimal("0.150"), Decimal("0.600")),
    "provider_b": (Decimal("0.100"), Decimal("0.400")),
    "provider_c": (Decimal("2.500"), Decimal("10.000")),
}


def credential_env(name: str) -> str:
    return f"TOLLGATE_PROVIDER_{name.upper()}_KEY"


def provider_key(name: str) -> str:
    return f"sk-upstream-{name}"


@dataclass
class Stack:
    """A running gateway and its stand-in providers."""

    providers: dict[str, FakeProvider]
    running: Any
    database_url: str
    grpc_address: str
    http_url: str
    channel: grpc.aio.Channel
    inference: inference_pb2_grpc.InferenceServiceStub
    admin: admin_pb2_grpc.GatewayAdminServiceStub
    catalog_path: Path
    _http: aiohttp.ClientSession | None = field(default=None, repr=False)

    admin_metadata = auth_metadata()

    @property
    def http(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession()
        return self._http

    async def create_key(self, **fields: Any) -> tuple[str, admin_pb2.ApiKey]:
        """A fresh key for builder b1 / app app1 / customer c1 unless overridden; returns (secret, key)."""
        limits = fields.pop("rate_limits", None)
        req = admin_pb2.CreateApiKeyRequest(
            request_id=fields.pop("request_id", uuid.uuid4().hex),
            builder_id=fields.pop("builder_id", "b1"),
            app_id=fields.pop("app_id", "app1"),
            customer_id=fields.pop("customer_id", "c1"),
            display_name=fields.pop("display_name", "test key"),
            default_tags=fields.pop("default_tags", {"workspace": "ws1", "workflow": "wf1"}),
            rate_limits=admin_pb2.RateLimits(**(limits or {})),
            mode=fields.pop("mode", admin_pb2.API_KEY_MODE_UNSPECIFIED),
        )
        assert not fields, f"unknown key fields {fields}"
        resp = await self.admin.CreateApiKey(req, metadata=self.admin_metadata, timeout=5)
        return resp.secret, resp.api_key

    async def upsert_model(self, offerings: list[dict[str, Any]], name: str | None = None) -> str:
        """Upsert a model (a fresh name unless given) whose offerings are given as dicts; returns its name."""
        name = name or f"m-{uuid.uuid4().hex[:8]}"
        pbs = []
        for o in offerings:
            o = dict(o)
            provider = o.pop("provider")
            in_price, out_price = o.pop("prices", None) or PRICES[provider]
            pbs.append(
                admin_pb2.Offering(
                    id=o.pop("id", provider.replace("provider_", "off_")),
                    provider=provider,
                    upstream_model=o.pop("upstream_model", f"{provider}-up"),
                    input_price_per_mtok=decimal_pb2.Decimal(value=str(in_price)),
                    output_price_per_mtok=decimal_pb2.Decimal(value=str(out_price)),
                    weight=o.pop("weight", 1),
                    enabled=o.pop("enabled", True),
                )
            )
            assert not o, o
        await self.admin.UpsertModel(
            admin_pb2.UpsertModelRequest(
                request_id=uuid.uuid4().hex, model=admin_pb2.Model(name=name, offerings=pbs)
            ),
            metadata=self.admin_metadata,
            timeout=5,
        )
        return name

    def openai(self, secret: str, **kw: Any) -> openai.AsyncOpenAI:
        kw.setdefault("max_retries", 0)
        kw.setdefault("timeout", 10)
        return openai.AsyncOpenAI(base_url=f"{self.http_url}/v1", api_key=secret, **kw)

    async def post_chat(
        self, secret: str | None, body: dict[str, Any], headers: dict[str, str] | None = None
    ):
        """POST /v1/chat/completions with a raw client; returns (status, headers, parsed JSON or text)."""
        h = dict(headers or {})
        if secret is not None:
            h["Authorization"] = f"Bearer {secret}"
        async with self.http.post(f"{self.http_url}/v1/chat/completions", json=body, headers=h) as r:
            text = await r.text()
            try:
                data: Any = await r.json(content_type=None)
            except ValueError:
                data = text
            return r.status, r.headers, data

    async def route_health(self, model: str) -> dict[str, admin_pb2.RouteHealth]:
        resp = await self.admin.GetRouteHealth(
            admin_pb2.GetRouteHealthRequest(model=model), metadata=self.admin_metadata, timeout=5
        )
        return {r.provider: r for r in resp.routes}

    def served(self) -> dict[str, int]:
        """Successful answers per stand-in provider, from their own counters."""
        return {n: p.stats()["by_outcome"].get("ok", 0) for n, p in self.providers.items()}

    def reset_providers(self) -> None:
        for p in self.providers.values():
            p.reset()


def write_catalog(path: Path, providers: dict[str, FakeProvider]) -> Path:
    doc = {
        "providers": [
            {"name": n, "base_url": p.base_url, "credential_env": credential_env(n)}
            for n, p in providers.items()
        ],
        "models": [
            {
                "name": "chat-small",
                "offerings": [
                    {
                        "id": n.replace("provider_", "off_"),
                        "provider": n,
                        "upstream_model": f"{n}-small",
                        "input_price_per_mtok": str(PRICES[n][0]),
                        "output_price_per_mtok": str(PRICES[n][1]),
                    }
                    for n in providers
                ],
            }
        ],
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def http_port_of(running: Any) -> int:
    for attr in ("http_port",):
        if getattr(running, attr, None):
            return int(getattr(running, attr))
    raise AssertionError(f"gateway.app.start() returned {running!r} without an http_port")


MakeStack = Callable[..., Awaitable[Stack]]


@pytest.fixture(scope="module")
async def make_stack(make_database, tmp_path_factory) -> AsyncIterator[MakeStack]:
    """Factory: `await make_stack(**settings_overrides)` -> Stack; everything is stopped at module end."""
    from gateway.app import start
    from gateway.config import Settings

    stacks: list[Stack] = []

    async def factory(**overrides: Any) -> Stack:
        providers = {}
        for n in PROVIDER_NAMES:
            os.environ[credential_env(n)] = provider_key(n)
            providers[n] = await start_provider("127.0.0.1", 0, name=n, api_key=provider_key(n))
        catalog = write_catalog(tmp_path_factory.mktemp("catalog") / "catalog.yaml", providers)
        url = await migrated_database(make_database, "gateway")
        settings = dict(
            database_url=url,
            grpc_address="127.0.0.1:0",
            http_address="127.0.0.1:0",
            metrics_port=None,
            catalog_file=str(catalog),
            security=security("gateway"),
            metering_address="127.0.0.1:1",  # nothing listens: events wait in the outbox
            relay_enabled=False,
            connect_timeout_seconds=1.0,
            attempt_timeout_seconds=1.0,
            stream_idle_timeout_seconds=1.0,
            breaker_failure_threshold=3,
            breaker_cooldown_seconds=0.5,
            relay_interval_seconds=0.05,
            relay_backoff_initial_seconds=0.05,
            relay_backoff_max_seconds=0.5,
            relay_deadline_seconds=2.0,
            refresh_seconds=0.5,
            shutdown_grace_seconds=1.0,
        )
        settings.update(overrides)
        running = await start(Settings(**settings))
        channel = auth_channel(f"127.0.0.1:{running.port}")
        stack = Stack(
            providers=providers,
            running=running,
            database_url=url,
            grpc_address=f"127.0.0.1:{running.port}",
            http_url=f"http://127.0.0.1:{http_port_of(running)}",
            channel=channel,
            inference=inference_pb2_grpc.InferenceServiceStub(channel),
            admin=admin_pb2_grpc.GatewayAdminServiceStub(channel),
            catalog_path=catalog,
        )
        stacks.append(stack)
        return stack

    yield factory
    for s in stacks:
        if s._http is not None:
            await s._http.close()
        await s.channel.close()
        await s.running.stop(0)
        for p in s.providers.values():
            await p.stop()


def bearer(secret: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {secret}"),)


def chat_request(
    model: str, text: str = "hello there", **kw: Any
) -> inference_pb2.CreateChatCompletionRequest:
    return inference_pb2.CreateChatCompletionRequest(
        model=model, messages=[inference_pb2.ChatMessage(role="user", content=text)], **kw
    )


def stream_request(
    model: str, text: str = "hello there", **kw: Any
) -> inference_pb2.StreamChatCompletionRequest:
    return inference_pb2.StreamChatCompletionRequest(
        model=model, messages=[inference_pb2.ChatMessage(role="user", content=text)], **kw
    )
