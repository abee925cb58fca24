"""Unit economics: a builder's ended month per meter and per workflow tag, from its finalized
invoices (what was billed, not what a plan would bill), and what its own test traffic cost it (test
API keys' events, never invoiced: read from metering with the TEST status on every provider-cost meter
the builder's plans name). Read-only."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from billing import store
from billing.domain import Split
from billing.domain.economics import EconomicsLine, EconomicsRow, unit_economics
from billing.domain.plan import plan_from_dict
from billing.domain.pricing import PriceModelKind
from billing.domain.text import quote
from billing.service._core import ServiceCore, _require, past_period
from billing.service.invoicing import MAX_INVOICE_AMOUNT
from common.errors import FailedPrecondition
from tollgate.metering.v1 import metering_pb2

TEST_STATUS = metering_pb2.EVENT_STATUS_TEST


@dataclass(frozen=True)
class UnitEconomicsView:
    meters: tuple[EconomicsRow, ...]
    workflows: tuple[EconomicsRow, ...]
    invoice_count: int
    test_traffic: tuple[TestTrafficView, ...] = ()


@dataclass(frozen=True)
class TestTrafficView:
    meter_key: str
    provider_cost: Decimal
    event_count: int


class Economics(ServiceCore):
    """The monthly review: which meter and which workflow earns what."""

    async def get_unit_economics(self, builder_id: str, period_start: datetime | None) -> UnitEconomicsView:
        _require(builder_id, "builder_id")
        period = past_period(period_start, "period_start_time", self.clock())
        async with self.engine.connect() as conn:
            invoices = await store.period_invoices(conn, builder_id, period.start)
            lines = await store.lines_of(conn, [inv["id"] for inv in invoices.values()])
            specs = await store.builder_plan_specs(conn, builder_id)
        econ = [
            EconomicsLine(
                inv["currency_code"],
                r["meter_key"],
                r["quantity"],
                r["amount"],
                Split(r["provider_cost"], r["platform_fee"], r["builder_margin"]),
                tuple((wf, Decimal(q)) for wf, q in r["workflow_weights"]),
            )
            for inv in invoices.values()
            for r in lines[inv["id"]]
        ]
        meters, workflows = unit_economics(econ)
        for row in meters:  # the workflow rows of a meter sum to its row
            parts = (row.revenue, row.provider_cost, row.platform_fee, row.builder_margin)
            if any(abs(a) >= MAX_INVOICE_AMOUNT for a in parts):
                raise FailedPrecondition(
                    f"meter {quote(row.meter_key)} earned more than {MAX_INVOICE_AMOUNT:,.0f} "
                    f"{row.currency} in the month, beyond what billing reports",
                    field="period_start_time",
                )
        test = await self._test_traffic(builder_id, specs, period.start, period.end)
        return UnitEconomicsView(meters, workflows, len(invoices), test)

    async def _test_traffic(
        self, builder_id: str, specs: list[dict], start: datetime, end: datetime
    ) -> tuple[TestTrafficView, ...]:
        """The month's TEST events on each provider-cost meter the builder's plans name: the cost-plus
        charges' meters and every charge's provider_cost_meter_key."""
        cost_meters: set[str] = set()
        for raw in specs:
            for charge in plan_from_dict(raw).charges:
                if charge.price.kind == PriceModelKind.COST_PLUS_MARKUP:
                    cost_meters.add(charge.meter_key)
                if charge.provider_cost_meter_key:
                    cost_meters.add(charge.provider_cost_meter_key)
        out = []
        for meter_key in sorted(cost_meters):
            try:
                answer = await self.metering.query_usage(
                    builder_id=builder_id, meter_key=meter_key, start=start, end=end, statuses=(TEST_STATUS,)
                )
            except FailedPrecondition:
                continue  # the meter is gone from metering: nothing to read
            out.append(
                TestTrafficView(
                    meter_key,
                    sum((r.value for r in answer.rows), Decimal(0)),
                    sum(r.event_count for r in answer.rows),
                )
            )
        return tuple(out)
