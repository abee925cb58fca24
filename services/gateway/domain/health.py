"""Per-offering health: a circuit breaker and a latency EWMA. Time is passed in, never read here."""

from __future__ import annotations

from dataclasses import dataclass

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    failure_threshold: int = 3
    cooldown_seconds: float = 10.0
    ewma_alpha: float = 0.2


class RouteHealth:
    """Mutable state of one offering on this instance.

    closed -> open after `failure_threshold` consecutive failures; open -> half_open once
    `cooldown_seconds` have passed, admitting exactly one probe; the probe's success closes the
    breaker, its failure re-opens it for another cooldown. 4xx answers other than 429 are the
    caller's fault and count neither way.
    """

    __slots__ = (
        "consecutive_failures",
        "ewma_ms",
        "failure_count",
        "last_error",
        "open_wall_time",
        "opened_at",
        "policy",
        "probe_in_flight",
        "state",
        "success_count",
    )

    def __init__(self, policy: BreakerPolicy) -> None:
        self.policy = policy
        self.state = CLOSED
        self.consecutive_failures = 0
        self.opened_at = 0.0
        self.open_wall_time: float | None = None
        self.probe_in_flight = False
        self.ewma_ms = 0.0
        self.success_count = 0
        self.failure_count = 0
        self.last_error = ""

    def view_state(self, now: float) -> str:
        """The state as a reader sees it now (an open breaker past its cooldown reads half_open)."""
        if self.state == OPEN and now - self.opened_at >= self.policy.cooldown_seconds:
            return HALF_OPEN
        return self.state

    def try_acquire(self, now: float) -> bool:
        """Whether an attempt may go to this offering now; takes the single probe slot when half-open."""
        if self.state == CLOSED:
            return True
        if self.state == OPEN:
            if now - self.opened_at < self.policy.cooldown_seconds:
                return False
            self.state = HALF_OPEN
            self.probe_in_flight = False
        if self.probe_in_flight:
            return False
        self.probe_in_flight = True
        return True

    def release(self) -> None:
        """An admitted attempt ended without a verdict (caller went away, 4xx): free the probe slot."""
        self.probe_in_flight = False

    def record_success(self, latency_ms: float) -> None:
        self.success_count += 1
        self.consecutive_failures = 0
        self.state = CLOSED
        self.probe_in_flight = False
        a = self.policy.ewma_alpha
        self.ewma_ms = latency_ms if self.ewma_ms == 0.0 else a * latency_ms + (1 - a) * self.ewma_ms

    def record_failure(self, now: float, wall_now: float, reason: str) -> None:
        self.failure_count += 1
        self.consecutive_failures += 1
        self.last_error = reason
        self.probe_in_flight = False
        if self.state == HALF_OPEN or (
            self.state == CLOSED and self.consecutive_failures >= self.policy.failure_threshold
        ):
            self.state = OPEN
            self.opened_at = now
            self.open_wall_time = wall_now
