"""Property: for random events, meters and queries, QueryUsage equals a brute-force computation over
the same events in plain Python with Decimal arithmetic (filters, statuses, windows, group-by, buckets,
and an ingestion cutoff between two batches).

One server and database for the module; each example uses a fresh builder id so examples never see
each other's events. Occurred times are distinct within an example, so LATEST never needs the
ingestion-order tie-break (tested on its own in test_query_api.py).
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from metering_kit import (
    COUNT,
    DAY,
    HOUR,
    LATEST,
    MAX,
    MONTH,
    SUM,
    UNIQUE_COUNT,
    add_months,
    create_meter,
    event,
    ingest,
    meter,
    now,
    query,
    utc,
    values,
)

from tollgate.metering.v1 import metering_pb2 as pb

BASE = utc(2026, 1, 25)
SPAN_MINUTES = 45 * 24 * 60
# Offsets (minutes from BASE) on hour, day and month boundaries, and just around them.
FEB_1 = 7 * 24 * 60
MAR_1 = FEB_1 + 28 * 24 * 60
EDGES = [0, 59, 60, 61, 24 * 60 - 1, 24 * 60, FEB_1 - 1, FEB_1, FEB_1 + 1, MAR_1 - 1, MAR_1, SPAN_MINUTES - 1]
BUCKETS = [("small", "10"), ("mid", "100"), ("big", "")]
TYPES = ["ai.request", "document.processed"]
STATUSES = [pb.EVENT_STATUS_SUCCEEDED, pb.EVENT_STATUS_FAILED, pb.EVENT_STATUS_TEST]
AMOUNTS = ["0", "1", "2.5", "10", "0.000000001", "100", "101", "12345.678901234", "7"]
PAGES = ["0", "1", "10", "10.5", "11", "100", "101", "250"]


@dataclass(frozen=True)
class Ev:
    offset: int
    type: str
    status: int
    customer: str
    app: str
    run_id: str
    tags: dict[str, str]
    q: str | None
    pages: str | None

    @property
    def at(self) -> datetime:
        return BASE + timedelta(minutes=self.offset)


@dataclass(frozen=True)
class MeterDef:
    types: list[str]
    aggregation: int
    unique_tag: str
    tag_filters: dict[str, str]
    statuses: list[int]
    buckets: bool


@dataclass(frozen=True)
class Query:
    start: int
    end: int
    customer: str
    window: int
    by_customer: bool
    by_app: bool
    by_tags: list[str]
    by_bucket: bool
    tag_filters: dict[str, str] = field(default_factory=dict)


offsets = st.one_of(st.integers(0, SPAN_MINUTES - 1), st.sampled_from(EDGES))
optional_tag = st.sampled_from([None, "intake", "triage"])
events_st = st.lists(
    st.builds(
        Ev,
        offset=offsets,
        type=st.sampled_from(TYPES),
        status=st.sampled_from(STATUSES),
        customer=st.sampled_from(["c1", "c2", "c3"]),
        app=st.sampled_from(["a1", "a2"]),
        run_id=st.sampled_from(["", "r1", "r2", "r3", "r4"]),
        tags=st.fixed_dictionaries(
            {},
            optional={
                "workflow": st.sampled_from(["intake", "triage"]),
                "client": st.sampled_from(["acme", "globex"]),
            },
        ),
        q=st.one_of(st.none(), st.sampled_from(AMOUNTS)),
        pages=st.one_of(st.none(), st.sampled_from(PAGES)),
    ),
    max_size=40,
    unique_by=lambda e: e.offset,
)
meter_st = st.builds(
    MeterDef,
    types=st.sampled_from([["ai.request"], ["document.processed"], TYPES]),
    aggregation=st.sampled_from([COUNT, SUM, UNIQUE_COUNT, MAX, LATEST]),
    unique_tag=st.sampled_from(["", "client"]),
    tag_filters=st.sampled_from([{}, {"workflow": "intake"}]),
    statuses=st.sampled_from(
        [[], [pb.EVENT_STATUS_FAILED], [pb.EVENT_STATUS_SUCCEEDED, pb.EVENT_STATUS_FAILED], STATUSES]
    ),
    buckets=st.booleans(),
)


@st.composite
def query_st(draw, with_buckets: bool) -> Query:
    a = draw(st.one_of(st.sampled_from(EDGES), st.integers(0, SPAN_MINUTES)))
    b = draw(st.one_of(st.sampled_from([*EDGES, SPAN_MINUTES]), st.integers(0, SPAN_MINUTES)))
    if a == b:
        b = a + 1
    start, end = min(a, b), max(a, b)
    return Query(
        start=start,
        end=end,
        customer=draw(st.sampled_from(["", "", "c1"])),
        window=draw(st.sampled_from([pb.WINDOW_SIZE_UNSPECIFIED, HOUR, DAY, MONTH])),
        by_customer=draw(st.booleans()),
        by_app=draw(st.booleans()),
        by_tags=draw(st.sampled_from([[], ["workflow"], ["client", "workflow"]])),
        by_bucket=with_buckets and draw(st.booleans()),
        tag_filters=draw(st.sampled_from([{}, {}, {"client": "acme"}, {"workflow": "triage"}])),
    )


def _window(at: datetime, size: int, start: datetime, end: datetime) -> tuple[datetime, datetime]:
    if size == pb.WINDOW_SIZE_UNSPECIFIED:
        return start, end
    if size == HOUR:
        lo = at.replace(minute=0, second=0, microsecond=0)
        hi = lo + timedelta(hours=1)
    elif size == DAY:
        lo = at.replace(hour=0, minute=0, second=0, microsecond=0)
        hi = lo + timedelta(days=1)
    else:
        lo = at.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        hi = add_months(lo, 1)
    return max(lo, start), min(hi, end)


def _bucket(e: Ev) -> str:
    pages = Decimal(e.pages) if e.pages is not None else Decimal(0)
    for key, bound in BUCKETS:
        if bound == "" or pages <= Decimal(bound):
            return key
    raise AssertionError("the last bucket is open-ended")


def brute_force(events: list[Ev], m: MeterDef, q: Query) -> dict[tuple, tuple[Decimal | None, int]]:
    """The answer computed the slow, obvious way. None as a value means 'no event carried the
    quantity' (MAX/LATEST), which the contract leaves open; only the event count is compared then."""
    statuses = m.statuses or [pb.EVENT_STATUS_SUCCEEDED]
    start, end = BASE + timedelta(minutes=q.start), BASE + timedelta(minutes=q.end)
    groups: dict[tuple, list[Ev]] = {}
    for e in events:
        if e.type not in m.types or e.status not in statuses:
            continue
        if any(e.tags.get(k) != v for k, v in m.tag_filters.items()):
            continue
        if any(e.tags.get(k) != v for k, v in q.tag_filters.items()):
            continue
        if q.customer and e.customer != q.customer:
            continue
        if not (start <= e.at < end):
            continue
        key = (
            *_window(e.at, q.window, start, end),
            e.customer if q.by_customer else "",
            e.app if q.by_app else "",
            tuple(sorted((t, e.tags.get(t, "")) for t in q.by_tags)),
            _bucket(e) if q.by_bucket else "",
        )
        groups.setdefault(key, []).append(e)
    out: dict[tuple, tuple[Decimal | None, int]] = {}
    for key, group in groups.items():
        carriers = [e for e in group if e.q is not None]
        value: Decimal | None
        if m.aggregation == COUNT:
            value = Decimal(len(group))
        elif m.aggregation == SUM:
            value = sum((Decimal(e.q) for e in carriers), Decimal(0))
        elif m.aggregation == UNIQUE_COUNT:
            if m.unique_tag:
                value = Decimal(len({e.tags[m.unique_tag] for e in group if e.tags.get(m.unique_tag)}))
            else:
                value = Decimal(len({e.run_id for e in group if e.run_id}))
        elif m.aggregation == MAX:
            value = max((Decimal(e.q) for e in carriers), default=None)
        else:
            value = Decimal(max(carriers, key=lambda e: e.offset).q) if carriers else None
        out[key] = (value, len(group))
    return out


def to_event(e: Ev, builder: str, index: int) -> pb.UsageEvent:
    quantities = {}
    if e.q is not None:
        quantities["q"] = e.q
    if e.pages is not None:
        quantities["pages"] = e.pages
    return event(
        f"p{index}",
        builder=builder,
        customer=e.customer,
        at=e.at,
        type=e.type,
        status=e.status,
        app=e.app,
        run_id=e.run_id,
        tags=e.tags,
        quantities=quantities,
    )


def to_meter(m: MeterDef, builder: str) -> pb.Meter:
    uses_quantity = m.aggregation in (SUM, MAX, LATEST)
    return meter(
        builder,
        "prop",
        m.aggregation,
        event_types=m.types,
        quantity="q" if uses_quantity else "",
        unique_tag=m.unique_tag if m.aggregation == UNIQUE_COUNT else "",
        tag_filters=m.tag_filters,
        statuses=m.statuses,
        bucket_quantity="pages" if m.buckets else "",
        buckets=BUCKETS if m.buckets else (),
    )


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=False,
)
@given(events=events_st, m=meter_st, data=st.data())
async def test_query_usage_equals_brute_force_over_the_same_events(stub, events, m, data):
    builder = f"prop-{uuid.uuid4().hex[:12]}"
    created = await create_meter(stub, to_meter(m, builder))
    assert created.key == "prop"
    # Two batches with an ingestion cutoff between them: queries that use the cutoff must see
    # exactly the first batch, as if the second (late) batch had never arrived.
    split = data.draw(st.integers(0, len(events)), label="split")
    wire = [to_event(e, builder, i) for i, e in enumerate(events)]
    for part in (wire[:split], None, wire[split:]):
        if part is None:
            await asyncio.sleep(0.005)
            cutoff = now()
            await asyncio.sleep(0.005)
        elif part:
            response = await ingest(stub, part)
            assert response.accepted_count == len(part), [r for r in response.results if r.outcome != 1][:3]
    queries = data.draw(st.lists(query_st(m.buckets), min_size=1, max_size=3), label="queries")
    for q in queries:
        use_cutoff = data.draw(st.booleans(), label="use_cutoff")
        got = values(
            await query(
                stub,
                builder,
                "prop",
                BASE + timedelta(minutes=q.start),
                BASE + timedelta(minutes=q.end),
                customer=q.customer,
                window=q.window,
                by_customer=q.by_customer,
                by_app=q.by_app,
                by_tags=q.by_tags,
                by_bucket=q.by_bucket,
                tag_filters=q.tag_filters,
                ingested_before=cutoff if use_cutoff else None,
            )
        )
        want = brute_force(events[:split] if use_cutoff else events, m, q)
        assert set(got) == set(want), (q, sorted(set(got) ^ set(want)))
        for key, (value, count) in want.items():
            got_value, got_count = got[key]
            assert got_count == count, (q, key)
            if value is not None:
                assert got_value == value, (q, key, got_value, value)
