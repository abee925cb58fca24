"""Late usage stops at metering's retention, over real gRPC, PostgreSQL and metering.

Metering here keeps a retention of R days (METERING_MAX_EVENT_AGE_DAYS), R chosen so that the boundary
(now - R days) falls in the middle of a closed month; billing's BILLING_LATE_USAGE_MAX_AGE_DAYS is the
same R. An event one minute inside the retention is accepted and billed as late usage at the next close;
one minute outside it is refused by metering, so there is nothing to bill. Documents cost 1.25 each.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from billing_kit import at, create_meters, dec, event, ingest, rid, ts
from conftest import _REPO, Stack

from common.migrations import upgrade_head_async
from tests.conftest import auth_channel, security
from tollgate.billing.v1 import billing_pb2 as bpb
from tollgate.billing.v1 import billing_pb2_grpc
from tollgate.metering.v1 import metering_pb2 as mpb
from tollgate.metering.v1 import metering_pb2_grpc

BUILDER = "late-retention-1"
LATE = bpb.LINE_KIND_LATE_USAGE_ADJUSTMENT


def _months(count: int) -> list[datetime]:
    now = datetime.now(UTC)
    out = []
    y, m = now.year, now.month
    for _ in range(count + 1):
        out.append(at(y, m))
        y, m = (y - 1, 12) if m == 1 else (y, m - 1)
    return out[::-1]


# M[0] .. M[5] have ended; M[6] is the current month.
M = _months(6)
# The retention boundary now - R days falls 14 to 15 days into M[2].
R = math.ceil((datetime.now(UTC) - (M[2] + timedelta(days=15))) / timedelta(days=1))


@pytest.fixture(scope="module")
async def stack(make_database) -> AsyncIterator[Stack]:
    from billing.app import start as start_billing
    from billing.config import Settings as BillingSettings
    from metering.app import start as start_metering
    from metering.config import Settings as MeteringSettings

    metering = await start_metering(
        MeteringSettings(
            database_url=await make_database("metering"),
            grpc_address="127.0.0.1:0",
            metrics_port=None,
            security=security("metering"),
            max_event_age_days=R,
            settle_seconds=0.5,
        )
    )
    url = await make_database("billing")
    await upgrade_head_async(_REPO / "services" / "billing" / "migrations", url, "alembic_version_billing")
    m_address = f"127.0.0.1:{metering.port}"
    billing = await start_billing(
        BillingSettings(
            database_url=url,
            grpc_address="127.0.0.1:0",
            metrics_port=None,
            metering_address=m_address,
            metering_retry_seconds=20,
            late_usage_max_age_days=R,
            security=security("billing"),
        )
    )
    b_address = f"127.0.0.1:{billing.port}"
    async with auth_channel(b_address) as bch, auth_channel(m_address) as mch:
        yield Stack(
            billing_pb2_grpc.BillingServiceStub(bch),
            metering_pb2_grpc.MeteringServiceStub(mch),
            b_address,
            m_address,
            url,
        )
    await billing.stop(0)
    await metering.stop(0)


def _doc(when: datetime) -> mpb.UsageEvent:
    return event(BUILDER, "acme", "document.processed", when, quantities={"pages": "2"})


async def _close(b, end: datetime) -> bpb.Invoice:
    closed = await b.ClosePeriod(
        bpb.ClosePeriodRequest(request_id=rid(), builder_id=BUILDER, period_end_time=ts(end))
    )
    assert closed.finalized_count == 1
    listed = await b.ListInvoices(bpb.ListInvoicesRequest(builder_id=BUILDER, page_size=1))
    return listed.invoices[0]


async def test_late_usage_is_billed_up_to_metering_retention_and_not_past_it(stack) -> None:
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
            plan=bpb.Plan(builder_id=BUILDER, key="docs", display_name="Docs", currency_code="USD"),
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
                        per_unit=bpb.PerUnitPrice(unit_price="1.25"),
                    )
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
    # On time: 2 documents late in M[2] (inside the retention) and 1 in M[3].
    await ingest(m, [_doc(M[2].replace(day=25)), _doc(M[2].replace(day=26)), _doc(M[3].replace(day=4))])
    for i in range(5):
        invoice = await _close(b, M[i + 1])
    assert dec(invoice.total) == 0  # M[4]: no usage

    now = datetime.now(UTC)
    inside = now - timedelta(days=R) + timedelta(minutes=1)
    outside = now - timedelta(days=R) - timedelta(minutes=1)
    assert M[2] < outside < inside < M[3]
    reply = await m.IngestEvents(
        mpb.IngestEventsRequest(
            request_id=rid(), events=[_doc(inside), _doc(outside), _doc(M[1].replace(day=20))]
        )
    )
    # Metering takes the event one minute inside its retention and refuses the two older ones.
    assert [r.outcome for r in reply.results] == [
        mpb.INGEST_OUTCOME_ACCEPTED,
        mpb.INGEST_OUTCOME_INVALID,
        mpb.INGEST_OUTCOME_INVALID,
    ]
    assert [r.field for r in reply.results[1:]] == ["events[1].occurred_time", "events[2].occurred_time"]

    preview = await b.PreviewInvoice(
        bpb.PreviewInvoiceRequest(builder_id=BUILDER, customer_id="acme", as_of_time=ts(M[5].replace(day=9)))
    )
    invoice = await _close(b, M[6])
    for shown in (preview.invoice, invoice):
        late = [x for x in shown.lines if x.kind == LATE]
        # M[2]: billed 2 documents, now 3: one late document, 1.25.
        assert [(x.adjusted_period_start_time, x.quantity, dec(x.amount)) for x in late] == [
            (ts(M[2]), "1", Decimal("1.25"))
        ]
        assert dec(shown.total) == Decimal("1.25")
