"""32 concurrent closes wait for metering's cutoff without holding the database: reads keep answering.

Metering here reports a cutoff as settled only after 3 s, so every close waits seconds; billing's
pool is small (2 connections + 10 overflow) so that closes holding a connection each while they wait
would leave none for anyone else. While the closes wait, no billing transaction stays open for a
second and GetInvoice / ListCustomers / ListInvoices keep answering within their 2 s deadline; the
closes still produce exactly one invoice per customer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from billing_kit import at, create_meters, dec, event, ingest, rid, ts

from common.db import libpq_url
from common.migrations import upgrade_head_async
from tests.conftest import auth_channel, security
from tollgate.billing.v1 import billing_pb2 as bpb
from tollgate.billing.v1 import billing_pb2_grpc

BUILDER = "agency-busy"
CUSTOMERS = ("c-1", "c-2", "c-3")
SETTLE_SECONDS = 3.0
READ_DEADLINE_SECONDS = 2.0
MIGRATIONS = Path(__file__).resolve().parents[2] / "services" / "billing" / "migrations"


def _months() -> tuple[datetime, datetime, datetime]:
    now = datetime.now(UTC)
    y, m = now.year, now.month - 3
    if m <= 0:
        y, m = y - 1, m + 12
    first = at(y, m)
    second = at(y + (m == 12), m % 12 + 1)
    third = at(second.year + (second.month == 12), second.month % 12 + 1)
    return first, second, third


M1, M2, M3 = _months()


@pytest.fixture(scope="module")
async def slow_stack(make_database) -> AsyncIterator[tuple[billing_pb2_grpc.BillingServiceStub, object, str]]:
    from billing.app import start as start_billing
    from billing.config import Settings as BillingSettings
    from metering.app import start as start_metering
    from metering.config import Settings as MeteringSettings
    from tollgate.metering.v1 import metering_pb2_grpc

    metering = await start_metering(
        MeteringSettings(
            database_url=await make_database("metering"),
            grpc_address="127.0.0.1:0",
            metrics_port=None,
            settle_seconds=SETTLE_SECONDS,
            security=security("metering"),
            max_event_age_days=36_600,  # fixed dates in 2026 stay inside the retention window
        )
    )
    url = await make_database("billing")
    await upgrade_head_async(MIGRATIONS, url, "alembic_version_billing")
    billing = await start_billing(
        BillingSettings(
            database_url=url,
            grpc_address="127.0.0.1:0",
            metrics_port=None,
            metering_address=f"127.0.0.1:{metering.port}",
            metering_retry_seconds=30,
            pool_size=2,
            security=security("billing"),
        )
    )
    async with (
        auth_channel(f"127.0.0.1:{billing.port}") as bch,
        auth_channel(f"127.0.0.1:{metering.port}") as mch,
    ):
        yield billing_pb2_grpc.BillingServiceStub(bch), metering_pb2_grpc.MeteringServiceStub(mch), url
    await billing.stop(0)
    await metering.stop(0)


async def _long_transactions(conn: asyncpg.Connection) -> int:
    """Billing's own backends whose transaction has been open for more than a second."""
    return await conn.fetchval(
        """SELECT count(*) FROM pg_stat_activity
           WHERE datname = current_database() AND pid <> pg_backend_pid()
             AND xact_start IS NOT NULL AND now() - xact_start > interval '1 second'"""
    )


async def test_32_concurrent_closes_leave_connections_for_reads_and_invoice_each_customer_once(
    slow_stack,
) -> None:
    b, m, url = slow_stack
    await create_meters(m, BUILDER)
    plan = await b.ApplyPlanYaml(
        bpb.ApplyPlanYamlRequest(
            request_id=rid(),
            builder_id=BUILDER,
            plan_key="tickets",
            yaml="currency: USD\ncharges:\n  - key: tickets\n    meter_key: tickets\n"
            "    display_name: Tickets\n    per_unit: {unit_price: '0.80'}\n",
        )
    )
    for cid in CUSTOMERS:
        await b.CreateCustomer(
            bpb.CreateCustomerRequest(
                request_id=rid(),
                customer=bpb.Customer(id=cid, builder_id=BUILDER, app_id="app", currency_code="USD"),
            )
        )
        await b.Subscribe(
            bpb.SubscribeRequest(
                request_id=rid(), builder_id=BUILDER, customer_id=cid, plan_id=plan.plan.id, start_time=ts(M1)
            )
        )
    # c-1: 10 tickets in each month, c-2: 5, c-3: none.
    await ingest(
        m,
        [
            event(BUILDER, cid, "ticket.handled", month.replace(day=3))
            for month in (M1, M2)
            for cid, n in (("c-1", 10), ("c-2", 5))
            for _ in range(n)
        ],
    )
    first = await b.ClosePeriod(
        bpb.ClosePeriodRequest(request_id=rid(), builder_id=BUILDER, period_end_time=ts(M2))
    )
    assert first.finalized_count == 3
    earlier = (await b.ListInvoices(bpb.ListInvoicesRequest(builder_id=BUILDER))).invoices[0]

    closes = [
        asyncio.ensure_future(
            b.ClosePeriod(
                bpb.ClosePeriodRequest(request_id=rid(), builder_id=BUILDER, period_end_time=ts(M3))
            )
        )
        for _ in range(32)
    ]
    read_rounds: list[float] = []
    long_transactions: list[int] = []
    probe = await asyncpg.connect(libpq_url(url))
    try:
        while not all(c.done() for c in closes):
            long_transactions.append(await _long_transactions(probe))
            got = await b.GetInvoice(
                bpb.GetInvoiceRequest(builder_id=BUILDER, invoice_id=earlier.id),
                timeout=READ_DEADLINE_SECONDS,
            )
            assert got.invoice.id == earlier.id
            customers = await b.ListCustomers(
                bpb.ListCustomersRequest(builder_id=BUILDER), timeout=READ_DEADLINE_SECONDS
            )
            assert [c.id for c in customers.customers] == list(CUSTOMERS)
            await b.ListInvoices(bpb.ListInvoicesRequest(builder_id=BUILDER), timeout=READ_DEADLINE_SECONDS)
            if not any(c.done() for c in closes):
                read_rounds.append(time.monotonic())
            await asyncio.sleep(0.1)
    finally:
        await probe.close()
    replies = [c.result() for c in closes]

    # The reads answered, many times over, while every close was still waiting on metering.
    assert len(read_rounds) >= 5, read_rounds
    # No billing transaction stayed open for a second while the closes waited seconds.
    assert max(long_transactions) == 0, long_transactions
    # Exactly one invoice per customer for the period, whatever the number of closes.
    assert sum(r.finalized_count for r in replies) == 3
    assert {r.invoice_count for r in replies} == {3}
    period = [
        inv
        for inv in (await b.ListInvoices(bpb.ListInvoicesRequest(builder_id=BUILDER))).invoices
        if inv.period_start_time == ts(M2)
    ]
    assert sorted(inv.customer_id for inv in period) == list(CUSTOMERS)
    # 10 tickets x 0.80 = 8.00; 5 x 0.80 = 4.00; none = 0.
    assert {inv.customer_id: dec(inv.total) for inv in period} == {"c-1": 8, "c-2": 4, "c-3": 0}
    assert sorted(inv.number for inv in period) == [4, 5, 6]
