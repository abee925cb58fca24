"""Alerts: raised once per cause and period (spend thresholds, hard caps, lines priced below their
provider cost), listed newest first; each new alert queues its webhook delivery in the same
transaction (store.spend.raise_alert). Also the margin watch: a preview of every subscribed
customer's current period, alerting on usage priced below its cost before the period closes."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from billing import store
from billing.domain import spend as rules
from billing.domain.period import period_containing
from billing.service._core import ServiceCore, _cursor, _new_id, _not_our_token, _require, log
from billing.service.spend_views import AlertView, alert_view
from billing.service.views import _s
from common.errors import ServiceError
from common.paging import encode_token, page_size


def _money(amount: Decimal, currency: str) -> str:
    return f"{_s(amount)} {currency}"


async def raise_alert(
    conn: AsyncConnection,
    now: datetime,
    *,
    builder_id: str,
    customer_id: str,
    kind: str,
    dedupe_key: str,
    period_start: datetime,
    currency: str,
    amount: Decimal,
    limit: Decimal,
    message: str,
    control_id: str = "",
    threshold_percent: int = 0,
    charge_key: str = "",
) -> dict[str, Any] | None:
    row = await store.spend.raise_alert(
        conn,
        {
            "id": _new_id("alrt"),
            "builder_id": builder_id,
            "customer_id": customer_id,
            "kind": kind,
            "dedupe_key": dedupe_key,
            "control_id": control_id,
            "threshold_percent": threshold_percent,
            "charge_key": charge_key,
            "period_start": period_start,
            "currency_code": currency,
            "amount": amount,
            "limit_amount": limit,
            "message": message,
        },
        now,
    )
    if row is not None:
        log.info("billing.alert.raised", builder_id=builder_id, kind=kind, alert_id=row["id"])
    return row


async def threshold_alerts(
    conn: AsyncConnection,
    now: datetime,
    control: dict[str, Any],
    period_start: datetime,
    spent: Decimal,
    percents: Iterable[int],
) -> None:
    basis = rules.threshold_basis(control["hard_cap"], control["alert_budget"])
    cur = control["currency_code"]
    for p in percents:
        limit = rules.threshold_amount(basis, p)  # type: ignore[arg-type]
        await raise_alert(
            conn,
            now,
            builder_id=control["builder_id"],
            customer_id=control["customer_id"],
            kind="spend_threshold",
            dedupe_key=f"threshold:{control['id']}:{period_start.isoformat()}:{p}",
            period_start=period_start,
            currency=cur,
            amount=spent,
            limit=limit,
            control_id=control["id"],
            threshold_percent=p,
            message=f"spend of {control['customer_id']} reached {p}% ({_money(limit, cur)}) of its "
            f"{control['scope_kind']} control this period: {_money(spent, cur)} spent",
        )


async def cap_alert(
    conn: AsyncConnection, now: datetime, control: dict[str, Any], period_start: datetime, spent: Decimal
) -> None:
    cur = control["currency_code"]
    await raise_alert(
        conn,
        now,
        builder_id=control["builder_id"],
        customer_id=control["customer_id"],
        kind="hard_cap_reached",
        dedupe_key=f"cap:{control['id']}:{period_start.isoformat()}",
        period_start=period_start,
        currency=cur,
        amount=spent,
        limit=control["hard_cap"],
        control_id=control["id"],
        message=f"a request of {control['customer_id']} was refused at the hard cap of "
        f"{_money(control['hard_cap'], cur)} of its {control['scope_kind']} control: "
        f"{_money(spent, cur)} spent",
    )


async def margin_alerts(
    conn: AsyncConnection,
    now: datetime,
    builder_id: str,
    customer_id: str,
    currency: str,
    period_start: datetime,
    source: str,
    lines: Iterable[dict[str, Any]],
) -> None:
    """One NEGATIVE_MARGIN alert per (source, charge) for lines priced below their provider cost; source
    is an invoice id (ClosePeriod) or the preview of a period ("preview:<customer>:<period start>")."""
    for line in lines:
        # Usage lines only: a late-usage adjustment's negative margin is usage taken back, not a loss.
        if line["kind"] != "usage" or not line["charge_key"] or line["builder_margin"] >= 0:
            continue
        await raise_alert(
            conn,
            now,
            builder_id=builder_id,
            customer_id=customer_id,
            kind="negative_margin",
            dedupe_key=f"margin:{source}:{line['charge_key']}",
            period_start=period_start,
            currency=currency,
            amount=line["amount"],
            limit=line["provider_cost"],
            charge_key=line["charge_key"],
            message=f"{line['charge_key']} of {customer_id} is priced at {_money(line['amount'], currency)}, "
            f"below its provider cost of {_money(line['provider_cost'], currency)}",
        )


class Alerts(ServiceCore):
    """ListAlerts and the margin watch."""

    async def list_alerts(
        self, builder_id: str, customer_id: str, size: int, token: str
    ) -> tuple[list[AlertView], str]:
        _require(builder_id, "builder_id")
        limit = page_size(size)
        cursor = _cursor(token, {"t": str, "i": str})
        before = None
        if cursor:
            try:
                before = (datetime.fromisoformat(cursor["t"]), cursor["i"])
            except ValueError:
                before = None
            if before is None or before[0].tzinfo is None:
                raise _not_our_token()
        async with self.engine.connect() as conn:
            rows = await store.spend.list_alerts(conn, builder_id, customer_id, before, limit + 1)
        views = [alert_view(r) for r in rows[:limit]]
        token_out = ""
        if len(rows) > limit:
            last = rows[limit - 1]
            token_out = encode_token({"t": last["create_time"].isoformat(), "i": last["id"]})
        return views, token_out

    async def watch_margins(self) -> int:
        """One round of the margin watch; returns how many customers were previewed."""
        now = self.clock()
        period = period_containing(now)
        async with self.engine.connect() as conn:
            customers = await store.spend.subscribed_now(conn, now)
        done = 0
        for builder_id, customer_id in customers:
            try:
                invoice = await self.preview_invoice(builder_id, customer_id, now)  # type: ignore[attr-defined]
            except ServiceError as exc:
                log.info("billing.margin_watch.skipped", builder_id=builder_id, reason=exc.message[:200])
                continue
            lines = [
                {
                    "kind": ln.kind,
                    "charge_key": ln.charge_key,
                    "builder_margin": ln.builder_margin,
                    "amount": ln.amount,
                    "provider_cost": ln.provider_cost,
                }
                for ln in invoice.lines
            ]
            if any(ln["builder_margin"] < 0 for ln in lines):
                async with self.engine.begin() as conn:
                    await margin_alerts(
                        conn,
                        self.clock(),
                        builder_id,
                        customer_id,
                        invoice.currency_code,
                        period.start,
                        f"preview:{customer_id}:{period.start.isoformat()}",
                        lines,
                    )
            done += 1
        return done
