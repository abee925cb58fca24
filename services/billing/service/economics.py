"""Unit economics: a builder's ended month per meter and per workflow tag, from its finalized
invoices (what was billed, not what a plan would bill). Read-only."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from billing import store
from billing.domain import Split
from billing.domain.economics import EconomicsLine, EconomicsRow, unit_economics
from billing.domain.text import quote
from billing.service._core import ServiceCore, _require, past_period
from billing.service.invoicing import MAX_INVOICE_AMOUNT
from common.errors import FailedPrecondition


@dataclass(frozen=True)
class UnitEconomicsView:
    meters: tuple[EconomicsRow, ...]
    workflows: tuple[EconomicsRow, ...]
    invoice_count: int


class Economics(ServiceCore):
    """The monthly review: which meter and which workflow earns what."""

    async def get_unit_economics(self, builder_id: str, period_start: datetime | None) -> UnitEconomicsView:
        _require(builder_id, "builder_id")
        period = past_period(period_start, "period_start_time", self.clock())
        async with self.engine.connect() as conn:
            invoices = await store.period_invoices(conn, builder_id, period.start)
            lines = await store.lines_of(conn, [inv["id"] for inv in invoices.values()])
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
        return UnitEconomicsView(meters, workflows, len(invoices))
