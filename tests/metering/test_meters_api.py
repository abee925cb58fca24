"""CreateMeter, GetMeter, ListMeters and ArchiveMeter: stored as defined, idempotent by request id,
one key per builder, each bad definition refused with the field, unknown keys NOT_FOUND."""

from __future__ import annotations

import uuid
from decimal import Decimal

import grpc
import pytest
from metering_kit import (
    COUNT,
    LATEST,
    MAX,
    SUM,
    UNIQUE_COUNT,
    assert_invalid_field,
    create_meter,
    event,
    ingest,
    meter,
    new_id,
    now,
    query,
    utc,
)

from tollgate.metering.v1 import metering_pb2 as pb

DOC_BUCKETS = [("1-10", "10"), ("11-100", "100"), ("101+", "")]


async def get(stub, builder: str, key: str) -> pb.Meter:
    return (await stub.GetMeter(pb.GetMeterRequest(builder_id=builder, key=key), timeout=10)).meter


async def archive(stub, builder: str, key: str, request_id: str | None = None) -> pb.Meter:
    request = pb.ArchiveMeterRequest(request_id=request_id or uuid.uuid4().hex, builder_id=builder, key=key)
    return (await stub.ArchiveMeter(request, timeout=10)).meter


async def test_created_meter_is_stored_as_defined_and_gettable(stub):
    b = new_id()
    definition = meter(
        b,
        "documents_processed",
        COUNT,
        event_types=["document.processed"],
        tag_filters={"workflow": "intake"},
        statuses=[pb.EVENT_STATUS_SUCCEEDED, pb.EVENT_STATUS_FAILED],
        bucket_quantity="pages",
        buckets=DOC_BUCKETS,
        display_name="Documents processed",
    )
    created = await create_meter(stub, definition)
    assert created.id
    assert created.builder_id == b and created.key == "documents_processed"
    assert created.display_name == "Documents processed"
    assert list(created.event_types) == ["document.processed"]
    assert created.aggregation == COUNT
    assert dict(created.tag_filters) == {"workflow": "intake"}
    assert set(created.statuses) == {pb.EVENT_STATUS_SUCCEEDED, pb.EVENT_STATUS_FAILED}
    assert created.bucket_quantity == "pages"
    assert [(bk.key, bk.max_value) for bk in created.buckets] == DOC_BUCKETS
    assert created.state == pb.METER_STATE_ACTIVE
    assert created.HasField("create_time") and not created.HasField("archive_time")
    assert abs((created.create_time.ToDatetime().timestamp()) - now().timestamp()) < 120

    fetched = await get(stub, b, "documents_processed")
    assert fetched == created


async def test_statuses_default_to_succeeded_only(stub):
    b = new_id()
    created = await create_meter(stub, meter(b, "requests", COUNT))
    assert list(created.statuses) == [pb.EVENT_STATUS_SUCCEEDED]


@pytest.mark.parametrize(
    ("aggregation", "extra"),
    [
        (SUM, {"quantity": "input_tokens"}),
        (MAX, {"quantity": "pages"}),
        (LATEST, {"quantity": "seats"}),
        (UNIQUE_COUNT, {}),
        (UNIQUE_COUNT, {"unique_tag": "ticket"}),
    ],
)
async def test_every_aggregation_can_be_defined(stub, aggregation, extra):
    b = new_id()
    created = await create_meter(stub, meter(b, "m", aggregation, **extra))
    assert created.aggregation == aggregation
    assert created.quantity == extra.get("quantity", "")
    assert created.unique_tag == extra.get("unique_tag", "")


async def test_retry_with_same_request_id_and_body_returns_the_first_meter(stub):
    b = new_id()
    rid = uuid.uuid4().hex
    first = await create_meter(stub, meter(b, "tokens", SUM, quantity="input_tokens"), request_id=rid)
    second = await create_meter(stub, meter(b, "tokens", SUM, quantity="input_tokens"), request_id=rid)
    assert second == first


async def test_same_request_id_with_another_body_is_already_exists_and_has_no_effect(stub):
    b = new_id()
    rid = uuid.uuid4().hex
    await create_meter(stub, meter(b, "tokens", SUM, quantity="input_tokens"), request_id=rid)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await create_meter(stub, meter(b, "other", COUNT), request_id=rid)
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await get(stub, b, "other")
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


async def test_duplicate_key_for_the_same_builder_is_already_exists(stub):
    b = new_id()
    first = await create_meter(stub, meter(b, "requests", COUNT))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await create_meter(stub, meter(b, "requests", SUM, quantity="pages"))
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "requests" in caught.value.details()
    assert await get(stub, b, "requests") == first


async def test_same_key_for_another_builder_is_fine(stub):
    b1, b2 = new_id(), new_id()
    m1 = await create_meter(stub, meter(b1, "requests", COUNT))
    m2 = await create_meter(stub, meter(b2, "requests", COUNT))
    assert m1.id != m2.id


INVALID_DEFINITIONS = [
    ("missing builder", dict(builder=""), "builder_id"),
    ("missing key", dict(key=""), "key"),
    ("key with capitals", dict(key="Requests"), "key"),
    ("key with space", dict(key="my requests"), "key"),
    ("key of 65 chars", dict(key="k" * 65), "key"),
    ("no event types", dict(event_types=[]), "event_types"),
    ("bad event type", dict(event_types=["Not A Type"]), "event_types"),
    ("unspecified aggregation", dict(aggregation=pb.AGGREGATION_UNSPECIFIED), "aggregation"),
    ("unknown aggregation", dict(aggregation=99), "aggregation"),
    ("sum without quantity", dict(aggregation=SUM), "quantity"),
    ("max without quantity", dict(aggregation=MAX), "quantity"),
    ("latest without quantity", dict(aggregation=LATEST), "quantity"),
    ("count with quantity", dict(aggregation=COUNT, quantity="pages"), "quantity"),
    ("unique count with quantity", dict(aggregation=UNIQUE_COUNT, quantity="pages"), "quantity"),
    ("unspecified status", dict(statuses=[pb.EVENT_STATUS_UNSPECIFIED]), "statuses"),
    ("unknown status", dict(statuses=[7]), "statuses"),
    ("buckets without quantity", dict(buckets=DOC_BUCKETS), "bucket_quantity"),
    (
        "descending buckets",
        dict(bucket_quantity="pages", buckets=[("big", "100"), ("small", "10"), ("rest", "")]),
        "buckets",
    ),
    ("repeated bucket key", dict(bucket_quantity="pages", buckets=[("a", "10"), ("a", "")]), "buckets"),
    ("open bucket not last", dict(bucket_quantity="pages", buckets=[("a", ""), ("b", "10")]), "buckets"),
    (
        "bucket bound not a number",
        dict(bucket_quantity="pages", buckets=[("a", "ten"), ("b", "")]),
        "buckets",
    ),
]


@pytest.mark.parametrize(
    ("case", "change", "field"), INVALID_DEFINITIONS, ids=[c[0] for c in INVALID_DEFINITIONS]
)
async def test_invalid_definition_is_invalid_argument_naming_the_field(stub, case, change, field):
    b = new_id()
    builder = change.pop("builder", b)
    key = change.pop("key", "valid_key")
    aggregation = change.pop("aggregation", COUNT)
    m = meter(builder, key, aggregation, **change)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await create_meter(stub, m)
    # The field is named either by BadRequest (leaf or path) or at least by the message.
    err = caught.value
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (case, err.code(), err.details())
    assert_invalid_field(err, field)
    if builder:
        listed = await stub.ListMeters(
            pb.ListMetersRequest(builder_id=builder, include_archived=True), timeout=10
        )
        assert list(listed.meters) == []


async def test_missing_request_id_is_invalid_argument(stub):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CreateMeter(
            pb.CreateMeterRequest(request_id="", meter=meter(new_id(), "k", COUNT)), timeout=10
        )
    assert_invalid_field(caught.value, "request_id")


async def test_list_meters_pages_in_key_order_without_loss_or_repeat(stub):
    b = new_id()
    keys = [f"meter_{i:02d}" for i in (7, 3, 11, 0, 5, 9, 1)]
    for key in keys:
        await create_meter(stub, meter(b, key, COUNT))
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        page = await stub.ListMeters(
            pb.ListMetersRequest(builder_id=b, page_size=3, page_token=token), timeout=10
        )
        assert len(page.meters) <= 3
        seen.extend(m.key for m in page.meters)
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert seen == sorted(keys)
    assert pages == 3


async def test_list_meters_only_shows_the_builders_own(stub):
    b1, b2 = new_id(), new_id()
    await create_meter(stub, meter(b1, "mine", COUNT))
    await create_meter(stub, meter(b2, "theirs", COUNT))
    listed = await stub.ListMeters(pb.ListMetersRequest(builder_id=b1), timeout=10)
    assert [m.key for m in listed.meters] == ["mine"]


async def test_list_meters_rejects_a_foreign_page_token_and_bad_page_size(stub):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ListMeters(pb.ListMetersRequest(builder_id=new_id(), page_token="garbage!!"), timeout=10)
    assert_invalid_field(caught.value, "page_token")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ListMeters(pb.ListMetersRequest(builder_id=new_id(), page_size=1001), timeout=10)
    assert_invalid_field(caught.value, "page_size")


async def test_archive_hides_from_default_list_keeps_get_and_history_queryable(stub):
    b = new_id()
    await create_meter(stub, meter(b, "active_one", COUNT))
    await create_meter(stub, meter(b, "old_one", COUNT))
    await ingest(
        stub, [event("e1", builder=b, at=utc(2026, 1, 10)), event("e2", builder=b, at=utc(2026, 1, 11))]
    )

    archived = await archive(stub, b, "old_one")
    assert archived.state == pb.METER_STATE_ARCHIVED
    assert archived.HasField("archive_time")

    listed = await stub.ListMeters(pb.ListMetersRequest(builder_id=b), timeout=10)
    assert [m.key for m in listed.meters] == ["active_one"]
    with_archived = await stub.ListMeters(
        pb.ListMetersRequest(builder_id=b, include_archived=True), timeout=10
    )
    assert [m.key for m in with_archived.meters] == ["active_one", "old_one"]

    assert (await get(stub, b, "old_one")).state == pb.METER_STATE_ARCHIVED
    response = await query(stub, b, "old_one", utc(2026, 1, 1), utc(2026, 2, 1))
    assert [Decimal(r.value) for r in response.rows] == [Decimal(2)]


async def test_archiving_twice_returns_the_meter_unchanged(stub):
    b = new_id()
    await create_meter(stub, meter(b, "m", COUNT))
    first = await archive(stub, b, "m")
    again_new_id = await archive(stub, b, "m")
    assert again_new_id == first
    rid = uuid.uuid4().hex
    retried_a = await archive(stub, b, "m", request_id=rid)
    retried_b = await archive(stub, b, "m", request_id=rid)
    assert retried_a == retried_b == first


async def test_unknown_meter_is_not_found_for_get_archive_and_query(stub):
    b = new_id()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await get(stub, b, "nope")
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert "nope" in caught.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await archive(stub, b, "nope")
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await query(stub, b, "nope", utc(2026, 1, 1), utc(2026, 2, 1))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_another_builders_meter_is_not_found(stub):
    b1, b2 = new_id(), new_id()
    await create_meter(stub, meter(b1, "private", COUNT))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await get(stub, b2, "private")
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_archive_request_id_reused_for_another_meter_is_already_exists_and_has_no_effect(stub):
    b = new_id()
    await create_meter(stub, meter(b, "first", COUNT))
    await create_meter(stub, meter(b, "second", COUNT))
    rid = uuid.uuid4().hex
    await archive(stub, b, "first", request_id=rid)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await archive(stub, b, "second", request_id=rid)
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert (await get(stub, b, "second")).state == pb.METER_STATE_ACTIVE


async def test_two_builders_using_one_create_request_id_each_get_their_own_meter(stub):
    b1, b2 = new_id(), new_id()
    rid = uuid.uuid4().hex
    m1 = await create_meter(stub, meter(b1, "requests", COUNT), request_id=rid)
    m2 = await create_meter(stub, meter(b2, "tokens", SUM, quantity="input_tokens"), request_id=rid)
    assert (m1.builder_id, m1.key) == (b1, "requests")
    assert (m2.builder_id, m2.key, m2.quantity) == (b2, "tokens", "input_tokens")
    assert m1.id != m2.id
    # Each builder's retry is answered with its own first reply, never the other builder's.
    assert await create_meter(stub, meter(b1, "requests", COUNT), request_id=rid) == m1
    assert await create_meter(stub, meter(b2, "tokens", SUM, quantity="input_tokens"), request_id=rid) == m2
    assert await get(stub, b1, "requests") == m1
    assert await get(stub, b2, "tokens") == m2


async def test_two_builders_using_one_archive_request_id_each_archive_their_own_meter(stub):
    b1, b2 = new_id(), new_id()
    await create_meter(stub, meter(b1, "first", COUNT))
    await create_meter(stub, meter(b2, "second", COUNT))
    rid = uuid.uuid4().hex
    a1 = await archive(stub, b1, "first", request_id=rid)
    a2 = await archive(stub, b2, "second", request_id=rid)
    assert (a1.builder_id, a1.key, a1.state) == (b1, "first", pb.METER_STATE_ARCHIVED)
    assert (a2.builder_id, a2.key, a2.state) == (b2, "second", pb.METER_STATE_ARCHIVED)
    assert (await get(stub, b2, "second")).state == pb.METER_STATE_ARCHIVED
    assert await archive(stub, b1, "first", request_id=rid) == a1
