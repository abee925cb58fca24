"""IngestEvents through a real server: one result per event, dedup by id forever and under
concurrency, conflicts keep the first content, and a bad event never sinks its batch-mates."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import grpc
import pytest
from metering_kit import (
    ACCEPTED,
    CONFLICT,
    COUNT,
    DUPLICATE,
    INVALID,
    assert_all,
    assert_invalid_field,
    create_meter,
    event,
    event_field_is,
    ingest,
    meter,
    new_id,
    now,
    total,
    utc,
)

from tests.conftest import auth_channel
from tollgate.metering.v1 import metering_pb2 as pb
from tollgate.metering.v1 import metering_pb2_grpc

START, END = utc(2026, 1, 1), utc(2026, 2, 1)


async def count_of(stub, builder: str, start=START, end=END) -> int:
    key = "events_" + new_id("m").replace("-", "_")
    await create_meter(stub, meter(builder, key, COUNT))
    return int(await total(stub, builder, key, start, end))


async def test_new_events_are_accepted_with_counts_in_request_order(stub):
    b = new_id()
    events = [event(f"e{i}", builder=b, quantities={"input_tokens": str(i)}) for i in range(5)]
    response = await ingest(stub, events)
    assert [r.event_id for r in response.results] == ["e0", "e1", "e2", "e3", "e4"]
    assert_all(response, ACCEPTED)
    assert (response.accepted_count, response.duplicate_count) == (5, 0)
    assert (response.conflict_count, response.invalid_count) == (0, 0)
    assert await count_of(stub, b) == 5


async def test_resent_batch_is_all_duplicates_and_counted_once(stub):
    b = new_id()
    events = [event(f"e{i}", builder=b, quantities={"pages": "3"}) for i in range(20)]
    await ingest(stub, events)
    again = await ingest(stub, events)
    assert_all(again, DUPLICATE)
    assert (again.accepted_count, again.duplicate_count) == (0, 20)
    assert await count_of(stub, b) == 20


async def test_dedup_across_batches_with_overlap(stub):
    b = new_id()
    first = [event(f"e{i}", builder=b) for i in range(0, 10)]
    second = [event(f"e{i}", builder=b) for i in range(5, 15)]
    await ingest(stub, first)
    response = await ingest(stub, second)
    outcomes = {r.event_id: r.outcome for r in response.results}
    assert all(outcomes[f"e{i}"] == DUPLICATE for i in range(5, 10))
    assert all(outcomes[f"e{i}"] == ACCEPTED for i in range(10, 15))
    assert (response.accepted_count, response.duplicate_count) == (5, 5)
    assert await count_of(stub, b) == 15


async def test_same_id_for_two_builders_is_two_events(stub):
    b1, b2 = new_id(), new_id()
    r1 = await ingest(stub, [event("shared-id", builder=b1)])
    r2 = await ingest(stub, [event("shared-id", builder=b2)])
    assert r1.results[0].outcome == ACCEPTED
    assert r2.results[0].outcome == ACCEPTED


async def test_conflict_rejects_changed_content_and_keeps_the_first(stub):
    b = new_id()
    original = event("e1", builder=b, quantities={"input_tokens": "100"}, tags={"workflow": "intake"})
    await ingest(stub, [original])
    changed_quantity = event("e1", builder=b, quantities={"input_tokens": "999"}, tags={"workflow": "intake"})
    changed_status = event(
        "e1",
        builder=b,
        quantities={"input_tokens": "100"},
        tags={"workflow": "intake"},
        status=pb.EVENT_STATUS_FAILED,
    )
    response = await ingest(stub, [changed_quantity])
    assert response.results[0].outcome == CONFLICT
    assert response.results[0].reason
    assert (response.accepted_count, response.conflict_count) == (0, 1)
    response = await ingest(stub, [changed_status])
    assert response.results[0].outcome == CONFLICT

    listed = await stub.ListEvents(pb.ListEventsRequest(builder_id=b), timeout=10)
    assert len(listed.events) == 1
    stored = listed.events[0]
    assert dict(stored.quantities) == {"input_tokens": "100"}
    assert stored.status == pb.EVENT_STATUS_SUCCEEDED
    assert dict(stored.tags) == {"workflow": "intake"}


async def test_one_bad_event_never_rejects_its_batch_mates(stub):
    b = new_id()
    good1 = event("good-1", builder=b)
    bad = event("bad-1", builder=b, quantities={"pages": "-1"})
    good2 = event("good-2", builder=b)
    response = await ingest(stub, [good1, bad, good2])
    assert [r.outcome for r in response.results] == [ACCEPTED, INVALID, ACCEPTED]
    assert event_field_is(response.results[1], 1, "quantities.pages"), response.results[1]
    assert (response.accepted_count, response.invalid_count) == (2, 1)
    assert await count_of(stub, b) == 2


async def test_same_id_twice_in_one_batch_is_accepted_then_duplicate(stub):
    b = new_id()
    e = event("twin", builder=b, quantities={"pages": "2"})
    response = await ingest(stub, [e, e])
    assert [r.outcome for r in response.results] == [ACCEPTED, DUPLICATE]
    assert (response.accepted_count, response.duplicate_count) == (1, 1)
    assert await count_of(stub, b) == 1


async def test_same_id_with_other_content_in_one_batch_is_a_conflict_and_the_first_stays(stub):
    b = new_id()
    first = event("twin", builder=b, quantities={"pages": "2"})
    second = event("twin", builder=b, quantities={"pages": "7"})
    response = await ingest(stub, [first, second])
    assert [r.outcome for r in response.results] == [ACCEPTED, CONFLICT]
    listed = await stub.ListEvents(pb.ListEventsRequest(builder_id=b), timeout=10)
    assert [dict(e.quantities) for e in listed.events] == [{"pages": "2"}]


async def test_batch_of_10001_events_is_invalid_argument_naming_events(stub):
    b = new_id()
    events = [event(f"e{i}", builder=b) for i in range(10_001)]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await ingest(stub, events)
    assert_invalid_field(caught.value, "events")
    assert await count_of(stub, b) == 0


async def test_batch_of_exactly_10000_events_is_accepted(stub):
    b = new_id()
    events = [event(f"e{i}", builder=b) for i in range(10_000)]
    response = await ingest(stub, events)
    assert response.accepted_count == 10_000
    assert await count_of(stub, b) == 10_000


async def test_empty_batch_is_invalid_argument_naming_events(stub):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await ingest(stub, [])
    assert_invalid_field(caught.value, "events")


async def test_dedup_is_permanent_for_an_event_from_a_month_ago(stub):
    b = new_id()
    old = now() - timedelta(days=35)
    e = event("old-1", builder=b, at=old)
    assert (await ingest(stub, [e])).results[0].outcome == ACCEPTED
    # Much later batches, with many other events in between, still see it.
    await ingest(stub, [event(f"filler-{i}", builder=b) for i in range(500)])
    assert (await ingest(stub, [e])).results[0].outcome == DUPLICATE
    assert await count_of(stub, b, old - timedelta(days=1), old + timedelta(days=1)) == 1


@pytest.mark.slow
async def test_32_concurrent_clients_sending_the_same_ids_accept_each_id_exactly_once(metering_address):
    b = new_id()
    ids = [f"c{i}" for i in range(400)]

    async def client(n: int) -> pb.IngestEventsResponse:
        # Each client its own channel (its own HTTP/2 connection), the ids in a different order.
        rotated = ids[n * 11 % len(ids) :] + ids[: n * 11 % len(ids)]
        async with auth_channel(metering_address) as ch:
            client_stub = metering_pb2_grpc.MeteringServiceStub(ch)
            return await ingest(
                client_stub, [event(i, builder=b, quantities={"pages": "1"}) for i in rotated]
            )

    responses = await asyncio.gather(*(client(n) for n in range(32)))
    accepted: dict[str, int] = {}
    for response in responses:
        assert response.conflict_count == 0 and response.invalid_count == 0
        assert response.accepted_count + response.duplicate_count == len(ids)
        for r in response.results:
            assert r.outcome in (ACCEPTED, DUPLICATE), r
            if r.outcome == ACCEPTED:
                accepted[r.event_id] = accepted.get(r.event_id, 0) + 1
    assert sum(r.accepted_count for r in responses) == len(ids)
    assert accepted == dict.fromkeys(ids, 1)

    async with auth_channel(metering_address) as ch:
        assert await count_of(metering_pb2_grpc.MeteringServiceStub(ch), b) == len(ids)


async def test_same_id_with_an_occurred_time_in_another_month_is_a_conflict_not_a_second_event(stub):
    b = new_id()
    await ingest(stub, [event("moving", builder=b, at=utc(2026, 1, 31, 23))])
    moved = await ingest(stub, [event("moving", builder=b, at=utc(2026, 2, 1, 1))])
    assert moved.results[0].outcome == CONFLICT
    assert await count_of(stub, b, utc(2026, 1, 1), utc(2026, 3, 1)) == 1


async def test_concurrent_same_id_with_different_content_accepts_one_and_stores_it(metering_address):
    b = new_id()

    async def client(n: int) -> pb.IngestEventsResponse:
        async with auth_channel(metering_address) as ch:
            client_stub = metering_pb2_grpc.MeteringServiceStub(ch)
            return await ingest(client_stub, [event("contested", builder=b, quantities={"pages": str(n)})])

    responses = await asyncio.gather(*(client(n) for n in range(1, 9)))
    outcomes = [r.results[0].outcome for r in responses]
    assert outcomes.count(ACCEPTED) == 1 and outcomes.count(CONFLICT) == 7
    winner = outcomes.index(ACCEPTED) + 1
    async with auth_channel(metering_address) as ch:
        listed = await metering_pb2_grpc.MeteringServiceStub(ch).ListEvents(
            pb.ListEventsRequest(builder_id=b), timeout=10
        )
    assert [dict(e.quantities) for e in listed.events] == [{"pages": str(winner)}]


@pytest.mark.slow
async def test_concurrent_batches_opening_the_same_new_months_all_land(metering_address):
    b = new_id()
    # Four months nobody has written before (the most one batch may open), hit by eight clients at once.
    months = [utc(2019, m, 15) for m in range(1, 5)]

    async def client(n: int) -> pb.IngestEventsResponse:
        events = [event(f"n{n}-m{i}-{k}", builder=b, at=at) for i, at in enumerate(months) for k in range(20)]
        async with auth_channel(metering_address) as ch:
            return await ingest(metering_pb2_grpc.MeteringServiceStub(ch), events)

    responses = await asyncio.gather(*(client(n) for n in range(8)))
    assert [r.accepted_count for r in responses] == [80] * 8
    async with auth_channel(metering_address) as ch:
        got = await count_of(metering_pb2_grpc.MeteringServiceStub(ch), b, utc(2019, 1, 1), utc(2020, 1, 1))
    assert got == 8 * 80


async def test_ingested_time_sent_by_the_client_is_ignored_for_dedup_and_storage(stub):
    b = new_id()
    first = event("e1", builder=b)
    await ingest(stub, [first])
    again = event("e1", builder=b)
    again.ingested_time.FromDatetime(utc(2001, 1, 1))
    response = await ingest(stub, [again])
    assert response.results[0].outcome == DUPLICATE
    listed = await stub.ListEvents(pb.ListEventsRequest(builder_id=b), timeout=10)
    assert listed.events[0].ingested_time.ToDatetime().year >= 2026


async def test_tag_and_quantity_order_does_not_change_the_content(stub):
    b = new_id()
    keys = [f"k{i}" for i in range(20)]
    forward = event("e1", builder=b, tags={k: k.upper() for k in keys}, quantities={k: "1" for k in keys})
    backward = event(
        "e1",
        builder=b,
        tags={k: k.upper() for k in reversed(keys)},
        quantities={k: "1" for k in reversed(keys)},
    )
    await ingest(stub, [forward])
    assert (await ingest(stub, [backward])).results[0].outcome == DUPLICATE
