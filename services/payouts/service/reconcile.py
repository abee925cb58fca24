"""Reconcile: the ledger against itself, the payouts against the balances they consumed, the earnings
applied against billing's paid invoices, and billing's quantities against metering's usage."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import structlog

from payouts import store
from payouts.clients import InvoiceFacts
from payouts.domain.money import ZERO
from payouts.domain.periods import Period
from payouts.domain.reconcile import Check, ordered
from payouts.service.base import Base

log = structlog.get_logger("payouts.reconcile")


def expected_earnings(inv: InvoiceFacts) -> Decimal:
    """What billing's feed should have put out for an invoice: what the customer paid and kept paid.
    A paid invoice: its total less every credit note; a void or unpaid one: nothing, net."""
    if inv.status == "finalized" and inv.paid:
        return inv.total - inv.credited
    return ZERO


class Reconcile(Base):
    async def reconcile(self, period: Period) -> list[Check]:
        name = str(period)
        checks: list[Check] = []
        async with self.engine.connect() as conn:
            for cur, total in sorted((await store.balance_totals(conn)).items()):
                checks.append(Check("ledger_balances", cur, ZERO, total))
            for cur, (diff, zero) in sorted((await store.balances_vs_transfers(conn)).items()):
                checks.append(Check("balances_match_transfers", cur, zero, diff))
            for cur, (amounts, moved) in sorted((await store.payout_consumption(conn, name)).items()):
                checks.append(Check("payouts_consume_available", cur, amounts, moved))
            for cur, (recorded, moved) in sorted((await store.offsets_vs_payouts(conn, name)).items()):
                checks.append(Check("payouts_consume_available", f"{cur} clawback offsets", recorded, moved))
            builders = await store.builders_seen(conn)

        invoices: list[InvoiceFacts] = []
        for builder in builders:
            async for inv in self.billing.invoices(builder):
                if Period.of(inv.period_start) == period:
                    invoices.append(inv)
        async with self.engine.connect() as conn:
            applied = await store.applied_by_invoice(conn, [i.id for i in invoices])

        per_scope: dict[str, tuple[Decimal, Decimal]] = {}
        for inv in invoices:
            expected = expected_earnings(inv)
            actual = sum(applied.get(inv.id, {}).values(), ZERO)
            key = f"{inv.builder_id}/{inv.currency}"
            e, a = per_scope.get(key, (ZERO, ZERO))
            per_scope[key] = (e + expected, a + actual)
            if expected != actual:
                checks.append(
                    Check(
                        "earnings_match_paid_invoices",
                        f"{key} invoice {inv.number or inv.id}",
                        expected,
                        actual,
                    )
                )
        for key, (e, a) in per_scope.items():
            checks.append(Check("earnings_match_paid_invoices", key, e, a))

        gate = asyncio.Semaphore(8)

        async def usage(inv: InvoiceFacts, position: int, meter: str, quantity: Decimal) -> Check:
            async with gate:
                metered = await self.metering.usage_total(
                    builder_id=inv.builder_id,
                    meter_key=meter,
                    customer_id=inv.customer_id,
                    start=inv.period_start,
                    end=inv.period_end,
                    cutoff=inv.usage_cutoff,
                )
            return Check(
                "usage_matches_metering",
                f"{inv.builder_id}/{inv.number or inv.id} line {position}",
                quantity,
                metered,
            )

        jobs = [
            usage(inv, ln.position, ln.meter_key, ln.quantity)
            for inv in invoices
            if inv.usage_cutoff is not None
            for ln in inv.lines
            if ln.kind == "usage" and ln.meter_key
        ]
        checks.extend(await asyncio.gather(*jobs))
        result = ordered(checks)
        log.info("payouts.reconcile.done", period=name, checks=len(result), clean=all(c.ok for c in result))
        return result
