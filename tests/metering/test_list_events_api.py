"""ListEvents: the raw events behind a number, newest first, filtered, and paged so that no event is
lost or repeated even when many share the same occurred time."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import grpc
import pytest
from metering_kit import (
    COUNT,
    assert_all,
    assert_invalid_field,
    create_meter,
    event,
    from_ts,
    ingest,
    meter,
    new_id,
    query,
    ts,
    utc,
)

from common.paging import encode_token
from tollgate.metering.v1 import metering_pb2 as pb


async def list_all(stub, page_size: int, **filters) -> tuple[list[pb.UsageEvent], int]:
    out: list[pb.UsageEvent] = []
    token = ""
    pages = 0
    while True:
        request = pb.ListEventsRequest(page_size=page_size, page_token=token, **filters)
        page = await stub.ListEvents(request, timeout=10)
        assert len(page.events) <= page_size
        out.extend(page.events)
        pages += 1
        token = page.next_page_token
        if not token:
            return out, pages
        assert pages < 1000


async def test_paging_with_ties_in_occurred_time_loses_and_repeats_nothing(stub):
    b = new_id()
    base = utc(2026, 1, 10, 12)
    # 5 distinct times, 7 events at each: every page boundary falls inside a tie.
    events = [
        event(f"e-{t}-{n}", builder=b, at=base + timedelta(minutes=t)) for t in range(5) for n in range(7)
    ]
    assert_all(await ingest(stub, events), pb.INGEST_OUTCOME_ACCEPTED)
    listed, pages = await list_all(stub, 4, builder_id=b)
    ids = [e.id for e in listed]
    assert sorted(ids) == sorted(e.id for e in events)
    assert len(ids) == len(set(ids)) == 35
    assert pages == 9
    times = [from_ts(e.occurred_time) for e in listed]
    assert times == sorted(times, reverse=True)


async def test_events_come_back_as_sent(stub):
    b = new_id()
    sent = event(
        "full",
        builder=b,
        customer="acme",
        app="support-bot",
        type="ticket.handled",
        status=pb.EVENT_STATUS_FAILED,
        run_id="run-9",
        at=utc(2026, 1, 2, 3, 4, 5, 678000),
        tags={"workspace": "ws-1", "workflow": "triage", "usage_type": "chat", "client": "acme-eu"},
        quantities={"input_tokens": "1200", "output_tokens": "80", "provider_cost": "0.000375"},
    )
    await ingest(stub, [sent])
    (got,), _ = await list_all(stub, 10, builder_id=b)
    assert got.HasField("ingested_time")
    got.ClearField("ingested_time")
    assert got == sent


async def test_filters_by_customer_type_run_and_half_open_time(stub):
    b = new_id()
    t0 = utc(2026, 1, 10)
    events = [
        event("a1", builder=b, customer="c1", type="ai.request", run_id="r1", at=t0),
        event("a2", builder=b, customer="c1", type="ai.request", run_id="r2", at=t0 + timedelta(hours=1)),
        event("a3", builder=b, customer="c2", type="workflow.run", run_id="r1", at=t0 + timedelta(hours=2)),
        event("a4", builder=b, customer="c2", type="ai.request", at=t0 + timedelta(hours=3)),
        event("x1", builder=new_id(), customer="c1", at=t0),
    ]
    await ingest(stub, events)

    async def ids(**filters) -> list[str]:
        listed, _ = await list_all(stub, 100, builder_id=b, **filters)
        return [e.id for e in listed]

    assert await ids() == ["a4", "a3", "a2", "a1"]
    assert await ids(customer_id="c1") == ["a2", "a1"]
    assert await ids(type="workflow.run") == ["a3"]
    assert await ids(run_id="r1") == ["a3", "a1"]
    assert await ids(customer_id="c2", type="ai.request") == ["a4"]
    start, end = ts(t0 + timedelta(hours=1)), ts(t0 + timedelta(hours=3))
    assert await ids(start_time=start, end_time=end) == ["a3", "a2"]
    assert await ids(start_time=start) == ["a4", "a3", "a2"]
    assert await ids(end_time=end) == ["a3", "a2", "a1"]
    assert await ids(customer_id="nobody") == []


async def test_filtered_paging_keeps_the_filter_on_every_page(stub):
    b = new_id()
    at = utc(2026, 1, 12)
    events = [event(f"c1-{i}", builder=b, customer="c1", at=at) for i in range(10)]
    events += [event(f"c2-{i}", builder=b, customer="c2", at=at) for i in range(10)]
    await ingest(stub, events)
    listed, pages = await list_all(stub, 3, builder_id=b, customer_id="c2")
    assert sorted(e.id for e in listed) == sorted(f"c2-{i}" for i in range(10))
    assert pages == 4


async def test_missing_builder_and_bad_paging_are_invalid_argument(stub):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ListEvents(pb.ListEventsRequest(), timeout=10)
    assert_invalid_field(caught.value, "builder_id")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ListEvents(pb.ListEventsRequest(builder_id=new_id(), page_size=1001), timeout=10)
    assert_invalid_field(caught.value, "page_size")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ListEvents(pb.ListEventsRequest(builder_id=new_id(), page_token="not-a-token"), timeout=10)
    assert_invalid_field(caught.value, "page_token")


@pytest.mark.parametrize("cursor", [{}, {"x": 1}, {"t": "yesterday", "s": "zero"}, {"t": None, "s": None}])
async def test_a_well_formed_token_this_service_never_issued_is_invalid_argument(stub, cursor):

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ListEvents(
            pb.ListEventsRequest(builder_id=new_id(), page_token=encode_token(cursor)), timeout=10
        )
    assert_invalid_field(caught.value, "page_token")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ListMeters(
            pb.ListMetersRequest(builder_id=new_id(), page_token=encode_token(cursor)), timeout=10
        )
    assert_invalid_field(caught.value, "page_token")


async def test_negative_page_size_is_invalid_argument(stub):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ListEvents(pb.ListEventsRequest(builder_id=new_id(), page_size=-1), timeout=10)
    assert_invalid_field(caught.value, "page_size")


async def test_the_events_behind_a_number_are_exactly_the_ones_it_counted(stub):

    b = new_id()
    start, end = utc(2026, 1, 5), utc(2026, 1, 6)
    events = [
        event(f"e{i}", builder=b, customer=f"c{i % 3}", at=start + timedelta(minutes=7 * i))
        for i in range(150)
    ]
    assert_all(await ingest(stub, events), pb.INGEST_OUTCOME_ACCEPTED)
    await create_meter(stub, meter(b, "requests", COUNT))
    usage = await query(stub, b, "requests", start, end, by_customer=True)
    for row in usage.rows:
        behind, _ = await list_all(
            stub, 50, builder_id=b, customer_id=row.customer_id, start_time=ts(start), end_time=ts(end)
        )
        assert Decimal(row.value) == row.event_count == len(behind)
        assert all(e.customer_id == row.customer_id for e in behind)
    assert sum(r.event_count for r in usage.rows) == len(
        [e for e in events if from_ts(e.occurred_time) < end]
    )
