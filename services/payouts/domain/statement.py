"""Statements and the bank file, as pure functions over facts the store reads.

- Summary (from the period's earnings entries): for a builder, revenue is every share of what its
  customers paid (builder margin + provider cost + platform fee, refunds included), and
  revenue - provider cost - platform fee = earnings, its margin. For the provider-rewards payee,
  revenue = earnings = its entries, with no cost or fee.
- Ledger (from the payee's transfers): opening + earnings - clawbacks - payouts = closing, where the
  balance is pending + available + clawback (owed, not yet paid out) and payouts are net of failed
  payouts returned in the period.
- Lines: the payee's earnings by app, customer, workflow and meter, each sorted by key.
- CSVs have fixed columns, fixed order and amounts with the currency's minor-unit places, so the
  same data gives the same bytes.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from .ledger import EntryKind
from .money import ZERO, show

DIMENSIONS = ("app", "customer", "workflow", "meter")


@dataclass(frozen=True)
class EntryFact:
    kind: EntryKind
    app_id: str
    customer_id: str
    workflow: str
    meter_key: str
    amount: Decimal


@dataclass(frozen=True)
class Summary:
    revenue: Decimal
    provider_cost: Decimal
    platform_fee: Decimal
    earnings: Decimal


@dataclass(frozen=True)
class LedgerSection:
    opening_balance: Decimal
    earnings: Decimal
    clawbacks: Decimal
    payouts: Decimal

    @property
    def closing_balance(self) -> Decimal:
        return self.opening_balance + self.earnings - self.clawbacks - self.payouts


@dataclass(frozen=True)
class Line:
    dimension: str
    key: str
    earnings: Decimal


@dataclass(frozen=True)
class Statement:
    payee_id: str
    currency: str
    period: str
    summary: Summary
    ledger: LedgerSection
    lines: tuple[Line, ...]


def summarize(is_provider: bool, entries: Iterable[EntryFact]) -> Summary:
    by_kind: dict[EntryKind, Decimal] = defaultdict(lambda: ZERO)
    for e in entries:
        by_kind[e.kind] += e.amount
    if is_provider:
        own = by_kind[EntryKind.PROVIDER_COST]
        return Summary(own, ZERO, ZERO, own)
    cost, fee, margin = (
        by_kind[EntryKind.PROVIDER_COST],
        by_kind[EntryKind.PLATFORM_FEE],
        by_kind[EntryKind.BUILDER_MARGIN],
    )
    return Summary(cost + fee + margin, cost, fee, margin)


def breakdown(is_provider: bool, entries: Iterable[EntryFact]) -> tuple[Line, ...]:
    own = EntryKind.PROVIDER_COST if is_provider else EntryKind.BUILDER_MARGIN
    sums: dict[tuple[str, str], Decimal] = defaultdict(lambda: ZERO)
    for e in entries:
        if e.kind is not own:
            continue
        for dim, key in zip(DIMENSIONS, (e.app_id, e.customer_id, e.workflow, e.meter_key), strict=True):
            sums[(dim, key)] += e.amount
    order = {d: i for i, d in enumerate(DIMENSIONS)}
    return tuple(
        Line(dim, key, amount)
        for (dim, key), amount in sorted(sums.items(), key=lambda kv: (order[kv[0][0]], kv[0][1]))
    )


def statement_csv(s: Statement) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["section", "key", "amount", "currency_code"])
    cur = s.currency
    for key, value in (
        ("revenue", s.summary.revenue),
        ("provider_cost", s.summary.provider_cost),
        ("platform_fee", s.summary.platform_fee),
        ("earnings", s.summary.earnings),
    ):
        w.writerow(["summary", key, show(value, cur), cur])
    for key, value in (
        ("opening_balance", s.ledger.opening_balance),
        ("earnings", s.ledger.earnings),
        ("clawbacks", s.ledger.clawbacks),
        ("payouts", s.ledger.payouts),
        ("closing_balance", s.ledger.closing_balance),
    ):
        w.writerow(["ledger", key, show(value, cur), cur])
    for line in s.lines:
        w.writerow([line.dimension, line.key, show(line.earnings, cur), cur])
    return out.getvalue()


@dataclass(frozen=True)
class BankRow:
    payee_id: str
    method_reference: str
    amount: Decimal
    currency: str
    payout_id: str


def payout_run_csv(rows: Iterable[BankRow]) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["payee_id", "method_reference", "amount", "currency_code", "payout_id"])
    for r in sorted(rows, key=lambda r: (r.payee_id, r.currency, r.payout_id)):
        w.writerow([r.payee_id, r.method_reference, show(r.amount, r.currency), r.currency, r.payout_id])
    return out.getvalue()
