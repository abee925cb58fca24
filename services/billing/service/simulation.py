"""Pricing a builder can test: draft plans over a past period's real usage (SimulatePlan) or over
months it describes (PriceUsageProfiles). Nothing is written: no transaction, no request id.

Usage is read from metering as a close reads it; for a customer already invoiced, with that invoice's
usage cutoff, so the simulation prices exactly the usage the invoice priced (late events that arrived
since are not counted twice). The platform fee is the builder's rule in force now.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from billing import store
from billing.domain import (
    PlanSpec,
    build_invoice,
    parse_plan_yaml,
    period_containing,
    plan_from_dict,
)
from billing.domain.period import BillingPeriod
from billing.domain.simulation import (
    MeterMonth,
    Totals,
    draft_totals,
    scale_usage,
    sum_totals,
    usage_from_meters,
)
from billing.domain.text import quote
from billing.service._core import ServiceCore, _require, past_period
from billing.service.invoicing import MAX_INVOICE_AMOUNT, _check_recordable, draft_invoice_view
from billing.service.views import InvoiceView
from billing.usage import PeriodUsage, charge_usage, meter_needs, query_period, usage_by_tag
from common.errors import FailedPrecondition, InvalidArgument, NotFound

MAX_DRAFTS = 10
MAX_PROFILES = 10


@dataclass(frozen=True)
class DraftPlan:
    """A plan to try, as YAML or as a version of one of the builder's plans (never stored)."""

    label: str
    # Where the request holds it, for error paths: "plan", "plans[1]".
    field: str
    yaml: str | None = None
    plan_id: str = ""
    # The version as the domain's plan dict; its currency is the plan's (filled in here).
    version: dict[str, Any] | None = None


@dataclass(frozen=True)
class UsageProfile:
    """A described month: meter by meter, or a real customer's month times a factor."""

    name: str
    field: str
    meters: Mapping[str, MeterMonth] | None = None
    customer_id: str = ""
    period_start: datetime | None = None
    factor: Decimal = Decimal(1)


@dataclass(frozen=True)
class CustomerSimulation:
    customer_id: str
    invoice: InvoiceView  # the projected draft, shaped as every invoice
    projected: Totals
    billed: Totals | None
    billed_invoice_id: str


@dataclass(frozen=True)
class PlanSimulation:
    customers: tuple[CustomerSimulation, ...]
    projected: Totals
    billed: Totals


@dataclass(frozen=True)
class ProfilePrice:
    profile: str
    plan: str
    invoice: InvoiceView
    totals: Totals


@dataclass(frozen=True)
class _Draft:
    label: str
    spec: PlanSpec
    plan_id: str


@dataclass
class _Billed:
    invoice_id: str
    cutoff: datetime | None
    totals: Totals


@dataclass
class _Reads:
    """Usage read once per distinct cutoff (None: what metering holds now)."""

    by_cutoff: dict[datetime | None, PeriodUsage] = field(default_factory=dict)


def _check_sum(totals: Totals) -> None:
    """Each invoice stays below MAX_INVOICE_AMOUNT; a sum over many must too, to go out as Money."""
    parts = (totals.total, totals.provider_cost, totals.platform_fee, totals.builder_margin)
    if any(abs(a) >= MAX_INVOICE_AMOUNT for a in parts):
        raise FailedPrecondition(
            f"the sum over customers would exceed {MAX_INVOICE_AMOUNT:,.0f} {totals.currency}; "
            "simulate fewer customers at once",
            field="customer_id",
        )


class Simulation(ServiceCore):
    """Draft plans priced over real or described usage, with the close's own pricing."""

    async def _draft(self, conn: AsyncConnection, builder_id: str, d: DraftPlan) -> _Draft:
        if d.yaml is not None:
            try:
                spec = await asyncio.to_thread(parse_plan_yaml, d.yaml)
            except InvalidArgument as exc:
                sub = f".{exc.field}" if exc.field and exc.field != "yaml" else ""
                raise InvalidArgument(exc.message, field=f"{d.field}.yaml{sub}") from None
            return _Draft(d.label, spec, "")
        if d.version is None:
            raise InvalidArgument(f"{d.field} needs yaml or version", field=d.field)
        plan = await store.get_plan(conn, builder_id, d.plan_id)
        if plan is None:
            raise NotFound(f"plan {quote(d.plan_id)} not found", field=f"{d.field}.version.plan_id")
        currency = plan["currency_code"]
        if d.version.get("currency") not in ("", currency):
            raise InvalidArgument(
                f"the plan is priced in {currency}", field=f"{d.field}.version.base_fee.currency_code"
            )
        try:
            spec = plan_from_dict({**d.version, "currency": currency})
        except InvalidArgument as exc:
            sub = f".{exc.field}" if exc.field else ""
            raise InvalidArgument(exc.message, field=f"{d.field}.version{sub}") from None
        return _Draft(d.label, spec, d.plan_id)

    async def _billed(
        self, conn: AsyncConnection, builder_id: str, period: BillingPeriod
    ) -> dict[str, _Billed]:
        """Each invoiced customer's finalized invoice of the period, without late adjustments."""
        invoices = await store.period_invoices(conn, builder_id, period.start)
        lines = await store.lines_of(conn, [inv["id"] for inv in invoices.values()])
        out = {}
        for cid, inv in invoices.items():
            parts = [
                Totals(
                    inv["currency_code"],
                    r["amount"],
                    r["provider_cost"],
                    r["platform_fee"],
                    r["builder_margin"],
                )
                for r in lines[inv["id"]]
                if r["kind"] != "late_usage"
            ]
            out[cid] = _Billed(inv["id"], inv["usage_cutoff"], sum_totals(inv["currency_code"], parts))
        return out

    async def _read(
        self,
        builder_id: str,
        specs: Sequence[PlanSpec],
        period: BillingPeriod,
        cutoffs: set[datetime | None],
        customer_id: str,
    ) -> _Reads:
        needs = meter_needs(list(specs))
        reads = _Reads()
        for cutoff in sorted(cutoffs, key=lambda c: (c is None, c)):
            reads.by_cutoff[cutoff] = await query_period(
                self.metering, builder_id, needs, period.start, period.end, cutoff, customer_id=customer_id
            )
        return reads

    async def simulate_plan(
        self, builder_id: str, customer_id: str, period_start: datetime | None, draft: DraftPlan
    ) -> PlanSimulation:
        _require(builder_id, "builder_id")
        period = past_period(period_start, "period_start_time", self.clock())
        async with self.engine.connect() as conn:
            d = await self._draft(conn, builder_id, draft)
            currency = d.spec.currency
            if customer_id:
                customer = await store.get_customer(conn, builder_id, customer_id)
                if customer is None:
                    raise NotFound(f"customer {quote(customer_id)} not found", field="customer_id")
                if customer["currency_code"] != currency:
                    raise FailedPrecondition(
                        f"customer {quote(customer_id)} pays in {customer['currency_code']}, the draft "
                        f"is priced in {currency}",
                        field="customer_id",
                    )
                customers = [(customer_id, customer["app_id"])]
            else:
                customers = [
                    (c["customer_id"], c["app_id"])
                    for c in await store.billable_customers(conn, builder_id, period.start, period.end)
                    if c["currency_code"] == currency
                ]
            billed = await self._billed(conn, builder_id, period)
            fee = await self._fee_rule(conn, builder_id)
        cutoff_of = {cid: billed[cid].cutoff if cid in billed else None for cid, _ in customers}
        reads = await self._read(builder_id, [d.spec], period, set(cutoff_of.values()), customer_id)
        out = []
        for cid, app_id in customers:
            usage = reads.by_cutoff[cutoff_of[cid]]
            invoice = build_invoice(d.spec, charge_usage(d.spec, usage, cid), fee, period)
            _check_recordable(invoice, cid)
            tags = {c.meter_key: usage_by_tag(usage, c.meter_key, cid) for c in d.spec.charges}
            view = draft_invoice_view(builder_id, cid, app_id, d.plan_id, 0, invoice, tags, cutoff_of[cid])
            was = billed.get(cid)
            out.append(
                CustomerSimulation(
                    cid,
                    view,
                    draft_totals(invoice),
                    was.totals if was and was.totals.currency == currency else None,
                    was.invoice_id if was else "",
                )
            )
        projected = sum_totals(currency, (c.projected for c in out))
        billed_sum = sum_totals(currency, (c.billed for c in out if c.billed is not None))
        for total in (projected, billed_sum):
            _check_sum(total)
        return PlanSimulation(tuple(out), projected, billed_sum)

    async def price_usage_profiles(
        self, builder_id: str, drafts: Sequence[DraftPlan], profiles: Sequence[UsageProfile]
    ) -> list[ProfilePrice]:
        _require(builder_id, "builder_id")
        for items, name, most in ((drafts, "plans", MAX_DRAFTS), (profiles, "profiles", MAX_PROFILES)):
            if not 1 <= len(items) <= most:
                raise InvalidArgument(f"{name} must hold 1 to {most} items", field=name)
        labels = [d.label or f"plan-{i}" for i, d in enumerate(drafts, start=1)]
        for seen, path in ((labels, "plans"), ([p.name for p in profiles], "profiles")):
            for i, value in enumerate(seen):
                if value in seen[:i]:
                    raise InvalidArgument(f"{quote(value)} appears twice in {path}", field=f"{path}[{i}]")
        now = self.clock()
        period = period_containing(now)
        async with self.engine.connect() as conn:
            specs = [await self._draft(conn, builder_id, d) for d in drafts]
            fee = await self._fee_rule(conn, builder_id)
            real: dict[int, tuple[PeriodUsage, str]] = {}
            for i, p in enumerate(profiles):
                if not p.name:
                    raise InvalidArgument(f"{p.field}.name is required", field=f"{p.field}.name")
                if p.meters is not None:
                    continue
                if not p.customer_id:
                    raise InvalidArgument(f"{p.field} needs meters or scaled", field=p.field)
                month = past_period(p.period_start, f"{p.field}.scaled.period_start_time", now)
                if await store.get_customer(conn, builder_id, p.customer_id) is None:
                    raise NotFound(
                        f"customer {quote(p.customer_id)} not found", field=f"{p.field}.scaled.customer_id"
                    )
                billed = await self._billed(conn, builder_id, month)
                cutoff = billed[p.customer_id].cutoff if p.customer_id in billed else None
                reads = await self._read(builder_id, [s.spec for s in specs], month, {cutoff}, p.customer_id)
                real[i] = (reads.by_cutoff[cutoff], p.customer_id)
        out = []
        for i, p in enumerate(profiles):
            for label, d in zip(labels, specs, strict=True):
                if p.meters is not None:
                    usage = usage_from_meters(d.spec, p.meters)
                else:
                    month_usage, cid = real[i]
                    try:
                        usage = scale_usage(charge_usage(d.spec, month_usage, cid), p.factor)
                    except InvalidArgument as exc:
                        raise InvalidArgument(exc.message, field=f"{p.field}.scaled.factor") from None
                invoice = build_invoice(d.spec, usage, fee, period)
                try:
                    _check_recordable(invoice, p.name)
                except FailedPrecondition as exc:
                    raise FailedPrecondition(exc.message, field=p.field) from None
                view = draft_invoice_view(builder_id, "", "", d.plan_id, 0, invoice, {})
                out.append(ProfilePrice(p.name, label, view, draft_totals(invoice)))
        return out
