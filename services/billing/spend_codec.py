"""SpendService's wire format (spend.proto): requests -> the service's inputs, its typed views
(service/spend_views.py) -> protobuf. The same conventions as codec.py: amounts cross as Decimal <->
Money, times as datetime <-> Timestamp; no spend rule lives here."""

from __future__ import annotations

from typing import Any

from billing.codec import decode_money, money_pb, timestamp_pb
from billing.service.spend import ControlInput, MoneyInput
from billing.service.spend_views import (
    AlertView,
    LeaseReply,
    SpendControlView,
    SpendLeaseView,
    SpendPolicyView,
    SpendStatusView,
)
from tollgate.billing.v1 import spend_pb2 as spb

_SCOPE_KIND = {
    spb.SPEND_SCOPE_KIND_CUSTOMER: "customer",
    spb.SPEND_SCOPE_KIND_API_KEY: "api_key",
    spb.SPEND_SCOPE_KIND_TAG: "tag",
}
_SCOPE_KIND_PB = {v: k for k, v in _SCOPE_KIND.items()}
_ON_CAP_PB = {"refuse": spb.CAP_ACTION_REFUSE, "degrade": spb.CAP_ACTION_DEGRADE}
_RATE_KIND_PB = {
    "cost_plus": spb.RATE_KIND_COST_PLUS,
    "per_event": spb.RATE_KIND_PER_EVENT,
    "per_quantity": spb.RATE_KIND_PER_QUANTITY,
}
_LEASE_STATE_PB = {
    "active": spb.SPEND_LEASE_STATE_ACTIVE,
    "released": spb.SPEND_LEASE_STATE_RELEASED,
    "expired": spb.SPEND_LEASE_STATE_EXPIRED,
}
_ALERT_KIND_PB = {
    "spend_threshold": spb.ALERT_KIND_SPEND_THRESHOLD,
    "hard_cap_reached": spb.ALERT_KIND_HARD_CAP_REACHED,
    "negative_margin": spb.ALERT_KIND_NEGATIVE_MARGIN,
}


def _money_input(msg: Any, name: str, path: str) -> MoneyInput | None:
    if not msg.HasField(name):
        return None
    amount, currency = decode_money(getattr(msg, name), path)
    return MoneyInput(amount, currency)


def control_input(c: spb.SpendControl) -> ControlInput:
    return ControlInput(
        builder_id=c.builder_id,
        customer_id=c.customer_id,
        scope_kind=_SCOPE_KIND.get(c.scope.kind, ""),
        api_key_id=c.scope.api_key_id,
        tag_key=c.scope.tag_key,
        tag_value=c.scope.tag_value,
        hard_cap=_money_input(c, "hard_cap", "control.hard_cap"),
        alert_budget=_money_input(c, "alert_budget", "control.alert_budget"),
        threshold_percents=tuple(c.threshold_percents),
        on_cap="degrade" if c.on_cap == spb.CAP_ACTION_DEGRADE else "refuse",
        degrade_model=c.degrade_model,
    )


def scope_pb(v: SpendControlView) -> spb.SpendScope:
    return spb.SpendScope(
        kind=_SCOPE_KIND_PB[v.scope_kind], api_key_id=v.api_key_id, tag_key=v.tag_key, tag_value=v.tag_value
    )


def control_pb(v: SpendControlView) -> spb.SpendControl:
    cur = v.currency_code
    return spb.SpendControl(
        id=v.id,
        builder_id=v.builder_id,
        customer_id=v.customer_id,
        scope=scope_pb(v),
        hard_cap=money_pb(v.hard_cap, cur) if v.hard_cap is not None else None,
        alert_budget=money_pb(v.alert_budget, cur) if v.alert_budget is not None else None,
        threshold_percents=list(v.threshold_percents),
        on_cap=_ON_CAP_PB[v.on_cap],
        degrade_model=v.degrade_model,
        create_time=timestamp_pb(v.create_time),
        update_time=timestamp_pb(v.update_time),
    )


def spend_status_pb(v: SpendStatusView) -> spb.SpendStatus:
    cur = v.control.currency_code
    return spb.SpendStatus(
        control=control_pb(v.control),
        period_start_time=timestamp_pb(v.period_start_time),
        period_end_time=timestamp_pb(v.period_end_time),
        spent=money_pb(v.spent, cur),
        held=money_pb(v.held, cur),
        remaining=money_pb(v.remaining, cur) if v.remaining is not None else None,
        reached_threshold_percents=list(v.reached_threshold_percents),
        active_lease_count=v.active_lease_count,
    )


def spend_policy_pb(v: SpendPolicyView) -> spb.SpendPolicy:
    return spb.SpendPolicy(
        builder_id=v.builder_id,
        customer_id=v.customer_id,
        currency_code=v.currency_code,
        controls=[control_pb(c) for c in v.controls],
        rate_card=[
            spb.RateItem(
                charge_key=i.charge_key,
                kind=_RATE_KIND_PB[i.kind],
                markup_percent=i.markup_percent,
                fixed_per_event=i.fixed_per_event,
                unit_price=i.unit_price,
                quantity=i.quantity,
                statuses=list(i.statuses),
                event_type=i.event_type,
            )
            for i in v.rate_card
        ],
        period_end_time=timestamp_pb(v.period_end_time),
        lease_seconds=v.lease_seconds,
    )


def lease_pb(v: SpendLeaseView) -> spb.SpendLease:
    return spb.SpendLease(
        id=v.id,
        control_id=v.control_id,
        holder=v.holder,
        granted=money_pb(v.granted, v.currency_code),
        consumed=money_pb(v.consumed, v.currency_code),
        state=_LEASE_STATE_PB[v.state],
        expire_time=timestamp_pb(v.expire_time),
        period_end_time=timestamp_pb(v.period_end_time),
    )


def lease_reply_pb(v: LeaseReply) -> spb.AcquireSpendLeaseResponse:
    if v.lease is not None:
        return spb.AcquireSpendLeaseResponse(lease=lease_pb(v.lease))
    r = v.refused
    assert r is not None
    c, cur = r.control, r.control.currency_code
    return spb.AcquireSpendLeaseResponse(
        refused=spb.CapReached(
            control_id=c.id,
            scope=scope_pb(c),
            hard_cap=money_pb(c.hard_cap, cur) if c.hard_cap is not None else None,
            spent=money_pb(r.spent, cur),
            held=money_pb(r.held, cur),
            reset_time=timestamp_pb(r.reset_time),
            on_cap=_ON_CAP_PB[c.on_cap],
            degrade_model=c.degrade_model,
        )
    )


def alert_pb(v: AlertView) -> spb.Alert:
    return spb.Alert(
        id=v.id,
        builder_id=v.builder_id,
        customer_id=v.customer_id,
        kind=_ALERT_KIND_PB[v.kind],
        control_id=v.control_id,
        threshold_percent=v.threshold_percent,
        amount=money_pb(v.amount, v.currency_code),
        limit=money_pb(v.limit, v.currency_code),
        charge_key=v.charge_key,
        period_start_time=timestamp_pb(v.period_start_time),
        message=v.message,
        create_time=timestamp_pb(v.create_time),
    )
