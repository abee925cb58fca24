"""Reconcile checks as values: each compares an expected and an actual figure, exactly.

The checks (service/reconcile.py gathers the figures):
- ledger_balances: per currency, the sum of all account balances is 0.
- balances_match_transfers: per currency, the cached balances equal the sums of the transfers.
- payouts_consume_available: per currency, the period's payout amounts equal the available balance
  their transfers consumed less the clawbacks they offset.
- earnings_match_paid_invoices: per builder and currency, the earnings applied for the period's paid
  invoices equal billing's invoice total less its credits (what the customer paid and kept paid).
- usage_matches_metering: per invoice usage line, billing's quantity equals metering's usage for the
  line's meter, customer and period at the invoice's recorded usage cutoff.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from common.money import format_decimal

CHECK_ORDER = (
    "ledger_balances",
    "balances_match_transfers",
    "payouts_consume_available",
    "earnings_match_paid_invoices",
    "usage_matches_metering",
)


@dataclass(frozen=True)
class Check:
    name: str
    scope: str
    expected: Decimal
    actual: Decimal

    @property
    def difference(self) -> Decimal:
        return self.actual - self.expected

    @property
    def ok(self) -> bool:
        return self.difference == 0

    def view(self) -> dict[str, object]:
        return {
            "name": self.name,
            "scope": self.scope,
            "expected": format_decimal(self.expected),
            "actual": format_decimal(self.actual),
            "difference": format_decimal(self.difference),
            "ok": self.ok,
        }


def ordered(checks: list[Check]) -> list[Check]:
    rank = {n: i for i, n in enumerate(CHECK_ORDER)}
    return sorted(checks, key=lambda c: (rank.get(c.name, len(rank)), c.scope))
