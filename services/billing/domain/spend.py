"""Spend controls: which controls count a request, how leases are granted and consumed, which thresholds
a period's spend crosses, and the rate card the gateway prices requests by. Pure; no I/O.

Rules, in the order the use cases apply them:

1. Scope. A control counts a request when its scope matches: CUSTOMER always; API_KEY when the
   request's key id is the control's; TAG when the request's tags carry the control's tag key with
   exactly its value. Every matching control must grant a hold for the request.
2. Period. A control's counters belong to the customer's billing period: the calendar month in UTC
   that contains now (domain/period.py). They reset at its end.
3. Grant. remaining = hard_cap - spent - held. A grant is min(amount, remaining); it is refused when
   that is zero or below `minimum`. A control without a hard cap grants `amount` always. The grant
   is added to held under the period row's lock, so spent + held never passes the cap by a grant.
4. Report. Consumption is cumulative: a lease's consumed becomes max(consumed, reported) (a lower
   report changes nothing); spent grows by the increase. While the lease is ACTIVE it holds
   max(0, granted - consumed); release (or expiry) stops it holding anything. A report on a
   released or expired lease still adds its increase to spent (the request was served) but frees
   nothing. held of a period is the sum of what its leases hold.
5. Overshoot. spent + held exceeds the cap only by consumption no hold covered: what a lease reports
   beyond its grant, and what it reports after it stopped holding (released or expired). Zero when
   every report is within its grant and made while the lease is active.
6. Thresholds. A threshold of p percent is the amount basis * p / 100, exact (basis: alert_budget,
   else hard_cap). A new spent value reaches every threshold it is at or above; each alerts once per
   period (the period row records the percents reached).
7. Rate card (GetSpendPolicy). For each charge of the plan version in force whose meter reads the
   gateway's event type "ai.request": a cost_plus charge on a SUM of provider_cost prices
   provider_cost x (1 + markup/100) + fixed_per_request (COST_PLUS); per_unit, graduated, volume and
   package charges on a COUNT meter price each event (PER_EVENT), on a SUM meter each unit of its
   quantity (PER_QUANTITY), at the charge's dearest unit price (package: package_price / package_size,
   rounded UP to nine places) with included quantities NOT subtracted and flat tier fees ignored:
   the hold over-states spend, never under-states it. Other aggregations (UNIQUE_COUNT, MAX, LATEST)
   and size_buckets charges are not priced per request. statuses are the meter's, lower-case.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_CEILING, Decimal

from .money import ZERO
from .period import BillingPeriod, period_containing
from .plan import PlanSpec
from .pricing import CostPlusMarkup, Graduated, Package, PerUnit, Volume

GATEWAY_EVENT_TYPE = "ai.request"
PROVIDER_COST = "provider_cost"
NINE_PLACES = Decimal("0.000000001")
HUNDRED = Decimal(100)

ACTIVE = "active"
RELEASED = "released"
EXPIRED = "expired"


# ---- 1. scope ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    kind: str  # customer | api_key | tag
    api_key_id: str = ""
    tag_key: str = ""
    tag_value: str = ""

    def matches(self, api_key_id: str, tags: Mapping[str, str]) -> bool:
        if self.kind == "customer":
            return True
        if self.kind == "api_key":
            return bool(api_key_id) and api_key_id == self.api_key_id
        if self.kind == "tag":
            return tags.get(self.tag_key) == self.tag_value
        return False


def applicable(scopes: Iterable[tuple[str, Scope]], api_key_id: str, tags: Mapping[str, str]) -> list[str]:
    """The ids of the controls (id, scope) that count a request made with this key and these tags."""
    return [cid for cid, scope in scopes if scope.matches(api_key_id, tags)]


# ---- 2. period --------------------------------------------------------------------------------------


def spend_period(now: datetime) -> BillingPeriod:
    return period_containing(now)


# ---- 3. grant ---------------------------------------------------------------------------------------


def remaining(hard_cap: Decimal | None, spent: Decimal, held: Decimal) -> Decimal | None:
    if hard_cap is None:
        return None
    return max(ZERO, hard_cap - spent - held)


def grant(
    amount: Decimal, minimum: Decimal, hard_cap: Decimal | None, spent: Decimal, held: Decimal
) -> Decimal | None:
    """The amount to grant, or None for a refusal."""
    room = remaining(hard_cap, spent, held)
    if room is None:
        return amount
    granted = min(amount, room)
    if granted <= 0 or granted < minimum:
        return None
    return granted


# ---- 4. report and expiry ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Lease:
    granted: Decimal
    consumed: Decimal = ZERO
    state: str = ACTIVE

    @property
    def holding(self) -> Decimal:
        """What this lease counts in its period's held."""
        return max(ZERO, self.granted - self.consumed) if self.state == ACTIVE else ZERO


@dataclass(frozen=True)
class Change:
    """A lease after a report or expiry, and how its period's counters move."""

    lease: Lease
    spent_delta: Decimal
    held_delta: Decimal
    # Consumption added to spent that the lease's hold did not cover (rule 5): max(0, spent_delta -
    # what the lease held before). spent + held grows by at most this.
    uncovered: Decimal = ZERO


def report(lease: Lease, consumed: Decimal, release: bool) -> Change:
    new_consumed = max(lease.consumed, consumed)
    state = RELEASED if release and lease.state == ACTIVE else lease.state
    after = Lease(lease.granted, new_consumed, state)
    spent_delta = new_consumed - lease.consumed
    return Change(after, spent_delta, after.holding - lease.holding, max(ZERO, spent_delta - lease.holding))


def expire(lease: Lease) -> Change:
    if lease.state != ACTIVE:
        return Change(lease, ZERO, ZERO)
    after = Lease(lease.granted, lease.consumed, EXPIRED)
    return Change(after, ZERO, -lease.holding)


# ---- 6. thresholds ----------------------------------------------------------------------------------


def threshold_basis(hard_cap: Decimal | None, alert_budget: Decimal | None) -> Decimal | None:
    return alert_budget if alert_budget is not None else hard_cap


def threshold_amount(basis: Decimal, percent: int) -> Decimal:
    # Exact: basis has at most 9 places and is below 10^15, so basis * p / 100 fits 28 digits.
    return basis * percent / HUNDRED


def crossed(
    percents: Sequence[int], basis: Decimal | None, spent: Decimal, reached: Iterable[int]
) -> list[int]:
    """The thresholds `spent` reaches that have not alerted this period, ascending."""
    if basis is None:
        return []
    done = set(reached)
    return sorted(p for p in percents if p not in done and spent >= threshold_amount(basis, p))


# ---- 7. rate card -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class MeterInfo:
    """What the rate card needs of a metering meter."""

    event_types: tuple[str, ...]
    aggregation: str  # count | sum | unique_count | max | latest
    quantity: str
    statuses: tuple[str, ...]  # lower-case: succeeded, failed, test


@dataclass(frozen=True)
class RateItem:
    charge_key: str
    kind: str  # cost_plus | per_event | per_quantity
    markup_percent: Decimal | None = None
    fixed_per_event: Decimal | None = None
    unit_price: Decimal | None = None
    quantity: str = ""
    statuses: tuple[str, ...] = ()
    event_type: str = GATEWAY_EVENT_TYPE


def dearest_unit_price(price: object) -> Decimal | None:
    if isinstance(price, PerUnit):
        return price.unit_price
    if isinstance(price, Graduated | Volume):
        return max(t.unit_price for t in price.tiers)
    if isinstance(price, Package):
        return (price.package_price / price.package_size).quantize(NINE_PLACES, rounding=ROUND_CEILING)
    return None


def rate_card(spec: PlanSpec, meters: Mapping[str, MeterInfo | None]) -> tuple[RateItem, ...]:
    items: list[RateItem] = []
    for charge in spec.charges:
        meter = meters.get(charge.meter_key)
        if meter is None or GATEWAY_EVENT_TYPE not in meter.event_types:
            continue
        price = charge.price
        if isinstance(price, CostPlusMarkup):
            if meter.aggregation == "sum" and meter.quantity == PROVIDER_COST:
                items.append(
                    RateItem(
                        charge.key,
                        "cost_plus",
                        markup_percent=price.markup_percent,
                        fixed_per_event=price.fixed_per_request,
                        statuses=meter.statuses,
                    )
                )
            continue
        unit = dearest_unit_price(price)
        if unit is None:
            continue
        if meter.aggregation == "count":
            items.append(RateItem(charge.key, "per_event", unit_price=unit, statuses=meter.statuses))
        elif meter.aggregation == "sum" and meter.quantity:
            items.append(
                RateItem(
                    charge.key,
                    "per_quantity",
                    unit_price=unit,
                    quantity=meter.quantity,
                    statuses=meter.statuses,
                )
            )
    return tuple(items)
