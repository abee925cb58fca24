"""Payouts' Prometheus metrics, all defined here (names listed in the README, "Metrics"); the gRPC call
metrics every service shares come from common.server. Label values are fixed words only."""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from prometheus_client import Counter, Histogram

from common import errors

COMPLETED = "completed"  # the run is done (or the replay of a run already done)
REJECTED = "rejected"  # the caller's error: a period not started, a request id reused, ...
UNAVAILABLE = "unavailable"  # a dependency was unavailable; retry
FAILED = "failed"  # anything else (an internal error)
OUTCOMES = (COMPLETED, REJECTED, UNAVAILABLE, FAILED)

PAYOUT_RUNS = Counter(
    "tollgate_payouts_runs_total",
    "RunPayouts calls by outcome: completed, rejected, unavailable, failed.",
    ["outcome"],
)
PAYOUT_RUN_SECONDS = Histogram(
    "tollgate_payouts_run_seconds",
    "Duration of RunPayouts calls in seconds (the release of due holds included), by outcome.",
    ["outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
_children = {o: (PAYOUT_RUNS.labels(o), PAYOUT_RUN_SECONDS.labels(o)) for o in OUTCOMES}

T = TypeVar("T")


def _outcome(exc: BaseException) -> str:
    if isinstance(exc, errors.Unavailable):
        return UNAVAILABLE
    if isinstance(exc, errors.ServiceError):
        return REJECTED
    return FAILED


def timed_run(fn: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """Count and time a payout run by its outcome."""

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> T:
        t0 = time.perf_counter()
        outcome = FAILED
        try:
            result = await fn(*args, **kwargs)
            outcome = COMPLETED
            return result
        except BaseException as exc:
            outcome = _outcome(exc)
            raise
        finally:
            count, seconds = _children[outcome]
            count.inc()
            seconds.observe(time.perf_counter() - t0)

    return wrapper
