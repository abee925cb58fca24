"""Property: for random events (ingested in three batches), meters of every aggregation, ranges, tag
filters and cutoffs, ExplainUsage's contributions sum exactly to QueryUsage's value at the same cutoff
(and, with ingested_after_time, to the difference of the values at the two cutoffs); its groups sum
to the same total; paging the events (or groups) gives every one exactly once, in order.

Occurred times may repeat within an example, so the ties of LATEST and MAX are exercised.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from metering_kit import (
    COUNT,
    LATEST,
    MAX,
    SUM,
    UNIQUE_COUNT,
    create_meter,
    event,
    from_ts,
    ingest,
    meter,
    query,
    ts,
    utc,
)

from tollgate.metering.v1 import metering_pb2 as pb

BASE = utc(2026, 1, 25)
SPAN_MINUTES = 10 * 24 * 60
AMOUNTS = ["0", "1", "2.5", "10", "0.000000001", "7", "9", "12345.678901234"]
STATUSES = [pb.EVENT_STATUS_SUCCEEDED, pb.EVENT_STATUS_FAILED, pb.EVENT_STATUS_TEST]


@dataclass(frozen=True)
class Ev:
    offset: int
    status: int
    customer: str
    run_id: str
    tags: dict[str, str]
    q: str | None


events_st = st.lists(
    st.builds(
        Ev,
        # Few distinct times: ties on occurred_time are common.
        offset=st.sampled_from([0, 60, 61, 24 * 60, 3 * 24 * 60, SPAN_MINUTES - 1]),
        status=st.sampled_from(STATUSES),
        customer=st.sampled_from(["c1", "c1", "c2"]),
        run_id=st.sampled_from(["", "r1", "r2", "r3"]),
        tags=st.fixed_dictionaries(
            {},
            optional={
                "workflow": st.sampled_from(["intake", "triage"]),
                "client": st.sampled_from(["acme", "globex", ""]),
            },
        ),
        q=st.one_of(st.none(), st.sampled_from(AMOUNTS)),
    ),
    max_size=30,
)


async def explain_all(stub, request: pb.ExplainUsageRequest, page_size: int) -> list[pb.ExplainUsageResponse]:
    pages = []
    token = ""
    while True:
        page = pb.ExplainUsageRequest()
        page.CopyFrom(request)
        page.page_size = page_size
        page.page_token = token
        reply = await stub.ExplainUsage(page, timeout=30)
        pages.append(reply)
        token = reply.next_page_token
        if not token:
            return pages
        assert len(pages) < 100


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    events=events_st,
    aggregation=st.sampled_from([COUNT, SUM, UNIQUE_COUNT, MAX, LATEST]),
    unique_tag=st.sampled_from(["", "client"]),
    statuses=st.sampled_from([[], [pb.EVENT_STATUS_FAILED], STATUSES]),
    meter_filter=st.sampled_from([{}, {"workflow": "intake"}]),
    data=st.data(),
)
async def test_contributions_sum_to_query_usage_at_every_cutoff(
    stub, events, aggregation, unique_tag, statuses, meter_filter, data
):
    builder = f"explain-{uuid.uuid4().hex[:12]}"
    await create_meter(
        stub,
        meter(
            builder,
            "m",
            aggregation,
            quantity="q" if aggregation in (SUM, MAX, LATEST) else "",
            unique_tag=unique_tag if aggregation == UNIQUE_COUNT else "",
            statuses=statuses,
            tag_filters=meter_filter,
        ),
    )
    wire = []
    for i, e in enumerate(events):
        wire.append(
            event(
                f"e{i:03d}",
                builder=builder,
                customer=e.customer,
                at=BASE + timedelta(minutes=e.offset),
                status=e.status,
                run_id=e.run_id,
                tags=e.tags,
                quantities={"q": e.q} if e.q is not None else {},
            )
        )
    a, b = sorted(data.draw(st.tuples(st.integers(0, len(wire)), st.integers(0, len(wire))), label="cuts"))
    start = BASE + timedelta(minutes=data.draw(st.sampled_from([0, 61, 24 * 60]), label="start"))
    end = BASE + timedelta(minutes=data.draw(st.sampled_from([61, 3 * 24 * 60, SPAN_MINUTES]), label="end"))
    if end <= start:
        start, end = end - timedelta(minutes=1), start + timedelta(minutes=1)
    filters = data.draw(st.sampled_from([{}, {"client": "acme"}]), label="filters")

    async def value_now() -> tuple[Decimal, datetime]:
        reply = await query(stub, builder, "m", start, end, customer="c1", tag_filters=filters)
        value = Decimal(reply.rows[0].value) if reply.rows else Decimal(0)
        return value, from_ts(reply.ingested_before_time)

    cutoffs: list[datetime] = []
    values: list[Decimal] = []
    for part in (wire[:a], wire[a:b], wire[b:]):
        if part:
            reply = await ingest(stub, part)
            assert reply.accepted_count == len(part)
        value, cutoff = await value_now()
        cutoffs.append(cutoff)
        values.append(value)

    for lower, upper in ((None, 0), (None, 1), (None, 2), (0, 1), (0, 2), (1, 2)):
        request = pb.ExplainUsageRequest(
            builder_id=builder,
            meter_key="m",
            customer_id="c1",
            start_time=ts(start),
            end_time=ts(end),
            ingested_before_time=ts(cutoffs[upper]),
            tag_filters=filters,
        )
        if lower is not None:
            request.ingested_after_time.CopyFrom(ts(cutoffs[lower]))
        want = values[upper] - (values[lower] if lower is not None else 0)
        size = data.draw(st.sampled_from([1, 3, 100]), label="page_size")

        request.view = pb.EXPLAIN_VIEW_EVENTS
        pages = await explain_all(stub, request, size)
        rows = [e for p in pages for e in p.events]
        assert Decimal(pages[0].total_quantity) == want, (lower, upper, pages[0].total_quantity, want)
        assert sum((Decimal(e.contributed_quantity) for e in rows), Decimal(0)) == want
        ids = [e.event.id for e in rows]
        assert len(ids) == len(set(ids)) == pages[0].event_count
        order = [(from_ts(e.event.occurred_time), e.event.id) for e in rows]
        assert order == sorted(order)
        assert all(e.event.customer_id == "c1" for e in rows)
        if lower is None:
            # Without a lower cutoff the events read are QueryUsage's: same count.
            counted = await query(
                stub,
                builder,
                "m",
                start,
                end,
                customer="c1",
                tag_filters=filters,
                ingested_before=cutoffs[upper],
            )
            assert pages[0].event_count == (counted.rows[0].event_count if counted.rows else 0)
        if aggregation in (COUNT, SUM, UNIQUE_COUNT):
            # Additive aggregations never take back what an earlier event contributed.
            assert all(Decimal(e.contributed_quantity) >= 0 for e in rows)

        request.view = pb.EXPLAIN_VIEW_GROUPS
        request.group_by_tags[:] = data.draw(
            st.sampled_from([[], ["workflow"], ["workflow", "run_id"], ["client"]]), label="group_by"
        )
        pages = await explain_all(stub, request, size)
        groups = [g for p in pages for g in p.groups]
        assert sum((Decimal(g.quantity) for g in groups), Decimal(0)) == want
        assert sum(g.event_count for g in groups) == pages[0].event_count
        keys = [tuple(sorted(g.tags.items())) for g in groups]
        assert len(keys) == len(set(keys))
        by_rank = [(-Decimal(g.quantity), [g.tags[t] for t in request.group_by_tags]) for g in groups]
        assert by_rank == sorted(by_rank)
