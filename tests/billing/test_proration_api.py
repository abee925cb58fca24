"""A customer who starts on the 10th pays a prorated first month, over real gRPC, PostgreSQL and
metering. The proration rule (billing.domain.proration): by second, share = active seconds / period
seconds, base fee and minimum rounded once to the cent half away from zero, included quantity to the
places the plan wrote it with. Amounts below are worked by hand.
"""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta

from billing_kit import at, create_meters, dec, event, ingest, line_by, rid, ts, usd

from tollgate.billing.v1 import billing_pb2 as bpb

BUILDER = "prorate-1"


def _a_past_31_day_month() -> datetime:
    """The start of the latest 31-day month that ended at least a month ago (inside retention)."""
    now = datetime.now(UTC)
    y, m = now.year, now.month - 2
    while True:
        if m <= 0:
            y, m = y - 1, m + 12
        if calendar.monthrange(y, m)[1] == 31:
            return at(y, m)
        m -= 1


M1 = _a_past_31_day_month()
M2 = (M1 + timedelta(days=31)).replace(day=1)


async def test_a_start_on_the_tenth_pays_22_of_31_days_of_base_fee_minimum_and_included(stack) -> None:
    b, m = stack.billing, stack.metering
    await create_meters(m, BUILDER)
    plan = await b.CreatePlan(
        bpb.CreatePlanRequest(
            request_id=rid(),
            plan=bpb.Plan(builder_id=BUILDER, key="desk", display_name="Desk", currency_code="USD"),
        )
    )
    await b.PublishPlanVersion(
        bpb.PublishPlanVersionRequest(
            request_id=rid(),
            builder_id=BUILDER,
            version=bpb.PlanVersion(
                plan_id=plan.plan.id,
                base_fee=usd("49.00"),
                charges=[
                    bpb.Charge(
                        key="tickets",
                        meter_key="tickets",
                        display_name="Tickets handled",
                        per_unit=bpb.PerUnitPrice(unit_price="0.80"),
                        included_quantity="30",
                        minimum_amount="20.00",
                    )
                ],
            ),
        )
    )
    for cid, start in (("late", M1.replace(day=10)), ("whole", M1 - timedelta(days=3))):
        await b.CreateCustomer(
            bpb.CreateCustomerRequest(
                request_id=rid(),
                customer=bpb.Customer(
                    id=cid, builder_id=BUILDER, app_id="app-1", currency_code="USD", display_name=cid
                ),
            )
        )
        await b.Subscribe(
            bpb.SubscribeRequest(
                request_id=rid(),
                builder_id=BUILDER,
                customer_id=cid,
                plan_id=plan.plan.id,
                start_time=ts(start),
            )
        )
    day = M1.replace(day=12)
    await ingest(
        m, [event(BUILDER, cid, "ticket.handled", day) for cid in ("late", "whole") for _ in range(37)]
    )

    preview = await b.PreviewInvoice(
        bpb.PreviewInvoiceRequest(builder_id=BUILDER, customer_id="late", as_of_time=ts(day))
    )
    await b.ClosePeriod(bpb.ClosePeriodRequest(request_id=rid(), builder_id=BUILDER, period_end_time=ts(M2)))
    listed = await b.ListInvoices(bpb.ListInvoicesRequest(builder_id=BUILDER))
    invoices = {inv.customer_id: inv for inv in listed.invoices}

    late = invoices["late"]
    base = late.lines[0]
    assert base.kind == bpb.LINE_KIND_BASE_FEE
    # Active from the 10th: 22 of 31 days. 49.00 * 22 / 31 = 34.774... -> 34.77.
    assert dec(base.amount) == dec(usd("34.77"))
    stamp = M1.replace(day=10).strftime("%Y-%m-%d")
    assert f"v1, {stamp} 00:00:00 to {M2.strftime('%Y-%m-%d')} 00:00:00 UTC" in base.display_name
    tickets = line_by(late, "tickets")
    # Included 30 * 22/31 = 21.29 -> 21 tickets; 37 - 21 = 16 * 0.80 = 12.80, below the prorated
    # minimum 20.00 * 22/31 = 14.193... -> 14.19, so the line is 14.19.
    assert tickets.included_quantity == "21"
    assert dec(tickets.amount) == dec(usd("14.19"))
    assert dec(late.total) == dec(usd("48.96"))
    # The preview prices the month as the close did.
    assert dec(preview.invoice.total) == dec(usd("48.96"))

    whole = invoices["whole"]
    # Subscribed before the month: the full fee, 30 included, (37 - 30) * 0.80 = 5.60 -> minimum 20.00.
    assert [dec(line.amount) for line in whole.lines] == [dec(usd("49.00")), dec(usd("20.00"))]
    assert whole.lines[0].display_name == "Base fee"
    assert dec(whole.total) == dec(usd("69.00"))
