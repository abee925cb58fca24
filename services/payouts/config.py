"""Payouts settings, read once from PAYOUTS_* environment variables."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from common.security import SecuritySettings
from common.settings import Env, SettingsError


@dataclass(frozen=True)
class Settings:
    # None: an embedded PostgreSQL under data_dir, database "payouts".
    database_url: str | None = None
    data_dir: str = ".tollgate/pgdata"
    grpc_address: str = "127.0.0.1:50054"
    # None: no Prometheus endpoint (tests).
    metrics_port: int | None = 9104
    # The metrics listener's interface: loopback unless a scraper on another host must reach it.
    metrics_host: str = "127.0.0.1"
    log_level: str = "INFO"
    shutdown_grace_seconds: float = 5.0
    # Where billing's and metering's gRPC APIs answer.
    billing_address: str = "127.0.0.1:50053"
    metering_address: str = "127.0.0.1:50051"
    # Deadline of one outgoing call, in seconds.
    call_deadline_seconds: float = 10.0
    # How often the background consumer reads billing's earnings feed and releases ended holds, in
    # seconds; 0 turns it off (SyncEarnings and ReleaseHolds still work).
    feed_poll_seconds: float = 5.0
    # Entries asked of billing per page, 1 to 1,000; each page is applied in one transaction.
    feed_page_size: int = 500
    # Settings of a payee the feed creates on first sight (UpdatePayee changes them).
    default_hold_days: int = 7
    # In the payee's currency; must be whole minor units of every currency used (so whole units).
    default_minimum: Decimal = Decimal("50")
    pool_size: int = 10
    # Whom it trusts, the credential it calls billing and metering with (service "payouts"), TLS.
    security: SecuritySettings = field(default_factory=lambda: SecuritySettings(service="payouts"))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = Env("PAYOUTS", environ)
        raw_minimum = env.str("DEFAULT_MINIMUM", str(cls.default_minimum)) or str(cls.default_minimum)
        try:
            minimum = Decimal(raw_minimum)
        except InvalidOperation:
            raise SettingsError(f"PAYOUTS_DEFAULT_MINIMUM must be a decimal, got {raw_minimum!r}") from None
        settings = cls(
            database_url=env.str("DATABASE_URL"),
            data_dir=env.str("DATA_DIR", cls.data_dir) or cls.data_dir,
            grpc_address=env.str("GRPC_ADDRESS", cls.grpc_address) or cls.grpc_address,
            metrics_port=env.optional_port("METRICS_PORT", cls.metrics_port),
            metrics_host=env.str("METRICS_HOST", cls.metrics_host) or cls.metrics_host,
            log_level=env.str("LOG_LEVEL", cls.log_level) or cls.log_level,
            shutdown_grace_seconds=env.float("SHUTDOWN_GRACE_SECONDS", cls.shutdown_grace_seconds),
            billing_address=env.str("BILLING_ADDRESS", cls.billing_address) or cls.billing_address,
            metering_address=env.str("METERING_ADDRESS", cls.metering_address) or cls.metering_address,
            call_deadline_seconds=env.float("CALL_DEADLINE_SECONDS", cls.call_deadline_seconds),
            feed_poll_seconds=env.float("FEED_POLL_SECONDS", cls.feed_poll_seconds),
            feed_page_size=env.int("FEED_PAGE_SIZE", cls.feed_page_size),
            default_hold_days=env.int("DEFAULT_HOLD_DAYS", cls.default_hold_days),
            default_minimum=minimum,
            pool_size=env.int("POOL_SIZE", cls.pool_size),
            security=SecuritySettings.from_env(env, "payouts"),
        )
        if settings.call_deadline_seconds <= 0:
            raise SettingsError("PAYOUTS_CALL_DEADLINE_SECONDS must be positive")
        if settings.feed_poll_seconds < 0:
            raise SettingsError("PAYOUTS_FEED_POLL_SECONDS must not be negative")
        if not 1 <= settings.feed_page_size <= 1000:
            raise SettingsError("PAYOUTS_FEED_PAGE_SIZE must be between 1 and 1000")
        if not 0 <= settings.default_hold_days <= 365:
            raise SettingsError("PAYOUTS_DEFAULT_HOLD_DAYS must be between 0 and 365")
        if minimum < 0 or minimum != minimum.to_integral_value():
            raise SettingsError("PAYOUTS_DEFAULT_MINIMUM must be a whole, non-negative amount")
        if settings.pool_size < 1:
            raise SettingsError("PAYOUTS_POOL_SIZE must be at least 1")
        return settings
