"""Wiring: settings -> database -> migrations -> engine -> clients -> service -> servicer -> server,
plus the background consumer of billing's earnings feed."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import grpc
import structlog

from common.db import create_engine, resolve_database_url
from common.errors import ServiceError
from common.migrations import upgrade_head_async
from common.security import open_channel
from common.server import RunningServer, start_server
from payouts.api import ACCESS, register
from payouts.clients import BillingClient, MeteringClient
from payouts.config import Settings
from payouts.service import PayoutsService, Policy
from payouts.service.base import Clock, utc_now
from tollgate.payouts.v1 import payouts_pb2

log = structlog.get_logger("payouts.app")

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _channel(settings: Settings, address: str) -> grpc.aio.Channel:
    """A channel to billing or metering carrying payouts' own service credential (TLS when set)."""
    security = settings.security
    return open_channel(
        address,
        token=security.token_source(settings.grpc_address),
        tls=security.client_tls(),
        options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)],
    )


async def consume_forever(service: PayoutsService, interval: float) -> None:
    """Keep up with billing's feed and release ended holds; billing down means wait and retry."""
    while True:
        try:
            await service.catch_up()
            await service.release_due()
        except ServiceError as exc:
            log.warning("payouts.feed.waiting", reason=exc.message)
        except Exception:
            log.exception("payouts.feed.error")
        await asyncio.sleep(interval)


async def start(settings: Settings, *, clock: Clock = utc_now) -> RunningServer:
    url = await resolve_database_url(settings.database_url, settings.data_dir, "payouts")
    await upgrade_head_async(MIGRATIONS, url, "alembic_version_payouts")
    engine = create_engine(url, pool_size=settings.pool_size)
    billing_channel = _channel(settings, settings.billing_address)
    metering_channel = _channel(settings, settings.metering_address)
    service = PayoutsService(
        engine,
        BillingClient(billing_channel, deadline_seconds=settings.call_deadline_seconds),
        MeteringClient(metering_channel, deadline_seconds=settings.call_deadline_seconds),
        Policy(
            default_hold_days=settings.default_hold_days,
            default_minimum=settings.default_minimum,
            feed_page_size=settings.feed_page_size,
        ),
        clock=clock,
    )
    running = await start_server(
        address=settings.grpc_address,
        register=register(service),
        verifier=settings.security.verifier(settings.grpc_address),
        access={payouts_pb2.DESCRIPTOR.services_by_name["PayoutsService"].full_name: ACCESS},
        tls=settings.security.server_tls(),
        metrics_port=settings.metrics_port,
        metrics_host=settings.metrics_host,
    )
    consumer = (
        asyncio.create_task(consume_forever(service, settings.feed_poll_seconds))
        if settings.feed_poll_seconds > 0
        else None
    )

    async def close() -> None:
        if consumer is not None:
            consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consumer
        await billing_channel.close()
        await metering_channel.close()
        await engine.dispose()

    running.on_stop(close)
    await running.set_serving()
    log.info("payouts.started", port=running.port, billing=settings.billing_address)
    return running
