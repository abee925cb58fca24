"""Invoicing: preview the current period's invoice, read and list invoices, and the invoice
rows the close writes.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from billing import store
from billing.domain import (
    LineKind,
    build_invoice,
    period_containing,
    plan_from_dict,
)
from billing.domain.proration import Segment, active_share, build_segmented_invoice
from billing.domain.text import quote
from billing.service._core import (
    _MAX_TIME,
    _MIN_TIME,
    ServiceCore,
    _cursor,
    _not_our_token,
    _require,
)
from billing.service.late import (
    LateRead,
    late_adjustments,
    late_key,
    load_snapshots,
    plan_keys,
    read_late_usage,
)
from billing.service.views import (
    ZERO,
    _s,
    _t,
    invoice_view,
)
from billing.usage import (
    charge_usage,
    meter_needs,
    query_period,
    usage_by_tag,
)
from common.errors import (
    FailedPrecondition,
    NotFound,
)
from common.paging import encode_token, page_size


def _line_rows(
    invoice_id: str,
    draft_lines: Any,
    period_start: datetime,
    usage_json: dict[str, dict],
    tags_json: dict[str, list],
    late_reads: dict[str, LateRead] | None = None,
) -> list[dict[str, Any]]:
    rows = []
    for position, line in enumerate(draft_lines, start=1):
        kind = {LineKind.BASE_FEE: "base_fee", LineKind.USAGE: "usage", LineKind.LATE_USAGE: "late_usage"}[
            line.kind
        ]
        snapshot = None
        usage_start = None
        read = None
        if line.kind is LineKind.USAGE:
            snapshot = usage_json.get(line.charge_key)
            usage_start = period_start
        elif line.kind is LineKind.LATE_USAGE:
            # The adjusted period's usage now: the snapshot the next late-usage check compares with.
            part = line.late.part
            key = late_key(line.late.period.start, line.charge_key, part[0] if part else None)
            snapshot = usage_json.get(key)
            usage_start = line.late.period.start
            read = (late_reads or {}).get(key)
        rows.append(
            {
                "invoice_id": invoice_id,
                "position": position,
                "kind": kind,
                "charge_key": line.charge_key or "",
                "meter_key": line.meter_key or "",
                "display_name": line.display_name,
                "quantity": line.quantity,
                "included_quantity": line.included_quantity_applied,
                "unit_price": line.unit_price,
                "tiers": [
                    {
                        "label": t.label,
                        "quantity": _s(t.quantity),
                        "unit_price": _s(t.unit_price),
                        "flat_price": _s(t.flat_price),
                        "amount": _s(t.amount),
                    }
                    for t in line.tiers
                ],
                "amount_unrounded": line.amount_unrounded,
                "amount": line.amount,
                "provider_cost": line.split.provider_cost,
                "platform_fee": line.split.platform_fee,
                "builder_margin": line.split.builder_margin,
                "usage_by_tag": tags_json.get(line.meter_key or "", [])
                if line.kind is LineKind.USAGE
                else [],
                "usage_period_start": usage_start,
                "usage_snapshot": snapshot,
                "workflow_weights": [[wf, _s(q)] for wf, q in line.workflow_quantities],
                # A late line's metering read: events of the adjusted period ingested from the cutoff
                # it was last read with up to this invoice's cutoff.
                "usage_start_time": read.start if read else None,
                "usage_end_time": read.end if read else None,
                "ingested_after_time": read.after if read else None,
                "ingested_before_time": read.before if read else None,
            }
        )
    return rows


MAX_INVOICE_AMOUNT = Decimal(10) ** 18
MAX_LINE_QUANTITY = Decimal(10) ** 28


def _check_recordable(draft: Any, customer_id: str) -> None:
    amounts = [draft.subtotal]
    quantities = []
    for line in draft.lines:
        amounts += [
            line.amount_unrounded,
            line.amount,
            line.unit_price or ZERO,
            line.split.provider_cost,
            line.split.platform_fee,
            line.split.builder_margin,
        ]
        quantities += [line.quantity, line.included_quantity_applied]
    if any(abs(a) >= MAX_INVOICE_AMOUNT for a in amounts) or any(
        abs(q) >= MAX_LINE_QUANTITY for q in quantities
    ):
        raise FailedPrecondition(
            f"the invoice of customer {quote(customer_id)} for {draft.period.label} would exceed the "
            f"largest amount billing records ({MAX_INVOICE_AMOUNT:,.0f} per line or invoice, "
            f"{MAX_LINE_QUANTITY:,.0f} units of usage); nothing was finalized. Check the plan's prices "
            "and the metered usage",
            field="customer_id",
        )


def _jsonb(row: dict[str, Any]) -> dict[str, Any]:
    """COPY sends JSONB columns as text."""
    import json

    out = dict(row)
    for key in ("tiers", "usage_by_tag", "usage_snapshot", "workflow_weights"):
        if out[key] is not None:
            out[key] = json.dumps(out[key])
    return out


def draft_invoice_view(
    builder_id: str,
    customer_id: str,
    app_id: str,
    plan_id: str,
    version: int,
    draft: Any,
    tags: dict[str, list],
    cutoff: datetime | None = None,
) -> dict[str, Any]:
    """An unstored invoice (a preview or a simulation) in the shape of a stored one."""
    lines = _line_rows("", draft.lines, draft.period.start, {}, tags)
    inv = {
        "id": "",
        "builder_id": builder_id,
        "customer_id": customer_id,
        "app_id": app_id,
        "number": 0,
        "status": "draft",
        "currency_code": draft.currency,
        "period_start": draft.period.start,
        "period_end": draft.period.end,
        "usage_cutoff": cutoff,
        "plan_id": plan_id,
        "plan_version": version,
        "total": draft.subtotal,
        "wallet_applied": ZERO,
        "credited": ZERO,
        "amount_paid": ZERO,
        "paid_time": None,
        "finalize_time": None,
        "void_time": None,
    }
    return invoice_view(inv, lines)


class Invoicing(ServiceCore):
    """Invoice previews and reads."""

    async def preview_invoice(
        self, builder_id: str, customer_id: str, as_of: datetime | None, *, with_late: bool = True
    ) -> dict[str, Any]:
        """The draft invoice of the period containing `as_of` (default now), with the late-usage
        adjustments its close would bill now unless `with_late` is False (the margin watch, which
        looks at usage lines only, skips their metering reads)."""
        _require(builder_id, "builder_id")
        _require(customer_id, "customer_id")
        at = as_of or self.clock()
        period = period_containing(at)
        async with self.engine.connect() as conn:
            customer = await store.get_customer(conn, builder_id, customer_id)
            if customer is None:
                raise NotFound(f"customer {quote(customer_id)} not found", field="customer_id")
            sub = await store.get_subscription(conn, builder_id, customer_id)
            if sub is None:
                raise FailedPrecondition(
                    f"customer {quote(customer_id)} has no subscription", field="customer_id"
                )
            # The parts of the period the subscription is active in (a start, a cancellation or an
            # immediate plan change cut it), priced as the close will.
            parts = self._timeline(sub, period)
            if not parts:
                raise FailedPrecondition(
                    f"the subscription of {quote(customer_id)} is not active in {period.label}",
                    field="as_of_time" if as_of else "customer_id",
                )
            # Late usage of closed periods, found as the close of this period would find it (now).
            snapshots = (
                await load_snapshots(conn, builder_id, period.start, self.late_max_age, {customer_id})
                if with_late
                else []
            )
            raw = await store.plan_specs(conn, list({p.key for p in parts} | plan_keys(snapshots)))
            specs = {k: plan_from_dict(v) for k, v in raw.items()}
            fee = await self._fee_rule(conn, builder_id)
        plan_id, version = parts[-1].key
        spec = specs[parts[-1].key]
        usages = [
            await query_period(
                self.metering,
                builder_id,
                meter_needs([specs[p.key]]),
                p.usage_start,
                p.usage_end,
                None,
                customer_id=customer_id,
            )
            for p in parts
        ]
        usage = usages[-1]
        late_usage = await read_late_usage(
            self.metering, builder_id, snapshots, specs, None, customer_id=customer_id
        )
        late = late_adjustments(customer_id, sub["start_time"], snapshots, specs, late_usage, None)[0]
        if len(parts) == 1 and active_share(period, parts[0].start, parts[0].end) == 1:
            draft = build_invoice(spec, charge_usage(spec, usage, customer_id), fee, period, late)
        else:
            segments = [
                Segment(
                    specs[p.key],
                    f"{p.key[0]} v{p.key[1]}",
                    p.start,
                    p.end,
                    charge_usage(specs[p.key], u, customer_id),
                )
                for p, u in zip(parts, usages, strict=True)
            ]
            draft = build_segmented_invoice(segments, fee, period, late)
        _check_recordable(draft, customer_id)
        tags = (
            {}
            if len(parts) > 1
            else {c.meter_key: usage_by_tag(usage, c.meter_key, customer_id) for c in spec.charges}
        )
        return draft_invoice_view(builder_id, customer_id, customer["app_id"], plan_id, version, draft, tags)

    async def get_invoice(self, builder_id: str, invoice_id: str) -> dict[str, Any]:
        async with self.engine.connect() as conn:
            return await self._invoice_view(conn, await self._invoice(conn, builder_id, invoice_id))

    async def list_invoices(
        self, builder_id: str, customer_id: str, status: str | None, size: int, token: str
    ) -> tuple[list[dict], str]:
        _require(builder_id, "builder_id")
        limit = page_size(size)
        cursor = _cursor(token, {"p": str, "n": int})
        after = None
        if cursor:
            try:
                start = datetime.fromisoformat(cursor["p"])
            except ValueError:
                raise _not_our_token() from None
            if start.tzinfo is None or not _MIN_TIME <= start < _MAX_TIME:
                raise _not_our_token()
            after = (start, cursor["n"])
        async with self.engine.connect() as conn:
            rows = await store.list_invoices(conn, builder_id, customer_id or None, status, after, limit + 1)
            more = len(rows) > limit
            rows = rows[:limit]
            lines = await store.lines_of(conn, [r["id"] for r in rows])
        token_out = encode_token({"p": _t(rows[-1]["period_start"]), "n": rows[-1]["number"]}) if more else ""
        return [invoice_view(r, lines[r["id"]]) for r in rows], token_out
