"""Billing settings, read once from BILLING_* environment variables."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from billing.domain.webhooks import parse_allowed_hosts
from common.security import SecuritySettings
from common.settings import Env, SettingsError


@dataclass(frozen=True)
class Settings:
    # None: an embedded PostgreSQL under data_dir, database "billing".
    database_url: str | None = None
    data_dir: str = ".tollgate/pgdata"
    grpc_address: str = "127.0.0.1:50053"
    # None: no Prometheus endpoint (tests).
    metrics_port: int | None = 9103
    # The metrics listener's interface: loopback unless a scraper on another host must reach it.
    metrics_host: str = "127.0.0.1"
    log_level: str = "INFO"
    shutdown_grace_seconds: float = 5.0
    # Where metering's gRPC API answers.
    metering_address: str = "127.0.0.1:50051"
    # Deadline of one QueryUsage call, in seconds.
    metering_deadline_seconds: float = 30.0
    # How long a period close keeps retrying an unavailable metering before failing UNAVAILABLE,
    # and how long it waits for its ingestion cutoff to become settled, in seconds.
    metering_retry_seconds: float = 60.0
    # The close reads usage ingested before (metering's now - this lag). With a lag at least metering's
    # settle window the cutoff is settled at once and the close does not wait; events ingested within
    # the lag land on the next invoice as late usage. 0: read up to now and wait until it settles.
    usage_cutoff_lag_seconds: float = 0.0
    pool_size: int = 10
    # How often each replica looks for alert webhooks due, in seconds; 0: this replica delivers none.
    webhook_poll_seconds: float = 1.0
    # How long one webhook POST may take before it counts as a failed attempt, in seconds.
    webhook_timeout_seconds: float = 10.0
    # The wait after a first failed webhook attempt, in seconds; it doubles after each further one.
    webhook_retry_base_seconds: float = 1.0
    # The longest wait between two webhook attempts, in seconds.
    webhook_retry_max_seconds: float = 600.0
    # Webhook attempts per alert; after the last one fails the delivery is marked failed.
    webhook_max_attempts: int = 12
    # The most deliveries one replica posts at once (one poll's batch).
    webhook_batch_size: int = 20
    # Comma-separated host, host:port or *.domain patterns webhook URLs must match; empty: any host.
    webhook_allowed_hosts: tuple[str, ...] = ()
    # How long a spend lease is usable after it is granted (GetSpendPolicy's lease_seconds).
    spend_lease_seconds: int = 30
    # How often the expiry sweep marks leases past their expire_time EXPIRED and frees their hold.
    spend_sweep_seconds: float = 5.0
    # How often the margin watch previews every subscribed customer's period; 0 disables it.
    margin_watch_seconds: float = 300.0
    security: SecuritySettings = field(default_factory=lambda: SecuritySettings(service="billing"))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = Env("BILLING", environ)
        settings = cls(
            database_url=env.str("DATABASE_URL"),
            data_dir=env.str("DATA_DIR", cls.data_dir) or cls.data_dir,
            grpc_address=env.str("GRPC_ADDRESS", cls.grpc_address) or cls.grpc_address,
            metrics_port=env.optional_port("METRICS_PORT", cls.metrics_port),
            metrics_host=env.str("METRICS_HOST", cls.metrics_host) or cls.metrics_host,
            log_level=env.str("LOG_LEVEL", cls.log_level) or cls.log_level,
            shutdown_grace_seconds=env.float("SHUTDOWN_GRACE_SECONDS", cls.shutdown_grace_seconds),
            metering_address=env.str("METERING_ADDRESS", cls.metering_address) or cls.metering_address,
            metering_deadline_seconds=env.float("METERING_DEADLINE_SECONDS", cls.metering_deadline_seconds),
            metering_retry_seconds=env.float("METERING_RETRY_SECONDS", cls.metering_retry_seconds),
            usage_cutoff_lag_seconds=env.float("USAGE_CUTOFF_LAG_SECONDS", cls.usage_cutoff_lag_seconds),
            pool_size=env.int("POOL_SIZE", cls.pool_size),
            webhook_poll_seconds=env.float("WEBHOOK_POLL_SECONDS", cls.webhook_poll_seconds),
            webhook_timeout_seconds=env.float("WEBHOOK_TIMEOUT_SECONDS", cls.webhook_timeout_seconds),
            webhook_retry_base_seconds=env.float(
                "WEBHOOK_RETRY_BASE_SECONDS", cls.webhook_retry_base_seconds
            ),
            webhook_retry_max_seconds=env.float("WEBHOOK_RETRY_MAX_SECONDS", cls.webhook_retry_max_seconds),
            webhook_max_attempts=env.int("WEBHOOK_MAX_ATTEMPTS", cls.webhook_max_attempts),
            webhook_batch_size=env.int("WEBHOOK_BATCH_SIZE", cls.webhook_batch_size),
            webhook_allowed_hosts=_allowed_hosts(env.str("WEBHOOK_ALLOWED_HOSTS") or ""),
            spend_lease_seconds=env.int("SPEND_LEASE_SECONDS", cls.spend_lease_seconds),
            spend_sweep_seconds=env.float("SPEND_SWEEP_SECONDS", cls.spend_sweep_seconds),
            margin_watch_seconds=env.float("MARGIN_WATCH_SECONDS", cls.margin_watch_seconds),
            security=SecuritySettings.from_env(env, "billing"),
        )
        if settings.metering_deadline_seconds <= 0:
            raise SettingsError("BILLING_METERING_DEADLINE_SECONDS must be positive")
        if settings.metering_retry_seconds < 0:
            raise SettingsError("BILLING_METERING_RETRY_SECONDS must not be negative")
        if settings.usage_cutoff_lag_seconds < 0:
            raise SettingsError("BILLING_USAGE_CUTOFF_LAG_SECONDS must not be negative")
        if settings.pool_size < 1:
            raise SettingsError("BILLING_POOL_SIZE must be at least 1")
        if settings.webhook_poll_seconds < 0:
            raise SettingsError("BILLING_WEBHOOK_POLL_SECONDS must not be negative")
        if settings.webhook_timeout_seconds <= 0:
            raise SettingsError("BILLING_WEBHOOK_TIMEOUT_SECONDS must be positive")
        if not 0 < settings.webhook_retry_base_seconds <= settings.webhook_retry_max_seconds:
            raise SettingsError(
                "BILLING_WEBHOOK_RETRY_BASE_SECONDS must be positive and at most "
                "BILLING_WEBHOOK_RETRY_MAX_SECONDS"
            )
        if settings.webhook_max_attempts < 1:
            raise SettingsError("BILLING_WEBHOOK_MAX_ATTEMPTS must be at least 1")
        if settings.webhook_batch_size < 1:
            raise SettingsError("BILLING_WEBHOOK_BATCH_SIZE must be at least 1")
        if not 1 <= settings.spend_lease_seconds <= 3600:
            raise SettingsError("BILLING_SPEND_LEASE_SECONDS must be from 1 to 3600")
        if settings.spend_sweep_seconds <= 0:
            raise SettingsError("BILLING_SPEND_SWEEP_SECONDS must be positive")
        if settings.margin_watch_seconds < 0:
            raise SettingsError("BILLING_MARGIN_WATCH_SECONDS must not be negative")
        return settings


def _allowed_hosts(text: str) -> tuple[str, ...]:
    try:
        return parse_allowed_hosts(text)
    except ValueError as exc:
        raise SettingsError(f"BILLING_WEBHOOK_ALLOWED_HOSTS: {exc}") from None
