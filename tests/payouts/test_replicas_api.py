"""Two payouts replicas on one database, both reading billing's feed and both running the month's
payouts at the same time: every entry is applied once and every payee is paid once."""

from __future__ import annotations

import asyncio
from collections import Counter
from decimal import Decimal as D

import asyncpg
from payouts_kit import (
    billing_feed,
    close_and_pay,
    dec,
    ended_months,
    ingest,
    rid,
    set_up_builder,
    usage_events,
)

from common.db import libpq_url
from payouts.domain.periods import Period
from tests.conftest import auth_channel, security
from tests.payouts.conftest import payouts_database
from tollgate.billing.v1 import billing_pb2 as bpb
from tollgate.payouts.v1 import payouts_pb2 as ppb
from tollgate.payouts.v1 import payouts_pb2_grpc


async def test_two_replicas_apply_each_entry_once_and_pay_each_payee_once(stack, make_database):
    from payouts.app import start
    from payouts.config import Settings

    b, m = stack.billing, stack.metering
    m1, m2, _ = ended_months(back=4)
    customers = [f"r{i:02d}" for i in range(12)]
    await set_up_builder(b, m, "replica-agency", customers, m1)
    events = []
    for i, c in enumerate(customers):
        events += usage_events("replica-agency", c, m1.replace(day=3), 2 + i, "2.50", f"wf-{i % 2}")
    await ingest(m, events)
    await close_and_pay(b, "replica-agency", m2)
    entries, _ = await billing_feed(b)

    url = await payouts_database(make_database)
    settings = Settings(
        database_url=url,
        grpc_address="127.0.0.1:0",
        metrics_port=None,
        billing_address=stack.billing_address,
        metering_address=stack.metering_address,
        feed_poll_seconds=0,
        feed_page_size=3,
        default_hold_days=0,
        default_minimum=D(0),
        security=security("payouts"),
    )
    replicas = [await start(settings), await start(settings)]
    try:
        async with (
            auth_channel(f"127.0.0.1:{replicas[0].port}") as c0,
            auth_channel(f"127.0.0.1:{replicas[1].port}") as c1,
        ):
            stubs = [payouts_pb2_grpc.PayoutsServiceStub(c) for c in (c0, c1)]
            synced = await asyncio.gather(
                *(s.SyncEarnings(ppb.SyncEarningsRequest(request_id=rid())) for s in stubs for _ in range(3))
            )
            assert sum(r.applied_count for r in synced) == len(entries)
            period = str(Period.of(stack.clock()))
            runs = await asyncio.gather(
                *(
                    s.RunPayouts(ppb.RunPayoutsRequest(request_id=rid(), period=period))
                    for s in stubs
                    for _ in range(3)
                )
            )
            # The builder and the providers' pool, each once; every run saw both (it released every due
            # hold, waiting for the other replica's sweep, before reading the balances).
            assert sum(r.created_count for r in runs) == 2
            assert {r.payout_count for r in runs} == {2}
    finally:
        for r in replicas:
            await r.stop(0)

    db = await asyncpg.connect(libpq_url(url))
    try:
        applied = Counter(r["sequence"] for r in await db.fetch("SELECT sequence FROM feed_entries"))
        assert sorted(applied) == sorted(e.sequence for e in entries) and set(applied.values()) == {1}
        paid = {r["payee_id"]: r["amount"] for r in await db.fetch("SELECT payee_id, amount FROM payouts")}
        margin = sum((dec(e.amount) for e in entries if e.kind == bpb.EARNINGS_KIND_BUILDER_MARGIN), D(0))
        cost = sum((dec(e.amount) for e in entries if e.kind == bpb.EARNINGS_KIND_PROVIDER_COST), D(0))
        assert paid == {"replica-agency": margin, "provider:all": cost}
        assert await db.fetchval("SELECT sum(balance) FROM accounts") == 0
    finally:
        await db.close()
