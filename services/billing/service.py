"""Billing use cases: one async method each, owning its transaction and request-id idempotency.

Replies are JSON-safe views (decimals as strings, times as ISO strings): the same structure is
stored as the idempotency reply, so a retry returns exactly the first reply, and api.py encodes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from billing import metrics, store
from billing.clients import MeteringClient
from billing.domain import (
    NO_PLATFORM_FEE,
    ChargeUsage,
    EarningsParties,
    EarningsReason,
    LateUsage,
    LineKind,
    PlanSpec,
    PlatformFeeRule,
    Split,
    allocate_credit,
    apply_wallet,
    build_invoice,
    earnings_for_credit,
    earnings_for_payment,
    minor_units,
    parse_plan_yaml,
    period_containing,
    plan_change_effective_time,
    plan_from_dict,
    plan_to_dict,
    void_allocation,
)
from billing.domain.money import has_at_most_places
from billing.domain.text import quote
from billing.usage import (
    PeriodUsage,
    charge_usage,
    meter_needs,
    query_period,
    usage_by_tag,
    usage_from_json,
    usage_to_json,
)
from common.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from common.idempotency import claim, complete, fingerprint
from common.paging import decode_token, encode_token, page_size

log = structlog.get_logger("billing.service")

KEY = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
ZERO = Decimal(0)
# The most a prepaid wallet may hold (whole units of its currency), far below NUMERIC(38, 9)'s 10^29:
# a top-up that would pass it is FAILED_PRECONDITION (stated in the proto's TopUpWalletRequest).
MAX_WALLET_BALANCE = Decimal(10) ** 15
EPSILON = timedelta(microseconds=1)
# A customer id no event carries: the cutoff probe asks metering for its clock, not for data.
PROBE_CUSTOMER = "billing.cutoff-probe"


def _s(value: Decimal | None) -> str | None:
    if value is None:
        return None
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def _t(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None


def idempotency_scope(rpc: str, builder_id: str) -> str:
    """The idempotency scope of a mutation: the RPC and the builder, so one builder's request id never
    answers (or blocks) another builder's request. The builder is hashed because ids run to 128
    characters and the scope column holds 64; 128 bits of SHA-256 make a collision out of reach."""
    return f"{rpc}:{hashlib.sha256(builder_id.encode()).hexdigest()[:32]}"


_MIN_TIME = datetime(2000, 1, 1, tzinfo=UTC)
_MAX_TIME = datetime(2100, 1, 1, tzinfo=UTC)
_CURSOR_TEXT = re.compile(r"[^\x00-\x1f\x7f]{1,128}")


def _not_our_token() -> InvalidArgument:
    return InvalidArgument("page_token is not a token this service issued", field="page_token")


def _cursor(token: str, shape: dict[str, type]) -> dict[str, Any] | None:
    """Decode a page token and check it has exactly the keys and types billing writes into it, so a
    well-formed token billing did not issue is INVALID_ARGUMENT, never a bad query."""
    cursor = decode_token(token)
    if cursor is None:
        return None
    if set(cursor) != set(shape):
        raise _not_our_token()
    for key, kind in shape.items():
        value = cursor[key]
        if kind is int:
            if type(value) is not int or not 0 <= value < 2**63:
                raise _not_our_token()
        elif not isinstance(value, str) or not _CURSOR_TEXT.fullmatch(value):
            raise _not_our_token()
    return cursor


def _new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def _require(value: str, field: str, *, max_len: int = 128) -> str:
    if not value:
        raise InvalidArgument(f"{field} is required", field=field)
    if len(value) > max_len:
        raise InvalidArgument(f"{field} must be at most {max_len} characters", field=field)
    return value


def _money_amount(amount: Decimal, currency: str, expected_currency: str, field: str) -> Decimal:
    if currency != expected_currency:
        raise InvalidArgument(
            f"{field} must be in {expected_currency}, got {currency or 'no currency'}",
            field=f"{field}.currency_code",
        )
    if amount <= 0:
        raise InvalidArgument(f"{field} must be greater than zero", field=field)
    if not has_at_most_places(amount, minor_units(currency)):
        raise InvalidArgument(f"{field} must be whole {currency} minor units, got {amount}", field=field)
    return amount


@dataclass(frozen=True)
class StoredLine:
    """An invoice line read back from storage, shaped as the domain's earnings functions need."""

    charge_key: str | None
    meter_key: str | None
    split: Split
    workflow_quantities: tuple[tuple[str, Decimal], ...]


def _stored_line(row: dict[str, Any]) -> StoredLine:
    return StoredLine(
        charge_key=row["charge_key"] or None,
        meter_key=row["meter_key"] or None,
        split=Split(row["provider_cost"], row["platform_fee"], row["builder_margin"]),
        workflow_quantities=tuple((k, Decimal(v)) for k, v in row["workflow_weights"]),
    )


# ---- views ----------------------------------------------------------------------------------------


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


def _line_rows(
    invoice_id: str,
    draft_lines: Any,
    period_start: datetime,
    prev_start: datetime | None,
    usage_json: dict[str, dict],
    tags_json: dict[str, list],
) -> list[dict[str, Any]]:
    rows = []
    for position, line in enumerate(draft_lines, start=1):
        kind = {LineKind.BASE_FEE: "base_fee", LineKind.USAGE: "usage", LineKind.LATE_USAGE: "late_usage"}[
            line.kind
        ]
        snapshot = None
        usage_start = None
        if line.kind is LineKind.USAGE:
            snapshot = usage_json.get(line.charge_key)
            usage_start = period_start
        elif line.kind is LineKind.LATE_USAGE:
            snapshot = usage_json.get(f"late:{line.charge_key}")
            usage_start = prev_start
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
            }
        )
    return rows


def _earnings_rows(entries: Any, source_id: str, line_positions: dict[int, int] | None = None) -> list[dict]:
    return [
        {
            "builder_id": e.builder_id,
            "app_id": e.app_id,
            "customer_id": e.customer_id,
            "invoice_id": e.invoice_id,
            "line_position": e.line_index + 1,
            "workflow": e.workflow,
            "meter_key": e.meter_key or "",
            "kind": e.kind.value,
            "reason": e.reason.value,
            "currency_code": e.currency,
            "amount": e.amount,
            "source_id": source_id,
        }
        for e in entries
    ]


# The largest amount an invoice line or total may carry: amounts go out as Money, whose units are an
# int64 (about 9.2 x 10^18), and are stored as NUMERIC(38, 9). Quantities are stored in the same type
# (below 10^29). Usage priced beyond them (absurd prices times absurd usage) refuses the invoice.
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


class _StaleCloseInputs(Exception):
    """The customers to invoice need plan versions the close did not read usage for: read again."""


@dataclass(frozen=True)
class _CloseUsage:
    """What phase 1 of a close read from metering, and for which plan versions."""

    keys: frozenset[tuple[str, int]]
    prev_keys: frozenset[tuple[str, int]]
    cutoff: datetime
    usage: PeriodUsage
    prev_usage: PeriodUsage | None


class BillingService:
    def __init__(
        self,
        engine: AsyncEngine,
        metering: MeteringClient,
        *,
        settle_timeout_seconds: float = 60.0,
        cutoff_lag_seconds: float = 0.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        close_concurrency: int = 2,
    ) -> None:
        self.engine = engine
        # Closes of one builder run one after another in this process, queued without a connection.
        self._close_locks: dict[str, tuple[asyncio.Lock, list[int]]] = {}
        # At most this many closes hold a database connection at once, whatever the number waiting.
        self._close_slots = asyncio.Semaphore(close_concurrency)
        self.metering = metering
        self.settle_timeout_seconds = settle_timeout_seconds
        self.cutoff_lag = timedelta(seconds=cutoff_lag_seconds)
        self.clock = clock

    async def _idempotent(
        self,
        rpc: str,
        builder_id: str,
        request_id: str,
        body: Any,
        work: Callable[[AsyncConnection], Awaitable[dict]],
    ) -> dict[str, Any]:
        _require(request_id, "request_id")
        scope = idempotency_scope(rpc, builder_id)
        async with self.engine.begin() as conn:
            prior = await claim(conn, store.idempotency_keys, scope, request_id, fingerprint(body))
            if prior is not None:
                return prior
            reply = await work(conn)
            await complete(conn, store.idempotency_keys, scope, request_id, reply)
            return reply

    # ---- customers --------------------------------------------------------------------------------

    async def create_customer(self, request_id: str, c: dict[str, Any]) -> dict[str, Any]:
        _require(c["builder_id"], "customer.builder_id")
        _require(c["id"], "customer.id")
        if len(c["app_id"]) > 128:
            raise InvalidArgument("customer.app_id must be at most 128 characters", field="customer.app_id")
        minor_units(c["currency_code"], field="customer.currency_code")
        if len(c["display_name"]) > 256:
            raise InvalidArgument(
                "customer.display_name must be at most 256 characters", field="customer.display_name"
            )
        email = c["billing_email"]
        if email and (len(email) > 256 or "@" not in email):
            raise InvalidArgument(
                "customer.billing_email must be an email address", field="customer.billing_email"
            )

        async def work(conn: AsyncConnection) -> dict:
            row = await store.insert_customer(conn, c)
            if row is None:
                raise AlreadyExists(f"customer {quote(c['id'])} already exists", field="customer.id")
            log.info("billing.customer.created", builder_id=c["builder_id"], customer_id=c["id"])
            return customer_view(row)

        return await self._idempotent("CreateCustomer", c["builder_id"], request_id, c, work)

    async def get_customer(self, builder_id: str, customer_id: str) -> dict[str, Any]:
        _require(builder_id, "builder_id")
        _require(customer_id, "customer_id")
        async with self.engine.connect() as conn:
            row = await store.get_customer(conn, builder_id, customer_id)
        if row is None:
            raise NotFound(f"customer {quote(customer_id)} not found", field="customer_id")
        return customer_view(row)

    async def list_customers(self, builder_id: str, size: int, token: str) -> tuple[list[dict], str]:
        _require(builder_id, "builder_id")
        limit = page_size(size)
        cursor = _cursor(token, {"id": str})
        async with self.engine.connect() as conn:
            rows = await store.list_customers(conn, builder_id, cursor["id"] if cursor else None, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        return [customer_view(r) for r in rows], encode_token({"id": rows[-1]["id"]}) if more else ""

    # ---- plans ------------------------------------------------------------------------------------

    async def create_plan(self, request_id: str, p: dict[str, Any]) -> dict[str, Any]:
        _require(p["builder_id"], "plan.builder_id")
        if not KEY.fullmatch(p["key"]):
            raise InvalidArgument("plan.key must be 1 to 64 characters of [a-z0-9_.-]", field="plan.key")
        minor_units(p["currency_code"], field="plan.currency_code")

        async def work(conn: AsyncConnection) -> dict:
            row = await store.insert_plan(conn, {**p, "id": _new_id("plan")})
            if row is None:
                raise AlreadyExists(f"plan {quote(p['key'])} already exists", field="plan.key")
            return plan_view(row, [])

        return await self._idempotent("CreatePlan", p["builder_id"], request_id, p, work)

    async def get_plan(self, builder_id: str, plan_id: str) -> dict[str, Any]:
        _require(builder_id, "builder_id")
        _require(plan_id, "plan_id")
        async with self.engine.connect() as conn:
            row = await store.get_plan(conn, builder_id, plan_id)
            if row is None:
                raise NotFound(f"plan {quote(plan_id)} not found", field="plan_id")
            versions = await store.plan_versions_of(conn, [plan_id])
        return plan_view(row, versions[plan_id])

    async def list_plans(self, builder_id: str, size: int, token: str) -> tuple[list[dict], str]:
        _require(builder_id, "builder_id")
        limit = page_size(size)
        cursor = _cursor(token, {"key": str})
        async with self.engine.connect() as conn:
            rows = await store.list_plans(conn, builder_id, cursor["key"] if cursor else None, limit + 1)
            more = len(rows) > limit
            rows = rows[:limit]
            versions = await store.plan_versions_of(conn, [r["id"] for r in rows])
        return [plan_view(r, versions[r["id"]]) for r in rows], encode_token(
            {"key": rows[-1]["key"]}
        ) if more else ""

    async def _publish(self, conn: AsyncConnection, plan: dict, spec: PlanSpec) -> dict[str, Any]:
        await store.lock_plan(conn, plan["id"])
        latest = await store.latest_plan_version(conn, plan["id"])
        row = await store.insert_plan_version(
            conn, plan["id"], (latest["version"] if latest else 0) + 1, plan_to_dict(spec)
        )
        log.info("billing.plan.published", plan_id=plan["id"], version=row["version"])
        return row

    async def publish_plan_version(
        self, request_id: str, builder_id: str, plan_id: str, spec_dict: dict[str, Any]
    ) -> dict[str, Any]:
        _require(builder_id, "builder_id")
        _require(plan_id, "version.plan_id")
        try:
            spec = plan_from_dict(spec_dict)
        except InvalidArgument as exc:
            raise InvalidArgument(
                exc.message, field=f"version.{exc.field}" if exc.field else "version"
            ) from None

        async def work(conn: AsyncConnection) -> dict:
            plan = await store.get_plan(conn, builder_id, plan_id)
            if plan is None:
                raise NotFound(f"plan {quote(plan_id)} not found", field="version.plan_id")
            if spec.currency != plan["currency_code"]:
                raise InvalidArgument(
                    f"the plan is priced in {plan['currency_code']}", field="version.currency_code"
                )
            return version_view(await self._publish(conn, plan, spec))

        body = {"builder_id": builder_id, "plan_id": plan_id, "spec": spec_dict}
        return await self._idempotent("PublishPlanVersion", builder_id, request_id, body, work)

    async def apply_plan_yaml(
        self, request_id: str, builder_id: str, plan_key: str, display_name: str, text: str
    ) -> dict[str, Any]:
        _require(builder_id, "builder_id")
        if not KEY.fullmatch(plan_key):
            raise InvalidArgument("plan_key must be 1 to 64 characters of [a-z0-9_.-]", field="plan_key")
        try:
            # Off the event loop: parsing up to 64 KiB of YAML in pure Python takes milliseconds that
            # every other call on this process would otherwise wait for.
            spec = await asyncio.to_thread(parse_plan_yaml, text)
        except InvalidArgument as exc:
            raise InvalidArgument(
                exc.message, field=f"yaml.{exc.field}" if exc.field and exc.field != "yaml" else "yaml"
            ) from None

        async def work(conn: AsyncConnection) -> dict:
            plan = await store.get_plan_by_key(conn, builder_id, plan_key)
            if plan is None:
                plan = await store.insert_plan(
                    conn,
                    {
                        "id": _new_id("plan"),
                        "builder_id": builder_id,
                        "key": plan_key,
                        "display_name": display_name or plan_key,
                        "currency_code": spec.currency,
                    },
                )
                if plan is None:
                    raise AlreadyExists(
                        f"plan {quote(plan_key)} was created concurrently; retry", field="plan_key"
                    )
            if spec.currency != plan["currency_code"]:
                raise InvalidArgument(f"the plan is priced in {plan['currency_code']}", field="yaml.currency")
            await store.lock_plan(conn, plan["id"])
            latest = await store.latest_plan_version(conn, plan["id"])
            published = latest is None or latest["spec"] != plan_to_dict(spec)
            version = await self._publish(conn, plan, spec) if published else latest
            versions = await store.plan_versions_of(conn, [plan["id"]])
            return {
                "plan": plan_view(plan, versions[plan["id"]]),
                "version": version_view(version),
                "published": published,
            }

        body = {"builder_id": builder_id, "plan_key": plan_key, "display_name": display_name, "yaml": text}
        return await self._idempotent("ApplyPlanYaml", builder_id, request_id, body, work)

    async def _version(
        self, conn: AsyncConnection, builder_id: str, plan_id: str, version: int, currency: str
    ) -> dict[str, Any]:
        plan = await store.get_plan(conn, builder_id, plan_id)
        if plan is None:
            raise NotFound(f"plan {quote(plan_id)} not found", field="plan_id")
        if version < 0:
            raise InvalidArgument("plan_version must not be negative", field="plan_version")
        row = await (
            store.latest_plan_version(conn, plan_id)
            if version == 0
            else store.get_plan_version(conn, plan_id, version)
        )
        if row is None:
            if version == 0:
                raise FailedPrecondition(f"plan {quote(plan_id)} has no published version", field="plan_id")
            raise NotFound(f"plan {quote(plan_id)} has no version {version}", field="plan_version")
        if plan["currency_code"] != currency:
            raise FailedPrecondition(
                f"plan is priced in {plan['currency_code']} but the customer pays in {currency}",
                field="plan_id",
            )
        return row

    # ---- subscriptions ----------------------------------------------------------------------------

    async def subscribe(
        self,
        request_id: str,
        builder_id: str,
        customer_id: str,
        plan_id: str,
        version: int,
        start: datetime | None,
    ) -> dict[str, Any]:
        _require(builder_id, "builder_id")
        _require(customer_id, "customer_id")
        _require(plan_id, "plan_id", max_len=64)

        async def work(conn: AsyncConnection) -> dict:
            customer = await store.get_customer(conn, builder_id, customer_id)
            if customer is None:
                raise NotFound(f"customer {quote(customer_id)} not found", field="customer_id")
            row = await self._version(conn, builder_id, plan_id, version, customer["currency_code"])
            sub = await store.insert_subscription(
                conn,
                {
                    "id": _new_id("sub"),
                    "builder_id": builder_id,
                    "customer_id": customer_id,
                    "plan_id": plan_id,
                    "plan_version": row["version"],
                    "start_time": start or self.clock(),
                },
            )
            if sub is None:
                raise AlreadyExists(
                    f"customer {quote(customer_id)} is already subscribed; use ChangePlan",
                    field="customer_id",
                )
            log.info(
                "billing.subscription.created",
                builder_id=builder_id,
                customer_id=customer_id,
                plan_id=plan_id,
                plan_version=row["version"],
            )
            return subscription_view(sub)

        body = {
            "builder_id": builder_id,
            "customer_id": customer_id,
            "plan_id": plan_id,
            "version": version,
            "start": _t(start),
        }
        return await self._idempotent("Subscribe", builder_id, request_id, body, work)

    async def change_plan(
        self, request_id: str, builder_id: str, customer_id: str, plan_id: str, version: int
    ) -> dict[str, Any]:
        _require(builder_id, "builder_id")
        _require(customer_id, "customer_id")
        _require(plan_id, "plan_id", max_len=64)

        async def work(conn: AsyncConnection) -> dict:
            sub = await store.get_subscription(conn, builder_id, customer_id, for_update=True)
            if sub is None:
                raise NotFound(f"customer {quote(customer_id)} has no subscription", field="customer_id")
            customer = await store.get_customer(conn, builder_id, customer_id)
            assert customer is not None
            row = await self._version(conn, builder_id, plan_id, version, customer["currency_code"])
            now = self.clock()
            values: dict[str, Any] = {}
            if sub["change_time"] is not None and sub["change_time"] <= now:
                # The earlier change is in force already: it becomes the current version.
                values.update(plan_id=sub["next_plan_id"], plan_version=sub["next_plan_version"])
            values.update(
                next_plan_id=plan_id,
                next_plan_version=row["version"],
                change_time=plan_change_effective_time(max(now, sub["start_time"])),
            )
            sub = await store.update_subscription(conn, sub["id"], values)
            log.info(
                "billing.subscription.change_scheduled",
                builder_id=builder_id,
                customer_id=customer_id,
                plan_id=plan_id,
                plan_version=row["version"],
                change_time=_t(sub["change_time"]),
            )
            return subscription_view(sub)

        body = {"builder_id": builder_id, "customer_id": customer_id, "plan_id": plan_id, "version": version}
        return await self._idempotent("ChangePlan", builder_id, request_id, body, work)

    async def set_platform_fee(
        self, request_id: str, builder_id: str, percent_of_line: str, percent_of_margin: str
    ) -> dict[str, Any]:
        _require(builder_id, "platform_fee.builder_id")
        values = {}
        for name, raw in (("percent_of_line", percent_of_line), ("percent_of_margin", percent_of_margin)):
            try:
                values[name] = Decimal(raw or "0")
            except ArithmeticError:
                raise InvalidArgument(
                    f"{quote(raw)} is not a decimal number", field=f"platform_fee.{name}"
                ) from None
        rule = PlatformFeeRule(**values).validate(prefix="platform_fee")

        async def work(conn: AsyncConnection) -> dict:
            row = await store.set_platform_fee(conn, builder_id, rule.percent_of_line, rule.percent_of_margin)
            return fee_view(row)

        body = {"builder_id": builder_id, "line": percent_of_line, "margin": percent_of_margin}
        return await self._idempotent("SetPlatformFee", builder_id, request_id, body, work)

    # ---- pricing ----------------------------------------------------------------------------------

    @staticmethod
    def _in_force(sub: dict[str, Any], period_start: datetime) -> tuple[str, int]:
        if sub["change_time"] is not None and sub["change_time"] <= period_start:
            return sub["next_plan_id"], sub["next_plan_version"]
        return sub["plan_id"], sub["plan_version"]

    async def _fee_rule(self, conn: AsyncConnection, builder_id: str) -> PlatformFeeRule:
        row = await store.get_platform_fee(conn, builder_id)
        if row is None:
            return NO_PLATFORM_FEE
        return PlatformFeeRule(row["percent_of_line"], row["percent_of_margin"])

    async def preview_invoice(
        self, builder_id: str, customer_id: str, as_of: datetime | None
    ) -> dict[str, Any]:
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
            plan_id, version = self._in_force(sub, period.start)
            spec = plan_from_dict((await store.get_plan_version(conn, plan_id, version))["spec"])
            fee = await self._fee_rule(conn, builder_id)
        usage = await query_period(
            self.metering,
            builder_id,
            meter_needs([spec]),
            period.start,
            period.end,
            None,
            customer_id=customer_id,
        )
        draft = build_invoice(spec, charge_usage(spec, usage, customer_id), fee, period)
        _check_recordable(draft, customer_id)
        tags = {c.meter_key: usage_by_tag(usage, c.meter_key, customer_id) for c in spec.charges}
        lines = _line_rows("", draft.lines, period.start, None, {}, tags)
        inv = {
            "id": "",
            "builder_id": builder_id,
            "customer_id": customer_id,
            "app_id": customer["app_id"],
            "number": 0,
            "status": "draft",
            "currency_code": spec.currency,
            "period_start": period.start,
            "period_end": period.end,
            "usage_cutoff": None,
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

    # ---- period close -----------------------------------------------------------------------------

    async def _settled_cutoff(self, builder_id: str, meter: str, start: datetime, end: datetime) -> datetime:
        """The cutoff T for a close: metering's clock now, waited on until metering calls it settled."""
        first = await self.metering.query_usage(
            builder_id=builder_id, meter_key=meter, start=start, end=end, customer_id=PROBE_CUSTOMER
        )
        cutoff = (first.cutoff or self.clock()) - self.cutoff_lag
        settled = first.settled and not self.cutoff_lag
        if self.cutoff_lag:
            settled = (
                await self.metering.query_usage(
                    builder_id=builder_id,
                    meter_key=meter,
                    start=start,
                    end=end,
                    customer_id=PROBE_CUSTOMER,
                    cutoff=cutoff,
                )
            ).settled
        waited = 0.0
        delay = 0.25
        while not settled:
            if waited >= self.settle_timeout_seconds:
                raise Unavailable("metering's ingestion cutoff did not settle in time; nothing was finalized")
            await asyncio.sleep(delay)
            waited += delay
            delay = min(delay * 2, 2.0)
            answer = await self.metering.query_usage(
                builder_id=builder_id,
                meter_key=meter,
                start=start,
                end=end,
                customer_id=PROBE_CUSTOMER,
                cutoff=cutoff,
            )
            settled = answer.settled
        return cutoff

    @metrics.timed_close
    async def close_period(self, request_id: str, builder_id: str, period_end: datetime) -> dict[str, Any]:
        """Close a builder's period in two phases, so that waiting on metering holds no connection.

        1. Without a transaction (short reads only): which plan versions the customers still to
           invoice are on; then wait for metering's cutoff to settle and read the usage, holding NO
           database connection (the settle wait lasts seconds; many closes waiting at once must not
           starve other calls of connections).
        2. One short transaction: claim the request id, take the builder's advisory lock, re-read who
           is still to invoice and finalize them with the usage read in phase 1. If a customer on a
           plan version phase 1 did not read appeared meanwhile, the transaction rolls back and
           phase 1 runs again.
        Closes of one builder are also serialized in this process (no connection held while
        queued), and at most `close_concurrency` closes hold a connection at once.
        """
        _require(builder_id, "builder_id")
        _require(request_id, "request_id")
        period = period_containing(period_end - EPSILON)
        if period.end != period_end:
            raise InvalidArgument(
                "period_end_time must be the first of a month at 00:00 UTC", field="period_end_time"
            )
        if period_end > self.clock():
            raise FailedPrecondition(
                f"the period ending {_t(period_end)} has not ended yet", field="period_end_time"
            )
        body = {"builder_id": builder_id, "period_end": _t(period_end)}
        scope = idempotency_scope("ClosePeriod", builder_id)
        async with self._builder_close_lock(builder_id):
            for _ in range(3):
                async with self._close_slots, self.engine.connect() as conn:
                    prior = await store.peek_idempotency(conn, scope, request_id)
                    if prior is not None:
                        if prior["fingerprint"] != fingerprint(body):
                            raise AlreadyExists(
                                f"request_id {quote(request_id)} was already used with a different request",
                                field="request_id",
                            )
                        if prior["reply"] is not None:
                            return prior["reply"]
                    inputs = await self._close_inputs(conn, builder_id, period)
                fetched = await self._read_close_usage(builder_id, period, inputs) if inputs else None

                async def work(conn: AsyncConnection, fetched: _CloseUsage | None = fetched) -> dict:
                    return await self._close(conn, builder_id, period, fetched)

                try:
                    async with self._close_slots:
                        return await self._idempotent("ClosePeriod", builder_id, request_id, body, work)
                except _StaleCloseInputs:
                    log.info(
                        "billing.period.close_inputs_changed", builder_id=builder_id, period=period.label
                    )
        raise Unavailable("the builder's subscriptions kept changing during the close; retry it")

    @contextlib.asynccontextmanager
    async def _builder_close_lock(self, builder_id: str) -> AsyncIterator[None]:
        entry = self._close_locks.setdefault(builder_id, (asyncio.Lock(), [0]))
        entry[1][0] += 1
        try:
            async with entry[0]:
                yield
        finally:
            entry[1][0] -= 1
            if entry[1][0] == 0:
                self._close_locks.pop(builder_id, None)

    async def _close_inputs(
        self, conn: AsyncConnection, builder_id: str, period: Any
    ) -> dict[str, Any] | None:
        """Phase 1's short reads: the plan versions in force for the customers still to invoice, and
        those of the previous period's billed usage (for late usage). None when nobody is left."""
        done = await store.invoiced_customers(conn, builder_id, period.start)
        todo = [
            c
            for c in await store.billable_customers(conn, builder_id, period.end)
            if c["customer_id"] not in done
        ]
        if not todo:
            return None
        prev = period_containing(period.start - EPSILON)
        keys = {self._in_force(c, period.start) for c in todo}
        billed = await store.billed_usage(conn, builder_id, prev.start)
        prev_keys = {(v["plan_id"], v["plan_version"]) for v in billed.values()}
        raw_specs = await store.plan_specs(conn, list(keys | prev_keys))
        return {"keys": keys, "prev_keys": prev_keys, "specs": raw_specs}

    async def _read_close_usage(self, builder_id: str, period: Any, inputs: dict[str, Any]) -> _CloseUsage:
        """The settled cutoff and every meter's usage for the close; holds no database connection."""
        prev = period_containing(period.start - EPSILON)
        specs = {k: plan_from_dict(v) for k, v in inputs["specs"].items()}
        needs = meter_needs([specs[k] for k in inputs["keys"]])
        prev_needs = meter_needs([specs[k] for k in inputs["prev_keys"]])
        first_meter = next(iter(sorted(needs)), None) or next(iter(sorted(prev_needs)), None)
        if first_meter is None:
            cutoff = self.clock()
        else:
            cutoff = await self._settled_cutoff(builder_id, first_meter, period.start, period.end)
        usage, prev_usage = await asyncio.gather(
            query_period(self.metering, builder_id, needs, period.start, period.end, cutoff),
            query_period(self.metering, builder_id, prev_needs, prev.start, prev.end, cutoff)
            if prev_needs
            else asyncio.sleep(0, None),
        )
        return _CloseUsage(
            frozenset(inputs["keys"]), frozenset(inputs["prev_keys"]), cutoff, usage, prev_usage
        )

    async def _close(
        self, conn: AsyncConnection, builder_id: str, period: Any, fetched: _CloseUsage | None
    ) -> dict[str, Any]:
        started = self.clock()
        await store.lock_builder(conn, builder_id)
        done = await store.invoiced_customers(conn, builder_id, period.start)
        todo = [
            c
            for c in await store.billable_customers(conn, builder_id, period.end)
            if c["customer_id"] not in done
        ]
        cutoff: datetime | None = None
        finalized = 0
        if todo:
            if fetched is None:
                raise _StaleCloseInputs()
            cutoff, finalized = await self._finalize(conn, builder_id, period, todo, fetched)
        summary = await store.period_summary(conn, builder_id, period.start)
        if cutoff is None:
            cutoff_row = await store.period_invoices(conn, builder_id, period.start)
            cutoff = next((r["usage_cutoff"] for r in cutoff_row.values()), None)
        log.info(
            "billing.period.closed",
            builder_id=builder_id,
            period=period.label,
            finalized=finalized,
            invoices=sum(r["n"] for r in summary),
            seconds=round((self.clock() - started).total_seconds(), 3),
        )
        return {
            "invoice_count": sum(r["n"] for r in summary),
            "finalized_count": finalized,
            "usage_cutoff_time": _t(cutoff),
            "totals": [{"currency_code": r["currency_code"], "amount": _s(r["total"])} for r in summary],
        }

    async def _finalize(
        self,
        conn: AsyncConnection,
        builder_id: str,
        period: Any,
        todo: list[dict[str, Any]],
        fetched: _CloseUsage,
    ) -> tuple[datetime, int]:
        prev = period_containing(period.start - EPSILON)
        in_force = {c["customer_id"]: self._in_force(c, period.start) for c in todo}
        billed = await store.billed_usage(conn, builder_id, prev.start)
        prev_versions = {(v["plan_id"], v["plan_version"]) for v in billed.values()}
        if not (set(in_force.values()) <= fetched.keys and prev_versions <= fetched.prev_keys):
            # A subscription or plan change landed between the phases: read again.
            raise _StaleCloseInputs()
        raw_specs = await store.plan_specs(conn, list(in_force.values()) + list(prev_versions))
        specs = {k: plan_from_dict(v) for k, v in raw_specs.items()}
        fee = await self._fee_rule(conn, builder_id)
        cutoff, usage, prev_usage = fetched.cutoff, fetched.usage, fetched.prev_usage
        todo_ids = [c["customer_id"] for c in todo]
        balances = await store.lock_wallets(conn, builder_id, todo_ids)
        first_number = await store.take_invoice_numbers(conn, builder_id, len(todo))
        now = self.clock()
        invoice_rows: list[dict] = []
        line_rows: list[dict] = []
        debits: dict[str, Decimal] = {}
        wallet_rows: list[dict] = []
        earnings_rows: list[dict] = []
        for offset, c in enumerate(todo):
            cid = c["customer_id"]
            key = in_force[cid]
            spec = specs[key]
            by_charge = charge_usage(spec, usage, cid)
            late: list[LateUsage] = []
            usage_json = {k: usage_to_json(v) for k, v in by_charge.items()}
            for (bcid, charge_key), snap in billed.items():
                if bcid != cid or prev_usage is None:
                    continue
                prev_spec = specs[(snap["plan_id"], snap["plan_version"])]
                charge = prev_spec.charge(charge_key)
                now_usage: ChargeUsage = charge_usage(prev_spec, prev_usage, cid)[charge_key]
                late.append(LateUsage(charge, prev, usage_from_json(snap["usage_snapshot"]), now_usage))
                usage_json[f"late:{charge_key}"] = usage_to_json(now_usage)
            draft = build_invoice(spec, by_charge, fee, period, late)
            _check_recordable(draft, cid)
            invoice_id = _new_id("inv")
            tags = {ch.meter_key: usage_by_tag(usage, ch.meter_key, cid) for ch in spec.charges}
            lines = _line_rows(invoice_id, draft.lines, period.start, prev.start, usage_json, tags)
            applied = apply_wallet(draft.subtotal, balances.get(cid, ZERO)).applied
            if applied > 0:
                debits[cid] = applied
                wallet_rows.append(
                    {
                        "id": _new_id("wtx"),
                        "builder_id": builder_id,
                        "customer_id": cid,
                        "amount": -applied,
                        "invoice_id": invoice_id,
                        "create_time": now,
                    }
                )
            paid = applied == draft.subtotal
            invoice_rows.append(
                {
                    "id": invoice_id,
                    "builder_id": builder_id,
                    "customer_id": cid,
                    "app_id": c["app_id"],
                    "number": first_number + offset,
                    "status": "finalized",
                    "currency_code": spec.currency,
                    "period_start": period.start,
                    "period_end": period.end,
                    "usage_cutoff": cutoff,
                    "plan_id": key[0],
                    "plan_version": key[1],
                    "total": draft.subtotal,
                    "wallet_applied": applied,
                    "credited": ZERO,
                    "amount_paid": ZERO,
                    "paid_time": now if paid else None,
                    "finalize_time": now,
                    "void_time": None,
                    "void_reason": None,
                }
            )
            line_rows.extend(lines)
            if paid and draft.subtotal > 0:
                parties = EarningsParties(builder_id, c["app_id"], cid, invoice_id)
                entries = earnings_for_payment([_stored_line(r) for r in lines], spec.currency, parties)
                earnings_rows.extend(_earnings_rows(entries, invoice_id))
        await store.bulk_insert(conn, store.invoices, invoice_rows)
        await store.bulk_insert(conn, store.invoice_lines, [_jsonb(r) for r in line_rows])
        await store.debit_wallets(conn, builder_id, debits, wallet_rows)
        await store.append_earnings(conn, earnings_rows)
        return cutoff, len(invoice_rows)

    # ---- invoices ---------------------------------------------------------------------------------

    async def _invoice(
        self, conn: AsyncConnection, builder_id: str, invoice_id: str, *, for_update: bool = False
    ) -> dict[str, Any]:
        _require(builder_id, "builder_id")
        _require(invoice_id, "invoice_id", max_len=64)
        inv = await store.get_invoice(conn, builder_id, invoice_id, for_update=for_update)
        if inv is None:
            raise NotFound(f"invoice {quote(invoice_id)} not found", field="invoice_id")
        return inv

    async def _invoice_view(self, conn: AsyncConnection, inv: dict[str, Any]) -> dict[str, Any]:
        lines = await store.lines_of(conn, [inv["id"]])
        return invoice_view(inv, lines[inv["id"]])

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

    async def _credited_splits(
        self, conn: AsyncConnection, invoice_id: str, n_lines: int, only_before_payment: bool = False
    ) -> list[Split]:
        totals = [Split(ZERO, ZERO, ZERO) for _ in range(n_lines)]
        for note in await store.credit_notes_of(conn, invoice_id):
            if only_before_payment and note["after_payment"]:
                continue
            for i, (pc, pf, bm) in enumerate(note["allocation"]):
                totals[i] = totals[i] + Split(Decimal(pc), Decimal(pf), Decimal(bm))
        return totals

    async def _maybe_paid(self, conn: AsyncConnection, inv: dict[str, Any], source_id: str) -> dict[str, Any]:
        """When wallet + payments + credits first cover the total, append the payment earnings."""
        if inv["paid_time"] is not None or inv["status"] != "finalized" or amount_due(inv) > 0:
            return inv
        lines = (await store.lines_of(conn, [inv["id"]]))[inv["id"]]
        credited = await self._credited_splits(conn, inv["id"], len(lines))
        parties = EarningsParties(inv["builder_id"], inv["app_id"], inv["customer_id"], inv["id"])
        entries = earnings_for_payment(
            [_stored_line(r) for r in lines], inv["currency_code"], parties, credited
        )
        await store.append_earnings(conn, _earnings_rows(entries, source_id))
        log.info(
            "billing.invoice.paid", invoice_id=inv["id"], builder_id=inv["builder_id"], entries=len(entries)
        )
        return await store.update_invoice(conn, inv["id"], {"paid_time": self.clock()})

    async def record_payment(
        self,
        request_id: str,
        builder_id: str,
        invoice_id: str,
        amount: Decimal,
        currency: str,
        reference: str,
    ) -> dict[str, Any]:
        _require(reference, "external_reference")

        async def work(conn: AsyncConnection) -> dict:
            inv = await self._invoice(conn, builder_id, invoice_id, for_update=True)
            prior = await store.get_payment_by_reference(conn, builder_id, reference)
            if prior is not None:
                if prior["invoice_id"] != invoice_id or prior["amount"] != amount:
                    raise AlreadyExists(
                        f"external_reference {quote(reference)} was recorded for another payment",
                        field="external_reference",
                    )
                return {
                    "payment": _payment_view(prior, inv["currency_code"]),
                    "invoice": await self._invoice_view(conn, inv),
                }
            _money_amount(amount, currency, inv["currency_code"], "amount")
            if inv["status"] == "void":
                raise FailedPrecondition(
                    f"invoice {quote(invoice_id)} is void; nothing can be paid", field="invoice_id"
                )
            due = amount_due(inv)
            if amount > due:
                raise FailedPrecondition(f"amount {amount} exceeds the amount due {due}", field="amount")
            payment = await store.insert_payment(
                conn,
                {
                    "id": _new_id("pay"),
                    "builder_id": builder_id,
                    "invoice_id": invoice_id,
                    "amount": amount,
                    "external_reference": reference,
                },
            )
            inv = await store.update_invoice(conn, invoice_id, {"amount_paid": inv["amount_paid"] + amount})
            inv = await self._maybe_paid(conn, inv, payment["id"])
            log.info(
                "billing.payment.recorded", invoice_id=invoice_id, payment_id=payment["id"], amount=_s(amount)
            )
            return {
                "payment": _payment_view(payment, inv["currency_code"]),
                "invoice": await self._invoice_view(conn, inv),
            }

        body = {
            "builder_id": builder_id,
            "invoice_id": invoice_id,
            "amount": _s(amount),
            "currency": currency,
            "reference": reference,
        }
        return await self._idempotent("RecordPayment", builder_id, request_id, body, work)

    async def issue_credit_note(
        self, request_id: str, builder_id: str, invoice_id: str, amount: Decimal, currency: str, reason: str
    ) -> dict[str, Any]:
        _require(reason, "reason", max_len=1000)

        async def work(conn: AsyncConnection) -> dict:
            inv = await self._invoice(conn, builder_id, invoice_id, for_update=True)
            _money_amount(amount, currency, inv["currency_code"], "amount")
            if inv["status"] == "void":
                raise FailedPrecondition(f"invoice {quote(invoice_id)} is void", field="invoice_id")
            line_rows = (await store.lines_of(conn, [invoice_id]))[invoice_id]
            lines = [_stored_line(r) for r in line_rows]
            credited = await self._credited_splits(conn, invoice_id, len(lines))
            allocation = allocate_credit(lines, credited, amount, inv["currency_code"])
            after_payment = inv["paid_time"] is not None
            note = await store.insert_credit_note(
                conn,
                {
                    "id": _new_id("cn"),
                    "builder_id": builder_id,
                    "invoice_id": invoice_id,
                    "amount": amount,
                    "reason": reason,
                    "after_payment": after_payment,
                    "allocation": [
                        [_s(s.provider_cost), _s(s.platform_fee), _s(s.builder_margin)] for s in allocation
                    ],
                },
            )
            if after_payment:
                parties = EarningsParties(builder_id, inv["app_id"], inv["customer_id"], invoice_id)
                entries = earnings_for_credit(lines, inv["currency_code"], parties, allocation)
                await store.append_earnings(conn, _earnings_rows(entries, note["id"]))
            inv = await store.update_invoice(conn, invoice_id, {"credited": inv["credited"] + amount})
            inv = await self._maybe_paid(conn, inv, note["id"])
            log.info(
                "billing.credit_note.issued",
                invoice_id=invoice_id,
                credit_note_id=note["id"],
                amount=_s(amount),
                after_payment=after_payment,
            )
            return {
                "credit_note": {
                    "id": note["id"],
                    "invoice_id": invoice_id,
                    "amount": _s(amount),
                    "currency_code": inv["currency_code"],
                    "reason": reason,
                    "create_time": _t(note["create_time"]),
                },
                "invoice": await self._invoice_view(conn, inv),
            }

        body = {
            "builder_id": builder_id,
            "invoice_id": invoice_id,
            "amount": _s(amount),
            "currency": currency,
            "reason": reason,
        }
        return await self._idempotent("IssueCreditNote", builder_id, request_id, body, work)

    async def void_invoice(
        self, request_id: str, builder_id: str, invoice_id: str, reason: str
    ) -> dict[str, Any]:
        _require(reason, "reason", max_len=1000)

        async def work(conn: AsyncConnection) -> dict:
            inv = await self._invoice(conn, builder_id, invoice_id, for_update=True)
            if inv["status"] == "void":
                raise FailedPrecondition(f"invoice {quote(invoice_id)} is already void", field="invoice_id")
            remaining = inv["total"] - inv["credited"]
            if inv["amount_paid"] > 0 and remaining > 0:
                raise FailedPrecondition(
                    f"invoice {quote(invoice_id)} has payments; issue a credit note for the remaining "
                    f"{_s(remaining)} {inv['currency_code']} before voiding it",
                    field="invoice_id",
                )
            if inv["paid_time"] is not None and remaining > 0:
                # Paid from the wallet alone: the earnings it produced are reversed.
                line_rows = (await store.lines_of(conn, [invoice_id]))[invoice_id]
                lines = [_stored_line(r) for r in line_rows]
                credited = await self._credited_splits(conn, invoice_id, len(lines))
                parties = EarningsParties(builder_id, inv["app_id"], inv["customer_id"], invoice_id)
                entries = earnings_for_credit(
                    lines,
                    inv["currency_code"],
                    parties,
                    void_allocation(lines, credited, inv["currency_code"]),
                    EarningsReason.VOID,
                )
                await store.append_earnings(conn, _earnings_rows(entries, invoice_id))
            refund = min(inv["wallet_applied"], remaining)
            if refund > 0:
                await store.add_to_wallet(
                    conn, _new_id("wtx"), builder_id, inv["customer_id"], refund, invoice_id
                )
            inv = await store.update_invoice(
                conn, invoice_id, {"status": "void", "void_time": self.clock(), "void_reason": reason}
            )
            log.info("billing.invoice.voided", invoice_id=invoice_id, builder_id=builder_id)
            return await self._invoice_view(conn, inv)

        body = {"builder_id": builder_id, "invoice_id": invoice_id, "reason": reason}
        return await self._idempotent("VoidInvoice", builder_id, request_id, body, work)

    # ---- wallets and earnings ---------------------------------------------------------------------

    async def top_up_wallet(
        self, request_id: str, builder_id: str, customer_id: str, amount: Decimal, currency: str
    ) -> dict[str, Any]:
        _require(builder_id, "builder_id")
        _require(customer_id, "customer_id")

        async def work(conn: AsyncConnection) -> dict:
            customer = await store.get_customer(conn, builder_id, customer_id)
            if customer is None:
                raise NotFound(f"customer {quote(customer_id)} not found", field="customer_id")
            _money_amount(amount, currency, customer["currency_code"], "amount")
            balance = await store.add_to_wallet(conn, _new_id("wtx"), builder_id, customer_id, amount, None)
            if balance > MAX_WALLET_BALANCE:
                # Raised inside the transaction: the top-up and its wallet row roll back together.
                raise FailedPrecondition(
                    f"the top-up would take the wallet to {_s(balance)}, above the maximum balance of "
                    f"{MAX_WALLET_BALANCE:,}",
                    field="amount",
                )
            log.info(
                "billing.wallet.topped_up", builder_id=builder_id, customer_id=customer_id, amount=_s(amount)
            )
            return await self._wallet(conn, builder_id, customer)

        body = {
            "builder_id": builder_id,
            "customer_id": customer_id,
            "amount": _s(amount),
            "currency": currency,
        }
        return await self._idempotent("TopUpWallet", builder_id, request_id, body, work)

    async def _wallet(
        self, conn: AsyncConnection, builder_id: str, customer: dict[str, Any]
    ) -> dict[str, Any]:
        balance, txs = await store.get_wallet(conn, builder_id, customer["id"])
        return {
            "builder_id": builder_id,
            "customer_id": customer["id"],
            "currency_code": customer["currency_code"],
            "balance": _s(balance),
            "transactions": [
                {
                    "id": t["id"],
                    "amount": _s(t["amount"]),
                    "invoice_id": t["invoice_id"] or "",
                    "create_time": _t(t["create_time"]),
                }
                for t in txs
            ],
        }

    async def get_wallet(self, builder_id: str, customer_id: str) -> dict[str, Any]:
        _require(builder_id, "builder_id")
        _require(customer_id, "customer_id")
        async with self.engine.connect() as conn:
            customer = await store.get_customer(conn, builder_id, customer_id)
            if customer is None:
                raise NotFound(f"customer {quote(customer_id)} not found", field="customer_id")
            return await self._wallet(conn, builder_id, customer)

    async def list_earnings(self, builder_id: str, size: int, token: str) -> tuple[list[dict], str]:
        limit = page_size(size)
        cursor = _cursor(token, {"s": int})
        after = cursor["s"] if cursor else 0
        async with self.engine.connect() as conn:
            rows = await store.list_earnings(conn, builder_id or None, after, limit)
        last = rows[-1]["sequence"] if rows else after
        return [earnings_view(r) for r in rows], encode_token({"s": last})


def _payment_view(p: dict[str, Any], currency: str) -> dict[str, Any]:
    return {
        "id": p["id"],
        "invoice_id": p["invoice_id"],
        "amount": _s(p["amount"]),
        "currency_code": currency,
        "external_reference": p["external_reference"],
        "create_time": _t(p["create_time"]),
    }


def _jsonb(row: dict[str, Any]) -> dict[str, Any]:
    """COPY sends JSONB columns as text."""
    import json

    out = dict(row)
    for key in ("tiers", "usage_by_tag", "usage_snapshot", "workflow_weights"):
        if out[key] is not None:
            out[key] = json.dumps(out[key])
    return out
