"""Late usage of any closed month, over real gRPC, PostgreSQL and metering (services/billing/README.md,
"Late usage").

One customer on a graduated plan closes five months in a row; events of the months two and three
months back arrive after their closes. Every amount is worked by hand in the comments, to the cent.

The plan: documents, graduated: the first 10 at 2.00, the 11th to the 30th at 1.00, beyond at 0.50;
tickets at 0.80 each. No platform fee, no base fee.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import asyncpg
import pytest
from billing_kit import at, create_meters, dec, event, ingest, rid, ts

from common.db import libpq_url
from tollgate.billing.v1 import billing_pb2 as bpb

BUILDER = "late-months-1"
LATE = bpb.LINE_KIND_LATE_USAGE_ADJUSTMENT


def _months(count: int) -> list[datetime]:
    """The starts of `count` + 1 consecutive months, the last one being the current month."""
    now = datetime.now(UTC)
    out = []
    y, m = now.year, now.month
    for _ in range(count + 1):
        out.append(at(y, m))
        y, m = (y - 1, 12) if m == 1 else (y, m - 1)
    return out[::-1]


# M[0] .. M[5] are six whole months that have ended; M[6] is the current month.
M = _months(6)


async def _close(b, end: datetime) -> bpb.Invoice:
    closed = await b.ClosePeriod(
        bpb.ClosePeriodRequest(request_id=rid(), builder_id=BUILDER, period_end_time=ts(end))
    )
    assert closed.finalized_count == 1
    listed = await b.ListInvoices(
        bpb.ListInvoicesRequest(builder_id=BUILDER, customer_id="acme", page_size=1)
    )
    invoice = listed.invoices[0]
    assert invoice.period_end_time == ts(end)
    return invoice


def _late_lines(invoice: bpb.Invoice) -> list[tuple[str, int, str, Decimal]]:
    """(charge, adjusted month start, quantity, amount) of every late-usage line, in invoice order."""
    return [
        (line.charge_key, line.adjusted_period_start_time.seconds, line.quantity, dec(line.amount))
        for line in invoice.lines
        if line.kind == LATE
    ]


def _docs(when: datetime, n: int) -> list:
    return [event(BUILDER, "acme", "document.processed", when, quantities={"pages": "3"}) for _ in range(n)]


def _tickets(when: datetime, n: int) -> list:
    return [event(BUILDER, "acme", "ticket.handled", when) for _ in range(n)]


@pytest.fixture(scope="module")
async def closed(stack) -> dict[int, bpb.Invoice]:
    """M[0] to M[3] closed with on-time usage; returns their invoices by month index."""
    b, m = stack.billing, stack.metering
    await create_meters(m, BUILDER)
    await b.CreateCustomer(
        bpb.CreateCustomerRequest(
            request_id=rid(),
            customer=bpb.Customer(
                id="acme",
                builder_id=BUILDER,
                app_id="app-1",
                currency_code="USD",
                display_name="Acme",
                billing_email="billing@acme.example",
            ),
        )
    )
    plan = await b.CreatePlan(
        bpb.CreatePlanRequest(
            request_id=rid(),
            plan=bpb.Plan(builder_id=BUILDER, key="graduated", display_name="Graduated", currency_code="USD"),
        )
    )
    await b.PublishPlanVersion(
        bpb.PublishPlanVersionRequest(
            request_id=rid(),
            builder_id=BUILDER,
            version=bpb.PlanVersion(
                plan_id=plan.plan.id,
                charges=[
                    bpb.Charge(
                        key="documents",
                        meter_key="documents",
                        display_name="Documents",
                        graduated=bpb.GraduatedPrice(
                            tiers=[
                                bpb.Tier(up_to="10", unit_price="2.00"),
                                bpb.Tier(up_to="30", unit_price="1.00"),
                                bpb.Tier(unit_price="0.50"),
                            ]
                        ),
                    ),
                    bpb.Charge(
                        key="tickets",
                        meter_key="tickets",
                        display_name="Tickets",
                        per_unit=bpb.PerUnitPrice(unit_price="0.80"),
                    ),
                ],
            ),
        )
    )
    await b.Subscribe(
        bpb.SubscribeRequest(
            request_id=rid(),
            builder_id=BUILDER,
            customer_id="acme",
            plan_id=plan.plan.id,
            start_time=ts(M[0]),
        )
    )
    # On time: 4 documents in M[0], 8 in M[1], 25 in M[2] and 12 in M[3]; 5 tickets in M[2].
    await ingest(
        m,
        _docs(M[0].replace(day=3), 4)
        + _docs(M[1].replace(day=5), 8)
        + _docs(M[2].replace(day=9), 25)
        + _tickets(M[2].replace(day=9), 5)
        + _docs(M[3].replace(day=2), 12),
    )
    invoices = {}
    for i in range(4):
        invoices[i] = await _close(b, M[i + 1])
    # 8 documents: 8 x 2.00 = 16.00.
    assert dec(invoices[1].total) == Decimal("16.00")
    # 25 documents: 10 x 2.00 + 15 x 1.00 = 35.00; 5 tickets x 0.80 = 4.00; 39.00.
    assert dec(invoices[2].total) == Decimal("39.00")
    assert _late_lines(invoices[3]) == []
    return invoices


async def test_late_usage_two_and_three_months_back_lands_on_the_next_invoice_once(stack, closed) -> None:
    b, m = stack.billing, stack.metering
    # M[4] on time: 3 documents. Then, after M[3]'s close, events of M[1] (three months before M[4])
    # and M[2] (two months before) arrive.
    await ingest(
        m,
        _docs(M[4].replace(day=6), 3)
        + _docs(M[1].replace(day=20), 5)
        + _docs(M[2].replace(day=28), 10)
        + _tickets(M[2].replace(day=28), 3),
    )

    # The preview of M[4] shows what its close will bill.
    preview = await b.PreviewInvoice(
        bpb.PreviewInvoiceRequest(builder_id=BUILDER, customer_id="acme", as_of_time=ts(M[4].replace(day=15)))
    )
    expected = [
        # M[1]: billed 8 (16.00); now 13 = 10 x 2.00 + 3 x 1.00 = 23.00: +7.00, the 5 late documents at
        # the marginal tiers (2 at 2.00, 3 at 1.00).
        ("documents", int(M[1].timestamp()), "5", Decimal("7.00")),
        # M[2]: billed 25 (35.00); now 35 = 10 x 2.00 + 20 x 1.00 + 5 x 0.50 = 42.50: +7.50 (5 at 1.00,
        # 5 at 0.50).
        ("documents", int(M[2].timestamp()), "10", Decimal("7.50")),
        # M[2]: 3 late tickets x 0.80 = 2.40.
        ("tickets", int(M[2].timestamp()), "3", Decimal("2.40")),
    ]
    assert _late_lines(preview.invoice) == expected
    # M[4]'s own 3 documents: 6.00. Total 6.00 + 7.00 + 7.50 + 2.40 = 22.90.
    assert dec(preview.invoice.total) == Decimal("22.90")

    invoice = await _close(b, M[5])
    assert _late_lines(invoice) == expected
    assert dec(invoice.total) == Decimal("22.90")
    # The preview's lines are the close's lines.
    strip = ("position",)
    assert [_fields(x, strip) for x in preview.invoice.lines] == [_fields(x, strip) for x in invoice.lines]
    for line in invoice.lines:
        if line.kind == LATE:
            assert "late usage for" in line.display_name

    # Each late line records the metering read it priced: the adjusted month, from the cutoff that
    # month was last read with (its own invoice's) to this invoice's cutoff.
    reads = await _reads(stack.database_url, invoice.id)
    cutoff = invoice.usage_cutoff_time.ToDatetime(tzinfo=UTC)
    for i, charge in ((1, "documents"), (2, "documents"), (2, "tickets")):
        assert reads[(charge, M[i])] == (
            M[i],
            M[i + 1],
            closed[i].usage_cutoff_time.ToDatetime(tzinfo=UTC),
            cutoff,
        )

    # More of M[1] arrives (20 documents), and M[5] has no usage of its own. The next close bills
    # only the new ones, on top of what was billed (13 then): now 33 = 10 x 2.00 + 20 x 1.00 + 3 x 0.50
    # = 41.50, billed 23.00: +18.50 (17 at 1.00, 3 at 0.50). M[2] is not billed again.
    await ingest(m, _docs(M[1].replace(day=21), 20))
    preview = await b.PreviewInvoice(
        bpb.PreviewInvoiceRequest(builder_id=BUILDER, customer_id="acme", as_of_time=ts(M[5].replace(day=2)))
    )
    again = [("documents", int(M[1].timestamp()), "20", Decimal("18.50"))]
    assert _late_lines(preview.invoice) == again
    following = await _close(b, M[6])
    assert _late_lines(following) == again
    assert dec(following.total) == Decimal("18.50")
    reads = await _reads(stack.database_url, following.id)
    # Read from the previous adjustment's cutoff: exactly the 20 new events.
    assert reads[("documents", M[1])][2] == cutoff

    # Nothing new arrived: a preview of the current month shows no adjustment.
    preview = await b.PreviewInvoice(bpb.PreviewInvoiceRequest(builder_id=BUILDER, customer_id="acme"))
    assert _late_lines(preview.invoice) == []


def _fields(line: bpb.InvoiceLine, skip: tuple[str, ...]) -> dict:
    return {f.name: v for f, v in line.ListFields() if f.name not in skip}


async def _reads(database_url: str, invoice_id: str) -> dict:
    conn = await asyncpg.connect(libpq_url(database_url))
    try:
        rows = await conn.fetch(
            """SELECT charge_key, usage_period_start, usage_start_time, usage_end_time,
                      ingested_after_time, ingested_before_time
               FROM invoice_lines WHERE invoice_id = $1 AND kind = 'late_usage'""",
            invoice_id,
        )
    finally:
        await conn.close()
    return {
        (r["charge_key"], r["usage_period_start"]): (
            r["usage_start_time"],
            r["usage_end_time"],
            r["ingested_after_time"],
            r["ingested_before_time"],
        )
        for r in rows
    }
