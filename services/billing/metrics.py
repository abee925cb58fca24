"""Billing's Prometheus metrics, all defined here (names listed in the README, "Metrics"); the gRPC
call metrics every service shares come from common.server. Label values are fixed words only."""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from prometheus_client import Counter, Histogram

from common import errors

CLOSED = "closed"  # finalized (or the replay of a close already done)
REJECTED = "rejected"  # the caller's error: bad period, request id reused, ...
UNAVAILABLE = "unavailable"  # metering unavailable or the inputs kept changing; retry
FAILED = "failed"  # anything else (an internal error)
OUTCOMES = (CLOSED, REJECTED, UNAVAILABLE, FAILED)

PERIOD_CLOSES = Counter(
    "tollgate_billing_period_closes_total",
    "ClosePeriod calls by outcome: closed, rejected, unavailable, failed.",
    ["outcome"],
)
PERIOD_CLOSE_SECONDS = Histogram(
    "tollgate_billing_period_close_seconds",
    "Duration of ClosePeriod calls in seconds (the wait for metering's cutoff included), by outcome.",
    ["outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
_children = {o: (PERIOD_CLOSES.labels(o), PERIOD_CLOSE_SECONDS.labels(o)) for o in OUTCOMES}

T = TypeVar("T")


def _outcome(exc: BaseException) -> str:
    if isinstance(exc, errors.Unavailable):
        return UNAVAILABLE
    if isinstance(exc, errors.ServiceError):
        return REJECTED
    return FAILED


def timed_close(fn: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """Count and time a period close by its outcome."""

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> T:
        t0 = time.perf_counter()
        outcome = FAILED
        try:
            result = await fn(*args, **kwargs)
            outcome = CLOSED
            return result
        except BaseException as exc:
            outcome = _outcome(exc)
            raise
        finally:
            count, seconds = _children[outcome]
            count.inc()
            seconds.observe(time.perf_counter() - t0)

    return wrapper


# Alert webhooks (billing/webhooks.py): one count per attempt, by what became of the delivery.
WEBHOOK_DELIVERED = "delivered"  # the endpoint answered 2xx
WEBHOOK_RETRYING = "retrying"  # failed; another attempt is scheduled
WEBHOOK_FAILED = "failed"  # failed, and it was the last attempt
WEBHOOK_ATTEMPTS = Counter(
    "tollgate_billing_webhook_attempts_total",
    "Alert webhook delivery attempts by outcome: delivered, retrying, failed.",
    ["outcome"],
)
