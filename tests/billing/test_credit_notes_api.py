"""Credit notes that move money, over real gRPC, PostgreSQL and metering: what was still due is
reduced first; the rest (money already received) goes to the customer's wallet or becomes a refund;
the earnings feed reverses the credited split exactly either way.

Every scenario has its own builder with one customer on one plan, closed for one month:
base fee 80.00 plus model usage at cost + 25% (four requests of 8.00 provider cost: 32.00 -> 40.00),
platform fee 10% of each line. The invoice is 120.00 and its lines split (by hand):

    line 1, base fee 80.00:  provider 0.00,  platform 8.00, margin 72.00
    line 2, usage    40.00:  provider 32.00, platform 4.00, margin  4.00

A credit is allocated over those six parts by largest remainder in cents (domain allocate_credit):
30.00 is a quarter of each part exactly; 20.00 is a sixth: 0, 1.333.., 12, 5.333.., 0.666.., 0.666..
floored to 0, 1.33, 12.00, 5.33, 0.66, 0.66 (19.98) and the two cents left go to the largest
remainders (the two 0.666..): 0, 1.33, 12.00, 5.33, 0.67, 0.67.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal

import grpc
import pytest
from billing_kit import at, create_meters, dec, event, field_of, ingest, rid, ts, usd

from tests.conftest import auth_metadata
from tollgate.billing.v1 import billing_pb2 as bpb

D = Decimal


def _months() -> tuple[datetime, datetime, datetime]:
    """Two whole months that have ended: (first start, second start, second end)."""
    now = datetime.now(UTC)
    y, m = now.year, now.month - 3
    if m <= 0:
        y, m = y - 1, m + 12
    first = at(y, m)
    second = at(y + (m == 12), m % 12 + 1)
    third = at(second.year + (second.month == 12), second.month % 12 + 1)
    return first, second, third


M1, M2, M3 = _months()
CUSTOMER = "c1"
# (line position, earnings kind) -> the line's split part
SPLIT = {
    (1, bpb.EARNINGS_KIND_PLATFORM_FEE): D("8.00"),
    (1, bpb.EARNINGS_KIND_BUILDER_MARGIN): D("72.00"),
    (2, bpb.EARNINGS_KIND_PROVIDER_COST): D("32.00"),
    (2, bpb.EARNINGS_KIND_PLATFORM_FEE): D("4.00"),
    (2, bpb.EARNINGS_KIND_BUILDER_MARGIN): D("4.00"),
}


async def _invoice(stack, builder: str) -> bpb.Invoice:
    """A new builder with the plan above, closed for M1: its customer's 120.00 invoice."""
    b = stack.billing
    await create_meters(stack.metering, builder)
    await b.SetPlatformFee(
        bpb.SetPlatformFeeRequest(
            request_id=rid(), platform_fee=bpb.PlatformFee(builder_id=builder, percent_of_line="10")
        )
    )
    plan = await b.CreatePlan(
        bpb.CreatePlanRequest(
            request_id=rid(),
            plan=bpb.Plan(builder_id=builder, key="desk", display_name="Desk", currency_code="USD"),
        )
    )
    await b.PublishPlanVersion(
        bpb.PublishPlanVersionRequest(
            request_id=rid(),
            builder_id=builder,
            version=bpb.PlanVersion(
                plan_id=plan.plan.id,
                base_fee=usd("80.00"),
                charges=[
                    bpb.Charge(
                        key="tokens",
                        meter_key="llm_cost",
                        display_name="AI model usage",
                        cost_plus=bpb.CostPlusPrice(markup_percent="25"),
                    )
                ],
            ),
        )
    )
    await b.CreateCustomer(
        bpb.CreateCustomerRequest(
            request_id=rid(),
            customer=bpb.Customer(
                id=CUSTOMER, builder_id=builder, app_id="app-1", currency_code="USD", display_name="C"
            ),
        )
    )
    await b.Subscribe(
        bpb.SubscribeRequest(
            request_id=rid(),
            builder_id=builder,
            customer_id=CUSTOMER,
            plan_id=plan.plan.id,
            start_time=ts(M1),
        )
    )
    day = M1.replace(day=5)
    await ingest(
        stack.metering,
        [
            event(
                builder,
                CUSTOMER,
                "ai.request",
                day,
                quantities={"provider_cost": "8.00"},
                tags={"workflow": "triage"},
            )
            for _ in range(4)
        ],
    )
    await b.ClosePeriod(bpb.ClosePeriodRequest(request_id=rid(), builder_id=builder, period_end_time=ts(M2)))
    (invoice,) = (await b.ListInvoices(bpb.ListInvoicesRequest(builder_id=builder))).invoices
    assert dec(invoice.total) == D("120.00")
    assert [
        (dec(x.amount), dec(x.split.provider_cost), dec(x.split.platform_fee)) for x in invoice.lines
    ] == [
        (D("80.00"), 0, D("8.00")),
        (D("40.00"), D("32.00"), D("4.00")),
    ]
    return invoice


async def _pay(stack, builder: str, invoice_id: str, amount: str) -> bpb.RecordPaymentResponse:
    return await stack.billing.RecordPayment(
        bpb.RecordPaymentRequest(
            request_id=rid(),
            builder_id=builder,
            invoice_id=invoice_id,
            amount=usd(amount),
            external_reference=rid(),
        )
    )


def _credit(builder: str, invoice_id: str, amount: str, settlement: int = 0) -> bpb.IssueCreditNoteRequest:
    return bpb.IssueCreditNoteRequest(
        request_id=rid(),
        builder_id=builder,
        invoice_id=invoice_id,
        amount=usd(amount),
        reason="documents re-run for free",
        settlement=settlement,
    )


async def _earnings(stack, builder: str, invoice_id: str) -> list[bpb.EarningsEntry]:
    out, token = [], ""
    while True:
        page = await stack.billing.ListEarnings(bpb.ListEarningsRequest(builder_id=builder, page_token=token))
        out += [e for e in page.entries if e.invoice_id == invoice_id]
        token = page.next_page_token  # the feed's cursor, never empty: an empty page is the end
        if not page.entries:
            return out


def _by_part(entries: list[bpb.EarningsEntry], reason: int) -> dict[tuple[int, int], Decimal]:
    parts: dict[tuple[int, int], Decimal] = defaultdict(Decimal)
    for e in entries:
        if e.reason == reason:
            parts[(e.line_position, e.kind)] += dec(e.amount)
    return dict(parts)


async def _wallet(stack, builder: str) -> bpb.Wallet:
    reply = await stack.billing.GetWallet(bpb.GetWalletRequest(builder_id=builder, customer_id=CUSTOMER))
    return reply.wallet


async def test_a_credit_on_an_unpaid_invoice_reduces_what_is_due_and_the_payment_earns_the_rest(
    stack,
) -> None:
    builder = "cn-unpaid"
    invoice = await _invoice(stack, builder)
    reply = await stack.billing.IssueCreditNote(_credit(builder, invoice.id, "20.00"))
    note = reply.credit_note
    assert note.settlement == bpb.CREDIT_SETTLEMENT_UNSPECIFIED
    assert (dec(note.due_reduced), dec(note.wallet_credited), dec(note.refunded)) == (D("20.00"), 0, 0)
    assert note.refund_id == "" and not reply.HasField("refund")
    assert (dec(reply.invoice.credited), dec(reply.invoice.amount_due)) == (D("20.00"), D("100.00"))
    assert reply.invoice.payment_status == bpb.PAYMENT_STATUS_UNPAID
    # a settlement asked for with nothing to settle is not applied
    again = await stack.billing.IssueCreditNote(
        _credit(builder, invoice.id, "0.01", bpb.CREDIT_SETTLEMENT_REFUND)
    )
    assert again.credit_note.settlement == bpb.CREDIT_SETTLEMENT_UNSPECIFIED
    assert dec(again.invoice.amount_due) == D("99.99")
    assert await _earnings(stack, builder, invoice.id) == []  # nothing paid, nothing earned

    paid = await _pay(stack, builder, invoice.id, "99.99")
    assert paid.invoice.payment_status == bpb.PAYMENT_STATUS_PAID and dec(paid.invoice.amount_due) == 0
    assert len((await _wallet(stack, builder)).transactions) == 0
    listed = await stack.billing.ListRefunds(bpb.ListRefundsRequest(builder_id=builder))
    assert list(listed.refunds) == []
    entries = await _earnings(stack, builder, invoice.id)
    assert sum(dec(e.amount) for e in entries) == D("99.99")
    # each part is the line's split less the credits' allocation (20.00 as in the module docstring,
    # then 0.01 to the largest remaining part, line 1's margin 60.00)
    assert _by_part(entries, bpb.EARNINGS_REASON_PAYMENT) == {
        (1, bpb.EARNINGS_KIND_PLATFORM_FEE): D("8.00") - D("1.33"),
        (1, bpb.EARNINGS_KIND_BUILDER_MARGIN): D("72.00") - D("12.00") - D("0.01"),
        (2, bpb.EARNINGS_KIND_PROVIDER_COST): D("32.00") - D("5.33"),
        (2, bpb.EARNINGS_KIND_PLATFORM_FEE): D("4.00") - D("0.67"),
        (2, bpb.EARNINGS_KIND_BUILDER_MARGIN): D("4.00") - D("0.67"),
    }


async def test_a_wallet_credit_on_a_paid_invoice_is_applied_to_the_next_invoice(stack) -> None:
    builder = "cn-wallet"
    invoice = await _invoice(stack, builder)
    await _pay(stack, builder, invoice.id, "120.00")
    request = _credit(builder, invoice.id, "30.00", bpb.CREDIT_SETTLEMENT_WALLET)
    reply = await stack.billing.IssueCreditNote(request)
    note = reply.credit_note
    assert note.settlement == bpb.CREDIT_SETTLEMENT_WALLET
    assert (dec(note.due_reduced), dec(note.wallet_credited), dec(note.refunded)) == (0, D("30.00"), 0)
    assert dec(reply.invoice.credited) == D("30.00") and dec(reply.invoice.amount_due) == 0
    wallet = await _wallet(stack, builder)
    assert dec(wallet.balance) == D("30.00")
    assert [(dec(t.amount), t.invoice_id) for t in wallet.transactions] == [(D("30.00"), invoice.id)]

    # a retry returns the first note and moves nothing again; the id with another body is refused
    assert await stack.billing.IssueCreditNote(request) == reply
    assert dec((await _wallet(stack, builder)).balance) == D("30.00")
    other = bpb.IssueCreditNoteRequest()
    other.CopyFrom(request)
    other.settlement = bpb.CREDIT_SETTLEMENT_REFUND
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stack.billing.IssueCreditNote(other)
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS

    # the earnings: 120.00 paid, then exactly a quarter of every part reversed
    entries = await _earnings(stack, builder, invoice.id)
    assert _by_part(entries, bpb.EARNINGS_REASON_PAYMENT) == SPLIT
    reversed_ = _by_part(entries, bpb.EARNINGS_REASON_CREDIT_NOTE)
    assert reversed_ == {part: -amount / 4 for part, amount in SPLIT.items()}
    assert sum(reversed_.values()) == D("-30.00")
    assert sum(dec(e.amount) for e in entries) == D("90.00")

    # the next month: base fee 80.00, no usage; the wallet's 30.00 is applied at finalization
    await stack.billing.ClosePeriod(
        bpb.ClosePeriodRequest(request_id=rid(), builder_id=builder, period_end_time=ts(M3))
    )
    invoices = (await stack.billing.ListInvoices(bpb.ListInvoicesRequest(builder_id=builder))).invoices
    (following,) = [i for i in invoices if i.id != invoice.id]
    assert (dec(following.total), dec(following.wallet_applied), dec(following.amount_due)) == (
        D("80.00"),
        D("30.00"),
        D("50.00"),
    )
    assert dec((await _wallet(stack, builder)).balance) == 0


async def test_refunds_are_recorded_pending_then_marked_paid_or_failed_once(stack) -> None:
    builder = "cn-refund"
    b = stack.billing
    invoice = await _invoice(stack, builder)
    await _pay(stack, builder, invoice.id, "120.00")
    first = await b.IssueCreditNote(_credit(builder, invoice.id, "30.00", bpb.CREDIT_SETTLEMENT_REFUND))
    note, refund = first.credit_note, first.refund
    assert note.settlement == bpb.CREDIT_SETTLEMENT_REFUND
    assert (dec(note.due_reduced), dec(note.wallet_credited), dec(note.refunded)) == (0, 0, D("30.00"))
    assert note.refund_id == refund.id != ""
    assert (refund.state, dec(refund.amount), refund.amount.currency_code) == (
        bpb.REFUND_STATE_PENDING,
        D("30.00"),
        "USD",
    )
    assert (refund.customer_id, refund.invoice_id, refund.credit_note_id) == (CUSTOMER, invoice.id, note.id)
    assert dec((await _wallet(stack, builder)).balance) == 0

    # PAID needs the processor's reference
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await b.MarkRefund(
            bpb.MarkRefundRequest(
                request_id=rid(), builder_id=builder, refund_id=refund.id, state=bpb.REFUND_STATE_PAID
            )
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_of(err.value) == "external_reference"
    # a builder cannot say money left: MarkRefund is the operator's
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await b.MarkRefund(
            bpb.MarkRefundRequest(
                request_id=rid(),
                builder_id=builder,
                refund_id=refund.id,
                state=bpb.REFUND_STATE_PAID,
                external_reference="re_1",
            ),
            metadata=auth_metadata("builder", builder),
        )
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    mark = bpb.MarkRefundRequest(
        request_id=rid(),
        builder_id=builder,
        refund_id=refund.id,
        state=bpb.REFUND_STATE_PAID,
        external_reference="re_1",
    )
    paid = (await b.MarkRefund(mark)).refund
    assert (paid.state, paid.external_reference, paid.failure_reason) == (bpb.REFUND_STATE_PAID, "re_1", "")
    assert (await b.MarkRefund(mark)).refund == paid  # a retry answers the first reply

    second = await b.IssueCreditNote(_credit(builder, invoice.id, "40.00", bpb.CREDIT_SETTLEMENT_REFUND))
    assert dec(second.refund.amount) == D("40.00") and second.refund.state == bpb.REFUND_STATE_PENDING
    failed = (
        await b.MarkRefund(
            bpb.MarkRefundRequest(
                request_id=rid(),
                builder_id=builder,
                refund_id=second.refund.id,
                state=bpb.REFUND_STATE_FAILED,
                failure_reason="card closed",
            )
        )
    ).refund
    assert (failed.state, failed.failure_reason) == (bpb.REFUND_STATE_FAILED, "card closed")
    wallet = await _wallet(stack, builder)
    assert dec(wallet.balance) == D("40.00")
    assert [(dec(t.amount), t.invoice_id) for t in wallet.transactions] == [(D("40.00"), invoice.id)]
    for refund_id in (second.refund.id, refund.id):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await b.MarkRefund(
                bpb.MarkRefundRequest(
                    request_id=rid(),
                    builder_id=builder,
                    refund_id=refund_id,
                    state=bpb.REFUND_STATE_PAID,
                    external_reference="re_2",
                )
            )
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION, refund_id
        assert "only a PENDING refund" in err.value.details()
    assert dec((await _wallet(stack, builder)).balance) == D("40.00")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await b.MarkRefund(
            bpb.MarkRefundRequest(
                request_id=rid(),
                builder_id="someone-else",
                refund_id=refund.id,
                state=bpb.REFUND_STATE_PAID,
                external_reference="re_3",
            )
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND

    # listed newest first, by the builder itself, filtered and paged
    as_builder = auth_metadata("builder", builder)
    listed = await b.ListRefunds(bpb.ListRefundsRequest(builder_id=builder), metadata=as_builder)
    assert [(r.id, r.state) for r in listed.refunds] == [
        (second.refund.id, bpb.REFUND_STATE_FAILED),
        (refund.id, bpb.REFUND_STATE_PAID),
    ]
    assert listed.refunds[1] == paid and listed.next_page_token == ""
    page = await b.ListRefunds(bpb.ListRefundsRequest(builder_id=builder, page_size=1))
    assert [r.id for r in page.refunds] == [second.refund.id] and page.next_page_token
    page = await b.ListRefunds(
        bpb.ListRefundsRequest(builder_id=builder, page_size=1, page_token=page.next_page_token)
    )
    assert [r.id for r in page.refunds] == [refund.id] and page.next_page_token == ""
    only_paid = await b.ListRefunds(bpb.ListRefundsRequest(builder_id=builder, state=bpb.REFUND_STATE_PAID))
    assert [r.id for r in only_paid.refunds] == [refund.id]
    nobody = await b.ListRefunds(bpb.ListRefundsRequest(builder_id=builder, customer_id="c2"))
    assert list(nobody.refunds) == []

    # either way the feed reversed both credits' splits: 120.00 - 70.00
    entries = await _earnings(stack, builder, invoice.id)
    assert sum(dec(e.amount) for e in entries) == D("50.00")
    assert sum(dec(e.amount) for e in entries if e.reason == bpb.EARNINGS_REASON_CREDIT_NOTE) == D("-70.00")


async def test_a_credit_on_a_partly_paid_invoice_reduces_the_due_first_then_credits_the_wallet(stack) -> None:
    builder = "cn-partial"
    invoice = await _invoice(stack, builder)
    await _pay(stack, builder, invoice.id, "50.00")
    reply = await stack.billing.IssueCreditNote(
        _credit(builder, invoice.id, "100.00", bpb.CREDIT_SETTLEMENT_WALLET)
    )
    note = reply.credit_note
    assert note.settlement == bpb.CREDIT_SETTLEMENT_WALLET
    assert (dec(note.due_reduced), dec(note.wallet_credited), dec(note.refunded)) == (
        D("70.00"),
        D("30.00"),
        0,
    )
    assert (dec(reply.invoice.amount_due), reply.invoice.payment_status) == (0, bpb.PAYMENT_STATUS_PAID)
    assert dec((await _wallet(stack, builder)).balance) == D("30.00")
    # the customer keeps 20.00 of what it paid: the feed earns exactly that, the split less the credit
    entries = await _earnings(stack, builder, invoice.id)
    assert {e.reason for e in entries} == {bpb.EARNINGS_REASON_PAYMENT}
    assert sum(dec(e.amount) for e in entries) == D("20.00")


async def test_a_credit_beyond_what_is_due_needs_a_settlement_and_writes_nothing_without_one(stack) -> None:
    builder = "cn-nosettle"
    invoice = await _invoice(stack, builder)
    await _pay(stack, builder, invoice.id, "50.00")
    request = _credit(builder, invoice.id, "70.01")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stack.billing.IssueCreditNote(request)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_of(err.value) == "settlement"
    assert "0.01" in err.value.details()
    after = (
        await stack.billing.GetInvoice(bpb.GetInvoiceRequest(builder_id=builder, invoice_id=invoice.id))
    ).invoice
    assert (dec(after.credited), dec(after.amount_due)) == (0, D("70.00"))
    # the refused request id was not used up: the same id with a settlement goes through
    request.settlement = bpb.CREDIT_SETTLEMENT_REFUND
    reply = await stack.billing.IssueCreditNote(request)
    assert (dec(reply.credit_note.due_reduced), dec(reply.credit_note.refunded)) == (D("70.00"), D("0.01"))
    # more than remains creditable is refused, whatever the settlement
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stack.billing.IssueCreditNote(
            _credit(builder, invoice.id, "50.00", bpb.CREDIT_SETTLEMENT_WALLET)
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and field_of(err.value) == "amount"
