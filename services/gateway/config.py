"""Gateway settings, read once from GATEWAY_* environment variables; fails fast naming the variable."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from common.security import SecuritySettings
from common.settings import Env, SettingsError
from gateway.domain.catalog import parse_allowed_hosts

_STRATEGIES = ("cheapest", "latency", "fixed")


@dataclass(frozen=True)
class Settings:
    # Storage: None means the embedded PostgreSQL under data_dir, database "gateway".
    database_url: str | None = None
    data_dir: str = ".tollgate/pgdata"
    # Listeners.
    grpc_address: str = "127.0.0.1:50052"
    http_address: str = "127.0.0.1:8080"
    metrics_port: int | None = 9102
    # The metrics listener's interface: loopback unless a scraper on another host must reach it.
    metrics_host: str = "127.0.0.1"
    # How often the outbox backlog and relay lag gauges are sampled from the database, in seconds.
    metrics_sample_seconds: float = 5.0
    log_level: str = "INFO"
    shutdown_grace_seconds: float = 5.0
    # Other contexts.
    metering_address: str = "127.0.0.1:50051"
    # Spend controls in the request path (README "Spend controls"): "on" holds every request's maximum
    # price against billing's leases; off by default (make run, make demo and docker-compose turn it on).
    spend_controls: bool = False
    billing_address: str = "127.0.0.1:50053"
    # A customer's spend policy is cached this long, in seconds; a known one keeps serving while billing
    # is unreachable (stale-if-error).
    spend_policy_seconds: float = 5.0
    # A new lease asks for this many requests' holds at once (at least the waiting request's hold).
    spend_lease_requests: int = 50
    # Output tokens a request without max_tokens is held for.
    spend_default_output_tokens: int = 4096
    # How often each lease's consumption is reported to billing (and expiring or idle leases released).
    spend_report_seconds: float = 1.0
    # Deadline of one billing call, in seconds.
    spend_deadline_seconds: float = 2.0
    # Catalog YAML applied at start-up (see README for the format); None means the DB catalog only.
    catalog_file: str | None = None
    # Keys and catalog are cached in memory and reloaded this often for changes made elsewhere.
    refresh_seconds: float = 5.0
    # Routing: default strategy when a request names none.
    default_strategy: str = "cheapest"
    # Output tokens assumed for cheapest-routing estimates when a request sets no max_tokens.
    estimated_output_tokens: int = 256
    # Weight of a new latency observation in the per-offering EWMA (0 < alpha <= 1).
    latency_ewma_alpha: float = 0.2
    # Circuit breaker: opens after this many consecutive failures, admits one probe after the cooldown.
    breaker_failure_threshold: int = 3
    breaker_cooldown_seconds: float = 10.0
    # Upstream: per-attempt limits. attempt_timeout bounds a unary attempt end to end and a streaming
    # attempt up to its first chunk; stream_idle_timeout bounds the gap between later chunks.
    connect_timeout_seconds: float = 2.0
    attempt_timeout_seconds: float = 30.0
    stream_idle_timeout_seconds: float = 30.0
    max_attempts: int = 6
    upstream_connection_limit: int = 1000
    # Outbox: group commit and relay to metering.
    outbox_batch_max: int = 2000
    # "off" commits the outbox transaction without waiting for the WAL flush; see README "Outbox".
    outbox_synchronous_commit: str = "off"
    relay_batch_size: int = 1000
    relay_interval_seconds: float = 0.2
    relay_deadline_seconds: float = 10.0
    relay_backoff_initial_seconds: float = 0.2
    relay_backoff_max_seconds: float = 10.0
    # Delivered outbox rows are kept this long (for audit), then deleted; 0 keeps them forever.
    outbox_retention_hours: float = 24.0
    relay_enabled: bool = True
    # HTTP front door processes sharing the HTTP port (SO_REUSEPORT). 1 = this process only. With N > 1
    # the extra processes serve HTTP only; breakers, latency and rate limits are then per process.
    http_workers: int = 1
    # Set on the extra processes by the first one: skip migrations, catalog file and relay, join the port.
    http_worker: bool = False
    # Hosts provider base URLs may point at: host, host:port or *.domain patterns; empty allows any.
    # Checked on UpsertProvider / UpsertModel, on the catalog file, and before every new upstream target.
    upstream_allowed_hosts: tuple[str, ...] = ()
    # Currency of catalog prices and provider_cost quantities.
    currency: str = "USD"

    def __post_init__(self) -> None:
        if self.default_strategy not in _STRATEGIES:
            raise SettingsError(f"GATEWAY_DEFAULT_STRATEGY must be one of {', '.join(_STRATEGIES)}")
        if self.breaker_failure_threshold < 1:
            raise SettingsError("GATEWAY_BREAKER_FAILURE_THRESHOLD must be at least 1")
        if not 0 < self.latency_ewma_alpha <= 1:
            raise SettingsError("GATEWAY_LATENCY_EWMA_ALPHA must be in (0, 1]")
        if self.outbox_synchronous_commit not in ("on", "off", "local", "remote_write", "remote_apply"):
            raise SettingsError(
                "GATEWAY_OUTBOX_SYNCHRONOUS_COMMIT must be on, off, local, remote_write or remote_apply"
            )
        if not 1 <= self.relay_batch_size <= 10_000:
            raise SettingsError("GATEWAY_RELAY_BATCH_SIZE must be between 1 and 10000")
        if not 1 <= self.http_workers <= 64:
            raise SettingsError("GATEWAY_HTTP_WORKERS must be between 1 and 64")
        if self.metrics_sample_seconds <= 0:
            raise SettingsError("GATEWAY_METRICS_SAMPLE_SECONDS must be positive")
        if self.max_attempts < 1:
            raise SettingsError("GATEWAY_MAX_ATTEMPTS must be at least 1")
        if (
            self.spend_policy_seconds < 0
            or self.spend_report_seconds <= 0
            or self.spend_deadline_seconds <= 0
        ):
            raise SettingsError(
                "GATEWAY_SPEND_POLICY_SECONDS must not be negative; GATEWAY_SPEND_REPORT_SECONDS and "
                "GATEWAY_SPEND_DEADLINE_SECONDS must be positive"
            )
        if self.spend_lease_requests < 1 or self.spend_default_output_tokens < 1:
            raise SettingsError(
                "GATEWAY_SPEND_LEASE_REQUESTS and GATEWAY_SPEND_DEFAULT_OUTPUT_TOKENS must be at least 1"
            )

    # Whom it trusts (admin callers' credentials), its own credential for metering, TLS: common/security.py.
    security: SecuritySettings = field(default_factory=lambda: SecuritySettings(service="gateway"))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = Env("GATEWAY", environ)
        d = cls()
        return cls(
            database_url=env.str("DATABASE_URL"),
            data_dir=env.str("DATA_DIR", d.data_dir) or d.data_dir,
            grpc_address=env.str("GRPC_ADDRESS", d.grpc_address) or d.grpc_address,
            http_address=env.str("HTTP_ADDRESS", d.http_address) or d.http_address,
            metrics_port=env.optional_port("METRICS_PORT", d.metrics_port),
            metrics_host=env.str("METRICS_HOST", d.metrics_host) or d.metrics_host,
            metrics_sample_seconds=env.float("METRICS_SAMPLE_SECONDS", d.metrics_sample_seconds),
            log_level=env.str("LOG_LEVEL", d.log_level) or d.log_level,
            shutdown_grace_seconds=env.float("SHUTDOWN_GRACE_SECONDS", d.shutdown_grace_seconds),
            metering_address=env.str("METERING_ADDRESS", d.metering_address) or d.metering_address,
            spend_controls=_on_off(env.str("SPEND_CONTROLS", "off") or "off"),
            spend_policy_seconds=env.float("SPEND_POLICY_SECONDS", d.spend_policy_seconds),
            spend_lease_requests=env.int("SPEND_LEASE_REQUESTS", d.spend_lease_requests),
            spend_default_output_tokens=env.int("SPEND_DEFAULT_OUTPUT_TOKENS", d.spend_default_output_tokens),
            spend_report_seconds=env.float("SPEND_REPORT_SECONDS", d.spend_report_seconds),
            spend_deadline_seconds=env.float("SPEND_DEADLINE_SECONDS", d.spend_deadline_seconds),
            billing_address=env.str("BILLING_ADDRESS", d.billing_address) or d.billing_address,
            catalog_file=env.str("CATALOG_FILE"),
            refresh_seconds=env.float("REFRESH_SECONDS", d.refresh_seconds),
            default_strategy=(env.str("DEFAULT_STRATEGY", d.default_strategy) or d.default_strategy).lower(),
            estimated_output_tokens=env.int("ESTIMATED_OUTPUT_TOKENS", d.estimated_output_tokens),
            latency_ewma_alpha=env.float("LATENCY_EWMA_ALPHA", d.latency_ewma_alpha),
            breaker_failure_threshold=env.int("BREAKER_FAILURE_THRESHOLD", d.breaker_failure_threshold),
            breaker_cooldown_seconds=env.float("BREAKER_COOLDOWN_SECONDS", d.breaker_cooldown_seconds),
            connect_timeout_seconds=env.float("CONNECT_TIMEOUT_SECONDS", d.connect_timeout_seconds),
            attempt_timeout_seconds=env.float("ATTEMPT_TIMEOUT_SECONDS", d.attempt_timeout_seconds),
            stream_idle_timeout_seconds=env.float(
                "STREAM_IDLE_TIMEOUT_SECONDS", d.stream_idle_timeout_seconds
            ),
            max_attempts=env.int("MAX_ATTEMPTS", d.max_attempts),
            upstream_connection_limit=env.int("UPSTREAM_CONNECTION_LIMIT", d.upstream_connection_limit),
            outbox_batch_max=env.int("OUTBOX_BATCH_MAX", d.outbox_batch_max),
            outbox_synchronous_commit=(
                env.str("OUTBOX_SYNCHRONOUS_COMMIT", d.outbox_synchronous_commit) or "off"
            ).lower(),
            relay_batch_size=env.int("RELAY_BATCH_SIZE", d.relay_batch_size),
            relay_interval_seconds=env.float("RELAY_INTERVAL_SECONDS", d.relay_interval_seconds),
            relay_deadline_seconds=env.float("RELAY_DEADLINE_SECONDS", d.relay_deadline_seconds),
            relay_backoff_initial_seconds=env.float(
                "RELAY_BACKOFF_INITIAL_SECONDS", d.relay_backoff_initial_seconds
            ),
            relay_backoff_max_seconds=env.float("RELAY_BACKOFF_MAX_SECONDS", d.relay_backoff_max_seconds),
            outbox_retention_hours=env.float("OUTBOX_RETENTION_HOURS", d.outbox_retention_hours),
            relay_enabled=env.bool("RELAY_ENABLED", d.relay_enabled),
            currency=env.str("CURRENCY", d.currency) or d.currency,
            upstream_allowed_hosts=_allowed_hosts(env.str("UPSTREAM_ALLOWED_HOSTS") or ""),
            http_workers=env.int("HTTP_WORKERS", d.http_workers),
            http_worker=env.bool("HTTP_WORKER", d.http_worker),
            security=SecuritySettings.from_env(env, "gateway"),
        )


def _allowed_hosts(text: str) -> tuple[str, ...]:
    try:
        return parse_allowed_hosts(text)
    except ValueError as exc:
        raise SettingsError(f"GATEWAY_UPSTREAM_ALLOWED_HOSTS: {exc}") from None


def _on_off(text: str) -> bool:
    v = text.strip().lower()
    if v not in ("on", "off"):
        raise SettingsError(f"GATEWAY_SPEND_CONTROLS must be on or off, not {text!r}")
    return v == "on"
