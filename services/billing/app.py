"""Wiring: settings -> database -> migrations -> engine -> service -> servicer -> server."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path

import structlog

from billing.api import ACCESS, SPEND_ACCESS, register
from billing.clients import MeteringClient
from billing.config import Settings
from billing.service import BillingService
from billing.service.webhooks import WebhookService
from billing.webhooks import WebhookDispatcher
from common.db import create_engine, resolve_database_url
from common.migrations import upgrade_head_async
from common.security import open_channel
from common.server import RunningServer, start_server
from tollgate.billing.v1 import billing_pb2, spend_pb2

log = structlog.get_logger("billing.app")

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


async def start(settings: Settings, *, clock: Callable[[], datetime] | None = None) -> RunningServer:
    """`clock` is for tests only (production reads real time; Settings stay env-only): a period can be
    closed only once it has ended, and an end-to-end test drives the gateway, which stamps its events
    with real time, so it starts billing with a clock in the next month to close the current one."""
    # Credentials first: a service that may not start should say so before it touches its database.
    security = settings.security
    verifier = security.verifier(settings.grpc_address)
    token = security.token_source(settings.grpc_address)
    url = await resolve_database_url(settings.database_url, settings.data_dir, "billing")
    await upgrade_head_async(MIGRATIONS, url, "alembic_version_billing")
    engine = create_engine(url, pool_size=settings.pool_size)
    metering = MeteringClient(
        lambda options: open_channel(
            settings.metering_address,
            token=token,
            tls=security.client_tls(),
            options=options,
        ),
        deadline_seconds=settings.metering_deadline_seconds,
        retry_seconds=settings.metering_retry_seconds,
    )
    service = BillingService(
        engine,
        metering,
        settle_timeout_seconds=settings.metering_retry_seconds,
        cutoff_lag_seconds=settings.usage_cutoff_lag_seconds,
        spend_lease_seconds=settings.spend_lease_seconds,
        **({"clock": clock} if clock is not None else {}),
    )
    running = await start_server(
        address=settings.grpc_address,
        register=register(service, WebhookService(engine, allowed_hosts=settings.webhook_allowed_hosts)),
        verifier=verifier,
        access={
            billing_pb2.DESCRIPTOR.services_by_name["BillingService"].full_name: ACCESS,
            spend_pb2.DESCRIPTOR.services_by_name["SpendService"].full_name: SPEND_ACCESS,
        },
        tls=security.server_tls(),
        metrics_port=settings.metrics_port,
        metrics_host=settings.metrics_host,
    )

    # Background work beside the server, on every replica (each safe to run concurrently: the sweep
    # claims leases SKIP LOCKED, alerts are deduplicated by key). Stopped before the pools close.
    loops = [asyncio.create_task(_every(settings.spend_sweep_seconds, service.expire_leases, "spend_sweep"))]
    if settings.margin_watch_seconds > 0:
        loops.append(
            asyncio.create_task(_every(settings.margin_watch_seconds, service.watch_margins, "margin_watch"))
        )

    async def close() -> None:
        for task in loops:
            task.cancel()
        await asyncio.gather(*loops, return_exceptions=True)
        await metering.close()
        await engine.dispose()

    running.on_stop(close)
    if settings.webhook_poll_seconds > 0:
        dispatcher = WebhookDispatcher(
            engine,
            poll_seconds=settings.webhook_poll_seconds,
            timeout_seconds=settings.webhook_timeout_seconds,
            retry_base_seconds=settings.webhook_retry_base_seconds,
            retry_max_seconds=settings.webhook_retry_max_seconds,
            max_attempts=settings.webhook_max_attempts,
            batch_size=settings.webhook_batch_size,
            allowed_hosts=settings.webhook_allowed_hosts,
        )
        await dispatcher.start()
        # Registered after `close`, so it runs first (callbacks run in reverse): the loop records its
        # batch in flight before the engine is disposed.
        running.on_stop(dispatcher.stop)
    await running.set_serving()
    log.info("billing.started", port=running.port, metering=settings.metering_address)
    return running


async def _every(seconds: float, work: Callable[[], Awaitable[int]], name: str) -> None:
    """Run `work` every `seconds` until cancelled; a failed round is logged and the next one runs."""
    while True:
        try:
            await work()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception(f"billing.{name}.failed")
        await asyncio.sleep(seconds)
