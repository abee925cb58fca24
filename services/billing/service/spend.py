"""Spend controls: SetSpendControl, DeleteSpendControl, ListSpendControls, GetSpendPolicy (the
controls and rate card the gateway holds and prices a customer's requests by). Leases are in
leases.py, alerts in alerts.py; the rules are billing.domain.spend."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from billing import store
from billing.domain import spend as rules
from billing.domain.period import BillingPeriod
from billing.domain.plan import plan_from_dict
from billing.domain.text import quote
from billing.service._core import ServiceCore, _cursor, _new_id, _require, log
from billing.service.spend_views import (
    RateItemView,
    SpendControlView,
    SpendPolicyView,
    SpendStatusView,
    control_view,
)
from billing.service.views import _s
from common.errors import InvalidArgument, NotFound
from common.paging import encode_token, page_size

ZERO = Decimal(0)


@dataclass(frozen=True)
class MoneyInput:
    amount: Decimal
    currency: str


@dataclass(frozen=True)
class ControlInput:
    """SetSpendControl's control as decoded by the codec (scope_kind "" when unspecified)."""

    builder_id: str
    customer_id: str
    scope_kind: str
    api_key_id: str = ""
    tag_key: str = ""
    tag_value: str = ""
    hard_cap: MoneyInput | None = None
    alert_budget: MoneyInput | None = None
    threshold_percents: tuple[int, ...] = ()
    on_cap: str = "refuse"
    degrade_model: str = ""


def _check_scope(c: ControlInput) -> None:
    used = {"api_key": ("api_key_id",), "tag": ("tag_key", "tag_value"), "customer": ()}
    if c.scope_kind not in used:
        raise InvalidArgument("control.scope.kind is required", field="control.scope.kind")
    for name in ("api_key_id", "tag_key", "tag_value"):
        path = f"control.scope.{name}"
        if name in used[c.scope_kind] and not getattr(c, name):
            raise InvalidArgument(f"{path} is required for a {c.scope_kind} scope", field=path)
        if name not in used[c.scope_kind] and getattr(c, name):
            raise InvalidArgument(f"{path} must be empty for a {c.scope_kind} scope", field=path)


def _amount(m: MoneyInput | None, currency: str, path: str, *, positive: bool) -> Decimal | None:
    if m is None:
        return None
    if m.currency != currency:
        raise InvalidArgument(
            f"{path} must be in the customer's currency {currency}, "
            f"got {quote(m.currency) if m.currency else 'none'}",
            field=f"{path}.currency_code",
        )
    if m.amount < 0 or (positive and m.amount == 0):
        raise InvalidArgument(f"{path} must be {'positive' if positive else 'at least zero'}", field=path)
    return m.amount


def _check_control(c: ControlInput, currency: str) -> tuple[Decimal | None, Decimal | None]:
    _check_scope(c)
    cap = _amount(c.hard_cap, currency, "control.hard_cap", positive=False)
    budget = _amount(c.alert_budget, currency, "control.alert_budget", positive=True)
    seen: set[int] = set()
    for i, p in enumerate(c.threshold_percents):
        if p in seen:
            path = f"control.threshold_percents[{i}]"
            raise InvalidArgument(f"threshold {p}% is listed twice", field=path)
        seen.add(p)
    if seen and cap is None and budget is None:
        raise InvalidArgument(
            "thresholds need a hard_cap or an alert_budget to be percents of",
            field="control.threshold_percents",
        )
    if c.on_cap == "degrade" and not c.degrade_model:
        raise InvalidArgument(
            "control.degrade_model is required when on_cap is DEGRADE", field="control.degrade_model"
        )
    if c.on_cap != "degrade" and c.degrade_model:
        raise InvalidArgument(
            "control.degrade_model must be empty unless on_cap is DEGRADE", field="control.degrade_model"
        )
    return cap, budget


def _status(row: dict[str, Any], period: BillingPeriod, counters: dict[str, Any] | None) -> SpendStatusView:
    spent = counters["spent"] if counters else ZERO
    held = counters["held"] if counters else ZERO
    return SpendStatusView(
        control_view(row),
        period.start,
        period.end,
        spent,
        held,
        rules.remaining(row["hard_cap"], spent, held),
        tuple(sorted(counters["reached_percents"])) if counters else (),
        counters["active_leases"] if counters else 0,
    )


class SpendControls(ServiceCore):
    """A customer's spend controls and the policy the gateway reads."""

    async def _customer(self, conn: AsyncConnection, builder_id: str, customer_id: str) -> dict[str, Any]:
        customer = await store.get_customer(conn, builder_id, customer_id)
        if customer is None:
            raise NotFound(f"customer {quote(customer_id)} not found", field="customer_id")
        return customer

    async def _statuses(self, conn: AsyncConnection, rows: list[dict[str, Any]]) -> list[SpendStatusView]:
        period = rules.spend_period(self.clock())
        counters = await store.spend.period_status(conn, [r["id"] for r in rows], period.start)
        return [_status(r, period, counters.get(r["id"])) for r in rows]

    async def set_spend_control(self, request_id: str, c: ControlInput) -> SpendStatusView:
        _require(c.builder_id, "control.builder_id")
        _require(c.customer_id, "control.customer_id")

        async def work(conn: AsyncConnection) -> SpendStatusView:
            customer = await store.get_customer(conn, c.builder_id, c.customer_id)
            if customer is None:
                raise NotFound(f"customer {quote(c.customer_id)} not found", field="control.customer_id")
            cap, budget = _check_control(c, customer["currency_code"])
            row = await store.spend.upsert_control(
                conn,
                {
                    "id": _new_id("spc"),
                    "builder_id": c.builder_id,
                    "customer_id": c.customer_id,
                    "scope_kind": c.scope_kind,
                    "api_key_id": c.api_key_id,
                    "tag_key": c.tag_key,
                    "tag_value": c.tag_value,
                    "currency_code": customer["currency_code"],
                    "hard_cap": cap,
                    "alert_budget": budget,
                    "threshold_percents": sorted(c.threshold_percents),
                    "on_cap": c.on_cap,
                    "degrade_model": c.degrade_model,
                },
                self.clock(),
            )
            log.info("billing.spend.control_set", builder_id=c.builder_id, control_id=row["id"])
            return (await self._statuses(conn, [row]))[0]

        body = {
            **{k: v for k, v in vars(c).items() if k not in ("hard_cap", "alert_budget")},
            "threshold_percents": list(c.threshold_percents),
            "hard_cap": [_s(c.hard_cap.amount), c.hard_cap.currency] if c.hard_cap else None,
            "alert_budget": [_s(c.alert_budget.amount), c.alert_budget.currency] if c.alert_budget else None,
        }
        return await self._idempotent(
            "SetSpendControl", c.builder_id, request_id, body, work, SpendStatusView
        )

    async def delete_spend_control(
        self, request_id: str, builder_id: str, control_id: str
    ) -> SpendControlView:
        _require(builder_id, "builder_id")
        _require(control_id, "control_id", max_len=64)

        async def work(conn: AsyncConnection) -> SpendControlView:
            row = await store.spend.delete_control(conn, builder_id, control_id)
            if row is None:
                raise NotFound(f"spend control {quote(control_id)} not found", field="control_id")
            log.info("billing.spend.control_deleted", builder_id=builder_id, control_id=control_id)
            return control_view(row)

        body = {"builder_id": builder_id, "control_id": control_id}
        return await self._idempotent(
            "DeleteSpendControl", builder_id, request_id, body, work, SpendControlView
        )

    async def list_spend_controls(
        self, builder_id: str, customer_id: str, size: int, token: str
    ) -> tuple[list[SpendStatusView], str]:
        _require(builder_id, "builder_id")
        limit = page_size(size)
        cursor = _cursor(token, {"c": str, "i": str})
        after = (cursor["c"], cursor["i"]) if cursor else None
        async with self.engine.connect() as conn:
            rows = await store.spend.list_controls(conn, builder_id, customer_id, after, limit + 1)
            statuses = await self._statuses(conn, rows[:limit])
        more = len(rows) > limit
        last = rows[limit - 1] if more else None
        return statuses, encode_token({"c": last["customer_id"], "i": last["id"]}) if last else ""

    async def get_spend_policy(self, builder_id: str, customer_id: str) -> SpendPolicyView:
        _require(builder_id, "builder_id")
        _require(customer_id, "customer_id")
        now = self.clock()
        period = rules.spend_period(now)
        async with self.engine.connect() as conn:
            customer = await self._customer(conn, builder_id, customer_id)
            controls = await store.spend.controls_of(conn, builder_id, customer_id)
            sub = await store.get_subscription(conn, builder_id, customer_id)
            parts = self._timeline(sub, period) if sub is not None else []
            key = next((p.key for p in parts if p.start <= now < p.end), None)
            raw = await store.plan_specs(conn, [key]) if key is not None else {}
        items: tuple[rules.RateItem, ...] = ()
        if key is not None:
            spec = plan_from_dict(raw[key])
            meters = {
                k: await self.metering.get_meter(builder_id, k)
                for k in sorted({c.meter_key for c in spec.charges})
            }
            items = rules.rate_card(spec, meters)
        return SpendPolicyView(
            builder_id,
            customer_id,
            customer["currency_code"],
            tuple(control_view(r) for r in controls),
            tuple(_rate_item_view(i) for i in items),
            period.end,
            self.spend_lease_seconds,
        )


def _rate_item_view(i: rules.RateItem) -> RateItemView:
    return RateItemView(
        i.charge_key,
        i.kind,
        _s(i.markup_percent) or "",
        _s(i.fixed_per_event) or "",
        _s(i.unit_price) or "",
        i.quantity,
        i.statuses,
        i.event_type,
    )
