"""Billing periods: half-open [start, end) ranges in UTC.

The only interval today is the calendar month in UTC (the default for every plan): a period starts
at 00:00 UTC on the 1st and ends at 00:00 UTC on the 1st of the next month. A plan change takes
effect at the next period boundary (one period priced by one plan version) unless it is asked to
take effect immediately, which splits its period in two parts. A subscription that starts,
changes plan immediately or is cancelled inside a period pays each part prorated by the rule of
billing.domain.proration (by second).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime

from common.errors import InvalidArgument


class BillingInterval(enum.StrEnum):
    """How long a billing period is."""

    CALENDAR_MONTH = "calendar_month"


@dataclass(frozen=True)
class BillingPeriod:
    """One billing period, [start, end) in UTC; both ends are timezone-aware."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise InvalidArgument("period bounds must be timezone-aware", field="period")
        if self.end <= self.start:
            raise InvalidArgument("period end must be after its start", field="period.end")

    def contains(self, instant: datetime) -> bool:
        return self.start <= instant < self.end

    @property
    def label(self) -> str:
        """A short human label: "2025-03" for a calendar month."""
        start = self.start.astimezone(UTC)
        return f"{start.year:04d}-{start.month:02d}"


def _require_aware(instant: datetime, field: str) -> datetime:
    if instant.tzinfo is None:
        raise InvalidArgument("time must be timezone-aware", field=field)
    return instant.astimezone(UTC)


def period_containing(
    instant: datetime, interval: BillingInterval = BillingInterval.CALENDAR_MONTH
) -> BillingPeriod:
    """The period of `interval` that contains `instant` (which must be timezone-aware)."""
    at = _require_aware(instant, "time")
    if interval is not BillingInterval.CALENDAR_MONTH:
        raise InvalidArgument(f"unsupported billing interval {interval!r}", field="billing_interval")
    start = datetime(at.year, at.month, 1, tzinfo=UTC)
    end = datetime(at.year + (at.month == 12), at.month % 12 + 1, 1, tzinfo=UTC)
    return BillingPeriod(start, end)


def next_period(
    period: BillingPeriod, interval: BillingInterval = BillingInterval.CALENDAR_MONTH
) -> BillingPeriod:
    """The period that starts where `period` ends."""
    return period_containing(period.end, interval)


def plan_change_effective_time(
    now: datetime, interval: BillingInterval = BillingInterval.CALENDAR_MONTH
) -> datetime:
    """When a plan change requested at `now` takes effect: the start of the next period."""
    return period_containing(now, interval).end
