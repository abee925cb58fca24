"""Metering settings, read once from METERING_* environment variables."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from common.security import SecuritySettings
from common.settings import Env, SettingsError


@dataclass(frozen=True)
class Settings:
    # None: an embedded PostgreSQL under data_dir, database "metering".
    database_url: str | None = None
    data_dir: str = ".tollgate/pgdata"
    grpc_address: str = "127.0.0.1:50051"
    # None: no Prometheus endpoint (tests).
    metrics_port: int | None = 9101
    # The metrics listener's interface: loopback unless a scraper on another host must reach it.
    metrics_host: str = "127.0.0.1"
    log_level: str = "INFO"
    shutdown_grace_seconds: float = 5.0
    # Events per IngestEvents call; larger batches are rejected whole.
    max_batch_size: int = 10000
    # How far in the future of the server clock an occurred_time may be.
    future_tolerance_seconds: int = 300
    # How far in the past an occurred_time may be: the retention window. Older events are INVALID
    # (a batch of them would otherwise open a partition for every month since year 1).
    max_event_age_days: int = 400
    # How many monthly partitions one IngestEvents batch may create; events of further new months
    # are rejected (INVALID, resend them in a later batch), so one batch cannot run a long series
    # of DDL statements that lock the events table.
    max_new_partitions_per_batch: int = 4
    # Ingest transactions are cut off after this many seconds (statement_timeout), so a cutoff at
    # least this old can no longer gain events: QueryUsage reports it as settled.
    settle_seconds: float = 30.0
    # Connections in the engine's pool.
    pool_size: int = 10
    # Whom it trusts (callers' credentials) and TLS: common/security.py.
    security: SecuritySettings = field(default_factory=lambda: SecuritySettings(service="metering"))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = Env("METERING", environ)
        settings = cls(
            database_url=env.str("DATABASE_URL"),
            data_dir=env.str("DATA_DIR", cls.data_dir) or cls.data_dir,
            grpc_address=env.str("GRPC_ADDRESS", cls.grpc_address) or cls.grpc_address,
            metrics_port=env.optional_port("METRICS_PORT", cls.metrics_port),
            metrics_host=env.str("METRICS_HOST", cls.metrics_host) or cls.metrics_host,
            log_level=env.str("LOG_LEVEL", cls.log_level) or cls.log_level,
            shutdown_grace_seconds=env.float("SHUTDOWN_GRACE_SECONDS", cls.shutdown_grace_seconds),
            max_batch_size=env.int("MAX_BATCH_SIZE", cls.max_batch_size),
            future_tolerance_seconds=env.int("FUTURE_TOLERANCE_SECONDS", cls.future_tolerance_seconds),
            max_event_age_days=env.int("MAX_EVENT_AGE_DAYS", cls.max_event_age_days),
            max_new_partitions_per_batch=env.int(
                "MAX_NEW_PARTITIONS_PER_BATCH", cls.max_new_partitions_per_batch
            ),
            settle_seconds=env.float("SETTLE_SECONDS", cls.settle_seconds),
            pool_size=env.int("POOL_SIZE", cls.pool_size),
            security=SecuritySettings.from_env(env, "metering"),
        )
        if not 1 <= settings.max_batch_size <= 100_000:
            raise SettingsError("METERING_MAX_BATCH_SIZE must be between 1 and 100000")
        # google.protobuf.Timestamp spans 3,652,059 days (years 1 to 9999).
        if not 1 <= settings.max_event_age_days <= 3_652_059:
            raise SettingsError("METERING_MAX_EVENT_AGE_DAYS must be between 1 and 3652059")
        if not 1 <= settings.max_new_partitions_per_batch <= 1000:
            raise SettingsError("METERING_MAX_NEW_PARTITIONS_PER_BATCH must be between 1 and 1000")
        if not 0 <= settings.future_tolerance_seconds <= 86_400:
            raise SettingsError("METERING_FUTURE_TOLERANCE_SECONDS must be between 0 and 86400")
        if settings.settle_seconds <= 0:
            raise SettingsError("METERING_SETTLE_SECONDS must be positive")
        if settings.pool_size < 1:
            raise SettingsError("METERING_POOL_SIZE must be at least 1")
        return settings
