"""The retention window and the partition cap, against a server with default settings: an event older
than 400 days is INVALID naming occurred_time, and one batch opens at most 4 new monthly partitions
(events of further new months are INVALID, stored when resent). Dates are relative to today."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from metering_kit import (
    ACCEPTED,
    COUNT,
    DUPLICATE,
    INVALID,
    add_months,
    create_meter,
    event,
    ingest,
    meter,
    migrated_metering_database,
    month_start,
    new_id,
    now,
    total,
)

from metering.app import start
from metering.config import Settings
from tests.conftest import auth_channel, security
from tollgate.metering.v1 import metering_pb2 as pb
from tollgate.metering.v1 import metering_pb2_grpc


@pytest.fixture(scope="module")
async def stub(make_database) -> AsyncIterator[metering_pb2_grpc.MeteringServiceStub]:
    url = await migrated_metering_database(make_database)
    running = await start(
        Settings(
            database_url=url, grpc_address="127.0.0.1:0", metrics_port=None, security=security("metering")
        )
    )
    async with auth_channel(f"127.0.0.1:{running.port}") as ch:
        yield metering_pb2_grpc.MeteringServiceStub(ch)
    await running.stop(0)


async def listed_ids(stub, builder: str) -> set[str]:
    response = await stub.ListEvents(pb.ListEventsRequest(builder_id=builder, page_size=1000), timeout=30)
    return {e.id for e in response.events}


async def test_an_event_older_than_400_days_is_invalid_naming_occurred_time_and_its_batch_mates_are_stored(
    stub,
):
    b = new_id()
    response = await ingest(
        stub,
        [
            event("recent", builder=b, at=now() - timedelta(hours=1)),
            event("too-old", builder=b, at=now() - timedelta(days=401)),
            event("just-inside", builder=b, at=now() - timedelta(days=399)),
        ],
    )
    assert [r.outcome for r in response.results] == [ACCEPTED, INVALID, ACCEPTED]
    refused = response.results[1]
    assert refused.field == "events[1].occurred_time"
    assert "400 days in the past" in refused.reason
    assert (response.accepted_count, response.invalid_count) == (2, 1)
    assert await listed_ids(stub, b) == {"recent", "just-inside"}


async def test_an_event_from_a_year_ago_is_stored_and_counted(stub):
    b = new_id()
    at = now() - timedelta(days=365)
    assert (await ingest(stub, [event("a-year-ago", builder=b, at=at)])).results[0].outcome == ACCEPTED
    await create_meter(stub, meter(b, "requests", COUNT))
    assert await total(stub, b, "requests", at - timedelta(days=1), at + timedelta(days=1)) == 1


async def test_a_batch_needing_six_new_months_stores_the_newest_four_and_the_rest_when_resent(stub):
    b = new_id()
    this_month = month_start(now())
    # Months 2 to 7 before this one: nothing in this module's database has opened them.
    old_months = [add_months(this_month, -k) + timedelta(days=9) for k in range(2, 8)]
    events = [event("current", builder=b, at=now())] + [
        event(f"m{k}-{n}", builder=b, at=at + timedelta(hours=n))
        for k, at in zip(range(2, 8), old_months, strict=True)
        for n in range(2)
    ]
    first = await ingest(stub, events)
    outcomes = {r.event_id: r.outcome for r in first.results}
    # This month's partition exists (made at start-up) and costs nothing; of the six new months the
    # newest four (2 to 5 months ago) are opened, the two oldest are refused per event.
    assert {k for k, o in outcomes.items() if o == ACCEPTED} == {"current"} | {
        f"m{k}-{n}" for k in range(2, 6) for n in range(2)
    }
    refused = [(i, r) for i, r in enumerate(first.results) if r.outcome == INVALID]
    assert {r.event_id for _, r in refused} == {f"m{k}-{n}" for k in (6, 7) for n in range(2)}
    for i, r in refused:
        assert r.field == f"events[{i}].occurred_time"
        assert "more than 4 new monthly partitions" in r.reason and "again" in r.reason
    assert (first.accepted_count, first.invalid_count) == (9, 4)

    # Resent as a whole: what was stored is a duplicate, the refused months now open and store.
    second = await ingest(stub, events)
    again = {r.event_id: r.outcome for r in second.results}
    assert {k for k, o in again.items() if o == ACCEPTED} == {f"m{k}-{n}" for k in (6, 7) for n in range(2)}
    assert {k for k, o in again.items() if o == DUPLICATE} == set(outcomes) - {
        f"m{k}-{n}" for k in (6, 7) for n in range(2)
    }
    assert len(await listed_ids(stub, b)) == len(events)
