"""Usage so large that its invoice could not be stored (NUMERIC(38, 9)) or sent (Money's int64 units)
is FAILED_PRECONDITION naming the customer, for a preview and a close, and nothing is finalized."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
import pytest
from billing_kit import at, create_meters, event, ingest, rid, ts

from tollgate.billing.v1 import billing_pb2 as bpb

BUILDER = "agency-huge"


def _last_month() -> tuple[datetime, datetime]:
    now = datetime.now(UTC)
    end = at(now.year, now.month)
    start = at(end.year - (end.month == 1), (end.month - 2) % 12 + 1)
    return start, end


async def test_an_invoice_beyond_the_largest_recordable_amount_is_refused_and_nothing_is_finalized(
    stack,
) -> None:
    b = stack.billing
    begin, end = _last_month()
    await create_meters(stack.metering, BUILDER)
    plan = await b.ApplyPlanYaml(
        bpb.ApplyPlanYamlRequest(
            request_id=rid(),
            builder_id=BUILDER,
            plan_key="pass-through",
            yaml="currency: USD\ncharges:\n  - {key: tokens, meter_key: llm_cost, display_name: AI, "
            "cost_plus: {markup_percent: 25}}\n",
        )
    )
    for cid in ("whale", "normal"):
        await b.CreateCustomer(
            bpb.CreateCustomerRequest(
                request_id=rid(),
                customer=bpb.Customer(id=cid, builder_id=BUILDER, app_id="app-1", currency_code="USD"),
            )
        )
        await b.Subscribe(
            bpb.SubscribeRequest(
                request_id=rid(),
                builder_id=BUILDER,
                customer_id=cid,
                plan_id=plan.plan.id,
                start_time=ts(begin),
            )
        )
    # 10^25 dollars of provider cost: metering takes it (29 digits), no invoice can carry it.
    day = begin.replace(day=3)
    await ingest(
        stack.metering,
        [
            event(BUILDER, "whale", "ai.request", day, quantities={"provider_cost": "1" + "0" * 25}),
            event(BUILDER, "normal", "ai.request", day, quantities={"provider_cost": "4"}),
        ],
    )
    for call in (
        b.PreviewInvoice(
            bpb.PreviewInvoiceRequest(builder_id=BUILDER, customer_id="whale", as_of_time=ts(day))
        ),
        b.ClosePeriod(bpb.ClosePeriodRequest(request_id=rid(), builder_id=BUILDER, period_end_time=ts(end))),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION, err.value.details()
        assert "'whale'" in err.value.details()
    assert list((await b.ListInvoices(bpb.ListInvoicesRequest(builder_id=BUILDER))).invoices) == []
    # The other customer's preview is unaffected: 4.00 x 1.25 = 5.00.
    normal = await b.PreviewInvoice(
        bpb.PreviewInvoiceRequest(builder_id=BUILDER, customer_id="normal", as_of_time=ts(day))
    )
    assert (normal.invoice.total.units, normal.invoice.total.nanos) == (5, 0)
