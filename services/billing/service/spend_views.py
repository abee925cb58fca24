"""SpendService's replies as typed views (the same conventions as views.py, whose JSON codec stores them
as request-id replies: Decimal amounts, aware datetimes, tuples)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any


@dataclass(frozen=True)
class SpendControlView:
    id: str
    builder_id: str
    customer_id: str
    scope_kind: str  # customer | api_key | tag
    api_key_id: str
    tag_key: str
    tag_value: str
    currency_code: str
    hard_cap: Decimal | None
    alert_budget: Decimal | None
    threshold_percents: tuple[int, ...]
    on_cap: str  # refuse | degrade
    degrade_model: str
    create_time: datetime | None
    update_time: datetime | None


@dataclass(frozen=True)
class SpendStatusView:
    control: SpendControlView
    period_start_time: datetime | None
    period_end_time: datetime | None
    spent: Decimal
    held: Decimal
    remaining: Decimal | None
    reached_threshold_percents: tuple[int, ...]
    active_lease_count: int


@dataclass(frozen=True)
class RateItemView:
    charge_key: str
    kind: str  # cost_plus | per_event | per_quantity
    markup_percent: str
    fixed_per_event: str
    unit_price: str
    quantity: str
    statuses: tuple[str, ...]
    event_type: str


@dataclass(frozen=True)
class SpendPolicyView:
    builder_id: str
    customer_id: str
    currency_code: str
    controls: tuple[SpendControlView, ...]
    rate_card: tuple[RateItemView, ...]
    period_end_time: datetime | None
    lease_seconds: int


@dataclass(frozen=True)
class SpendLeaseView:
    id: str
    control_id: str
    holder: str
    currency_code: str
    granted: Decimal
    consumed: Decimal
    state: str  # active | released | expired
    expire_time: datetime | None
    period_end_time: datetime | None


@dataclass(frozen=True)
class CapReachedView:
    control: SpendControlView
    spent: Decimal
    held: Decimal
    reset_time: datetime | None


@dataclass(frozen=True)
class LeaseReply:
    """AcquireSpendLease's reply: a lease or a refusal."""

    lease: SpendLeaseView | None
    refused: CapReachedView | None


@dataclass(frozen=True)
class AlertView:
    id: str
    builder_id: str
    customer_id: str
    kind: str  # spend_threshold | hard_cap_reached | negative_margin
    control_id: str
    threshold_percent: int
    currency_code: str
    amount: Decimal
    limit: Decimal
    charge_key: str
    period_start_time: datetime | None
    message: str
    create_time: datetime | None


def control_view(r: dict[str, Any]) -> SpendControlView:
    return SpendControlView(
        r["id"],
        r["builder_id"],
        r["customer_id"],
        r["scope_kind"],
        r["api_key_id"],
        r["tag_key"],
        r["tag_value"],
        r["currency_code"],
        r["hard_cap"],
        r["alert_budget"],
        tuple(r["threshold_percents"]),
        r["on_cap"],
        r["degrade_model"],
        r["create_time"],
        r["update_time"],
    )


def lease_view(r: dict[str, Any], currency: str, period_end: datetime) -> SpendLeaseView:
    return SpendLeaseView(
        r["id"],
        r["control_id"],
        r["holder"],
        currency,
        r["granted"],
        r["consumed"],
        r["state"],
        r["expire_time"],
        period_end,
    )


def alert_view(r: dict[str, Any]) -> AlertView:
    return AlertView(
        r["id"],
        r["builder_id"],
        r["customer_id"],
        r["kind"],
        r["control_id"],
        r["threshold_percent"],
        r["currency_code"],
        r["amount"],
        r["limit_amount"],
        r["charge_key"],
        r["period_start"],
        r["message"],
        r["create_time"],
    )
