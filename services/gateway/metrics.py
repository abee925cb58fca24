"""The gateway's Prometheus metrics, all defined here (names listed in the README, "Metrics").

Hot-path cost: labelled children are looked up once per label set and cached in plain dicts, so a
request costs a dict lookup and an `inc()`/`observe()` per figure. Label values come only from bounded
sets: the door, a status code, and catalog names (model, provider, offering). A model a caller names
that is not in the catalog is counted as "unknown", never under the name it sent.

Provider cost is a float counter in the catalog currency for dashboards only, and therefore
approximate; the money truth is the Decimal `provider_cost` quantity each usage event carries to metering.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Iterable
from typing import Any

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily

from gateway.domain.health import HALF_OPEN, OPEN

DOOR_HTTP = "http"
DOOR_GRPC = "grpc"
UNKNOWN = "unknown"  # a model not in the catalog (or none given)
NONE = "none"  # no provider answered

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 8, 13, 21, 34, 60)

REQUESTS = Counter(
    "tollgate_gateway_requests_total",
    "Chat completion requests answered, by door (http/grpc), model, serving provider and status "
    "(HTTP status for the http door, gRPC code for the grpc door).",
    ["door", "model", "provider", "status"],
)
UPSTREAM_LATENCY = Histogram(
    "tollgate_gateway_upstream_latency_seconds",
    "Duration of successful upstream attempts (a stream until its last chunk), by provider and offering.",
    ["provider", "offering"],
    buckets=_LATENCY_BUCKETS,
)
TIME_TO_FIRST_TOKEN = Histogram(
    "tollgate_gateway_time_to_first_token_seconds",
    "Streaming attempts: time from the request sent upstream to its first chunk, by provider and offering.",
    ["provider", "offering"],
    buckets=_LATENCY_BUCKETS,
)
TOKENS = Counter(
    "tollgate_gateway_tokens_total",
    "Tokens of recorded usage events (committed to the outbox), by model, provider and direction.",
    ["model", "provider", "direction"],
)
PROVIDER_COST = Counter(
    "tollgate_gateway_provider_cost_total",
    "Provider cost of recorded usage events in the catalog currency, by model and provider. "
    "Approximate (float), for dashboards; the exact amounts are in metering.",
    ["model", "provider"],
)
OUTBOX_WRITTEN = Counter("tollgate_gateway_outbox_written_total", "Usage events committed to the outbox.")
OUTBOX_COMMITS = Counter("tollgate_gateway_outbox_commits_total", "Outbox group commits.")
OUTBOX_DELIVERED = Counter(
    "tollgate_gateway_outbox_delivered_total", "Outbox events delivered to metering (accepted or duplicate)."
)
OUTBOX_PARKED = Counter(
    "tollgate_gateway_outbox_parked_total", "Outbox events metering rejected (conflict or invalid), parked."
)
RELAY_FAILURES = Counter(
    "tollgate_gateway_relay_failures_total", "Relay batches that failed (metering unreachable or erroring)."
)
RELAY_LAST_BATCH = Gauge("tollgate_gateway_relay_last_batch_size", "Events in the relay's last batch.")
OUTBOX_BACKLOG = Gauge(
    "tollgate_gateway_outbox_backlog",
    "Outbox rows not yet delivered to metering (parked rows excluded), as last sampled.",
)
RELAY_LAG = Gauge(
    "tollgate_gateway_relay_lag_seconds",
    "Age of the oldest outbox row not yet delivered to metering, in seconds (0 when none), as last sampled.",
)
SPEND_HOLDS = Counter(
    "tollgate_gateway_spend_holds_total",
    "Spend holds by outcome: placed, cap_reached (refused at a hard cap), degraded, unavailable "
    "(billing unreachable and no lease covered it).",
    ["outcome"],
)
SPEND_LEASE_ACQUISITIONS = Histogram(
    "tollgate_gateway_spend_lease_acquisition_seconds",
    "Latency of AcquireSpendLease calls to billing, by outcome (granted, refused, unavailable).",
    ["outcome"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)

BREAKER_STATE = "tollgate_gateway_breaker_state"
_BREAKER_VALUE = {OPEN: 2, HALF_OPEN: 1}

_requests: dict[tuple[str, str, str, str], Any] = {}
_latency: dict[tuple[str, str], Any] = {}
_ttft: dict[tuple[str, str], Any] = {}
_usage: dict[tuple[str, str], tuple[Any, Any, Any]] = {}


def request_done(door: str, model: str, provider: str, status: str | int) -> None:
    """One answered request. `model` must already be a catalog name or UNKNOWN (see model_label)."""
    key = (door, model, provider, str(status))
    child = _requests.get(key)
    if child is None:
        child = _requests[key] = REQUESTS.labels(*key)
    child.inc()


def model_label(routes: dict[str, Any], model: str | None) -> str:
    """The catalog name, or UNKNOWN: never a string a caller made up."""
    return model if model and model in routes else UNKNOWN


def upstream_succeeded(route: Any, seconds: float) -> None:
    key = (route.provider, route.offering_id)
    child = _latency.get(key)
    if child is None:
        child = _latency[key] = UPSTREAM_LATENCY.labels(*key)
    child.observe(seconds)


def first_token(route: Any, seconds: float) -> None:
    key = (route.provider, route.offering_id)
    child = _ttft.get(key)
    if child is None:
        child = _ttft[key] = TIME_TO_FIRST_TOKEN.labels(*key)
    child.observe(seconds)


def usage_recorded(events: Iterable[Any]) -> None:
    """Tokens and provider cost of usage events just committed (their tags name the catalog route)."""
    for e in events:
        tags, q = e.tags, e.quantities
        key = (tags["model"], tags["provider"])
        children = _usage.get(key)
        if children is None:
            children = _usage[key] = (
                TOKENS.labels(key[0], key[1], "input"),
                TOKENS.labels(key[0], key[1], "output"),
                PROVIDER_COST.labels(*key),
            )
        tin, tout = int(q["input_tokens"]), int(q["output_tokens"])
        if tin:
            children[0].inc(tin)
        if tout:
            children[1].inc(tout)
        cost = float(q.get("provider_cost") or 0)  # the event's exact decimal text; a float only here
        if cost:
            children[2].inc(cost)


class _Breakers:
    """Breaker state per offering, read at scrape time from each running gateway's catalog and health
    board (nothing on the hot path). 0 closed, 1 half-open, 2 open."""

    def __init__(self) -> None:
        self._sources: weakref.WeakSet[Any] = weakref.WeakSet()

    def watch(self, source: Any) -> None:
        self._sources.add(source)

    def unwatch(self, source: Any) -> None:
        self._sources.discard(source)

    def describe(self) -> list[GaugeMetricFamily]:
        return [self._family()]

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            BREAKER_STATE,
            "Circuit breaker state per offering: 0 closed, 1 half-open, 2 open.",
            labels=["model", "offering", "provider"],
        )

    def collect(self) -> list[GaugeMetricFamily]:
        family = self._family()
        now = time.monotonic()
        values: dict[tuple[str, str, str], int] = {}
        for source in list(self._sources):
            catalog, health = source.catalog, source.health
            for name, model in list(catalog.models.items()):
                for o in model.offerings:
                    h = health.peek(name, o.id)
                    state = h.view_state(now) if h is not None else ""
                    values[(name, o.id, o.provider)] = _BREAKER_VALUE.get(state, 0)
        for labels, value in values.items():
            family.add_metric(list(labels), value)
        return [family]


BREAKERS = _Breakers()
REGISTRY.register(BREAKERS)


def outbox_sampled(pending: int, oldest_age_seconds: float) -> None:
    OUTBOX_BACKLOG.set(pending)
    RELAY_LAG.set(oldest_age_seconds)


def spend_hold(outcome: str) -> None:
    SPEND_HOLDS.labels(outcome).inc()


def spend_lease_acquired(outcome: str, seconds: float) -> None:
    SPEND_LEASE_ACQUISITIONS.labels(outcome).observe(seconds)
