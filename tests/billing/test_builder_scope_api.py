"""Request ids are scoped by builder: two builders sending the same request id to every mutating RPC
each get their own work done, and a payment's external reference is unique per builder only."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
import pytest
from billing_kit import at, dec, rid, ts, usd

from tollgate.billing.v1 import billing_pb2 as bpb

A, B = "agency-scope-a", "agency-scope-b"
SHARED = "req-0001"  # one request id both builders use for every step
YAML = 'currency: USD\nbase_fee: "{fee}"\n'


def _months() -> tuple[datetime, datetime]:
    now = datetime.now(UTC)
    y, m = now.year, now.month - 3
    if m <= 0:
        y, m = y - 1, m + 12
    start = at(y, m)
    return start, at(y + (m == 12), m % 12 + 1)


M1, M2 = _months()


async def _lifecycle(b, builder: str, fee: str) -> dict[str, object]:
    """Every mutating RPC once, each with request id SHARED; returns what each step answered."""
    out: dict[str, object] = {}
    out["customer"] = await b.CreateCustomer(
        bpb.CreateCustomerRequest(
            request_id=SHARED,
            customer=bpb.Customer(
                id="c1", builder_id=builder, app_id="app", currency_code="USD", display_name=builder
            ),
        )
    )
    out["plan"] = await b.CreatePlan(
        bpb.CreatePlanRequest(
            request_id=SHARED,
            plan=bpb.Plan(builder_id=builder, key="spare", display_name="Spare", currency_code="USD"),
        )
    )
    out["published"] = await b.PublishPlanVersion(
        bpb.PublishPlanVersionRequest(
            request_id=SHARED,
            builder_id=builder,
            version=bpb.PlanVersion(plan_id=out["plan"].plan.id, base_fee=usd("1.00")),
        )
    )
    out["applied"] = await b.ApplyPlanYaml(
        bpb.ApplyPlanYamlRequest(
            request_id=SHARED, builder_id=builder, plan_key="flat", yaml=YAML.format(fee=fee)
        )
    )
    out["fee"] = await b.SetPlatformFee(
        bpb.SetPlatformFeeRequest(
            request_id=SHARED, platform_fee=bpb.PlatformFee(builder_id=builder, percent_of_line="10")
        )
    )
    out["subscription"] = await b.Subscribe(
        bpb.SubscribeRequest(
            request_id=SHARED,
            builder_id=builder,
            customer_id="c1",
            plan_id=out["applied"].plan.id,
            start_time=ts(M1),
        )
    )
    out["change"] = await b.ChangePlan(
        bpb.ChangePlanRequest(
            request_id=SHARED, builder_id=builder, customer_id="c1", plan_id=out["plan"].plan.id
        )
    )
    out["wallet"] = await b.TopUpWallet(
        bpb.TopUpWalletRequest(request_id=SHARED, builder_id=builder, customer_id="c1", amount=usd("2.00"))
    )
    out["close"] = await b.ClosePeriod(
        bpb.ClosePeriodRequest(request_id=SHARED, builder_id=builder, period_end_time=ts(M2))
    )
    invoices = await b.ListInvoices(bpb.ListInvoicesRequest(builder_id=builder))
    invoice = invoices.invoices[0]
    out["credit"] = await b.IssueCreditNote(
        bpb.IssueCreditNoteRequest(
            request_id=SHARED,
            builder_id=builder,
            invoice_id=invoice.id,
            amount=usd("1.00"),
            reason="goodwill",
        )
    )
    # The same processor reference at both builders: unique per builder, so both are recorded.
    out["payment"] = await b.RecordPayment(
        bpb.RecordPaymentRequest(
            request_id=SHARED,
            builder_id=builder,
            invoice_id=invoice.id,
            amount=usd("1.00"),
            external_reference="ch_shared_1",
        )
    )
    return out


async def test_two_builders_with_one_request_id_each_get_their_own_result(stack) -> None:
    b = stack.billing
    # A's base fee is 10.00 and B's 20.00, so a reply leaking across builders shows in every amount.
    got_a = await _lifecycle(b, A, "10.00")
    got_b = await _lifecycle(b, B, "20.00")

    assert got_a["customer"].customer.builder_id == A
    assert got_b["customer"].customer.builder_id == B
    assert got_a["plan"].plan.id != got_b["plan"].plan.id
    assert got_b["published"].version.plan_id == got_b["plan"].plan.id
    assert got_b["applied"].plan.builder_id == B and got_b["applied"].published
    assert got_b["fee"].platform_fee.builder_id == B
    assert got_b["subscription"].subscription.plan_id == got_b["applied"].plan.id
    assert got_b["change"].subscription.next_plan_id == got_b["plan"].plan.id
    assert dec(got_b["wallet"].wallet.balance) == 2 and got_b["wallet"].wallet.builder_id == B
    # Each close finalized its own builder's one invoice: 10.00 and 20.00 (2.00 from each wallet).
    assert (got_a["close"].finalized_count, got_b["close"].finalized_count) == (1, 1)
    assert [dec(t) for t in got_a["close"].totals] == [10]
    assert [dec(t) for t in got_b["close"].totals] == [20]
    inv_a, inv_b = got_a["payment"].invoice, got_b["payment"].invoice
    assert inv_a.builder_id == A and inv_b.builder_id == B
    # 10.00 - 2.00 wallet - 1.00 credit - 1.00 paid = 6.00; 20.00 - 2.00 - 1.00 - 1.00 = 16.00.
    assert (dec(inv_a.amount_due), dec(inv_b.amount_due)) == (6, 16)
    assert got_a["payment"].payment.id != got_b["payment"].payment.id
    assert got_b["payment"].payment.external_reference == "ch_shared_1"
    assert got_a["credit"].credit_note.id != got_b["credit"].credit_note.id

    # The reference reused within builder A with another amount is ALREADY_EXISTS, nothing recorded.
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await b.RecordPayment(
            bpb.RecordPaymentRequest(
                request_id=rid(),
                builder_id=A,
                invoice_id=inv_a.id,
                amount=usd("2.00"),
                external_reference="ch_shared_1",
            )
        )
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    after = await b.GetInvoice(bpb.GetInvoiceRequest(builder_id=A, invoice_id=inv_a.id))
    assert dec(after.invoice.amount_paid) == 1

    # VoidInvoice: A credits what remains (9.00) and voids with SHARED; B's void with SHARED is B's
    # own request, refused on B's own state (a payment, nothing credited), not answered with A's void.
    await b.IssueCreditNote(
        bpb.IssueCreditNoteRequest(
            request_id=rid(),
            builder_id=A,
            invoice_id=inv_a.id,
            amount=usd("9.00"),
            reason="refund",
            # 6.00 was still due; the 3.00 the customer had paid (2.00 wallet, 1.00 payment) goes back
            settlement=bpb.CREDIT_SETTLEMENT_WALLET,
        )
    )
    void_a = await b.VoidInvoice(
        bpb.VoidInvoiceRequest(request_id=SHARED, builder_id=A, invoice_id=inv_a.id, reason="test")
    )
    assert void_a.invoice.status == bpb.INVOICE_STATUS_VOID
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await b.VoidInvoice(
            bpb.VoidInvoiceRequest(request_id=SHARED, builder_id=B, invoice_id=inv_b.id, reason="test")
        )
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert inv_b.id in err.value.details()


async def test_a_retry_within_one_builder_still_returns_the_first_reply(stack) -> None:
    b = stack.billing
    request = bpb.CreateCustomerRequest(
        request_id="retry-1",
        customer=bpb.Customer(id="r1", builder_id=A, app_id="app", currency_code="USD", display_name="R"),
    )
    first = await b.CreateCustomer(request)
    assert await b.CreateCustomer(request) == first
    other = bpb.CreateCustomerRequest()
    other.CopyFrom(request)
    other.customer.id = "r2"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await b.CreateCustomer(other)
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    # The same id and body from builder B is B's own first request: created, not ALREADY_EXISTS.
    other.customer.id = "r1"
    other.customer.builder_id = B
    created = await b.CreateCustomer(other)
    assert created.customer.builder_id == B


async def test_replaying_every_mutation_returns_each_first_reply_exactly(stack) -> None:
    """Every reply type goes through the stored-reply codec (typed view -> JSON -> typed view): the
    whole lifecycle sent again with the same request ids answers exactly what it answered first,
    and changes nothing (the credit note and the payment are not applied twice)."""
    b = stack.billing
    builder = "agency-scope-replay"
    first = await _lifecycle(b, builder, "30.00")
    again = await _lifecycle(b, builder, "30.00")
    assert again.keys() == first.keys()
    for step, reply in first.items():
        assert again[step] == reply, step
    invoice = first["payment"].invoice
    now = await b.GetInvoice(bpb.GetInvoiceRequest(builder_id=builder, invoice_id=invoice.id))
    # 30.00 - 2.00 wallet - 1.00 credit - 1.00 paid = 26.00, once.
    assert (dec(now.invoice.credited), dec(now.invoice.amount_paid), dec(now.invoice.amount_due)) == (
        1,
        1,
        26,
    )
