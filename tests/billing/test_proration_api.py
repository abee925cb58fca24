"""Proration and cancellation in March 2026 (31 days), over real gRPC, PostgreSQL and metering, with
billing's clock set by the test (`billing.app.start(clock=...)`, test-only).

The proration rule (billing.domain.proration): by second, share = active seconds / period seconds;
base fee and minimum rounded once to the cent half away from zero, included quantity to the places
the plan wrote it with. Every amount below is worked by hand. The plan: base fee 49.00, tickets at
0.80 each with 30 included and a minimum of 20.00.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from billing_kit import at, create_meters, dec, event, field_of, ingest, line_by, rid, ts, usd
from conftest import _REPO

from common.migrations import upgrade_head_async
from tests.conftest import auth_channel, security
from tollgate.billing.v1 import billing_pb2 as bpb
from tollgate.billing.v1 import billing_pb2_grpc

BUILDER = "prorate-1"
MARCH, APRIL, MAY = at(2026, 3), at(2026, 4), at(2026, 5)
NOW = [at(2026, 3, 1)]


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


async def _expect(call, code: grpc.StatusCode, what: str) -> None:
    """The call fails with `code`; INVALID_ARGUMENT names `what` as its field, others say it."""
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    assert err.value.code() == code, err.value.details()
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        assert field_of(err.value) == what
    else:
        assert what in err.value.details()


async def test_a_start_on_the_tenth_and_a_cancellation_on_the_25th_are_prorated_to_the_cent(
    billing, metering
) -> None:
    b = billing
    await create_meters(metering, BUILDER)
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
    pro = await b.CreatePlan(
        bpb.CreatePlanRequest(
            request_id=rid(),
            plan=bpb.Plan(builder_id=BUILDER, key="pro", display_name="Pro", currency_code="USD"),
        )
    )
    await b.PublishPlanVersion(
        bpb.PublishPlanVersionRequest(
            request_id=rid(),
            builder_id=BUILDER,
            version=bpb.PlanVersion(
                plan_id=pro.plan.id,
                base_fee=usd("99.00"),
                charges=[
                    bpb.Charge(
                        key="tickets",
                        meter_key="tickets",
                        display_name="Tickets handled",
                        per_unit=bpb.PerUnitPrice(unit_price="0.50"),
                        included_quantity="100",
                    )
                ],
            ),
        )
    )
    starts = {
        "moves": at(2026, 3, 10),  # starts on the 10th, to Pro immediately on the 20th, cancelled on the 25th
        "late": at(2026, 3, 10),  # starts on the 10th
        "whole": at(2026, 2, 25),  # started before March
        "gone": at(2026, 3, 10),  # starts on the 10th, cancelled immediately on the 25th
        "ends": at(2026, 2, 25),  # cancelled on the 25th at period end
    }
    for cid, start in starts.items():
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
    events = [event(BUILDER, cid, "ticket.handled", at(2026, 3, 12)) for cid in starts for _ in range(37)]
    # After the immediate cancellation: never invoiced.
    events += [event(BUILDER, "gone", "ticket.handled", at(2026, 3, 28)) for _ in range(5)]
    events += [event(BUILDER, "moves", "ticket.handled", at(2026, 3, 22)) for _ in range(150)]
    events += [event(BUILDER, "moves", "ticket.handled", at(2026, 3, 28)) for _ in range(4)]
    events += [event(BUILDER, cid, "ticket.handled", at(2026, 4, 3)) for cid in starts for _ in range(2)]
    await ingest(metering, events)

    NOW[0] = at(2026, 3, 20)
    change = bpb.ChangePlanRequest(
        request_id=rid(),
        builder_id=BUILDER,
        customer_id="moves",
        plan_id=pro.plan.id,
        timing=bpb.PLAN_CHANGE_TIMING_IMMEDIATELY,
    )
    moved = await b.ChangePlan(change)
    assert (moved.subscription.next_plan_id, moved.subscription.change_time) == (pro.plan.id, ts(NOW[0]))
    assert await b.ChangePlan(change) == moved  # a retry: the first reply
    await _expect(
        b.ChangePlan(
            bpb.ChangePlanRequest(
                request_id=rid(), builder_id=BUILDER, customer_id="moves", plan_id=plan.plan.id
            )
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
        "changed immediately in 2026-03",
    )
    await _expect(
        b.ChangePlan(
            bpb.ChangePlanRequest(
                request_id=rid(), builder_id=BUILDER, customer_id="moves", plan_id=pro.plan.id, timing=-1
            )
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "timing",
    )

    NOW[0] = at(2026, 3, 25)
    await b.CancelSubscription(
        bpb.CancelSubscriptionRequest(
            request_id=rid(), builder_id=BUILDER, customer_id="moves", timing=bpb.CANCEL_TIMING_IMMEDIATELY
        )
    )
    request = bpb.CancelSubscriptionRequest(
        request_id="cancel-gone",
        builder_id=BUILDER,
        customer_id="gone",
        timing=bpb.CANCEL_TIMING_IMMEDIATELY,
    )
    cancelled = await b.CancelSubscription(request)
    assert cancelled.subscription.end_time == ts(at(2026, 3, 25))
    assert await b.CancelSubscription(request) == cancelled  # a retry: the first reply
    await _expect(
        b.CancelSubscription(
            bpb.CancelSubscriptionRequest(request_id="cancel-gone", builder_id=BUILDER, customer_id="ends")
        ),
        grpc.StatusCode.ALREADY_EXISTS,
        "request_id 'cancel-gone' was already used",
    )
    # The same request id under another builder is that builder's own request (and finds nothing).
    await _expect(
        b.CancelSubscription(
            bpb.CancelSubscriptionRequest(
                request_id="cancel-gone", builder_id="someone-else", customer_id="gone"
            )
        ),
        grpc.StatusCode.NOT_FOUND,
        "customer 'gone' has no subscription",
    )
    await _expect(
        b.CancelSubscription(
            bpb.CancelSubscriptionRequest(request_id=rid(), builder_id=BUILDER, customer_id="gone")
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
        "was already cancelled",
    )
    await _expect(
        b.CancelSubscription(
            bpb.CancelSubscriptionRequest(request_id=rid(), builder_id=BUILDER, customer_id="ends", timing=7)
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "timing",
    )
    await _expect(
        b.ChangePlan(
            bpb.ChangePlanRequest(
                request_id=rid(), builder_id=BUILDER, customer_id="gone", plan_id=plan.plan.id
            )
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
        "was cancelled",
    )
    at_end = await b.CancelSubscription(
        bpb.CancelSubscriptionRequest(request_id=rid(), builder_id=BUILDER, customer_id="ends")
    )
    assert at_end.subscription.end_time == ts(APRIL)

    NOW[0] = at(2026, 3, 29)
    preview = await b.PreviewInvoice(bpb.PreviewInvoiceRequest(builder_id=BUILDER, customer_id="gone"))
    moves_preview = await b.PreviewInvoice(bpb.PreviewInvoiceRequest(builder_id=BUILDER, customer_id="moves"))
    NOW[0] = at(2026, 4, 2)
    await b.ClosePeriod(
        bpb.ClosePeriodRequest(request_id=rid(), builder_id=BUILDER, period_end_time=ts(APRIL))
    )
    listed = await b.ListInvoices(bpb.ListInvoicesRequest(builder_id=BUILDER))
    march = {inv.customer_id: inv for inv in listed.invoices if inv.period_start_time == ts(MARCH)}

    late = march["late"]
    base = late.lines[0]
    assert base.kind == bpb.LINE_KIND_BASE_FEE
    # Active from the 10th: 22 of 31 days. 49.00 * 22 / 31 = 34.774... -> 34.77.
    assert dec(base.amount) == dec(usd("34.77"))
    assert base.display_name.endswith("v1, 2026-03-10 00:00:00 to 2026-04-01 00:00:00 UTC)")
    tickets = line_by(late, "tickets")
    # Included 30 * 22/31 = 21.29 -> 21 tickets; (37 - 21) * 0.80 = 12.80, below the prorated
    # minimum 20.00 * 22/31 = 14.193... -> 14.19, so the line is 14.19. Total 48.96.
    assert tickets.included_quantity == "21"
    assert dec(tickets.amount) == dec(usd("14.19"))
    assert dec(late.total) == dec(usd("48.96"))

    gone = march["gone"]
    # Active [10th, 25th): 15 of 31 days. Base 49.00 * 15/31 = 23.709... -> 23.71. Included
    # 30 * 15/31 = 14.52 -> 15. The 5 tickets of the 28th came after the cancellation: 37 tickets,
    # (37 - 15) * 0.80 = 17.60, above the minimum 20.00 * 15/31 = 9.68. Total 41.31.
    assert [dec(line.amount) for line in gone.lines] == [dec(usd("23.71")), dec(usd("17.60"))]
    assert line_by(gone, "tickets").quantity == "37"
    assert gone.lines[0].display_name.endswith("v1, 2026-03-10 00:00:00 to 2026-03-25 00:00:00 UTC)")
    assert dec(gone.total) == dec(usd("41.31"))
    assert dec(preview.invoice.total) == dec(usd("41.31"))  # the preview priced it as the close did

    moves = march["moves"]
    # Basic [10th, 20th), 10 of 31 days, on the usage before the change (metered from the 1st): 37
    # tickets. Base 49.00 * 10/31 = 15.806... -> 15.81; included 30 * 10/31 = 9.68 -> 10;
    # (37 - 10) * 0.80 = 21.60, above the minimum 20.00 * 10/31 = 6.45.
    # Pro [20th, 25th), 5 of 31 days, on the usage from the change to the cancellation: 150 tickets
    # (the 4 of the 28th are after it). Base 99.00 * 5/31 = 15.967... -> 15.97; included
    # 100 * 5/31 = 16.13 -> 16; (150 - 16) * 0.50 = 67.00. Total 15.81 + 21.60 + 15.97 + 67.00 = 120.38.
    assert [(line.kind, dec(line.amount)) for line in moves.lines] == [
        (bpb.LINE_KIND_BASE_FEE, dec(usd("15.81"))),
        (bpb.LINE_KIND_USAGE, dec(usd("21.60"))),
        (bpb.LINE_KIND_BASE_FEE, dec(usd("15.97"))),
        (bpb.LINE_KIND_USAGE, dec(usd("67.00"))),
    ]
    assert [line.quantity for line in moves.lines if line.kind == bpb.LINE_KIND_USAGE] == ["37", "150"]
    assert moves.lines[1].display_name == (
        f"Tickets handled ({plan.plan.id} v1, 2026-03-10 00:00:00 to 2026-03-20 00:00:00 UTC)"
    )
    assert moves.lines[3].display_name == (
        f"Tickets handled ({pro.plan.id} v1, 2026-03-20 00:00:00 to 2026-03-25 00:00:00 UTC)"
    )
    assert dec(moves.total) == dec(usd("120.38"))
    assert dec(moves_preview.invoice.total) == dec(usd("120.38"))
    # Every usage line explains to its quantity from the read it priced: each part of a split
    # period on its own usage range (37 tickets before the change, 150 from it to the cancellation).
    for inv in march.values():
        for line in inv.lines:
            if line.kind != bpb.LINE_KIND_USAGE:
                continue
            explained = await b.ExplainInvoiceLine(
                bpb.ExplainInvoiceLineRequest(
                    builder_id=BUILDER,
                    invoice_id=inv.id,
                    position=line.position,
                    view=bpb.EXPLAIN_VIEW_EVENTS,
                    page_size=1000,
                )
            )
            assert explained.total_quantity == line.quantity
            assert sum(int(e.contributed_quantity) for e in explained.events) == int(line.quantity)
    after_change = await b.ExplainInvoiceLine(
        bpb.ExplainInvoiceLineRequest(
            builder_id=BUILDER, invoice_id=moves.id, position=4, view=bpb.EXPLAIN_VIEW_EVENTS, page_size=1000
        )
    )
    assert {e.occurred_time.ToDatetime().day for e in after_change.events} == {22}

    # A whole month, and a cancellation at period end: the full fee, 30 included,
    # (37 - 30) * 0.80 = 5.60 -> the minimum 20.00. Total 69.00.
    for cid in ("whole", "ends"):
        assert [dec(line.amount) for line in march[cid].lines] == [dec(usd("49.00")), dec(usd("20.00"))]
        assert march[cid].lines[0].display_name == "Base fee"

    NOW[0] = at(2026, 5, 2)
    await b.ClosePeriod(bpb.ClosePeriodRequest(request_id=rid(), builder_id=BUILDER, period_end_time=ts(MAY)))
    listed = await b.ListInvoices(bpb.ListInvoicesRequest(builder_id=BUILDER))
    april = sorted(inv.customer_id for inv in listed.invoices if inv.period_start_time == ts(APRIL))
    assert april == ["late", "whole"]  # cancelled subscriptions are not invoiced after they end
    await _expect(
        b.PreviewInvoice(bpb.PreviewInvoiceRequest(builder_id=BUILDER, customer_id="gone")),
        grpc.StatusCode.FAILED_PRECONDITION,
        "is not active in 2026-05",
    )
