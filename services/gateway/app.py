"""Wiring: settings -> database -> store -> caches -> services -> gRPC server + HTTP front door."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import structlog
import yaml
from aiohttp import web

from common import auth, errors
from common.db import create_engine, resolve_database_url
from common.migrations import upgrade_head_async
from common.security import open_channel
from common.server import RunningServer, start_server
from common.settings import SettingsError
from gateway import metrics
from gateway.api import ADMIN_ACCESS, INFERENCE_ACCESS, AdminServicer, InferenceServicer
from gateway.clients import MeteringClient, SpendClient
from gateway.config import Settings
from gateway.domain.catalog import parse_catalog
from gateway.domain.health import BreakerPolicy
from gateway.http_api import FrontDoor
from gateway.outbox import OutboxWriter, Relay
from gateway.service import AdminService, Catalog, ChatService, HealthBoard, KeyCache, Limiter
from gateway.spend import SpendGuard
from gateway.store import Store
from gateway.upstream import Upstream
from tollgate.gateway.v1 import admin_pb2, admin_pb2_grpc, inference_pb2, inference_pb2_grpc

log = structlog.get_logger("gateway.app")

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(text: str, environ: Mapping[str, str]) -> str:
    """${NAME} / ${NAME:-default} in the catalog file (base URLs differ per deployment). Credentials are
    never expanded into the catalog: offerings name their variable in credential_env instead."""

    def sub(m: re.Match[str]) -> str:
        value = environ.get(m.group(1))
        if value:
            return value
        if m.group(2) is not None:
            return m.group(2)
        raise SettingsError(f"the catalog file uses ${{{m.group(1)}}}, which is not set")

    return _VAR.sub(sub, text)


def _split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    try:
        return host.strip("[]") or "127.0.0.1", int(port)
    except ValueError:
        raise SettingsError(f"GATEWAY_HTTP_ADDRESS must be host:port, got {address!r}") from None


@dataclass
class GatewayServer:
    """The running gateway: the gRPC server (common RunningServer) plus the HTTP front door."""

    grpc: RunningServer
    http_runner: web.ServerRunner
    http_port: int
    chat: ChatService
    admin: AdminService
    relay: Relay | None
    outbox: OutboxWriter
    store: Store
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def port(self) -> int:
        return self.grpc.port

    @property
    def metrics_port(self) -> int | None:
        return self.grpc.metrics_port

    async def set_serving(self) -> None:
        await self.grpc.set_serving()

    async def stop(self, grace: float = 5.0) -> None:
        # The HTTP door closes first (in-flight requests get the grace), then gRPC; on_stop callbacks
        # then flush the outbox, stop the relay and close pools.
        await self.http_runner.shutdown()
        await self.http_runner.cleanup()
        await self.grpc.stop(grace)


async def start(settings: Settings) -> GatewayServer:
    # Credentials first: a service that may not start should say so before it touches its database.
    security = settings.security
    verifier = security.verifier(settings.grpc_address)
    token = security.token_source(settings.grpc_address)
    url = await resolve_database_url(settings.database_url, settings.data_dir, "gateway")
    if not settings.http_worker:
        await upgrade_head_async(MIGRATIONS, url, "alembic_version_gateway")
    engine = create_engine(url, pool_size=4, max_overflow=4)
    store = Store(engine, url)
    await store.open()

    keys, catalog = KeyCache(), Catalog()
    health = HealthBoard(
        BreakerPolicy(
            settings.breaker_failure_threshold, settings.breaker_cooldown_seconds, settings.latency_ewma_alpha
        )
    )
    admin = AdminService(store, keys, catalog, health, allowed_hosts=settings.upstream_allowed_hosts)
    if settings.catalog_file and not settings.http_worker:
        text = await asyncio.to_thread(Path(settings.catalog_file).read_text)
        doc = yaml.safe_load(expand_env(text, os.environ))
        try:
            providers, models = parse_catalog(doc, settings.upstream_allowed_hosts)
            await admin.apply_catalog(providers, models)
        except errors.InvalidArgument as exc:
            await store.close()
            # A catalog the gateway must not trust stops start-up, naming the file and the field.
            raise SettingsError(f"GATEWAY_CATALOG_FILE {settings.catalog_file}: {exc.message}") from None
        log.info(
            "gateway.catalog.loaded", file=settings.catalog_file, providers=len(providers), models=len(models)
        )
    await admin.reload()

    upstream = Upstream(
        connect_timeout=settings.connect_timeout_seconds,
        attempt_timeout=settings.attempt_timeout_seconds,
        stream_idle_timeout=settings.stream_idle_timeout_seconds,
        connection_limit=settings.upstream_connection_limit,
        allowed_hosts=settings.upstream_allowed_hosts,
    )
    await upstream.open()
    outbox = OutboxWriter(
        store, batch_max=settings.outbox_batch_max, synchronous_commit=settings.outbox_synchronous_commit
    )
    outbox.start()
    metering = MeteringClient(
        lambda options: open_channel(
            settings.metering_address,
            token=token,
            tls=security.client_tls(),
            options=options,
        ),
        settings.relay_deadline_seconds,
    )
    relay = None
    if settings.relay_enabled and not settings.http_worker:
        relay = Relay(
            store,
            metering,
            batch_size=settings.relay_batch_size,
            interval=settings.relay_interval_seconds,
            backoff_initial=settings.relay_backoff_initial_seconds,
            backoff_max=settings.relay_backoff_max_seconds,
            retention_hours=settings.outbox_retention_hours,
        )
        outbox.on_commit.append(relay.wake)
        relay.start()
    spend_client = None
    if settings.spend_controls:
        spend_client = SpendClient(
            lambda options: open_channel(
                settings.billing_address, token=token, tls=security.client_tls(), options=options
            ),
            settings.spend_deadline_seconds,
        )
    guard = SpendGuard(
        spend_client,
        policy_seconds=settings.spend_policy_seconds,
        lease_requests=settings.spend_lease_requests,
        report_seconds=settings.spend_report_seconds,
    )
    guard.start()
    chat = ChatService(settings, keys, catalog, health, Limiter(), upstream, outbox, guard, store)

    def register(server) -> list[str]:
        inference_pb2_grpc.add_InferenceServiceServicer_to_server(InferenceServicer(chat), server)
        admin_pb2_grpc.add_GatewayAdminServiceServicer_to_server(AdminServicer(admin), server)
        return [
            inference_pb2.DESCRIPTOR.services_by_name["InferenceService"].full_name,
            admin_pb2.DESCRIPTOR.services_by_name["GatewayAdminService"].full_name,
        ]

    services = {**inference_pb2.DESCRIPTOR.services_by_name, **admin_pb2.DESCRIPTOR.services_by_name}
    running = await start_server(
        address=settings.grpc_address,
        register=register,
        verifier=verifier,
        access={
            services["InferenceService"].full_name: INFERENCE_ACCESS,
            services["GatewayAdminService"].full_name: ADMIN_ACCESS,
        },
        tls=security.server_tls(),
        api_key_check=lambda metadata: chat.authenticate(auth.bearer_header(metadata)),
        metrics_port=settings.metrics_port,
        metrics_host=settings.metrics_host,
    )

    runner = web.ServerRunner(FrontDoor(chat).server(), handle_signals=False)
    await runner.setup()
    host, port = _split_address(settings.http_address)
    shared = settings.http_workers > 1 or settings.http_worker
    site = web.TCPSite(runner, host, port, backlog=1024, reuse_address=True, reuse_port=shared or None)
    await site.start()
    http_port = runner.addresses[0][1]

    changed = asyncio.Event()
    listener: dict = {}

    async def listen() -> None:
        try:
            listener["conn"] = await store.listen_changes(changed.set)
        except Exception as exc:  # polling still refreshes; retried on the next tick
            log.warning("gateway.listen_failed", error=type(exc).__name__)

    async def refresh_loop() -> None:
        # Reload on every change notification (other instances' admin calls) and at least every
        # refresh_seconds (in case a notification was missed while the listener was reconnecting).
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(settings.refresh_seconds):
                    await changed.wait()
            changed.clear()
            conn = listener.get("conn")
            if conn is None or conn.is_closed():
                await listen()
            try:
                await admin.reload()
            except Exception as exc:  # keep serving from the last good copy
                log.warning("gateway.refresh_failed", error=type(exc).__name__)

    await listen()

    gw = GatewayServer(
        grpc=running,
        http_runner=runner,
        http_port=http_port,
        chat=chat,
        admin=admin,
        relay=relay,
        outbox=outbox,
        store=store,
    )
    gw._tasks.append(asyncio.create_task(refresh_loop(), name="gateway-refresh"))

    async def sample_outbox() -> None:
        # Backlog and relay lag come from the database (every instance sees the same rows); sampled
        # here rather than at scrape time, which runs on the metrics server's thread.
        while True:
            try:
                pending, age = await store.outbox_backlog()
                metrics.outbox_sampled(pending, age)
            except Exception as exc:  # the next tick tries again; the gauges keep their last value
                log.warning("gateway.metrics.outbox_sample_failed", error=type(exc).__name__)
            await asyncio.sleep(settings.metrics_sample_seconds)

    if settings.metrics_port is not None and not settings.http_worker:
        gw._tasks.append(asyncio.create_task(sample_outbox(), name="gateway-outbox-sample"))
    metrics.BREAKERS.watch(chat)

    async def close_resources() -> None:
        metrics.BREAKERS.unwatch(chat)
        for t in gw._tasks:
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await t
        conn = listener.get("conn")
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close(timeout=2)
        await chat.close()
        await guard.close()  # after the last request: every lease is reported and released
        await outbox.close()
        if relay is not None:
            await relay.close()
        await metering.close()
        await upstream.close()
        await store.close()

    running.on_stop(close_resources)
    await running.set_serving()
    log.info("gateway.started", grpc_port=running.port, http_port=http_port)
    return gw
