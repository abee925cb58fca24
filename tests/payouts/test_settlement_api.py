"""An agency's month settled end to end over real gRPC: metering -> billing -> payouts.

agency-7 bills two customers for a month (base fee + tickets + model tokens at cost plus 25%, 5%
platform fee) and both pay. The tests then follow the money in payouts, in order: the feed applied
exactly once, holds released, a credit note after payment clawed back, one payout per payee and
period (minimums and carry-over), a failed payout returned once, the bank file, the statement.
Expected figures come from billing's own invoices and feed, to the cent.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, timedelta
from decimal import Decimal as D

import grpc
import pytest
from payouts_kit import (
    balances,
    billing_feed,
    close_and_pay,
    dec,
    ended_months,
    ingest,
    rid,
    set_up_builder,
    sums,
    usage_events,
    usd,
)

from payouts.domain.periods import Period
from tollgate.billing.v1 import billing_pb2 as bpb
from tollgate.payouts.v1 import payouts_pb2 as ppb

BUILDER = "agency-7"
POOL = "provider:all"
PLATFORM = "platform:tollgate"
M1, M2, M3 = ended_months()
MARGIN, FEE, COST = (
    bpb.EARNINGS_KIND_BUILDER_MARGIN,
    bpb.EARNINGS_KIND_PLATFORM_FEE,
    bpb.EARNINGS_KIND_PROVIDER_COST,
)
PENDING, AVAILABLE, PAID_OUT, CLAWBACK = (
    ppb.ACCOUNT_PURPOSE_PENDING,
    ppb.ACCOUNT_PURPOSE_AVAILABLE,
    ppb.ACCOUNT_PURPOSE_PAID_OUT,
    ppb.ACCOUNT_PURPOSE_CLAWBACK,
)


class World:
    invoices: list[bpb.Invoice]
    entries: list[bpb.EarningsEntry]
    feed_token: str
    credit_entries: list[bpb.EarningsEntry]
    payout: ppb.Payout


W = World()


@pytest.fixture(scope="module")
async def world(stack) -> World:
    b, m = stack.billing, stack.metering
    await set_up_builder(b, m, BUILDER, ["acme", "beta"], M1)
    day = M1.replace(day=12)
    await ingest(
        m,
        usage_events(BUILDER, "acme", day, 40, "12.3456", "triage")
        + usage_events(BUILDER, "beta", day, 15, "3.21", "billing"),
    )
    W.invoices = await close_and_pay(b, BUILDER, M2)
    assert len(W.invoices) == 2
    W.entries, W.feed_token = await billing_feed(b)
    return W


async def balance(stack, owner: str) -> dict[int, D]:
    return balances(
        await stack.payouts.GetBalance(ppb.GetBalanceRequest(payee_id=owner, currency_code="USD"))
    )


async def test_sync_applies_every_feed_entry_once_and_the_ledger_balances(stack, world):
    p = stack.payouts
    first_id = rid()
    first = await p.SyncEarnings(ppb.SyncEarningsRequest(request_id=first_id))
    assert first.applied_count == len(world.entries) > 6
    assert first.last_sequence == max(e.sequence for e in world.entries)
    again = await p.SyncEarnings(ppb.SyncEarningsRequest(request_id=rid()))
    assert again.applied_count == 0
    retry = await p.SyncEarnings(ppb.SyncEarningsRequest(request_id=first_id))
    assert retry.applied_count == first.applied_count  # the first reply, not a second read

    share = sums(world.entries)
    paid = sum((dec(i.amount_paid) for i in world.invoices), D(0))
    # The feed's three shares are exactly what the customers paid.
    assert share[MARGIN] + share[COST] + share[FEE] == paid
    assert (await balance(stack, BUILDER))[PENDING] == share[MARGIN]
    assert (await balance(stack, POOL))[PENDING] == share[COST]
    platform = await balance(stack, PLATFORM)
    assert platform[ppb.ACCOUNT_PURPOSE_FEE_REVENUE] == share[FEE]
    assert platform[ppb.ACCOUNT_PURPOSE_CLEARING] == -paid

    listed = await p.ListTransfers(ppb.ListTransfersRequest(source_id=str(world.entries[0].sequence)))
    assert [t.id for t in listed.transfers] == [f"entry:{world.entries[0].sequence}"]


async def test_earnings_stay_pending_until_the_hold_ends_then_release_once(stack, world):
    p = stack.payouts
    assert (await p.ReleaseHolds(ppb.ReleaseHoldsRequest(request_id=rid()))).released_count == 0
    assert (await balance(stack, BUILDER))[AVAILABLE] == 0
    stack.clock.offset = timedelta(days=13, hours=23)
    assert (await p.ReleaseHolds(ppb.ReleaseHoldsRequest(request_id=rid()))).released_count == 0
    stack.clock.offset = timedelta(days=14, minutes=1)
    payee_entries = [e for e in world.entries if e.kind != FEE]
    released = await p.ReleaseHolds(ppb.ReleaseHoldsRequest(request_id=rid()))
    assert released.released_count == len(payee_entries)
    assert (await p.ReleaseHolds(ppb.ReleaseHoldsRequest(request_id=rid()))).released_count == 0
    share = sums(world.entries)
    b = await balance(stack, BUILDER)
    assert (b[PENDING], b[AVAILABLE]) == (0, share[MARGIN])


async def test_credit_note_after_payment_claws_back_from_each_share(stack, world):
    b, p = stack.billing, stack.payouts
    acme = next(i for i in world.invoices if i.customer_id == "acme")
    await b.IssueCreditNote(
        bpb.IssueCreditNoteRequest(
            request_id=rid(),
            builder_id=BUILDER,
            invoice_id=acme.id,
            amount=usd("30.00"),
            reason="Outage credit",
            settlement=bpb.CREDIT_SETTLEMENT_REFUND,
        )
    )
    world.credit_entries, _ = await billing_feed(b, world.feed_token)
    claw = sums(world.credit_entries)
    assert sum(claw.values()) == D("-30.00")
    applied = await p.SyncEarnings(ppb.SyncEarningsRequest(request_id=rid()))
    assert applied.applied_count == len(world.credit_entries)
    assert (await balance(stack, BUILDER))[CLAWBACK] == claw[MARGIN]
    assert (await balance(stack, POOL))[CLAWBACK] == claw[COST]
    share = sums(world.entries)
    fee = (await balance(stack, PLATFORM))[ppb.ACCOUNT_PURPOSE_FEE_REVENUE]
    assert fee == share[FEE] + claw[FEE]


async def test_run_pays_available_less_clawbacks_once_and_carries_what_is_below_minimum(stack, world):
    p = stack.payouts
    period = str(Period.of(stack.clock()))
    # The providers' pool waits for 1,000,000.00: its balance carries over.
    await p.UpdatePayee(
        ppb.UpdatePayeeRequest(
            request_id=rid(),
            payee=ppb.Payee(payee_id=POOL, currency_code="USD", minimum_amount=usd("1000000"), hold_days=14),
        )
    )
    await p.UpdatePayee(
        ppb.UpdatePayeeRequest(
            request_id=rid(),
            payee=ppb.Payee(
                payee_id=BUILDER, currency_code="USD", minimum_amount=usd("50.00"), hold_days=14,
                method_reference="iban:DE89370400440532013000",
            ),
        )
    )  # fmt: skip
    before = await balance(stack, BUILDER)
    pool_before = await balance(stack, POOL)
    runs = await asyncio.gather(
        *(p.RunPayouts(ppb.RunPayoutsRequest(request_id=rid(), period=period)) for _ in range(8))
    )
    assert sorted(r.created_count for r in runs) == [0] * 7 + [1]
    assert {r.payout_count for r in runs} == {1}
    listed = await p.ListPayouts(ppb.ListPayoutsRequest(period=period))
    assert [x.payee_id for x in listed.payouts] == [BUILDER]
    payout = listed.payouts[0]
    # Paid = available - clawed back.
    assert dec(payout.amount) == before[AVAILABLE] + before[CLAWBACK]
    assert dec(payout.clawback_offset) == -before[CLAWBACK]
    assert payout.method_reference == "iban:DE89370400440532013000"
    assert payout.state == ppb.PAYOUT_STATE_PENDING
    after = await balance(stack, BUILDER)
    assert (after[AVAILABLE], after[CLAWBACK], after[PAID_OUT]) == (0, 0, dec(payout.amount))
    assert await balance(stack, POOL) == pool_before
    world.payout = payout


async def test_failed_payout_returns_its_amount_to_available_once(stack, world):
    p = stack.payouts
    fail_id = rid()
    failed = await p.MarkPayoutFailed(
        ppb.MarkPayoutFailedRequest(request_id=fail_id, payout_id=world.payout.id, reason="Account closed")
    )
    assert failed.payout.state == ppb.PAYOUT_STATE_FAILED
    again = await p.MarkPayoutFailed(
        ppb.MarkPayoutFailedRequest(request_id=rid(), payout_id=world.payout.id, reason="Account closed")
    )
    assert again.payout.state == ppb.PAYOUT_STATE_FAILED
    b = await balance(stack, BUILDER)
    assert (b[AVAILABLE], b[PAID_OUT]) == (dec(world.payout.amount), 0)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await p.MarkPayoutPaid(
            ppb.MarkPayoutPaidRequest(
                request_id=rid(), payout_id=world.payout.id, external_reference="bank-1"
            )
        )
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    returned = await p.ListTransfers(ppb.ListTransfersRequest(payee_id=BUILDER, source_id=world.payout.id))
    fails = [t for t in returned.transfers if t.reason == ppb.TRANSFER_REASON_PAYOUT_FAILED]
    assert len(fails) == 1 and fails[0].corrects_transfer_id == f"payout:{world.payout.id}"
    # The same period never pays the payee twice; the next period pays the returned amount.
    period = str(Period.of(stack.clock()))
    rerun = await p.RunPayouts(ppb.RunPayoutsRequest(request_id=rid(), period=period))
    assert rerun.created_count == 0


async def test_next_period_pays_the_returned_amount_and_marks_it_paid(stack, world):
    p = stack.payouts
    stack.clock.offset += timedelta(days=32)
    period = str(Period.of(stack.clock()))
    run = await p.RunPayouts(ppb.RunPayoutsRequest(request_id=rid(), period=period))
    assert run.created_count == 1 and [dec(t) for t in run.totals] == [dec(world.payout.amount)]
    payout = (await p.ListPayouts(ppb.ListPayoutsRequest(payee_id=BUILDER, period=period))).payouts[0]
    paid = await p.MarkPayoutPaid(
        ppb.MarkPayoutPaidRequest(request_id=rid(), payout_id=payout.id, external_reference="bank-77")
    )
    assert paid.payout.state == ppb.PAYOUT_STATE_PAID and paid.payout.external_reference == "bank-77"
    again = await p.MarkPayoutPaid(
        ppb.MarkPayoutPaidRequest(request_id=rid(), payout_id=payout.id, external_reference="bank-77")
    )
    assert again.payout == paid.payout  # the bank's second confirmation changes nothing
    for late in (
        p.MarkPayoutPaid(
            ppb.MarkPayoutPaidRequest(request_id=rid(), payout_id=payout.id, external_reference="b-2")
        ),
        p.MarkPayoutFailed(
            ppb.MarkPayoutFailedRequest(request_id=rid(), payout_id=payout.id, reason="Returned")
        ),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await late
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    b = await balance(stack, BUILDER)
    assert (b[AVAILABLE], b[PAID_OUT]) == (0, dec(world.payout.amount))


async def test_bank_file_lists_the_periods_payouts_and_is_stable(stack, world):
    p = stack.payouts
    period = world.payout.period
    first = await p.ExportPayoutRun(ppb.ExportPayoutRunRequest(period=period))
    second = await p.ExportPayoutRun(ppb.ExportPayoutRunRequest(period=period))
    assert first.csv == second.csv and first.payout_count == 1
    amount = dec(world.payout.amount).quantize(D("0.01"))
    assert first.csv == (
        "payee_id,method_reference,amount,currency_code,payout_id\n"
        f"agency-7,iban:DE89370400440532013000,{amount},USD,{world.payout.id}\n"
    )


async def test_statement_matches_the_invoices_to_the_cent(stack, world):
    p = stack.payouts
    period = str(Period.of(world.entries[0].create_time.ToDatetime(tzinfo=UTC)))
    s = (
        await p.GetStatement(ppb.GetStatementRequest(payee_id=BUILDER, currency_code="USD", period=period))
    ).statement
    share, claw = sums(world.entries), sums(world.credit_entries)
    paid = sum((dec(i.amount_paid) for i in world.invoices), D(0))
    assert dec(s.summary.revenue) == paid - D("30.00")
    assert dec(s.summary.provider_cost) == share[COST] + claw[COST]
    assert dec(s.summary.platform_fee) == share[FEE] + claw[FEE]
    assert dec(s.summary.earnings) == share[MARGIN] + claw[MARGIN]
    assert dec(s.summary.revenue) - dec(s.summary.provider_cost) - dec(s.summary.platform_fee) == dec(
        s.summary.earnings
    )
    assert dec(s.ledger.opening_balance) == 0
    assert dec(s.ledger.earnings) == share[MARGIN]
    assert dec(s.ledger.clawbacks) == -claw[MARGIN]
    customers = {ln.key: dec(ln.earnings) for ln in s.lines if ln.dimension == "customer"}
    assert sum(customers.values()) == dec(s.summary.earnings)
    assert set(customers) == {"acme", "beta"}
    workflows = {ln.key for ln in s.lines if ln.dimension == "workflow"}
    assert {"triage", "billing"} <= workflows
    # Every period's closing balance adds up to what the ledger owes now.
    owed, month = D(0), Period.parse(period)
    last = Period.of(stack.clock())
    while month <= last:
        st = (
            await p.GetStatement(
                ppb.GetStatementRequest(payee_id=BUILDER, currency_code="USD", period=str(month))
            )
        ).statement
        assert dec(st.ledger.opening_balance) == owed
        owed = dec(st.ledger.closing_balance)
        month = Period.of(month.end)
    now = await p.GetBalance(ppb.GetBalanceRequest(payee_id=BUILDER, currency_code="USD"))
    assert owed == dec(now.owed)
    text = (
        await p.ExportStatement(
            ppb.ExportStatementRequest(payee_id=BUILDER, currency_code="USD", period=period)
        )
    ).csv
    assert text.splitlines()[0] == "section,key,amount,currency_code"
    assert f"summary,earnings,{dec(s.summary.earnings):.2f},USD" in text.splitlines()


async def test_reconcile_is_clean_then_reports_an_unapplied_credit_to_the_cent(stack, world):
    b, p = stack.billing, stack.payouts
    invoice_period = str(Period.of(M1))
    clean = await p.Reconcile(ppb.ReconcileRequest(period=invoice_period))
    assert clean.clean, [c for c in clean.checks if not c.ok]
    names = {c.name for c in clean.checks}
    assert {"ledger_balances", "balances_match_transfers", "earnings_match_paid_invoices",
            "usage_matches_metering"} <= names  # fmt: skip
    usage = [c for c in clean.checks if c.name == "usage_matches_metering"]
    # Two invoices with two usage lines each: tickets and tokens.
    assert len(usage) == 4 and {c.expected for c in usage} >= {"40", "15"}
    runs = await p.Reconcile(ppb.ReconcileRequest(period=world.payout.period))
    assert runs.clean and any(c.name == "payouts_consume_available" for c in runs.checks)

    beta = next(i for i in world.invoices if i.customer_id == "beta")
    await b.IssueCreditNote(
        bpb.IssueCreditNoteRequest(
            request_id=rid(),
            builder_id=BUILDER,
            invoice_id=beta.id,
            amount=usd("12.34"),
            reason="Goodwill",
            settlement=bpb.CREDIT_SETTLEMENT_REFUND,
        )
    )
    dirty = await p.Reconcile(ppb.ReconcileRequest(period=invoice_period))
    assert not dirty.clean
    off = [c for c in dirty.checks if not c.ok]
    assert {c.scope for c in off} == {f"{BUILDER}/USD", f"{BUILDER}/USD invoice {beta.number}"}
    assert {c.difference for c in off} == {"12.34"}  # applied minus what billing says is kept paid
    await p.SyncEarnings(ppb.SyncEarningsRequest(request_id=rid()))
    assert (await p.Reconcile(ppb.ReconcileRequest(period=invoice_period))).clean


async def test_negative_balance_carries_over_and_later_earnings_offset_it(stack, world):
    b, p = stack.billing, stack.payouts
    await p.UpdatePayee(
        ppb.UpdatePayeeRequest(
            request_id=rid(),
            payee=ppb.Payee(payee_id=BUILDER, currency_code="USD", minimum_amount=usd("0"), hold_days=0),
        )
    )
    acme = next(i for i in world.invoices if i.customer_id == "acme")
    _, token = await billing_feed(b)
    await b.IssueCreditNote(
        bpb.IssueCreditNoteRequest(
            request_id=rid(),
            builder_id=BUILDER,
            invoice_id=acme.id,
            amount=usd("40.00"),
            reason="Refund",
            settlement=bpb.CREDIT_SETTLEMENT_REFUND,
        )
    )
    await p.SyncEarnings(ppb.SyncEarningsRequest(request_id=rid()))
    before = await p.GetBalance(ppb.GetBalanceRequest(payee_id=BUILDER, currency_code="USD"))
    assert dec(before.payable) < 0
    stack.clock.offset += timedelta(days=32)
    period = str(Period.of(stack.clock()))
    run = await p.RunPayouts(ppb.RunPayoutsRequest(request_id=rid(), period=period))
    assert run.created_count == 0  # a negative balance pays nothing and carries over
    after = await p.GetBalance(ppb.GetBalanceRequest(payee_id=BUILDER, currency_code="USD"))
    assert dec(after.payable) == dec(before.payable)

    # The next month's base fees are new earnings; they offset the clawback first.
    new_invoices = await close_and_pay(b, BUILDER, M3)
    assert len(new_invoices) == 2
    fresh, _ = await billing_feed(b, token)
    margin = sums([e for e in fresh if dec(e.amount) > 0])[MARGIN]
    await p.SyncEarnings(ppb.SyncEarningsRequest(request_id=rid()))
    stack.clock.offset += timedelta(days=32)
    period = str(Period.of(stack.clock()))
    run = await p.RunPayouts(ppb.RunPayoutsRequest(request_id=rid(), period=period))
    payout = (await p.ListPayouts(ppb.ListPayoutsRequest(payee_id=BUILDER, period=period))).payouts[0]
    assert run.created_count >= 1
    assert dec(payout.amount) == margin + dec(before.payable)
    assert dec(payout.clawback_offset) == -dec(before.payable)
    done = await p.GetBalance(ppb.GetBalanceRequest(payee_id=BUILDER, currency_code="USD"))
    assert (dec(done.payable), dec(done.owed)) == (0, 0)


async def test_cached_balances_equal_the_sum_of_the_transfers(stack, world):
    import asyncpg

    from common.db import libpq_url

    conn = await asyncpg.connect(libpq_url(stack.database_url))
    try:
        bad = await conn.fetchval(
            "WITH m AS (SELECT credit_account_id id, amount FROM transfers "
            "UNION ALL SELECT debit_account_id, -amount FROM transfers) "
            "SELECT count(*) FROM accounts a LEFT JOIN (SELECT id, sum(amount) s FROM m GROUP BY id) x "
            "ON x.id = a.id WHERE a.balance <> coalesce(x.s, 0)"
        )
        total = await conn.fetchval("SELECT sum(balance) FROM accounts")
    finally:
        await conn.close()
    assert bad == 0 and total == 0
