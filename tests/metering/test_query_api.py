"""QueryUsage through a real server: every aggregation, filters, statuses, buckets, windows, group-by,
half-open ranges, workflow runs counted once, and the ingestion cutoff that makes a past answer exact."""

from __future__ import annotations

import asyncio
import decimal
from datetime import timedelta
from decimal import Decimal

import grpc
import pytest
from metering_kit import (
    COUNT,
    DAY,
    FAILED,
    HOUR,
    LATEST,
    MAX,
    MONTH,
    SUM,
    TEST,
    UNIQUE_COUNT,
    assert_all,
    assert_invalid_field,
    create_meter,
    event,
    from_ts,
    ingest,
    meter,
    migrated_metering_database,
    new_id,
    now,
    query,
    server_settings,
    total,
    utc,
    values,
)

from metering.app import start
from tests.conftest import auth_channel
from tollgate.metering.v1 import metering_pb2 as pb
from tollgate.metering.v1 import metering_pb2_grpc

JAN, FEB = utc(2026, 1, 1), utc(2026, 2, 1)
D = Decimal
DOC_BUCKETS = [("1-10", "10"), ("11-100", "100"), ("101+", "")]


async def setup(stub, builder: str, events: list[pb.UsageEvent], *meters: pb.Meter) -> None:
    for m in meters:
        await create_meter(stub, m)
    if events:
        assert_all(await ingest(stub, events), pb.INGEST_OUTCOME_ACCEPTED)


# ---- aggregations ----------------------------------------------------------------------------------


async def test_count_reads_only_its_event_types_and_succeeded_events_by_default(stub):
    b = new_id()
    events = [
        event("s1", builder=b),
        event("s2", builder=b),
        event("s3", builder=b),
        event("f1", builder=b, status=FAILED),
        event("t1", builder=b, status=TEST),
        event("other-type", builder=b, type="ticket.handled"),
    ]
    await setup(
        stub,
        b,
        events,
        meter(b, "requests", COUNT),
        meter(b, "requests_incl_failed", COUNT, statuses=[pb.EVENT_STATUS_SUCCEEDED, FAILED]),
        meter(b, "test_calls", COUNT, statuses=[TEST]),
        meter(b, "requests_and_tickets", COUNT, event_types=["ai.request", "ticket.handled"]),
    )
    assert await total(stub, b, "requests", JAN, FEB) == 3
    assert await total(stub, b, "requests_incl_failed", JAN, FEB) == 4
    assert await total(stub, b, "test_calls", JAN, FEB) == 1
    assert await total(stub, b, "requests_and_tickets", JAN, FEB) == 4
    response = await query(stub, b, "requests", JAN, FEB)
    assert [r.event_count for r in response.rows] == [3]


async def test_sum_is_exact_decimal_and_events_without_the_quantity_add_nothing(stub):
    b = new_id()
    events = [
        event("e1", builder=b, quantities={"provider_cost": "0.1", "input_tokens": "1200"}),
        event("e2", builder=b, quantities={"provider_cost": "0.2", "input_tokens": "800"}),
        event("e3", builder=b, quantities={"provider_cost": "0.000375"}),
        event("e4", builder=b, quantities={"output_tokens": "50"}),
    ]
    await setup(
        stub,
        b,
        events,
        meter(b, "cost", SUM, quantity="provider_cost"),
        meter(b, "tokens", SUM, quantity="input_tokens"),
    )
    response = await query(stub, b, "cost", JAN, FEB)
    assert D(response.rows[0].value) == D("0.300375")
    assert response.rows[0].event_count == 4
    assert await total(stub, b, "tokens", JAN, FEB) == D(2000)


async def test_sum_keeps_nine_decimal_places_over_many_events(stub):
    b = new_id()
    events = [event(f"e{i}", builder=b, quantities={"provider_cost": "0.000000001"}) for i in range(1000)]
    await setup(stub, b, events, meter(b, "cost", SUM, quantity="provider_cost"))
    assert await total(stub, b, "cost", JAN, FEB) == D("0.000001")


async def test_unique_count_by_run_id_counts_each_run_once(stub):
    b = new_id()
    events = [
        # Run r1: three requests, one of them retried after a failure.
        event("r1-a", builder=b, run_id="r1"),
        event("r1-b-try1", builder=b, run_id="r1", status=FAILED),
        event("r1-b-try2", builder=b, run_id="r1"),
        event("r1-c", builder=b, run_id="r1"),
        # Run r2: one request.
        event("r2-a", builder=b, run_id="r2"),
        # Run r3: every attempt failed.
        event("r3-a", builder=b, run_id="r3", status=FAILED),
        event("r3-a-retry", builder=b, run_id="r3", status=FAILED),
        # No run at all.
        event("lone", builder=b),
    ]
    await setup(
        stub,
        b,
        events,
        meter(b, "runs", UNIQUE_COUNT),
        meter(b, "runs_incl_failed", UNIQUE_COUNT, statuses=[pb.EVENT_STATUS_SUCCEEDED, FAILED]),
    )
    assert await total(stub, b, "runs", JAN, FEB) == 2
    assert await total(stub, b, "runs_incl_failed", JAN, FEB) == 3


async def test_unique_count_of_a_tag_ignores_events_without_it(stub):
    b = new_id()
    events = [
        event("e1", builder=b, type="ticket.handled", tags={"ticket": "T-1"}),
        event("e2", builder=b, type="ticket.handled", tags={"ticket": "T-1"}),
        event("e3", builder=b, type="ticket.handled", tags={"ticket": "T-2"}),
        event("e4", builder=b, type="ticket.handled", tags={"ticket": "t-2"}),
        event("e5", builder=b, type="ticket.handled"),
    ]
    await setup(
        stub,
        b,
        events,
        meter(b, "tickets", UNIQUE_COUNT, event_types=["ticket.handled"], unique_tag="ticket"),
    )
    assert await total(stub, b, "tickets", JAN, FEB) == 3


async def test_max_is_the_largest_exact_value(stub):
    b = new_id()
    events = [
        event("e1", builder=b, quantities={"context": "2.25"}),
        event("e2", builder=b, quantities={"context": "10"}),
        event("e3", builder=b, quantities={"context": "9.999999999"}),
        event("e4", builder=b),
    ]
    await setup(stub, b, events, meter(b, "peak", MAX, quantity="context"))
    assert await total(stub, b, "peak", JAN, FEB) == D(10)


async def test_latest_is_the_value_of_the_event_that_occurred_last(stub):
    b = new_id()
    events = [
        event("e1", builder=b, at=utc(2026, 1, 3), quantities={"seats": "5"}),
        event("e2", builder=b, at=utc(2026, 1, 20), quantities={"seats": "7"}),
        event("e3", builder=b, at=utc(2026, 1, 9), quantities={"seats": "9"}),
    ]
    await setup(stub, b, events, meter(b, "seats", LATEST, quantity="seats"))
    assert await total(stub, b, "seats", JAN, FEB) == 7
    # Windowed, each window has its own latest.
    response = await query(stub, b, "seats", JAN, FEB, window=DAY)
    assert [(from_ts(r.window_start_time).day, D(r.value)) for r in response.rows] == [
        (3, 5),
        (9, 9),
        (20, 7),
    ]


async def test_latest_tie_on_occurred_time_goes_to_the_event_ingested_last(stub):
    b = new_id()
    await create_meter(stub, meter(b, "seats", LATEST, quantity="seats"))
    at = utc(2026, 1, 5, 8)
    await ingest(stub, [event("first", builder=b, at=at, quantities={"seats": "30"})])
    await asyncio.sleep(0.05)
    await ingest(stub, [event("second", builder=b, at=at, quantities={"seats": "4"})])
    assert await total(stub, b, "seats", JAN, FEB) == 4


# ---- filters, customers ----------------------------------------------------------------------------


async def test_meter_and_request_tag_filters_both_apply(stub):
    b = new_id()
    events = [
        event("e1", builder=b, tags={"workflow": "intake", "client": "acme"}),
        event("e2", builder=b, tags={"workflow": "intake", "client": "globex"}),
        event("e3", builder=b, tags={"workflow": "triage", "client": "acme"}),
        event("e4", builder=b, tags={"client": "acme"}),
        event("e5", builder=b, tags={"workflow": "intake"}),
    ]
    await setup(
        stub, b, events, meter(b, "intake", COUNT, tag_filters={"workflow": "intake"}), meter(b, "all", COUNT)
    )
    assert await total(stub, b, "intake", JAN, FEB) == 3
    assert await total(stub, b, "intake", JAN, FEB, tag_filters={"client": "acme"}) == 1
    assert await total(stub, b, "all", JAN, FEB, tag_filters={"client": "acme"}) == 3
    assert await total(stub, b, "all", JAN, FEB, tag_filters={"client": "acme", "workflow": "triage"}) == 1
    assert await total(stub, b, "all", JAN, FEB, tag_filters={"client": "initech"}) == 0


async def test_one_customer_or_all_customers_of_the_builder(stub):
    b, other = new_id(), new_id()
    events = [
        event("e1", builder=b, customer="c1"),
        event("e2", builder=b, customer="c1"),
        event("e3", builder=b, customer="c2"),
        event("x1", builder=other, customer="c1"),
    ]
    await setup(stub, b, events, meter(b, "requests", COUNT))
    assert await total(stub, b, "requests", JAN, FEB, customer="c1") == 2
    assert await total(stub, b, "requests", JAN, FEB, customer="c2") == 1
    assert await total(stub, b, "requests", JAN, FEB, customer="c3") == 0
    assert await total(stub, b, "requests", JAN, FEB) == 3


async def test_range_is_half_open_start_included_end_excluded(stub):
    b = new_id()
    start, end = utc(2026, 1, 10), utc(2026, 1, 11)
    events = [
        event("before", builder=b, at=start - timedelta(microseconds=1)),
        event("at-start", builder=b, at=start),
        event("inside", builder=b, at=end - timedelta(microseconds=1)),
        event("at-end", builder=b, at=end),
    ]
    await setup(stub, b, events, meter(b, "requests", COUNT))
    response = await query(stub, b, "requests", start, end)
    assert len(response.rows) == 1
    row = response.rows[0]
    assert D(row.value) == 2
    assert (from_ts(row.window_start_time), from_ts(row.window_end_time)) == (start, end)


# ---- buckets ---------------------------------------------------------------------------------------


async def test_documents_by_page_range_with_edge_values_and_missing_pages(stub):
    b = new_id()
    pages = {
        "p1": "1",
        "p10": "10",
        "p10_5": "10.5",
        "p11": "11",
        "p100": "100",
        "p101": "101",
        "p5000": "5000",
    }
    events = [
        event(k, builder=b, type="document.processed", quantities={"pages": v}) for k, v in pages.items()
    ]
    events.append(event("no-pages", builder=b, type="document.processed"))
    await setup(
        stub,
        b,
        events,
        meter(
            b,
            "documents",
            COUNT,
            event_types=["document.processed"],
            bucket_quantity="pages",
            buckets=DOC_BUCKETS,
        ),
        meter(
            b,
            "pages",
            SUM,
            event_types=["document.processed"],
            quantity="pages",
            bucket_quantity="pages",
            buckets=DOC_BUCKETS,
        ),
    )
    response = await query(stub, b, "documents", JAN, FEB, by_bucket=True)
    assert [(r.bucket, D(r.value), r.event_count) for r in response.rows] == [
        ("1-10", D(3), 3),  # 1, 10 and the one without pages (as zero)
        ("11-100", D(3), 3),  # 10.5, 11, 100
        ("101+", D(2), 2),  # 101, 5000
    ]
    response = await query(stub, b, "pages", JAN, FEB, by_bucket=True)
    assert [(r.bucket, D(r.value)) for r in response.rows] == [
        ("1-10", D(11)),
        ("11-100", D("121.5")),
        ("101+", D(5101)),
    ]
    # Without group-by the buckets do not split the value.
    assert await total(stub, b, "documents", JAN, FEB) == 8


async def test_group_by_bucket_on_a_meter_without_buckets_is_refused(stub):
    b = new_id()
    await setup(stub, b, [], meter(b, "requests", COUNT))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await query(stub, b, "requests", JAN, FEB, by_bucket=True)
    assert caught.value.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION)
    assert "bucket" in caught.value.details().lower()


# ---- windows ---------------------------------------------------------------------------------------


async def test_hour_windows_split_on_utc_hours(stub):
    b = new_id()
    events = [
        event("a", builder=b, at=utc(2026, 1, 10, 10, 0, 0)),
        event("b", builder=b, at=utc(2026, 1, 10, 10, 59, 59, 999999)),
        event("c", builder=b, at=utc(2026, 1, 10, 11, 0, 0)),
        event("d", builder=b, at=utc(2026, 1, 10, 13, 30)),
    ]
    await setup(stub, b, events, meter(b, "requests", COUNT))
    response = await query(stub, b, "requests", utc(2026, 1, 10, 10, 0), utc(2026, 1, 10, 14, 0), window=HOUR)
    assert [
        (from_ts(r.window_start_time), from_ts(r.window_end_time), D(r.value)) for r in response.rows
    ] == [
        (utc(2026, 1, 10, 10), utc(2026, 1, 10, 11), D(2)),
        (utc(2026, 1, 10, 11), utc(2026, 1, 10, 12), D(1)),
        (utc(2026, 1, 10, 13), utc(2026, 1, 10, 14), D(1)),
    ]


async def test_day_windows_are_utc_days_clipped_to_the_range(stub):
    b = new_id()
    events = [
        event("early", builder=b, at=utc(2026, 1, 10, 5, 59)),  # before the range
        event("a", builder=b, at=utc(2026, 1, 10, 6, 0)),
        event("b", builder=b, at=utc(2026, 1, 10, 23, 59, 59)),
        event("c", builder=b, at=utc(2026, 1, 11, 0, 0)),
        event("d", builder=b, at=utc(2026, 1, 12, 17, 59)),
        event("late", builder=b, at=utc(2026, 1, 12, 18, 0)),  # at the range end
    ]
    await setup(stub, b, events, meter(b, "requests", COUNT))
    start, end = utc(2026, 1, 10, 6), utc(2026, 1, 12, 18)
    response = await query(stub, b, "requests", start, end, window=DAY)
    assert [
        (from_ts(r.window_start_time), from_ts(r.window_end_time), D(r.value)) for r in response.rows
    ] == [
        (start, utc(2026, 1, 11), D(2)),
        (utc(2026, 1, 11), utc(2026, 1, 12), D(1)),
        (utc(2026, 1, 12), end, D(1)),
    ]


async def test_month_windows_are_calendar_months_clipped_and_empty_months_omitted(stub):
    b = new_id()
    events = [
        event("jan", builder=b, at=utc(2026, 1, 31, 23, 59, 59)),
        event("feb-1", builder=b, at=utc(2026, 2, 1, 0, 0, 0)),
        event("feb-28", builder=b, at=utc(2026, 2, 28, 23, 0)),
        event("apr", builder=b, at=utc(2026, 4, 2)),
        event("may", builder=b, at=utc(2026, 5, 1, 6)),  # at the range end
    ]
    await setup(stub, b, events, meter(b, "requests", COUNT))
    start, end = utc(2026, 1, 20), utc(2026, 5, 1, 6)
    response = await query(stub, b, "requests", start, end, window=MONTH)
    assert [
        (from_ts(r.window_start_time), from_ts(r.window_end_time), D(r.value)) for r in response.rows
    ] == [
        (start, utc(2026, 2, 1), D(1)),
        (utc(2026, 2, 1), utc(2026, 3, 1), D(2)),
        (utc(2026, 4, 1), utc(2026, 5, 1), D(1)),
    ]


# ---- group-by --------------------------------------------------------------------------------------


async def test_group_by_customer_app_and_tags_with_missing_tag_as_empty(stub):
    b = new_id()
    events = [
        event("e1", builder=b, customer="c1", app="a1", tags={"workflow": "intake"}, quantities={"t": "10"}),
        event("e2", builder=b, customer="c1", app="a1", tags={"workflow": "intake"}, quantities={"t": "5"}),
        event("e3", builder=b, customer="c1", app="a2", tags={"workflow": "triage"}, quantities={"t": "1"}),
        event("e4", builder=b, customer="c2", app="a1", quantities={"t": "7"}),
        event("e5", builder=b, customer="c2", app="a1", tags={"workflow": "intake"}, quantities={"t": "0.5"}),
    ]
    await setup(stub, b, events, meter(b, "tokens", SUM, quantity="t"))
    by_customer = values(await query(stub, b, "tokens", JAN, FEB, by_customer=True))
    assert by_customer == {
        (JAN, FEB, "c1", "", (), ""): (D(16), 3),
        (JAN, FEB, "c2", "", (), ""): (D("7.5"), 2),
    }
    by_app = values(await query(stub, b, "tokens", JAN, FEB, by_app=True))
    assert by_app == {(JAN, FEB, "", "a1", (), ""): (D("22.5"), 4), (JAN, FEB, "", "a2", (), ""): (D(1), 1)}
    by_tag = values(await query(stub, b, "tokens", JAN, FEB, by_tags=["workflow"]))
    assert by_tag == {
        (JAN, FEB, "", "", (("workflow", ""),), ""): (D(7), 1),
        (JAN, FEB, "", "", (("workflow", "intake"),), ""): (D("15.5"), 3),
        (JAN, FEB, "", "", (("workflow", "triage"),), ""): (D(1), 1),
    }
    combined = await query(stub, b, "tokens", JAN, FEB, by_customer=True, by_app=True, by_tags=["workflow"])
    assert [(r.customer_id, r.app_id, r.tags["workflow"], D(r.value)) for r in combined.rows] == [
        ("c1", "a1", "intake", D(15)),
        ("c1", "a2", "triage", D(1)),
        ("c2", "a1", "", D(7)),
        ("c2", "a1", "intake", D("0.5")),
    ]


async def test_grouped_rows_are_ordered_by_window_then_customer(stub):
    b = new_id()
    events = [
        event("e1", builder=b, customer="zed", at=utc(2026, 1, 2, 3)),
        event("e2", builder=b, customer="amy", at=utc(2026, 1, 2, 4)),
        event("e3", builder=b, customer="amy", at=utc(2026, 1, 1, 9)),
        event("e4", builder=b, customer="mia", at=utc(2026, 1, 1, 1)),
    ]
    await setup(stub, b, events, meter(b, "requests", COUNT))
    response = await query(stub, b, "requests", JAN, FEB, window=DAY, by_customer=True)
    assert [(from_ts(r.window_start_time).day, r.customer_id) for r in response.rows] == [
        (1, "amy"),
        (1, "mia"),
        (2, "amy"),
        (2, "zed"),
    ]


async def test_group_by_customer_and_bucket_windowed_by_day(stub):
    b = new_id()
    events = [
        event(
            "d1",
            builder=b,
            customer="c1",
            type="document.processed",
            at=utc(2026, 1, 5, 1),
            quantities={"pages": "4"},
        ),
        event(
            "d2",
            builder=b,
            customer="c1",
            type="document.processed",
            at=utc(2026, 1, 5, 2),
            quantities={"pages": "40"},
        ),
        event(
            "d3",
            builder=b,
            customer="c2",
            type="document.processed",
            at=utc(2026, 1, 5, 3),
            quantities={"pages": "400"},
        ),
        event(
            "d4",
            builder=b,
            customer="c1",
            type="document.processed",
            at=utc(2026, 1, 6, 3),
            quantities={"pages": "4"},
        ),
    ]
    await setup(
        stub,
        b,
        events,
        meter(
            b, "docs", COUNT, event_types=["document.processed"], bucket_quantity="pages", buckets=DOC_BUCKETS
        ),
    )
    response = await query(stub, b, "docs", JAN, FEB, window=DAY, by_customer=True, by_bucket=True)
    assert [
        (from_ts(r.window_start_time).day, r.customer_id, r.bucket, D(r.value)) for r in response.rows
    ] == [
        (5, "c1", "1-10", D(1)),
        (5, "c1", "11-100", D(1)),
        (5, "c2", "101+", D(1)),
        (6, "c1", "1-10", D(1)),
    ]


# ---- request validation ----------------------------------------------------------------------------


async def test_end_not_after_start_is_invalid_argument_naming_end_time(stub):
    b = new_id()
    await setup(stub, b, [], meter(b, "requests", COUNT))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await query(stub, b, "requests", FEB, JAN)
    assert_invalid_field(caught.value, "end_time")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await query(stub, b, "requests", JAN, JAN)
    assert_invalid_field(caught.value, "end_time")


async def test_missing_range_builder_or_meter_key_is_invalid_argument(stub):
    b = new_id()
    await setup(stub, b, [], meter(b, "requests", COUNT))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.QueryUsage(pb.QueryUsageRequest(builder_id=b, meter_key="requests"), timeout=10)
    assert_invalid_field(caught.value, "start_time")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await query(stub, "", "requests", JAN, FEB)
    assert_invalid_field(caught.value, "builder_id")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await query(stub, b, "", JAN, FEB)
    assert_invalid_field(caught.value, "meter_key")


# ---- ingestion cutoff ------------------------------------------------------------------------------


async def test_cutoff_reproduces_a_past_answer_after_late_events_arrive(stub):
    b = new_id()
    await setup(
        stub,
        b,
        [event(f"on-time-{i}", builder=b, quantities={"t": "1.5"}) for i in range(4)],
        meter(b, "tokens", SUM, quantity="t"),
    )
    await asyncio.sleep(0.3)
    cutoff = now()
    await asyncio.sleep(0.3)
    first = await query(stub, b, "tokens", JAN, FEB, ingested_before=cutoff, by_customer=True)
    assert [(r.customer_id, D(r.value), r.event_count) for r in first.rows] == [("cust-1", D(6), 4)]
    assert from_ts(first.ingested_before_time) == cutoff
    assert first.cutoff_settled is False

    # Late events for the same (past) range arrive after the cutoff.
    late = [event(f"late-{i}", builder=b, quantities={"t": "2"}) for i in range(3)]
    late.append(event("late-new-customer", builder=b, customer="cust-2", quantities={"t": "9"}))
    assert_all(await ingest(stub, late), pb.INGEST_OUTCOME_ACCEPTED)

    again = await query(stub, b, "tokens", JAN, FEB, ingested_before=cutoff, by_customer=True)
    assert list(again.rows) == list(first.rows)
    latest = await query(stub, b, "tokens", JAN, FEB, by_customer=True)
    assert [(r.customer_id, D(r.value)) for r in latest.rows] == [("cust-1", D(12)), ("cust-2", D(9))]


async def test_cutoff_settled_is_false_for_now_and_true_for_an_old_cutoff(stub):
    b = new_id()
    await setup(stub, b, [event("e1", builder=b)], meter(b, "requests", COUNT))
    before = now()
    unset = await query(stub, b, "requests", JAN, FEB)
    after = now()
    assert unset.cutoff_settled is False
    assert (
        before - timedelta(seconds=1) <= from_ts(unset.ingested_before_time) <= after + timedelta(seconds=1)
    )

    old = now() - timedelta(hours=1)
    settled = await query(stub, b, "requests", JAN, FEB, ingested_before=old)
    assert settled.cutoff_settled is True
    assert from_ts(settled.ingested_before_time) == old
    # Ingested within the last hour, so not visible before that cutoff.
    assert list(settled.rows) == []


async def test_list_events_shows_ingested_time_between_send_and_reply(stub):
    b = new_id()
    before = now()
    await ingest(stub, [event("e1", builder=b)])
    after = now()
    listed = await stub.ListEvents(pb.ListEventsRequest(builder_id=b), timeout=10)
    stamp = from_ts(listed.events[0].ingested_time)
    assert before - timedelta(seconds=1) <= stamp <= after + timedelta(seconds=1)


async def test_tags_with_quotes_unicode_and_sql_characters_filter_and_group_exactly(stub):
    b = new_id()
    odd = ["o'brien", 'say "hi"', "naïve ☃", "x'); DROP TABLE events; --", "a\\b", '{"k": 1}']
    events = [event(f"e{i}", builder=b, tags={"client": v, "we'ird key": v}) for i, v in enumerate(odd)]
    events.append(event("e-again", builder=b, tags={"client": odd[0], "we'ird key": odd[0]}))
    await setup(
        stub, b, events, meter(b, "obrien", COUNT, tag_filters={"client": "o'brien"}), meter(b, "all", COUNT)
    )
    assert await total(stub, b, "obrien", JAN, FEB) == 2
    assert await total(stub, b, "all", JAN, FEB, tag_filters={"we'ird key": odd[3]}) == 1
    grouped = await query(stub, b, "all", JAN, FEB, by_tags=["we'ird key"])
    assert {r.tags["we'ird key"]: D(r.value) for r in grouped.rows} == {
        v: D(2 if v == odd[0] else 1) for v in odd
    }
    # The table is still there.
    assert await total(stub, b, "all", JAN, FEB) == 7


async def test_nine_places_and_29_integer_digits_sum_exactly_beyond_38_digits(stub):
    b = new_id()
    big = "9" * 29 + "." + "9" * 9
    amounts = [big, big, "0.000000001", "12345678901234567890.123456789"]
    await setup(
        stub,
        b,
        [event(f"e{i}", builder=b, quantities={"x": a}) for i, a in enumerate(amounts)],
        meter(b, "x", SUM, quantity="x"),
        meter(b, "x_max", MAX, quantity="x"),
    )
    response = await query(stub, b, "x", JAN, FEB)
    with decimal.localcontext(prec=100):  # the default 28 digits would round the expectation itself
        expected = sum((D(a) for a in amounts), D(0))
    assert expected == D("200000000012345678901234567890.123456788")
    assert D(response.rows[0].value) == expected
    assert await total(stub, b, "x_max", JAN, FEB) == D(big)


@pytest.mark.parametrize(("text", "words"), [("0.0000000001", "places"), ("1" + "0" * 29, "digits")])
async def test_quantities_beyond_nine_places_or_29_integer_digits_are_invalid_not_rounded(stub, text, words):
    b = new_id()
    response = await ingest(stub, [event("e", builder=b, quantities={"x": text})])
    result = response.results[0]
    assert result.outcome == pb.INGEST_OUTCOME_INVALID
    assert result.field in ("quantities.x", "events[0].quantities.x")
    assert words in result.reason


async def test_group_by_an_empty_tag_name_is_invalid_argument(stub):
    b = new_id()
    await setup(stub, b, [], meter(b, "requests", COUNT))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await query(stub, b, "requests", JAN, FEB, by_tags=[""])
    assert_invalid_field(caught.value, "group_by_tags")


async def test_nanosecond_times_never_round_an_event_into_the_next_month(stub):
    b = new_id()
    e = event("last-nano", builder=b, at=utc(2026, 1, 31, 23, 59, 59))
    e.occurred_time.nanos = 999_999_999
    await setup(stub, b, [e], meter(b, "requests", COUNT))
    assert await total(stub, b, "requests", JAN, FEB) == 1
    assert await total(stub, b, "requests", FEB, utc(2026, 3, 1)) == 0
    monthly = await query(stub, b, "requests", JAN, utc(2026, 3, 1), window=MONTH)
    assert [(from_ts(r.window_start_time), D(r.value)) for r in monthly.rows] == [(JAN, D(1))]


async def test_latest_tie_goes_to_the_event_ingested_last_whatever_connection_stored_it(make_database):
    # Two pooled database connections, both used by concurrent batches first; sequential calls then
    # take turns on them, so consecutive events are stored through different connections.
    url = await migrated_metering_database(make_database)
    running = await start(server_settings(url, pool_size=2))
    try:
        async with auth_channel(f"127.0.0.1:{running.port}") as ch:
            own = metering_pb2_grpc.MeteringServiceStub(ch)
            b = new_id()
            await create_meter(own, meter(b, "seats", LATEST, quantity="seats"))
            await asyncio.gather(
                *(
                    ingest(own, [event(f"warm-{n}-{i}", builder=new_id()) for i in range(500)])
                    for n in range(2)
                )
            )
            at = utc(2026, 1, 7, 9)
            for k in range(12):
                if k == 6:
                    # One call in between shifts which connection takes a pair's first event, so
                    # one half of the pairs goes through the connections in each order.
                    await ingest(own, [event("spacer", builder=new_id())])
                # Each pair's second event is ingested strictly after its first, at the same occurred time.
                first = event(f"first-{k}", builder=b, customer=f"c{k:02d}", at=at, quantities={"seats": "1"})
                second = event(
                    f"second-{k}", builder=b, customer=f"c{k:02d}", at=at, quantities={"seats": "2"}
                )
                await ingest(own, [first])
                await ingest(own, [second])
            response = await query(own, b, "seats", JAN, FEB, by_customer=True)
            assert {r.customer_id: D(r.value) for r in response.rows} == {
                f"c{k:02d}": D(2) for k in range(12)
            }
    finally:
        await running.stop(0)
