"""A Hypothesis state machine over the ledger rules: random earnings, clawbacks, hold releases, payout
runs, failed payouts, replays and restarts (a ledger rebuilt from its posted transfers).

After every step: per currency the ledger sums to zero; every bounded account is within its bound;
posted transfers are unchanged; replays post nothing; the sum paid out never exceeds the sum earned,
and for each payee earned - clawed = pending + available + clawback + paid_out.
"""

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from payouts.domain.ledger import (
    PAYEE_PURPOSES,
    AccountKey,
    EntryKind,
    FeedEntry,
    Ledger,
    Purpose,
    entry_transfer,
    failure_transfer,
    plan_payout,
    release_transfer,
    within_bound,
)
from payouts.domain.periods import Period

PAYEES = ("agency-7", "studio-2")
CURRENCIES = ("USD", "JPY")
START = datetime(2026, 1, 1, tzinfo=UTC)
cents = st.integers(min_value=1, max_value=50_000)


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.ledger = Ledger()
        self.now = START
        self.sequence = 0
        self.posted: list = []
        self.payouts: dict[tuple[str, str, str], tuple[str, D, str]] = {}
        self.earned: dict[tuple[str, str], D] = defaultdict(D)
        self.clawed: dict[tuple[str, str], D] = defaultdict(D)
        self.hold_days = {"agency-7": 0, "studio-2": 10, "provider:all": 3}

    def _amount(self, minor: int, currency: str) -> D:
        return D(minor) if currency == "JPY" else D(minor) / 100

    def _entry(self, kind: EntryKind, builder: str, amount: D, currency: str) -> FeedEntry:
        self.sequence += 1
        return FeedEntry(
            sequence=self.sequence, builder_id=builder, app_id="a", customer_id="c", invoice_id="i",
            line_position=0, workflow="", meter_key="", kind=kind, reason="payment", amount=amount,
            currency=currency, source_id="s", create_time=self.now,
        )  # fmt: skip

    def _post(self, entry: FeedEntry) -> None:
        payee = entry.payee_id or "agency-7"
        t = entry_transfer(entry, self.hold_days.get(payee, 0))
        if t is None:
            return
        assert self.ledger.post([t]) == [t]
        self.posted.append(t)
        if entry.payee_id is not None:
            key = (entry.payee_id, entry.currency)
            if entry.amount > 0:
                self.earned[key] += entry.amount
            else:
                self.clawed[key] -= entry.amount

    @rule(
        builder=st.sampled_from(PAYEES),
        currency=st.sampled_from(CURRENCIES),
        margin=cents,
        cost=cents,
        fee=st.integers(min_value=0, max_value=5_000),
    )
    def invoice_paid(self, builder, currency, margin, cost, fee):
        for kind, minor in ((EntryKind.BUILDER_MARGIN, margin), (EntryKind.PROVIDER_COST, cost),
                            (EntryKind.PLATFORM_FEE, fee)):  # fmt: skip
            self._post(self._entry(kind, builder, self._amount(minor, currency), currency))

    @rule(
        builder=st.sampled_from(PAYEES),
        currency=st.sampled_from(CURRENCIES),
        kind=st.sampled_from(list(EntryKind)),
        minor=cents,
    )
    def credit_note_after_payment(self, builder, currency, kind, minor):
        self._post(self._entry(kind, builder, -self._amount(minor, currency), currency))

    @rule(days=st.integers(min_value=0, max_value=40))
    def time_passes_and_holds_release(self, days):
        self.now += timedelta(days=days)
        due = [
            t for t in list(self.ledger.transfers.values())
            if t.available_time is not None and t.available_time <= self.now
        ]  # fmt: skip
        releases = [release_transfer(t, self.now) for t in due]
        self.posted.extend(self.ledger.post(releases))
        # A second sweep over the same earnings posts nothing.
        assert self.ledger.post(releases) == []

    @rule()
    def run_payouts(self):
        period = str(Period.of(self.now))
        for payee in (*PAYEES, "provider:all"):
            for currency in CURRENCIES:
                if (payee, currency, period) in self.payouts:
                    continue
                plan = plan_payout(
                    period=period, payee_id=payee, currency=currency,
                    available=self.ledger.balance(AccountKey(payee, currency, Purpose.AVAILABLE)),
                    clawback=self.ledger.balance(AccountKey(payee, currency, Purpose.CLAWBACK)),
                    minimum=self._amount(1000, currency), when=self.now,
                )  # fmt: skip
                if plan is None:
                    continue
                assert self.ledger.post(plan.transfers) == list(plan.transfers)
                self.posted.extend(plan.transfers)
                self.payouts[(payee, currency, period)] = (plan.payout_id, plan.amount, "pending")

    @precondition(lambda self: any(p[2] == "pending" for p in self.payouts.values()))
    @rule(data=st.data())
    def payout_fails(self, data):
        key = data.draw(st.sampled_from(sorted(k for k, v in self.payouts.items() if v[2] == "pending")))
        pid, amount, _ = self.payouts[key]
        fail = failure_transfer(pid, key[0], key[1], amount, self.now)
        assert self.ledger.post([fail]) == [fail]
        assert self.ledger.post([fail]) == []  # a second failure report returns nothing
        self.posted.append(fail)
        self.payouts[key] = (pid, amount, "failed")

    @precondition(lambda self: self.posted)
    @rule(data=st.data())
    def replay_a_posted_transfer(self, data):
        t = data.draw(st.sampled_from(self.posted))
        before = dict(self.ledger.balances)
        assert self.ledger.post([t]) == []
        assert dict(self.ledger.balances) == before

    @rule()
    def restart_rebuilds_from_transfers(self):
        rebuilt = Ledger()
        # Transfers in posting order: releases and payouts come after what they consume.
        rebuilt.post(self.posted)
        assert {k: v for k, v in rebuilt.balances.items() if v} == {
            k: v for k, v in self.ledger.balances.items() if v
        }
        self.ledger = rebuilt

    @invariant()
    def ledger_sums_to_zero_per_currency(self):
        assert all(v == 0 for v in self.ledger.totals_by_currency().values())

    @invariant()
    def bounded_accounts_stay_in_bounds(self):
        assert all(within_bound(k, v) for k, v in self.ledger.balances.items())

    @invariant()
    def posted_transfers_never_change(self):
        assert all(self.ledger.transfers[t.id] == t for t in self.posted)

    @invariant()
    def paid_out_never_exceeds_earned(self):
        for payee in (*PAYEES, "provider:all"):
            for cur in CURRENCIES:
                bal = {p: self.ledger.balance(AccountKey(payee, cur, p)) for p in PAYEE_PURPOSES}
                earned, clawed = self.earned[(payee, cur)], self.clawed[(payee, cur)]
                assert bal[Purpose.PAID_OUT] <= earned
                assert earned - clawed == sum(bal.values())


LedgerMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
test_ledger_state_machine = LedgerMachine.TestCase
