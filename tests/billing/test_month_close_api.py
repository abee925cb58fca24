"""An agency bills two clients through a month close, over real gRPC, PostgreSQL and metering.

Acme pays per document with page-range buckets and 100 documents included; Beta pays a base fee and
per support ticket; both pass model tokens through at cost plus 25%. The platform takes 5% of every
line. Expected amounts are computed by hand in the comments, to the cent.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal

import grpc
import pytest
from billing_kit import at, create_meters, dec, event, field_of, ingest, line_by, rid, ts, usd

from tollgate.billing.v1 import billing_pb2 as bpb

BUILDER = "agency-7"

DOCS_YAML = """
currency: USD
charges:
  - key: documents
    meter_key: documents
    display_name: Documents processed
    included_quantity: 100
    size_buckets:
      buckets:
        - {bucket: "1-10", unit_price: "0.50"}
        - {bucket: "11-50", unit_price: "1.20"}
        - {bucket: "51+", unit_price: "3.00"}
  - key: tokens
    meter_key: llm_cost
    display_name: AI model usage
    cost_plus: {markup_percent: 25}
"""


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


class World:
    plan_docs: str
    plan_support: str
    close_replies: list[bpb.ClosePeriodResponse]
    close_request_ids: list[str]
    invoices: dict[str, bpb.Invoice]


@pytest.fixture(scope="module")
async def world(stack) -> World:
    b, m = stack.billing, stack.metering
    w = World()
    await create_meters(m, BUILDER)
    await b.SetPlatformFee(
        bpb.SetPlatformFeeRequest(
            request_id=rid(),
            platform_fee=bpb.PlatformFee(builder_id=BUILDER, percent_of_line="5", percent_of_margin="0"),
        )
    )
    for cid, name in (("acme", "Acme Corp"), ("beta", "Beta Support Ltd")):
        await b.CreateCustomer(
            bpb.CreateCustomerRequest(
                request_id=rid(),
                customer=bpb.Customer(
                    id=cid,
                    builder_id=BUILDER,
                    app_id="app-1",
                    currency_code="USD",
                    display_name=name,
                    billing_email=f"billing@{cid}.example",
                ),
            )
        )
    applied = await b.ApplyPlanYaml(
        bpb.ApplyPlanYamlRequest(
            request_id=rid(), builder_id=BUILDER, plan_key="docs", display_name="Documents", yaml=DOCS_YAML
        )
    )
    assert applied.published and applied.version.version == 1
    w.plan_docs = applied.plan.id
    plan = await b.CreatePlan(
        bpb.CreatePlanRequest(
            request_id=rid(),
            plan=bpb.Plan(
                builder_id=BUILDER, key="support", display_name="Support desk", currency_code="USD"
            ),
        )
    )
    w.plan_support = plan.plan.id
    await b.PublishPlanVersion(
        bpb.PublishPlanVersionRequest(
            request_id=rid(),
            builder_id=BUILDER,
            version=bpb.PlanVersion(
                plan_id=w.plan_support,
                base_fee=usd("49.00"),
                charges=[
                    bpb.Charge(
                        key="tickets",
                        meter_key="tickets",
                        display_name="Tickets handled",
                        per_unit=bpb.PerUnitPrice(unit_price="0.80"),
                    ),
                    bpb.Charge(
                        key="tokens",
                        meter_key="llm_cost",
                        display_name="AI model usage",
                        cost_plus=bpb.CostPlusPrice(markup_percent="25"),
                    ),
                ],
            ),
        )
    )
    for cid, pid in (("acme", w.plan_docs), ("beta", w.plan_support)):
        await b.Subscribe(
            bpb.SubscribeRequest(
                request_id=rid(), builder_id=BUILDER, customer_id=cid, plan_id=pid, start_time=ts(M1)
            )
        )

    day = M1.replace(day=10)
    acme_tags = {"client": "acme", "workspace": "ops"}
    events = []
    events += [
        event(
            BUILDER,
            "acme",
            "document.processed",
            day,
            quantities={"pages": "5"},
            tags={**acme_tags, "workflow": "invoices"},
        )
        for _ in range(90)
    ]
    events += [
        event(
            BUILDER,
            "acme",
            "document.processed",
            day,
            quantities={"pages": "20"},
            tags={**acme_tags, "workflow": "contracts"},
        )
        for _ in range(30)
    ]
    events += [
        event(
            BUILDER,
            "acme",
            "document.processed",
            day,
            quantities={"pages": "80"},
            tags={**acme_tags, "workflow": "contracts"},
        )
        for _ in range(10)
    ]
    events += [
        event(
            BUILDER,
            "acme",
            "ai.request",
            day,
            quantities={"provider_cost": "3.0864"},
            tags={**acme_tags, "workflow": "contracts"},
        )
        for _ in range(4)
    ]
    events += [event(BUILDER, "beta", "ticket.handled", day, tags={"workflow": "triage"}) for _ in range(37)]
    events += [
        event(
            BUILDER,
            "beta",
            "ai.request",
            day,
            quantities={"provider_cost": "1.002"},
            tags={"workflow": "triage"},
        )
        for _ in range(2)
    ]
    await ingest(m, events)

    # 32 concurrent closes of the same month, each with its own request id.
    w.close_request_ids = [rid() for _ in range(32)]
    w.close_replies = list(
        await asyncio.gather(
            *(
                b.ClosePeriod(
                    bpb.ClosePeriodRequest(request_id=r, builder_id=BUILDER, period_end_time=ts(M2))
                )
                for r in w.close_request_ids
            )
        )
    )
    listed = await b.ListInvoices(bpb.ListInvoicesRequest(builder_id=BUILDER))
    w.invoices = {inv.customer_id: inv for inv in listed.invoices}
    return w


async def test_32_concurrent_closes_finalize_exactly_one_invoice_per_customer(world: World) -> None:
    assert sorted(world.invoices) == ["acme", "beta"]
    assert sum(r.finalized_count for r in world.close_replies) == 2
    assert {r.invoice_count for r in world.close_replies} == {2}
    # Gap-free numbering per builder, in customer order.
    assert world.invoices["acme"].number == 1
    assert world.invoices["beta"].number == 2
    assert all(inv.status == bpb.INVOICE_STATUS_FINALIZED for inv in world.invoices.values())


async def test_retry_with_same_request_id_returns_first_close_reply(stack, world: World) -> None:
    first_index = next(i for i, r in enumerate(world.close_replies) if r.finalized_count == 2)
    again = await stack.billing.ClosePeriod(
        bpb.ClosePeriodRequest(
            request_id=world.close_request_ids[first_index], builder_id=BUILDER, period_end_time=ts(M2)
        )
    )
    assert again == world.close_replies[first_index]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stack.billing.ClosePeriod(
            bpb.ClosePeriodRequest(
                request_id=world.close_request_ids[first_index], builder_id=BUILDER, period_end_time=ts(M3)
            )
        )
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    # Request ids are scoped by builder: another builder's close with the same id is its own close.
    other = await stack.billing.ClosePeriod(
        bpb.ClosePeriodRequest(
            request_id=world.close_request_ids[first_index], builder_id="someone-else", period_end_time=ts(M2)
        )
    )
    assert (other.invoice_count, other.finalized_count) == (0, 0)
    assert field_of(err.value) is None or field_of(err.value) == "request_id"


async def test_per_document_invoice_with_buckets_and_included_documents_is_exact(world: World) -> None:
    inv = world.invoices["acme"]
    assert inv.period_start_time == ts(M1) and inv.period_end_time == ts(M2)
    assert inv.HasField("usage_cutoff_time")
    docs = line_by(inv, "documents")
    # 130 documents: 90 of 1-10 pages, 30 of 11-50, 10 of 51+. The 100 included documents are used
    # bucket by bucket in plan order: all 90 small ones, then 10 of the 11-50 ones.
    # Billable: 20 x 1.20 = 24.00 and 10 x 3.00 = 30.00 -> 54.00.
    assert docs.quantity == "130"
    assert docs.included_quantity == "100"
    assert [(t.label, t.quantity, t.amount) for t in docs.tiers] == [
        ("1-10", "0", "0"),
        ("11-50", "20", "24"),
        ("51+", "10", "30"),
    ]
    assert dec(docs.amount) == Decimal("54.00")
    # No provider cost; platform 5% of 54.00 = 2.70; margin 54.00 - 2.70 = 51.30.
    assert dec(docs.split.provider_cost) == Decimal("0")
    assert dec(docs.split.platform_fee) == Decimal("2.70")
    assert dec(docs.split.builder_margin) == Decimal("51.30")
    by_tag = {(u.tag, u.value): u.quantity for u in docs.usage_by_tag}
    assert by_tag[("workflow", "invoices")] == "90"
    assert by_tag[("workflow", "contracts")] == "40"
    assert by_tag[("client", "acme")] == "130"

    tokens = line_by(inv, "tokens")
    # Provider cost 4 x 3.0864 = 12.3456; x 1.25 = 15.432 -> 15.43.
    assert tokens.quantity == "12.3456"
    assert dec(tokens.amount) == Decimal("15.43")
    # Cost rounds to 12.35; fee 5% x 15.43 = 0.7715 -> 0.77; margin 15.43 - 12.35 - 0.77 = 2.31.
    assert dec(tokens.split.provider_cost) == Decimal("12.35")
    assert dec(tokens.split.platform_fee) == Decimal("0.77")
    assert dec(tokens.split.builder_margin) == Decimal("2.31")
    # Total 54.00 + 15.43 = 69.43.
    assert dec(inv.total) == Decimal("69.43")
    assert dec(inv.amount_due) == Decimal("69.43")
    assert inv.payment_status == bpb.PAYMENT_STATUS_UNPAID


async def test_base_fee_and_ticket_invoice_rounds_half_up_per_line(world: World) -> None:
    inv = world.invoices["beta"]
    base = next(line for line in inv.lines if line.kind == bpb.LINE_KIND_BASE_FEE)
    # Base fee 49.00: fee 5% = 2.45, margin 46.55.
    assert dec(base.amount) == Decimal("49.00")
    assert (dec(base.split.platform_fee), dec(base.split.builder_margin)) == (
        Decimal("2.45"),
        Decimal("46.55"),
    )
    tickets = line_by(inv, "tickets")
    # 37 tickets x 0.80 = 29.60; fee 1.48; margin 28.12.
    assert tickets.quantity == "37"
    assert dec(tickets.amount) == Decimal("29.60")
    assert (dec(tickets.split.platform_fee), dec(tickets.split.builder_margin)) == (
        Decimal("1.48"),
        Decimal("28.12"),
    )
    tokens = line_by(inv, "tokens")
    # 2 x 1.002 = 2.004; x 1.25 = 2.505 -> 2.51 (half up, where banker's rounding would give 2.50).
    assert dec(tokens.amount) == Decimal("2.51")
    # Cost 2.004 -> 2.00; fee 5% x 2.51 = 0.1255 -> 0.13; margin 2.51 - 2.00 - 0.13 = 0.38.
    assert dec(tokens.split.provider_cost) == Decimal("2.00")
    assert dec(tokens.split.platform_fee) == Decimal("0.13")
    assert dec(tokens.split.builder_margin) == Decimal("0.38")
    # Total 49.00 + 29.60 + 2.51 = 81.11.
    assert dec(inv.total) == Decimal("81.11")


async def _earnings_of(b, invoice_id: str) -> list[bpb.EarningsEntry]:
    out, token = [], ""
    while True:
        page = await b.ListEarnings(
            bpb.ListEarningsRequest(builder_id=BUILDER, page_size=7, page_token=token)
        )
        out += [e for e in page.entries if e.invoice_id == invoice_id]
        if not page.entries:
            return out
        token = page.next_page_token


async def test_partial_then_full_payment_appends_earnings_summing_to_the_paid_amount(stack, world) -> None:
    b = stack.billing
    inv = world.invoices["beta"]
    first = await b.RecordPayment(
        bpb.RecordPaymentRequest(
            request_id=rid(),
            builder_id=BUILDER,
            invoice_id=inv.id,
            amount=usd("50.00"),
            external_reference="pi_beta_1",
        )
    )
    assert first.invoice.payment_status == bpb.PAYMENT_STATUS_PARTIALLY_PAID
    assert dec(first.invoice.amount_due) == Decimal("31.11")
    assert await _earnings_of(b, inv.id) == []

    second = await b.RecordPayment(
        bpb.RecordPaymentRequest(
            request_id=rid(),
            builder_id=BUILDER,
            invoice_id=inv.id,
            amount=usd("31.11"),
            external_reference="pi_beta_2",
        )
    )
    assert second.invoice.payment_status == bpb.PAYMENT_STATUS_PAID
    assert dec(second.invoice.amount_due) == 0
    entries = await _earnings_of(b, inv.id)
    assert sum(dec(e.amount) for e in entries) == Decimal("81.11")
    by_kind: dict[int, Decimal] = {}
    for e in entries:
        by_kind[e.kind] = by_kind.get(e.kind, Decimal(0)) + dec(e.amount)
        assert e.reason == bpb.EARNINGS_REASON_PAYMENT and e.customer_id == "beta" and e.app_id == "app-1"
    # Provider 2.00; platform 2.45 + 1.48 + 0.13 = 4.06; margin 46.55 + 28.12 + 0.38 = 75.05.
    assert by_kind == {
        bpb.EARNINGS_KIND_PROVIDER_COST: Decimal("2.00"),
        bpb.EARNINGS_KIND_PLATFORM_FEE: Decimal("4.06"),
        bpb.EARNINGS_KIND_BUILDER_MARGIN: Decimal("75.05"),
    }
    assert {e.workflow for e in entries if e.meter_key == "tickets"} == {"triage"}

    # The same external reference again (a webhook retried with a new request id) is the same payment.
    again = await b.RecordPayment(
        bpb.RecordPaymentRequest(
            request_id=rid(),
            builder_id=BUILDER,
            invoice_id=inv.id,
            amount=usd("31.11"),
            external_reference="pi_beta_2",
        )
    )
    assert again.payment.id == second.payment.id
    assert len(await _earnings_of(b, inv.id)) == len(entries)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await b.RecordPayment(
            bpb.RecordPaymentRequest(
                request_id=rid(),
                builder_id=BUILDER,
                invoice_id=inv.id,
                amount=usd("1.00"),
                external_reference="pi_beta_2",
            )
        )
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert field_of(err.value) is None or field_of(err.value) == "external_reference"
    assert "external_reference" in err.value.details()


async def test_paid_invoice_cannot_be_voided_and_a_credit_note_reverses_earnings(stack, world) -> None:
    b = stack.billing
    inv = world.invoices["beta"]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await b.VoidInvoice(
            bpb.VoidInvoiceRequest(
                request_id=rid(), builder_id=BUILDER, invoice_id=inv.id, reason="customer churned"
            )
        )
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "credit note" in err.value.details()

    before = await _earnings_of(b, inv.id)
    note = await b.IssueCreditNote(
        bpb.IssueCreditNoteRequest(
            request_id=rid(),
            builder_id=BUILDER,
            invoice_id=inv.id,
            amount=usd("10.00"),
            reason="SLA breach",
            settlement=bpb.CREDIT_SETTLEMENT_REFUND,
        )
    )
    assert dec(note.invoice.credited) == Decimal("10.00")
    # paid in full, so all of it is money received: a refund of 10.00 to pay back
    assert (note.refund.state, dec(note.refund.amount)) == (bpb.REFUND_STATE_PENDING, Decimal("10.00"))
    after = await _earnings_of(b, inv.id)
    new = after[len(before) :]
    assert new and all(e.reason == bpb.EARNINGS_REASON_CREDIT_NOTE for e in new)
    assert sum(dec(e.amount) for e in new) == Decimal("-10.00")
    # What the builder, platform and providers keep now sums to what the customer finally paid.
    assert sum(dec(e.amount) for e in after) == Decimal("71.11")


async def test_late_events_and_wallet_land_on_the_next_invoice(stack, world) -> None:
    b, m = stack.billing, stack.metering
    # Five more 20-page documents that happened in the closed month arrive after its close.
    late_day = M1.replace(day=28)
    await ingest(
        m,
        [
            event(
                BUILDER,
                "acme",
                "document.processed",
                late_day,
                quantities={"pages": "20"},
                tags={"workflow": "contracts"},
            )
            for _ in range(5)
        ],
    )
    await b.TopUpWallet(
        bpb.TopUpWalletRequest(request_id=rid(), builder_id=BUILDER, customer_id="beta", amount=usd("10.00"))
    )
    closed = await b.ClosePeriod(
        bpb.ClosePeriodRequest(request_id=rid(), builder_id=BUILDER, period_end_time=ts(M3))
    )
    assert closed.finalized_count == 2
    listed = await b.ListInvoices(bpb.ListInvoicesRequest(builder_id=BUILDER, page_size=2))
    # Newest period first; numbers continue the builder's sequence without a gap.
    assert [i.number for i in listed.invoices] == [3, 4]
    acme = next(i for i in listed.invoices if i.customer_id == "acme")
    late = line_by(acme, "documents", bpb.LINE_KIND_LATE_USAGE_ADJUSTMENT)
    # At close 20 billable 11-50 documents (24.00); now 25 (30.00): the adjustment is +6.00.
    assert late.quantity == "5"
    assert dec(late.amount) == Decimal("6.00")
    assert late.adjusted_period_start_time == ts(M1)
    # Fee 5% x 60.00 = 3.00 now vs 2.70 then: +0.30; margin 57.00 - 51.30 = +5.70.
    assert (dec(late.split.platform_fee), dec(late.split.builder_margin)) == (
        Decimal("0.30"),
        Decimal("5.70"),
    )
    # No usage this month: the usage lines are zero and the total is the adjustment.
    assert dec(acme.total) == Decimal("6.00")
    # The closed invoice itself never changes.
    old = await b.GetInvoice(bpb.GetInvoiceRequest(builder_id=BUILDER, invoice_id=world.invoices["acme"].id))
    assert dec(old.invoice.total) == Decimal("69.43")

    beta = next(i for i in listed.invoices if i.customer_id == "beta")
    # Base fee 49.00; the 10.00 wallet balance is applied at finalization: 39.00 due.
    assert dec(beta.total) == Decimal("49.00")
    assert dec(beta.wallet_applied) == Decimal("10.00")
    assert dec(beta.amount_due) == Decimal("39.00")
    wallet = await b.GetWallet(bpb.GetWalletRequest(builder_id=BUILDER, customer_id="beta"))
    assert dec(wallet.wallet.balance) == 0
    assert dec(wallet.wallet.transactions[0].amount) == Decimal("-10.00")

    # An unpaid invoice can be voided; its number stays used.
    void = await b.VoidInvoice(
        bpb.VoidInvoiceRequest(request_id=rid(), builder_id=BUILDER, invoice_id=acme.id, reason="goodwill")
    )
    assert void.invoice.status == bpb.INVOICE_STATUS_VOID and void.invoice.number == acme.number
    assert dec(void.invoice.amount_due) == 0
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await b.RecordPayment(
            bpb.RecordPaymentRequest(
                request_id=rid(),
                builder_id=BUILDER,
                invoice_id=acme.id,
                amount=usd("6.00"),
                external_reference="pi_void",
            )
        )
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
