"""Per-key rate limits as token buckets refilled continuously. Time is passed in."""

from __future__ import annotations

import math


class Bucket:
    """A bucket of `per_minute` units refilled at per_minute/60 a second, starting full."""

    __slots__ = ("capacity", "last", "level", "rate")

    def __init__(self, per_minute: int, now: float) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.level = self.capacity
        self.last = now

    def _refill(self, now: float) -> None:
        if now > self.last:
            self.level = min(self.capacity, self.level + (now - self.last) * self.rate)
            self.last = now

    def take(self, now: float, amount: float = 1.0) -> float:
        """Take `amount` if available: 0.0; else the seconds until it would be (nothing taken)."""
        self._refill(now)
        if self.level >= amount:
            self.level -= amount
            return 0.0
        return max(0.001, (amount - self.level) / self.rate)

    def wait_until_positive(self, now: float) -> float:
        """0.0 when the bucket holds anything; else seconds until it does (for post-paid units)."""
        self._refill(now)
        if self.level > 0:
            return 0.0
        return max(0.001, (-self.level + 1) / self.rate)

    def debit(self, now: float, amount: float) -> None:
        """Charge units after the fact; the level may go negative, delaying later requests."""
        self._refill(now)
        self.level -= amount


def retry_after_seconds(wait: float) -> int:
    """Whole seconds for Retry-After headers, at least 1."""
    return max(1, math.ceil(wait))
