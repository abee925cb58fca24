"""ExplainUsage over real gRPC and PostgreSQL: which event gets the credit (and which gives it back)
between two cutoffs, paging that keeps its first cutoff, and every malformed request refused with the
field it names."""

from __future__ import annotations

import base64
import json
from datetime import datetime

import grpc
import pytest
from metering_kit import (
    COUNT,
    LATEST,
    MAX,
    UNIQUE_COUNT,
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

from tollgate.metering.v1 import metering_pb2 as pb

START, END = utc(2026, 1, 1), utc(2026, 2, 1)


def request(builder: str, key: str = "m", **kw) -> pb.ExplainUsageRequest:
    r = pb.ExplainUsageRequest(
        builder_id=builder, meter_key=key, customer_id="cust-1", start_time=ts(START), end_time=ts(END)
    )
    for name, value in kw.items():
        if isinstance(value, datetime):
            getattr(r, name).CopyFrom(ts(value))
        elif name == "group_by_tags":
            r.group_by_tags[:] = value
        else:
            setattr(r, name, value)
    return r


async def cutoff_now(stub, builder: str) -> datetime:
    return from_ts((await query(stub, builder, "m", START, END)).ingested_before_time)


def contributions(reply: pb.ExplainUsageResponse) -> dict[str, str]:
    return {e.event.id: e.contributed_quantity for e in reply.events}


async def test_max_between_two_cutoffs_moves_the_credit_to_the_new_maximum(stub) -> None:
    b = new_id()
    await create_meter(stub, meter(b, "m", MAX, quantity="seats"))
    await ingest(
        stub,
        [event("a", builder=b, quantities={"seats": "5"}), event("b", builder=b, quantities={"seats": "5"})],
    )
    first = await cutoff_now(stub, b)
    await ingest(
        stub,
        [event("c", builder=b, quantities={"seats": "8"}), event("d", builder=b, quantities={"seats": "2"})],
    )
    second = await cutoff_now(stub, b)
    at_first = await stub.ExplainUsage(request(b, view=pb.EXPLAIN_VIEW_EVENTS, ingested_before_time=first))
    # Two events tie at the maximum: the first ingested keeps it.
    assert at_first.total_quantity == "5" and contributions(at_first) == {"a": "5", "b": "0"}
    change = await stub.ExplainUsage(
        request(b, view=pb.EXPLAIN_VIEW_EVENTS, ingested_after_time=first, ingested_before_time=second)
    )
    # 8 - 5: the new maximum gets 8, the old one gives its 5 back; d was read and counted nothing.
    assert change.total_quantity == "3"
    assert contributions(change) == {"a": "-5", "c": "8", "d": "0"}
    assert change.event_count == 3


async def test_latest_tie_goes_to_the_event_ingested_last_as_query_usage_says(stub) -> None:
    b = new_id()
    await create_meter(stub, meter(b, "m", LATEST, quantity="seats"))
    at = utc(2026, 1, 20)
    await ingest(stub, [event("first", builder=b, at=at, quantities={"seats": "30"})])
    await ingest(stub, [event("second", builder=b, at=at, quantities={"seats": "4"})])
    reply = await stub.ExplainUsage(request(b, view=pb.EXPLAIN_VIEW_EVENTS))
    value = (await query(stub, b, "m", START, END, customer="cust-1")).rows[0].value
    assert reply.total_quantity == value == "4"
    assert contributions(reply) == {"first": "0", "second": "4"}


async def test_unique_count_credits_the_first_event_of_each_run_only(stub) -> None:
    b = new_id()
    await create_meter(stub, meter(b, "m", UNIQUE_COUNT))
    await ingest(stub, [event("r1-a", builder=b, run_id="r1"), event("none", builder=b)])
    cut = await cutoff_now(stub, b)
    await ingest(stub, [event("r1-b", builder=b, run_id="r1"), event("r2-a", builder=b, run_id="r2")])
    reply = await stub.ExplainUsage(request(b, view=pb.EXPLAIN_VIEW_EVENTS))
    assert reply.total_quantity == "2"
    assert contributions(reply) == {"r1-a": "1", "none": "0", "r1-b": "0", "r2-a": "1"}
    late = await stub.ExplainUsage(request(b, view=pb.EXPLAIN_VIEW_EVENTS, ingested_after_time=cut))
    # Only r2 is new since the cutoff: r1's second event adds nothing.
    assert late.total_quantity == "1" and contributions(late) == {"r1-b": "0", "r2-a": "1"}
    runs = await stub.ExplainUsage(request(b, group_by_tags=["run_id"]))
    assert [(g.tags["run_id"], g.quantity, g.event_count) for g in runs.groups] == [
        ("r1", "1", 2),
        ("r2", "1", 1),
        ("", "0", 1),
    ]


async def test_paging_keeps_the_first_pages_cutoff(stub) -> None:
    b = new_id()
    await create_meter(stub, meter(b, "m", COUNT))
    await ingest(stub, [event(f"e{i}", builder=b, at=utc(2026, 1, 2 + i)) for i in range(5)])
    first = await stub.ExplainUsage(request(b, view=pb.EXPLAIN_VIEW_EVENTS, page_size=2))
    assert [e.event.id for e in first.events] == ["e0", "e1"] and first.total_quantity == "5"
    # An event arriving between pages is after the first page's cutoff: not on a later page.
    await ingest(stub, [event("later", builder=b, at=utc(2026, 1, 30))])
    seen = [e.event.id for e in first.events]
    token = first.next_page_token
    while token:
        page = await stub.ExplainUsage(request(b, view=pb.EXPLAIN_VIEW_EVENTS, page_size=2, page_token=token))
        assert page.total_quantity == "5" and page.ingested_before_time == first.ingested_before_time
        seen += [e.event.id for e in page.events]
        token = page.next_page_token
    assert seen == ["e0", "e1", "e2", "e3", "e4"]


def _forge(cursor: dict) -> str:
    raw = json.dumps(cursor, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"customer_id": ""}, "customer_id"),
        ({"meter_key": "Bad Key"}, "meter_key"),
        ({"builder_id": ""}, "builder_id"),
        ({"group_by_tags": ["a", "b", "c", "d", "e"]}, "group_by_tags"),
        ({"group_by_tags": ["a", "a"]}, "group_by_tags"),
        ({"group_by_tags": [""]}, "group_by_tags"),
        ({"view": 9}, "view"),
        ({"page_size": 1001}, "page_size"),
        ({"page_size": -1}, "page_size"),
        ({"page_token": "x" * 513}, "page_token"),
        ({"page_token": "!!"}, "page_token"),
        (
            {"page_token": _forge({"f": "0" * 24, "c": "2026-01-01T00:00:00+00:00", "k": ["1", []]})},
            "page_token",
        ),
        ({"end_time": START}, "end_time"),
        (
            {"ingested_after_time": utc(2026, 3, 1), "ingested_before_time": utc(2026, 2, 1)},
            "ingested_after_time",
        ),
        ({"ingested_after_time": utc(2999, 1, 1)}, "ingested_after_time"),
    ],
)
async def test_malformed_requests_name_their_field(stub, changes, field) -> None:
    b = new_id()
    await create_meter(stub, meter(b, "m", COUNT))
    r = request(b)
    for name, value in changes.items():
        if isinstance(value, datetime):
            getattr(r, name).CopyFrom(ts(value))
        elif name == "group_by_tags":
            r.group_by_tags[:] = value
        else:
            setattr(r, name, value)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ExplainUsage(r)
    assert_invalid_field(err.value, field)


async def test_an_unset_start_and_an_unknown_meter(stub) -> None:
    b = new_id()
    r = request(b, key="nothing")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ExplainUsage(r)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    r.ClearField("start_time")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ExplainUsage(r)
    assert_invalid_field(err.value, "start_time")
