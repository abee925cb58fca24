"""Metering down: a close waits, retries, then fails UNAVAILABLE and finalizes nothing; later it succeeds."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
import pytest
from billing_kit import at, create_meters, event, free_port, ingest, rid, ts

from tests.conftest import auth_channel, security
from tollgate.billing.v1 import billing_pb2 as bpb
from tollgate.billing.v1 import billing_pb2_grpc

BUILDER = "agency-down"


def _last_month() -> tuple[datetime, datetime]:
    now = datetime.now(UTC)
    end = at(now.year, now.month)
    start = at(end.year - (end.month == 1), (end.month - 2) % 12 + 1)
    return start, end


async def test_close_with_metering_unreachable_fails_unavailable_and_finalizes_nothing(stack) -> None:
    from billing.app import start
    from billing.config import Settings

    b = stack.billing
    begin, end = _last_month()
    await create_meters(stack.metering, BUILDER)
    await b.CreateCustomer(
        bpb.CreateCustomerRequest(
            request_id=rid(),
            customer=bpb.Customer(
                id="c1", builder_id=BUILDER, app_id="app-1", currency_code="USD", display_name="C1"
            ),
        )
    )
    plan = await b.ApplyPlanYaml(
        bpb.ApplyPlanYamlRequest(
            request_id=rid(),
            builder_id=BUILDER,
            plan_key="t",
            yaml="currency: USD\ncharges:\n  - {key: t, meter_key: tickets, display_name: Tickets, "
            'per_unit: {unit_price: "2.50"}}\n',
        )
    )
    await b.Subscribe(
        bpb.SubscribeRequest(
            request_id=rid(), builder_id=BUILDER, customer_id="c1", plan_id=plan.plan.id, start_time=ts(begin)
        )
    )
    await ingest(
        stack.metering, [event(BUILDER, "c1", "ticket.handled", begin.replace(day=3)) for _ in range(4)]
    )

    down = await start(
        Settings(
            database_url=stack.database_url,
            grpc_address="127.0.0.1:0",
            metrics_port=None,
            metering_address=f"127.0.0.1:{free_port()}",
            metering_retry_seconds=1.0,
            metering_deadline_seconds=1.0,
            security=security("billing"),
        )
    )
    try:
        async with auth_channel(f"127.0.0.1:{down.port}") as ch:
            stub = billing_pb2_grpc.BillingServiceStub(ch)
            request_id = rid()
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.ClosePeriod(
                    bpb.ClosePeriodRequest(request_id=request_id, builder_id=BUILDER, period_end_time=ts(end))
                )
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "nothing was finalized" in err.value.details()
    finally:
        await down.stop(0)
    listed = await b.ListInvoices(bpb.ListInvoicesRequest(builder_id=BUILDER))
    assert list(listed.invoices) == []
    # The same request, retried once metering answers, closes the month: 4 tickets x 2.50 = 10.00.
    closed = await b.ClosePeriod(
        bpb.ClosePeriodRequest(request_id=request_id, builder_id=BUILDER, period_end_time=ts(end))
    )
    assert closed.finalized_count == 1
    assert (closed.totals[0].units, closed.totals[0].nanos) == (10, 0)
