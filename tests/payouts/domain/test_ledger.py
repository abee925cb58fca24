"""The ledger rules on their own: each entry kind's posting, holds, payouts, failures, bounds."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from payouts.domain.ledger import (
    PLATFORM,
    PROVIDER_POOL,
    AccountKey,
    EntryKind,
    FeedEntry,
    Ledger,
    LedgerError,
    Purpose,
    Reason,
    entry_transfer,
    failure_transfer,
    plan_payout,
    release_transfer,
)

T0 = datetime(2026, 10, 3, 12, tzinfo=UTC)


def entry(seq: int, kind: EntryKind, amount: str, builder: str = "agency-7") -> FeedEntry:
    return FeedEntry(
        sequence=seq,
        builder_id=builder,
        app_id="app-1",
        customer_id="acme",
        invoice_id="inv-1",
        line_position=0,
        workflow="contracts",
        meter_key="documents",
        kind=kind,
        reason="payment" if D(amount) > 0 else "credit_note",
        amount=D(amount),
        currency="USD",
        source_id="pay-1",
        create_time=T0,
    )


def acct(owner: str, purpose: Purpose) -> AccountKey:
    return AccountKey(owner, "USD", purpose)


def test_builder_margin_goes_to_pending_until_the_hold_ends():
    t = entry_transfer(entry(1, EntryKind.BUILDER_MARGIN, "40.00"), hold_days=7)
    assert t.debit == acct(PLATFORM, Purpose.CLEARING)
    assert t.credit == acct("agency-7", Purpose.PENDING)
    assert t.amount == D("40.00") and t.reason is Reason.EARNINGS
    assert t.available_time == T0 + timedelta(days=7)
    assert t.id == "entry:1"


def test_provider_cost_goes_to_the_provider_pool_and_platform_fee_to_fee_revenue():
    provider = entry_transfer(entry(2, EntryKind.PROVIDER_COST, "12.35"), hold_days=0)
    fee = entry_transfer(entry(3, EntryKind.PLATFORM_FEE, "2.10"), hold_days=0)
    assert provider.credit == acct(PROVIDER_POOL, Purpose.PENDING)
    assert fee.credit == acct(PLATFORM, Purpose.FEE_REVENUE) and fee.reason is Reason.PLATFORM_FEE


def test_negative_entries_claw_back_and_reverse_fees():
    claw = entry_transfer(entry(4, EntryKind.BUILDER_MARGIN, "-5.00"), hold_days=7)
    rev = entry_transfer(entry(5, EntryKind.PLATFORM_FEE, "-0.25"), hold_days=7)
    assert claw.debit == acct("agency-7", Purpose.CLAWBACK) and claw.amount == D("5.00")
    assert claw.reason is Reason.CLAWBACK and claw.available_time is None
    assert rev.debit == acct(PLATFORM, Purpose.FEE_REVENUE) and rev.credit == acct(PLATFORM, Purpose.CLEARING)


def test_zero_entry_posts_nothing():
    assert entry_transfer(entry(6, EntryKind.BUILDER_MARGIN, "0"), hold_days=0) is None


def test_replaying_a_posting_inserts_nothing_and_balances_do_not_move():
    ledger = Ledger()
    t = entry_transfer(entry(1, EntryKind.BUILDER_MARGIN, "40.00"), hold_days=0)
    assert ledger.post([t]) == [t]
    assert ledger.post([t]) == []
    assert ledger.balance(acct("agency-7", Purpose.PENDING)) == D("40.00")
    assert ledger.totals_by_currency() == {"USD": D(0)}


def test_release_without_an_earning_on_pending_is_refused_whole():
    ledger = Ledger()
    earning = entry_transfer(entry(1, EntryKind.BUILDER_MARGIN, "40.00"), hold_days=0)
    other = entry_transfer(entry(2, EntryKind.BUILDER_MARGIN, "1.00"), hold_days=0)
    with pytest.raises(LedgerError, match="pending"):
        ledger.post([other, release_transfer(earning, T0)])
    assert ledger.transfers == {}


def test_payout_offsets_clawback_then_pays_the_rest():
    plan = plan_payout(
        period="2026-10", payee_id="agency-7", currency="USD",
        available=D("100.00"), clawback=D("-30.00"), minimum=D("50.00"), when=T0,
    )  # fmt: skip
    assert plan is not None
    # 100.00 available - 30.00 clawed back = 70.00 paid.
    assert plan.amount == D("70.00") and plan.clawback_offset == D("30.00")
    assert [t.reason for t in plan.transfers] == [Reason.CLAWBACK_OFFSET, Reason.PAYOUT]


def test_balance_below_minimum_or_negative_carries_over():
    kwargs = {"period": "2026-10", "payee_id": "a", "currency": "USD", "when": T0}
    assert plan_payout(available=D("49.99"), clawback=D(0), minimum=D("50.00"), **kwargs) is None
    assert plan_payout(available=D("10.00"), clawback=D("-20.00"), minimum=D(0), **kwargs) is None
    assert plan_payout(available=D(0), clawback=D(0), minimum=D(0), **kwargs) is None


def test_failed_payout_returns_to_available_once():
    ledger = Ledger()
    ledger.post([entry_transfer(entry(1, EntryKind.BUILDER_MARGIN, "80.00"), hold_days=0)])
    ledger.post([release_transfer(ledger.transfers["entry:1"], T0)])
    plan = plan_payout(
        period="2026-10", payee_id="agency-7", currency="USD",
        available=D("80.00"), clawback=D(0), minimum=D(0), when=T0,
    )  # fmt: skip
    ledger.post(plan.transfers)
    fail = failure_transfer(plan.payout_id, "agency-7", "USD", plan.amount, T0)
    assert fail.corrects == f"payout:{plan.payout_id}"
    assert ledger.post([fail]) == [fail]
    assert ledger.post([fail]) == []
    assert ledger.balance(acct("agency-7", Purpose.AVAILABLE)) == D("80.00")
    assert ledger.balance(acct("agency-7", Purpose.PAID_OUT)) == D(0)


def test_a_transfer_must_move_a_positive_amount_within_one_currency():
    t = entry_transfer(entry(1, EntryKind.BUILDER_MARGIN, "1.00"), hold_days=0)
    bad = type(t)(**{**t.__dict__, "credit": AccountKey("agency-7", "EUR", Purpose.PENDING)})
    with pytest.raises(LedgerError, match="currency"):
        Ledger().post([bad])
