"""The payouts ledger, in the shape TigerBeetle and Stripe's balance transactions share.

Rules, in order:

1. An account belongs to one owner (a payee id, or PLATFORM), holds one currency and has one purpose.
   Its balance is its credits less its debits, derived from its transfers.
2. A transfer moves one exact amount > 0 from a debit account to a credit account of the same
   currency, so every transfer balances and, per currency, the sum of all balances is zero, always.
3. A transfer's id is derived from its source (the feed sequence, the earning released, the payout),
   so posting the same source twice inserts nothing: replays are no-ops, not errors.
4. Posted transfers never change. A correction is a new transfer naming the one it corrects.
5. Bounds: pending, available and paid_out never go below zero; clawback never goes above zero (a
   payee's negative position lives there, visible, until a payout run offsets it). A posting that
   would break a bound is refused whole.
6. An earnings feed entry becomes one transfer:
     builder margin / provider cost, positive: clearing -> payee pending, available after the hold
     (the payment time, which is the entry's time, plus the payee's hold days);
     builder margin / provider cost, negative (credit note, void): payee clawback -> clearing;
     platform fee, positive: clearing -> fee revenue; negative: fee revenue -> clearing.
7. A hold release moves one earning's amount from pending to available, once.
8. A payout run pays `available + clawback` when it is > 0 and at least the payee's minimum: first
   available -> clawback for the clawback (the offset), then available -> paid_out for the rest. Below
   the minimum, or negative, everything carries over.
9. A failed payout moves its amount paid_out -> available, once, correcting the payout transfer.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from .money import ZERO

# Not a valid payee id (payee ids are builder ids or "provider:<name>"), so it cannot collide.
PLATFORM = "platform:tollgate"
# Billing names no provider on its provider cost entries: they go to one provider-rewards payee.
PROVIDER_POOL = "provider:all"


class Purpose(enum.StrEnum):
    PENDING = "pending"
    AVAILABLE = "available"
    PAID_OUT = "paid_out"
    CLAWBACK = "clawback"
    FEE_REVENUE = "fee_revenue"
    CLEARING = "clearing"


class Bound(enum.StrEnum):
    NON_NEGATIVE = "non_negative"
    NON_POSITIVE = "non_positive"
    NONE = "none"


BOUNDS: Mapping[Purpose, Bound] = {
    Purpose.PENDING: Bound.NON_NEGATIVE,
    Purpose.AVAILABLE: Bound.NON_NEGATIVE,
    Purpose.PAID_OUT: Bound.NON_NEGATIVE,
    Purpose.CLAWBACK: Bound.NON_POSITIVE,
    Purpose.FEE_REVENUE: Bound.NONE,
    Purpose.CLEARING: Bound.NONE,
}

PAYEE_PURPOSES = (Purpose.PENDING, Purpose.AVAILABLE, Purpose.PAID_OUT, Purpose.CLAWBACK)
PLATFORM_PURPOSES = (Purpose.FEE_REVENUE, Purpose.CLEARING)
# What is owed to a payee and not yet paid out.
OWED_PURPOSES = (Purpose.PENDING, Purpose.AVAILABLE, Purpose.CLAWBACK)


class Reason(enum.StrEnum):
    EARNINGS = "earnings"
    PLATFORM_FEE = "platform_fee"
    CLAWBACK = "clawback"
    FEE_REVERSAL = "fee_reversal"
    HOLD_RELEASE = "hold_release"
    CLAWBACK_OFFSET = "clawback_offset"
    PAYOUT = "payout"
    PAYOUT_FAILED = "payout_failed"


class EntryKind(enum.StrEnum):
    BUILDER_MARGIN = "builder_margin"
    PLATFORM_FEE = "platform_fee"
    PROVIDER_COST = "provider_cost"


class LedgerError(ValueError):
    """A posting the ledger refuses (rule 2 or 5)."""


@dataclass(frozen=True, order=True)
class AccountKey:
    owner: str
    currency: str
    purpose: Purpose

    @property
    def bound(self) -> Bound:
        return BOUNDS[self.purpose]

    def __str__(self) -> str:
        return f"{self.owner}/{self.currency}/{self.purpose}"


@dataclass(frozen=True)
class Transfer:
    id: str
    debit: AccountKey
    credit: AccountKey
    amount: Decimal
    reason: Reason
    source_kind: str
    source_id: str
    effective_time: datetime
    payee_id: str | None = None
    corrects: str | None = None
    available_time: datetime | None = None

    @property
    def currency(self) -> str:
        return self.credit.currency


@dataclass(frozen=True)
class FeedEntry:
    """One entry of billing's earnings feed, as payouts needs it."""

    sequence: int
    builder_id: str
    app_id: str
    customer_id: str
    invoice_id: str
    line_position: int
    workflow: str
    meter_key: str
    kind: EntryKind
    reason: str
    amount: Decimal
    currency: str
    source_id: str
    create_time: datetime

    @property
    def payee_id(self) -> str | None:
        """Whose share it is; None for the platform's fee."""
        if self.kind is EntryKind.BUILDER_MARGIN:
            return self.builder_id
        if self.kind is EntryKind.PROVIDER_COST:
            return PROVIDER_POOL
        return None


def check_transfer(t: Transfer) -> None:
    if t.amount <= 0:
        raise LedgerError(f"transfer {t.id}: amount must be greater than zero, got {t.amount}")
    if t.debit.currency != t.credit.currency:
        raise LedgerError(f"transfer {t.id}: debit and credit accounts differ in currency")
    if t.debit == t.credit:
        raise LedgerError(f"transfer {t.id}: debits and credits the same account")


def deltas(transfers: Iterable[Transfer]) -> dict[AccountKey, Decimal]:
    """The balance change of every account the transfers touch (credits less debits)."""
    out: dict[AccountKey, Decimal] = defaultdict(lambda: ZERO)
    for t in transfers:
        out[t.debit] -= t.amount
        out[t.credit] += t.amount
    return dict(out)


def within_bound(key: AccountKey, balance: Decimal) -> bool:
    bound = key.bound
    if bound is Bound.NON_NEGATIVE:
        return balance >= 0
    if bound is Bound.NON_POSITIVE:
        return balance <= 0
    return True


# ---- rule 6: feed entries -------------------------------------------------------------------------


def entry_transfer(entry: FeedEntry, hold_days: int) -> Transfer | None:
    """The one transfer an earnings entry posts; None for a zero amount (billing leaves those out)."""
    if entry.amount == 0:
        return None
    cur = entry.currency
    clearing = AccountKey(PLATFORM, cur, Purpose.CLEARING)
    base = {
        "id": f"entry:{entry.sequence}",
        "source_kind": "earnings_entry",
        "source_id": str(entry.sequence),
        "effective_time": entry.create_time,
    }
    payee = entry.payee_id
    if payee is None:
        fee = AccountKey(PLATFORM, cur, Purpose.FEE_REVENUE)
        if entry.amount > 0:
            return Transfer(
                debit=clearing, credit=fee, amount=entry.amount, reason=Reason.PLATFORM_FEE, **base
            )
        return Transfer(debit=fee, credit=clearing, amount=-entry.amount, reason=Reason.FEE_REVERSAL, **base)
    if entry.amount > 0:
        return Transfer(
            debit=clearing,
            credit=AccountKey(payee, cur, Purpose.PENDING),
            amount=entry.amount,
            reason=Reason.EARNINGS,
            payee_id=payee,
            available_time=entry.create_time + timedelta(days=hold_days),
            **base,
        )
    return Transfer(
        debit=AccountKey(payee, cur, Purpose.CLAWBACK),
        credit=clearing,
        amount=-entry.amount,
        reason=Reason.CLAWBACK,
        payee_id=payee,
        **base,
    )


# ---- rule 7: hold release -------------------------------------------------------------------------


def release_transfer(earning: Transfer, when: datetime) -> Transfer:
    if earning.reason is not Reason.EARNINGS or earning.payee_id is None:
        raise LedgerError(f"transfer {earning.id} is not an earning on hold")
    return Transfer(
        id=f"release:{earning.id}",
        debit=earning.credit,
        credit=AccountKey(earning.payee_id, earning.currency, Purpose.AVAILABLE),
        amount=earning.amount,
        reason=Reason.HOLD_RELEASE,
        source_kind="hold_release",
        source_id=earning.id,
        effective_time=when,
        payee_id=earning.payee_id,
    )


# ---- rules 8 and 9: payouts -----------------------------------------------------------------------


@dataclass(frozen=True)
class PayoutPlan:
    payout_id: str
    payee_id: str
    currency: str
    amount: Decimal
    available_consumed: Decimal
    clawback_offset: Decimal
    transfers: tuple[Transfer, ...] = field(default=())


def payout_id(period: str, payee_id: str, currency: str) -> str:
    return f"po:{period}:{currency}:{payee_id}"


def plan_payout(
    *,
    period: str,
    payee_id: str,
    currency: str,
    available: Decimal,
    clawback: Decimal,
    minimum: Decimal,
    when: datetime,
) -> PayoutPlan | None:
    """Rule 8: the payout for one payee and period, or None when its balance carries over."""
    if available < 0 or clawback > 0:
        raise LedgerError(f"{payee_id}: available {available} or clawback {clawback} out of bounds")
    net = available + clawback
    if net <= 0 or net < minimum:
        return None
    pid = payout_id(period, payee_id, currency)
    avail = AccountKey(payee_id, currency, Purpose.AVAILABLE)
    common = {"source_kind": "payout", "source_id": pid, "effective_time": when, "payee_id": payee_id}
    transfers = []
    if clawback < 0:
        transfers.append(
            Transfer(
                id=f"offset:{pid}",
                debit=avail,
                credit=AccountKey(payee_id, currency, Purpose.CLAWBACK),
                amount=-clawback,
                reason=Reason.CLAWBACK_OFFSET,
                **common,
            )
        )
    transfers.append(
        Transfer(
            id=f"payout:{pid}",
            debit=avail,
            credit=AccountKey(payee_id, currency, Purpose.PAID_OUT),
            amount=net,
            reason=Reason.PAYOUT,
            **common,
        )
    )
    return PayoutPlan(pid, payee_id, currency, net, available, -clawback, tuple(transfers))


def failure_transfer(pid: str, payee_id: str, currency: str, amount: Decimal, when: datetime) -> Transfer:
    """Rule 9: the failed payout's amount back to available; its id makes it happen once."""
    return Transfer(
        id=f"payout-failed:{pid}",
        debit=AccountKey(payee_id, currency, Purpose.PAID_OUT),
        credit=AccountKey(payee_id, currency, Purpose.AVAILABLE),
        amount=amount,
        reason=Reason.PAYOUT_FAILED,
        source_kind="payout_failure",
        source_id=pid,
        effective_time=when,
        payee_id=payee_id,
        corrects=f"payout:{pid}",
    )


# ---- an in-memory ledger with the same semantics as the store -------------------------------------


class Ledger:
    """The rules over a dict: what the store does in SQL, used by the property tests and the bench's
    expectations. `post` is all-or-nothing and skips transfers whose id is already posted."""

    def __init__(self) -> None:
        self.transfers: dict[str, Transfer] = {}
        self.balances: dict[AccountKey, Decimal] = defaultdict(lambda: ZERO)

    def balance(self, key: AccountKey) -> Decimal:
        return self.balances.get(key, ZERO)

    def post(self, transfers: Iterable[Transfer]) -> list[Transfer]:
        fresh: list[Transfer] = []
        seen: set[str] = set()
        for t in transfers:
            check_transfer(t)
            if t.id in self.transfers or t.id in seen:
                continue
            if t.corrects is not None and t.corrects not in self.transfers and t.corrects not in seen:
                raise LedgerError(f"transfer {t.id} corrects unknown transfer {t.corrects}")
            seen.add(t.id)
            fresh.append(t)
        change = deltas(fresh)
        for key, delta in change.items():
            after = self.balance(key) + delta
            if not within_bound(key, after):
                raise LedgerError(f"account {key} would be {after}, outside its bound")
        for key, delta in change.items():
            self.balances[key] = self.balance(key) + delta
        for t in fresh:
            self.transfers[t.id] = t
        return fresh

    def totals_by_currency(self) -> dict[str, Decimal]:
        out: dict[str, Decimal] = defaultdict(lambda: ZERO)
        for key, value in self.balances.items():
            out[key.currency] += value
        return dict(out)
