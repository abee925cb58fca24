"""Billing's replies as JSON-safe views (decimals as strings, times as ISO strings).

The same structure is what api.py encodes and what the idempotency table stores as a request's
reply, so a retry returns exactly the first reply, and replies stored by earlier versions decode.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

ZERO = Decimal(0)


def _s(value: Decimal | None) -> str | None:
    if value is None:
        return None
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def _t(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None


def customer_view(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": r["id"],
        "builder_id": r["builder_id"],
        "app_id": r["app_id"],
        "currency_code": r["currency_code"],
        "display_name": r["display_name"],
        "billing_email": r["billing_email"],
        "create_time": _t(r["create_time"]),
    }


def version_view(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "plan_id": r["plan_id"],
        "version": r["version"],
        "spec": r["spec"],
        "publish_time": _t(r["publish_time"]),
    }


def plan_view(r: dict[str, Any], versions: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": r["id"],
        "builder_id": r["builder_id"],
        "key": r["key"],
        "display_name": r["display_name"],
        "currency_code": r["currency_code"],
        "versions": [version_view(v) for v in versions],
        "create_time": _t(r["create_time"]),
    }


def subscription_view(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": r["id"],
        "builder_id": r["builder_id"],
        "customer_id": r["customer_id"],
        "plan_id": r["plan_id"],
        "plan_version": r["plan_version"],
        "start_time": _t(r["start_time"]),
        "next_plan_id": r["next_plan_id"] or "",
        "next_plan_version": r["next_plan_version"] or 0,
        "change_time": _t(r["change_time"]),
    }


def fee_view(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "builder_id": r["builder_id"],
        "percent_of_line": _s(r["percent_of_line"]),
        "percent_of_margin": _s(r["percent_of_margin"]),
        "update_time": _t(r["update_time"]),
    }


def line_view(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "position": r["position"],
        "kind": r["kind"],
        "charge_key": r["charge_key"],
        "meter_key": r["meter_key"],
        "display_name": r["display_name"],
        "quantity": _s(r["quantity"]),
        "included_quantity": _s(r["included_quantity"]),
        "unit_price": _s(r["unit_price"]) or "",
        "tiers": r["tiers"],
        "amount": _s(r["amount"]),
        "provider_cost": _s(r["provider_cost"]),
        "platform_fee": _s(r["platform_fee"]),
        "builder_margin": _s(r["builder_margin"]),
        "usage_by_tag": r["usage_by_tag"],
        "adjusted_period_start_time": _t(r["usage_period_start"]) if r["kind"] == "late_usage" else None,
    }


def amount_due(inv: dict[str, Any]) -> Decimal:
    if inv["status"] == "void":
        return ZERO
    return max(ZERO, inv["total"] - inv["wallet_applied"] - inv["credited"] - inv["amount_paid"])


def invoice_view(inv: dict[str, Any], lines: list[dict[str, Any]]) -> dict[str, Any]:
    due = amount_due(inv)
    if inv.get("status") == "draft":
        payment_status = "unpaid" if due > 0 else "paid"
    elif inv["paid_time"] is not None or due == 0:
        payment_status = "paid"
    elif inv["amount_paid"] > 0 or inv["wallet_applied"] > 0:
        payment_status = "partially_paid"
    else:
        payment_status = "unpaid"
    return {
        "id": inv["id"],
        "builder_id": inv["builder_id"],
        "customer_id": inv["customer_id"],
        "app_id": inv["app_id"],
        "number": inv["number"],
        "status": inv["status"],
        "currency_code": inv["currency_code"],
        "period_start_time": _t(inv["period_start"]),
        "period_end_time": _t(inv["period_end"]),
        "usage_cutoff_time": _t(inv["usage_cutoff"]),
        "plan_id": inv["plan_id"],
        "plan_version": inv["plan_version"],
        "lines": [line_view(r) for r in lines],
        "total": _s(inv["total"]),
        "wallet_applied": _s(inv["wallet_applied"]),
        "credited": _s(inv["credited"]),
        "amount_due": _s(due),
        "amount_paid": _s(inv["amount_paid"]),
        "payment_status": payment_status,
        "finalize_time": _t(inv["finalize_time"]),
        "void_time": _t(inv["void_time"]),
    }


def earnings_view(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "sequence": r["sequence"],
        "builder_id": r["builder_id"],
        "app_id": r["app_id"],
        "customer_id": r["customer_id"],
        "invoice_id": r["invoice_id"],
        "line_position": r["line_position"],
        "workflow": r["workflow"],
        "meter_key": r["meter_key"],
        "kind": r["kind"],
        "reason": r["reason"],
        "currency_code": r["currency_code"],
        "amount": _s(r["amount"]),
        "source_id": r["source_id"],
        "create_time": _t(r["create_time"]),
    }


def payment_view(p: dict[str, Any], currency: str) -> dict[str, Any]:
    return {
        "id": p["id"],
        "invoice_id": p["invoice_id"],
        "amount": _s(p["amount"]),
        "currency_code": currency,
        "external_reference": p["external_reference"],
        "create_time": _t(p["create_time"]),
    }
