"""Wiring: settings -> database -> migrations -> store -> service -> servicer -> server."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import grpc
import structlog

from common.db import create_engine, resolve_database_url
from common.migrations import upgrade_head_async
from common.server import RunningServer, start_server
from metering.api import ACCESS, MeteringServicer
from metering.config import Settings
from metering.service import MeteringService
from metering.store import MeteringStore
from tollgate.metering.v1 import metering_pb2, metering_pb2_grpc

log = structlog.get_logger("metering.app")

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


async def start(settings: Settings) -> RunningServer:
    """Start metering; health turns SERVING only after migrations have run."""
    # Credentials first: a service that may not start should say so before it touches its database.
    verifier = settings.security.verifier(settings.grpc_address)
    url = await resolve_database_url(settings.database_url, settings.data_dir, "metering")
    await upgrade_head_async(MIGRATIONS, url, "alembic_version_metering")
    engine = create_engine(url, pool_size=settings.pool_size, max_overflow=settings.pool_size)
    # After an event's ingested_time is stamped, its transaction has at most what is left of that
    # statement, one idle gap, the statement reading prior hashes and another idle gap before it
    # commits or is cut off: four bounded steps. A quarter of the settle period each keeps the
    # whole within settle_seconds, which is what makes a cutoff that old settled.
    store = MeteringStore(engine, ingest_timeout_seconds=settings.settle_seconds / 4)
    await store.prepare_partitions(datetime.now(UTC))
    service = MeteringService(
        store,
        max_batch_size=settings.max_batch_size,
        future_tolerance_seconds=settings.future_tolerance_seconds,
        settle_seconds=settings.settle_seconds,
        max_event_age_days=settings.max_event_age_days,
        max_new_partitions_per_batch=settings.max_new_partitions_per_batch,
    )
    servicer = MeteringServicer(service)

    def register(server: grpc.aio.Server) -> list[str]:
        metering_pb2_grpc.add_MeteringServiceServicer_to_server(servicer, server)
        return [metering_pb2.DESCRIPTOR.services_by_name["MeteringService"].full_name]

    running = await start_server(
        address=settings.grpc_address,
        register=register,
        verifier=verifier,
        access={metering_pb2.DESCRIPTOR.services_by_name["MeteringService"].full_name: ACCESS},
        tls=settings.security.server_tls(),
        metrics_port=settings.metrics_port,
        metrics_host=settings.metrics_host,
    )
    running.on_stop(store.close)
    await running.set_serving()
    log.info("metering.started", port=running.port, metrics_port=running.metrics_port)
    return running
