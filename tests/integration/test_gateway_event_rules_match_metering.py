"""The gateway's statement of metering's event rules (gateway/domain/recording.py) agrees with a real
metering server: the same generated tags and business units are judged by both, so nothing the gateway
answers can later be parked as invalid, and nothing it refuses would have been billable."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.errors import InvalidArgument
from common.money import to_timestamp
from gateway.domain import chat as chat_rules
from gateway.domain import recording
from gateway.domain.catalog import Route
from gateway.domain.chat import BusinessUnits, ChatInput
from gateway.domain.usage import build_event
from gateway.outbox import encode
from tests.conftest import auth_channel
from tollgate.metering.v1 import metering_pb2, metering_pb2_grpc

# Any text protobuf can carry (no lone surrogates), NUL and control characters included.
text = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=300)
short = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=70)
tag_keys = st.one_of(short, st.from_regex(r"[a-z0-9_.-]{1,64}", fullmatch=True))
tags_st = st.dictionaries(tag_keys, st.one_of(text, st.just("")), max_size=36)

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
async def metering(metering_address):
    async with auth_channel(metering_address) as channel:
        yield metering_pb2_grpc.MeteringServiceStub(channel)


async def ingest(stub, event: metering_pb2.UsageEvent) -> metering_pb2.EventResult:
    reply = await stub.IngestEvents(
        metering_pb2.IngestEventsRequest(request_id=uuid.uuid4().hex, events=[event]), timeout=10
    )
    return reply.results[0]


def _head(field: str) -> str:
    return field.removeprefix("events[0].").split(".", 1)[0]


@SETTINGS
@given(run_id=st.one_of(text, st.just("")), tags=tags_st)
async def test_the_gateway_and_metering_judge_the_same_run_ids_and_tags_alike(metering, run_id, tags):
    builder = f"b-{uuid.uuid4().hex[:8]}"
    verdict = recording.event_problem(builder, "app-1", "cust-1", run_id, tags)
    result = await ingest(
        metering,
        metering_pb2.UsageEvent(
            id=uuid.uuid4().hex,
            type="ai.request",
            occurred_time=to_timestamp(datetime.now(UTC)),
            builder_id=builder,
            app_id="app-1",
            customer_id="cust-1",
            status=metering_pb2.EVENT_STATUS_SUCCEEDED,
            run_id=run_id,
            tags=tags,
            quantities={"input_tokens": "1"},
        ),
    )
    if verdict is None:
        assert result.outcome == metering_pb2.INGEST_OUTCOME_ACCEPTED, (result.reason, result.field)
    else:
        assert result.outcome == metering_pb2.INGEST_OUTCOME_INVALID, verdict
        assert _head(result.field) == _head(verdict[1]), (verdict, result.field)


# The longest names the catalog allows, so the route's own tags are as large as they can be.
WORST_ROUTE = Route(
    model="m" * 128,
    offering_id="o" * 64,
    provider="p" * 64,
    upstream_model="u" * 256,
    url="http://127.0.0.1:9/v1/chat/completions",
    credential_env="",
    input_price_per_mtok=Decimal("1000"),
    output_price_per_mtok=Decimal("1000"),
    weight=1,
    position=0,
)


@SETTINGS
@given(
    # A key's default tags passed CreateApiKey's rules (keys.validate_tags) when it was created.
    key_tags=st.dictionaries(
        st.from_regex(r"[a-z0-9_.-]{1,64}", fullmatch=True),
        st.text(alphabet=st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=256),
        max_size=16,
    ),
    request_tags=tags_st,
    run_id=st.one_of(text, st.just("")),
    document_id=st.one_of(text, st.just("")),
    ticket_id=st.one_of(short, st.just("")),
    outcome=st.one_of(short, st.just("")),
    page_count=st.one_of(st.integers(0, 1000), st.integers(-(2**63), 2**63 - 1)),
)
async def test_a_request_the_gateway_accepts_is_recorded_by_metering_without_a_refusal(
    metering, key_tags, request_tags, run_id, document_id, ticket_id, outcome, page_count
):
    chat = ChatInput(
        request_id="r-1",
        models=("m",),
        messages=[{"role": "user", "content": "hi"}],
        params={},
        tags=request_tags,
        units=BusinessUnits(run_id, document_id, page_count, ticket_id, outcome),
    )
    try:
        tags = chat_rules.validate(chat, key_tags)
    except InvalidArgument:
        return  # refused before routing: no provider was paid, nothing to record
    builder = f"b-{uuid.uuid4().hex[:8]}"
    record = build_event(
        request_id=f"{uuid.uuid4().hex}",
        attempt=10**9,
        occurred_time=datetime.now(UTC),
        builder_id=builder,
        app_id="a" * 128,
        customer_id="c" * 128,
        route=WORST_ROUTE,
        succeeded=False,
        input_tokens=10**12,
        output_tokens=10**12,
        estimated=True,
        latency_ms=10**9,
        tags=tags,
        units=chat.units,
        error="e" * 300,
    )
    result = await ingest(metering, metering_pb2.UsageEvent.FromString(encode(record)))
    assert result.outcome == metering_pb2.INGEST_OUTCOME_ACCEPTED, (result.reason, result.field)
