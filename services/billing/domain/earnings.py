"""Earnings entries: what a paid invoice (and later refunds) put on the append-only earnings feed.

- An invoice produces entries once, when it becomes fully paid (wallet and payments together;
  partial payments produce none). Each line's REMAINING split (its split minus what credit notes
  took before payment) becomes up to three entries: builder margin, platform fee, provider cost.
  The entries sum exactly to the amount the customer paid (invoice total - credits before payment).
- A credit note after payment produces the NEGATIVE of its allocation (billing.domain.invoice
  .allocate_credit), so the negatives sum exactly to minus the credit. A void after payment is a
  credit of the whole remainder.
- Each part is attributed to workflows in proportion to the line's `workflow_quantities`
  (largest remainder in minor units, exact); a line without workflow usage gets workflow "".
- Zero-amount entries are left out. Entries are ordered by line, then kind, then workflow, so the
  same input always gives the same feed.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from .invoice import allocate_credit
from .money import ZERO, allocate
from .split import Split


class EarningsKind(enum.StrEnum):
    BUILDER_MARGIN = "builder_margin"
    PLATFORM_FEE = "platform_fee"
    PROVIDER_COST = "provider_cost"


class EarningsReason(enum.StrEnum):
    PAYMENT = "payment"
    CREDIT_NOTE = "credit_note"
    VOID = "void"


class SplitLine(Protocol):
    """What earnings need from an invoice line (InvoiceLine has it; so can a row from storage)."""

    @property
    def charge_key(self) -> str | None: ...
    @property
    def meter_key(self) -> str | None: ...
    @property
    def split(self) -> Split: ...
    @property
    def workflow_quantities(self) -> tuple[tuple[str, Decimal], ...]: ...


@dataclass(frozen=True)
class EarningsParties:
    """Who an invoice's earnings belong to."""

    builder_id: str
    app_id: str
    customer_id: str
    invoice_id: str


@dataclass(frozen=True)
class EarningsEntry:
    kind: EarningsKind
    reason: EarningsReason
    amount: Decimal
    currency: str
    builder_id: str
    app_id: str
    customer_id: str
    invoice_id: str
    line_index: int
    charge_key: str | None
    meter_key: str | None
    workflow: str


_PARTS = (
    (EarningsKind.BUILDER_MARGIN, "builder_margin"),
    (EarningsKind.PLATFORM_FEE, "platform_fee"),
    (EarningsKind.PROVIDER_COST, "provider_cost"),
)


def _entries(
    lines: Sequence[SplitLine],
    splits: Sequence[Split],
    sign: int,
    reason: EarningsReason,
    currency: str,
    parties: EarningsParties,
) -> tuple[EarningsEntry, ...]:
    out: list[EarningsEntry] = []
    for index, (line, split) in enumerate(zip(lines, splits, strict=True)):
        workflows = [(wf, q) for wf, q in line.workflow_quantities if q > 0]
        for kind, attr in _PARTS:
            amount = getattr(split, attr) * sign
            if amount == 0:
                continue
            if workflows:
                shares = allocate(amount, [q for _, q in workflows], currency)
                pieces = [(wf, share) for (wf, _), share in zip(workflows, shares, strict=True)]
            else:
                pieces = [("", amount)]
            for workflow, share in pieces:
                if share == 0:
                    continue
                out.append(
                    EarningsEntry(
                        kind=kind,
                        reason=reason,
                        amount=share,
                        currency=currency,
                        builder_id=parties.builder_id,
                        app_id=parties.app_id,
                        customer_id=parties.customer_id,
                        invoice_id=parties.invoice_id,
                        line_index=index,
                        charge_key=line.charge_key,
                        meter_key=line.meter_key,
                        workflow=workflow,
                    )
                )
    return tuple(out)


def earnings_for_payment(
    lines: Sequence[SplitLine],
    currency: str,
    parties: EarningsParties,
    credited_before_payment: Sequence[Split] = (),
) -> tuple[EarningsEntry, ...]:
    """Positive entries for an invoice that just became fully paid; they sum to the amount paid.

    `credited_before_payment`: per line, the split credited by credit notes issued before payment
    (empty: none).
    """
    if credited_before_payment and len(credited_before_payment) != len(lines):
        raise ValueError("credited_before_payment must have one split per invoice line")
    remaining = [
        line.split - (credited_before_payment[i] if credited_before_payment else Split(ZERO, ZERO, ZERO))
        for i, line in enumerate(lines)
    ]
    return _entries(lines, remaining, 1, EarningsReason.PAYMENT, currency, parties)


def earnings_for_credit(
    lines: Sequence[SplitLine],
    currency: str,
    parties: EarningsParties,
    credit_allocation: Sequence[Split],
    reason: EarningsReason = EarningsReason.CREDIT_NOTE,
) -> tuple[EarningsEntry, ...]:
    """Negative entries for a credit note (or void) on a paid invoice; they sum to minus the credit.

    `credit_allocation` is the per-line allocation from `allocate_credit` (or `void_allocation`).
    """
    return _entries(lines, credit_allocation, -1, reason, currency, parties)


def void_allocation(
    lines: Sequence[SplitLine], credited: Sequence[Split], currency: str
) -> tuple[Split, ...]:
    """The allocation of voiding a paid invoice: every line's remaining split, exactly."""
    if credited and len(credited) != len(lines):
        raise ValueError("credited must have one split per invoice line")
    remaining = [
        line.split - (credited[i] if credited else Split(ZERO, ZERO, ZERO)) for i, line in enumerate(lines)
    ]
    return tuple(remaining)


__all__ = [
    "EarningsEntry",
    "EarningsKind",
    "EarningsParties",
    "EarningsReason",
    "SplitLine",
    "allocate_credit",
    "earnings_for_credit",
    "earnings_for_payment",
    "void_allocation",
]
