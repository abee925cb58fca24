"""Statements: a payee's month from its earnings entries and its ledger accounts."""

from __future__ import annotations

from decimal import Decimal

from common.errors import NotFound
from payouts import store
from payouts.domain.ledger import EntryKind, Reason
from payouts.domain.money import ZERO
from payouts.domain.periods import Period
from payouts.domain.statement import EntryFact, LedgerSection, Statement, breakdown, summarize
from payouts.service.base import Base


def _net_owed(flows: dict[str, Decimal]) -> tuple[Decimal, Decimal, Decimal]:
    """(earnings, clawbacks, net payouts) of a payee's flows; releases and offsets move money
    between its own owed accounts and change nothing here."""
    earnings = flows.get(Reason.EARNINGS.value, ZERO)
    clawbacks = flows.get(Reason.CLAWBACK.value, ZERO)
    payouts = flows.get(Reason.PAYOUT.value, ZERO) - flows.get(Reason.PAYOUT_FAILED.value, ZERO)
    return earnings, clawbacks, payouts


class Statements(Base):
    async def statement(self, payee_id: str, currency: str, period: Period) -> Statement:
        async with self.engine.connect() as conn:
            payee = await store.get_payee(conn, payee_id, currency)
            if payee is None:
                raise NotFound(f"no payee {payee_id} in {currency}", field="payee_id")
            provider = payee["kind"] == "provider"
            facts = [
                EntryFact(
                    EntryKind(r["kind"]),
                    r["app_id"],
                    r["customer_id"],
                    r["workflow"],
                    r["meter_key"],
                    r["amount"],
                )
                for r in await store.entry_facts(
                    conn,
                    builder_id=payee_id,
                    provider=provider,
                    currency=currency,
                    start=period.start,
                    end=period.end,
                )
            ]
            before = await store.payee_flows(conn, payee_id, currency, None, period.start)
            during = await store.payee_flows(conn, payee_id, currency, period.start, period.end)
        e0, c0, p0 = _net_owed(before)
        e1, c1, p1 = _net_owed(during)
        return Statement(
            payee_id=payee_id,
            currency=currency,
            period=str(period),
            summary=summarize(provider, facts),
            ledger=LedgerSection(opening_balance=e0 - c0 - p0, earnings=e1, clawbacks=c1, payouts=p1),
            lines=breakdown(provider, facts),
        )
