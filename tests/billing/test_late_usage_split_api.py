"""Late usage of a month split by an immediate plan change is attributed to its parts by the events'
occurred time, over real gRPC, PostgreSQL and metering, with billing's clock set by the test.

March 2026 (31 days): the customer starts on Desk (tickets at 0.80, 10 included) and moves to Pro
(tickets at 0.50, none included) immediately on the 20th. The Desk part is active 19 days: its included
quantity is 10 x 19/31 = 6.13, rounded to the plan's whole tickets: 6 (the proration rule,
billing.domain.proration). Every amount is worked by hand below.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from billing_kit import at, create_meters, dec, event, ingest, rid, ts
from conftest import _REPO

from common.migrations import upgrade_head_async
from tests.conftest import auth_channel, security
from tollgate.billing.v1 import billing_pb2 as bpb
from tollgate.billing.v1 import billing_pb2_grpc

BUILDER = "late-split-1"
MARCH, APRIL, MAY, JUNE = at(2026, 3), at(2026, 4), at(2026, 5), at(2026, 6)
CHANGE = at(2026, 3, 20)
NOW = [MARCH]
LATE = bpb.LINE_KIND_LATE_USAGE_ADJUSTMENT


@pytest.fixture(scope="module")
async def billing(
    make_database, fast_metering_address: str
) -> AsyncIterator[billing_pb2_grpc.BillingServiceStub]:
    from billing.app import start
    from billing.config import Settings

    url = await make_database("billing")
    await upgrade_head_async(_REPO / "services" / "billing" / "migrations", url, "alembic_version_billing")
    running = await start(
        Settings(
            database_url=url,
            grpc_address="127.0.0.1:0",
            metrics_port=None,
            metering_address=fast_metering_address,
            metering_retry_seconds=20,
            security=security("billing"),
        ),
        clock=lambda: NOW[0],
    )
    async with auth_channel(f"127.0.0.1:{running.port}") as channel:
        yield billing_pb2_grpc.BillingServiceStub(channel)
    await running.stop(0)


@pytest.fixture(scope="module")
async def metering(fast_metering_address: str):
    from tollgate.metering.v1 import metering_pb2_grpc

    async with auth_channel(fast_metering_address) as channel:
        yield metering_pb2_grpc.MeteringServiceStub(channel)


async def _plan(b, key: str, price: str, included: str) -> str:
    plan = await b.CreatePlan(
        bpb.CreatePlanRequest(
            request_id=rid(),
            plan=bpb.Plan(builder_id=BUILDER, key=key, display_name=key, currency_code="USD"),
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
                        key="tickets",
                        meter_key="tickets",
                        display_name="Tickets",
                        per_unit=bpb.PerUnitPrice(unit_price=price),
                        included_quantity=included,
                    )
                ],
            ),
        )
    )
    return plan.plan.id


def _tickets(day: int, n: int) -> list:
    return [event(BUILDER, "moves", "ticket.handled", at(2026, 3, day)) for _ in range(n)]


async def _close(b, end) -> bpb.Invoice:
    NOW[0] = end.replace(day=2)
    closed = await b.ClosePeriod(
        bpb.ClosePeriodRequest(request_id=rid(), builder_id=BUILDER, period_end_time=ts(end))
    )
    assert closed.finalized_count == 1
    return (await b.ListInvoices(bpb.ListInvoicesRequest(builder_id=BUILDER, page_size=1))).invoices[0]


def _late(invoice: bpb.Invoice) -> list[tuple[str, str, Decimal]]:
    return [(x.display_name, x.quantity, dec(x.amount)) for x in invoice.lines if x.kind == LATE]


async def test_late_usage_of_a_split_month_is_priced_by_the_part_it_occurred_in(billing, metering) -> None:
    b = billing
    await create_meters(metering, BUILDER)
    desk = await _plan(b, "desk", "0.80", "10")
    pro = await _plan(b, "pro", "0.50", "0")
    await b.CreateCustomer(
        bpb.CreateCustomerRequest(
            request_id=rid(),
            customer=bpb.Customer(
                id="moves", builder_id=BUILDER, app_id="app-1", currency_code="USD", display_name="Moves"
            ),
        )
    )
    await b.Subscribe(
        bpb.SubscribeRequest(
            request_id=rid(), builder_id=BUILDER, customer_id="moves", plan_id=desk, start_time=ts(MARCH)
        )
    )
    NOW[0] = CHANGE
    await b.ChangePlan(
        bpb.ChangePlanRequest(
            request_id=rid(),
            builder_id=BUILDER,
            customer_id="moves",
            plan_id=pro,
            timing=bpb.PLAN_CHANGE_TIMING_IMMEDIATELY,
        )
    )
    # On time: 4 tickets on the 5th (Desk part, within its 6 included: 0.00), 3 on the 25th (Pro part:
    # 3 x 0.50 = 1.50).
    await ingest(metering, _tickets(5, 4) + _tickets(25, 3))
    march = await _close(b, APRIL)
    assert dec(march.total) == Decimal("1.50")

    # Late: 5 tickets on the 10th (Desk part: 9 now, 3 over the 6 included: 3 x 0.80 = 2.40, billed
    # 0.00: +2.40) and 2 on the 28th (Pro part: 2 x 0.50 = +1.00).
    await ingest(metering, _tickets(10, 5) + _tickets(28, 2))
    desk_part = f"Tickets (late usage for 2026-03, {desk} v1, 2026-03-01 00:00:00 to 2026-03-20 00:00:00 UTC)"
    pro_part = f"Tickets (late usage for 2026-03, {pro} v1, 2026-03-20 00:00:00 to 2026-04-01 00:00:00 UTC)"
    expected = [(desk_part, "5", Decimal("2.40")), (pro_part, "2", Decimal("1.00"))]
    NOW[0] = at(2026, 4, 15)
    preview = await b.PreviewInvoice(bpb.PreviewInvoiceRequest(builder_id=BUILDER, customer_id="moves"))
    assert _late(preview.invoice) == expected
    april = await _close(b, MAY)
    assert _late(april) == expected
    # April on Pro without usage: 0.00; the adjustments: 3.40.
    assert dec(april.total) == Decimal("3.40")
    assert all(x.adjusted_period_start_time == ts(MARCH) for x in april.lines if x.kind == LATE)

    # One more Desk-part ticket (10 now, 4 over: 3.20, billed 2.40: +0.80); the Pro part is not billed
    # again.
    await ingest(metering, _tickets(11, 1))
    may = await _close(b, JUNE)
    assert _late(may) == [(desk_part, "1", Decimal("0.80"))]
    assert dec(may.total) == Decimal("0.80")
