"""Chat request rules: validation naming the field, x-tollgate-* extras and their precedence."""

import dataclasses

import pytest

from common.errors import InvalidArgument
from gateway import api, http_api
from gateway.domain.chat import (
    ROLES,
    BusinessUnits,
    ChatInput,
    apply_extras,
    extras_from_headers,
    extras_from_metadata,
    prompt_chars,
    validate,
)
from gateway.domain.recording import MAX_TAGS, ROUTE_TAG_KEYS
from gateway.domain.routing import ProviderPreferences
from tollgate.gateway.v1 import inference_pb2

BASE = ChatInput(
    request_id="",
    models=("gpt-4o-mini",),
    messages=[{"role": "user", "content": "hello"}],
    params={},
)


def chat(**changes) -> ChatInput:
    return dataclasses.replace(BASE, **changes)


def field_of(c: ChatInput, key_tags=None) -> str:
    with pytest.raises(InvalidArgument) as err:
        validate(c, key_tags or {})
    return err.value.field


# -- validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes,field",
    [
        ({"request_id": "has space"}, "request_id"),
        ({"request_id": "x" * 101}, "request_id"),
        ({"request_id": "abc\n"}, "request_id"),  # a trailing newline is not in the character set
        ({"models": ()}, "model"),
        ({"models": ("",)}, "model"),
        ({"models": ("a", "")}, "model"),
        ({"models": tuple(f"m{i}" for i in range(9))}, "models"),
        ({"messages": []}, "messages"),
        ({"messages": None}, "messages"),
        ({"messages": {"role": "user"}}, "messages"),
        ({"messages": ["hello"]}, "messages[0]"),
        (
            {"messages": [{"role": "user", "content": "a"}, {"role": "robot", "content": "b"}]},
            "messages[1].role",
        ),
        ({"messages": [{"content": "no role"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": 42}]}, "messages[0].content"),
        ({"params": {"max_tokens": 0}}, "max_tokens"),
        ({"params": {"max_tokens": -5}}, "max_tokens"),
        ({"params": {"max_tokens": 1.5}}, "max_tokens"),
        ({"params": {"max_tokens": True}}, "max_tokens"),
        ({"params": {"max_tokens": "100"}}, "max_tokens"),
        ({"params": {"temperature": -0.01}}, "temperature"),
        ({"params": {"temperature": 2.01}}, "temperature"),
        ({"params": {"temperature": True}}, "temperature"),
        ({"params": {"temperature": "1"}}, "temperature"),
        ({"params": {"temperature": float("nan")}}, "temperature"),
        ({"params": {"top_p": 1.5}}, "top_p"),
        ({"params": {"top_p": -1}}, "top_p"),
        ({"params": {"stop": ["a", "b", "c", "d", "e"]}}, "stop"),
        ({"params": {"stop": [1]}}, "stop"),
        ({"params": {"stop": 7}}, "stop"),
        ({"strategy": "fastest"}, "routing_strategy"),
        ({"units": BusinessUnits(run_id="r" * 129)}, "business_units.run_id"),
        ({"units": BusinessUnits(document_id="d" * 257)}, "business_units.document_id"),
        ({"units": BusinessUnits(ticket_id="t" * 257)}, "business_units.ticket_id"),
        ({"units": BusinessUnits(outcome="o" * 257)}, "business_units.outcome"),
        ({"units": BusinessUnits(page_count=-1)}, "business_units.page_count"),
        ({"tags": {"Env": "prod"}}, "tags.Env"),
        ({"tags": {"": "x"}}, "tags."),
        ({"tags": {"env\n": "x"}}, "tags.env\n"),
        ({"tags": {"env": "v" * 257}}, "tags.env"),
        ({"tags": {f"t{i}": "x" for i in range(17)}}, "tags"),
    ],
)
def test_invalid_requests_name_the_offending_field(changes, field):
    assert field_of(chat(**changes)) == field


def test_boundaries_that_are_valid():
    c = chat(
        request_id="A" * 91 + "z9_.:@/-x",  # 100 characters, every kind
        models=tuple(f"m{i}" for i in range(8)),  # primary + 7 fallbacks
        messages=[{"role": role, "content": "x"} for role in sorted(ROLES)]
        + [
            {"role": "assistant", "content": None},
            {"role": "user", "content": [{"type": "text", "text": "x"}]},
        ],
        params={"max_tokens": 1, "temperature": 2, "top_p": 0, "stop": ["a", "b", "c", "d"]},
        strategy="latency",
        units=BusinessUnits(run_id="r" * 128, document_id="d" * 256, page_count=0),
        tags={f"t{i}": "v" * 256 for i in range(16)},
    )
    assert validate(c, {}) == c.tags
    assert validate(chat(params={"temperature": 0.0, "top_p": 1.0, "stop": "END"}), {}) == {}


def test_request_tags_override_key_defaults():
    merged = validate(chat(tags={"env": "dev", "run": "7"}), {"workspace": "acme", "env": "prod"})
    assert merged == {"workspace": "acme", "env": "dev", "run": "7"}


def test_without_request_tags_the_key_defaults_are_the_tags():
    assert validate(chat(), {"workspace": "acme"}) == {"workspace": "acme"}


def test_key_and_request_tags_together_are_capped_at_what_metering_takes_with_the_route_tags():
    room = MAX_TAGS - len(ROUTE_TAG_KEYS)  # 32 - 8: the route's tags go on every event
    key_tags = {f"k{i}": "x" for i in range(16)}
    request_tags = {f"r{i}": "x" for i in range(room - 16)}
    assert len(validate(chat(tags=request_tags), key_tags)) == room
    # overriding a key tag does not count twice
    merged = validate(chat(tags={**request_tags, "k0": "mine"}), key_tags)
    assert len(merged) == room and merged["k0"] == "mine"
    # a declared business unit is one more tag on the event
    assert field_of(chat(tags=request_tags, units=BusinessUnits(ticket_id="t1")), key_tags) == "tags"
    request_tags["one_more"] = "x"
    assert field_of(chat(tags=request_tags), key_tags) == "tags"


def test_prompt_chars_counts_string_and_text_part_contents():
    messages = [
        {"role": "system", "content": "abcd"},
        {
            "role": "user",
            "content": [{"type": "text", "text": "12345"}, {"type": "image_url", "image_url": {}}],
        },
        {"role": "assistant", "content": None},
    ]
    assert prompt_chars(messages) == 9


# -- extras: headers and metadata ----------------------------------------------------------------


def test_headers_are_read_by_prefix_case_insensitively():
    pairs = [
        ("X-Tollgate-Run-Id", "run-1"),
        ("x-tollgate-page-count", 3),
        ("X-TOLLGATE-TAG-Workflow", "invoices"),
        ("authorization", "Bearer tg_secret"),
        ("x-other", "ignored"),
    ]
    assert extras_from_headers(pairs) == {"run-id": "run-1", "page-count": "3", "tag-workflow": "invoices"}


def test_openai_metadata_keys_map_to_the_same_names():
    md = {
        "tollgate_request_id": "req-1",
        "tollgate_run_id": "run-1",
        "tollgate_page_count": 4,
        "tollgate_provider_order": "a,b",
        "tollgate_tag_usage_type": "batch",  # underscores in a tag key stay underscores
        "user_note": "ignored",
    }
    assert extras_from_metadata(md) == {
        "request-id": "req-1",
        "run-id": "run-1",
        "page-count": "4",
        "provider-order": "a,b",
        "tag-usage_type": "batch",
    }


def test_no_extras_leave_the_request_as_it_was():
    assert apply_extras(BASE, {}) is BASE


def test_extras_fill_every_empty_field():
    c = apply_extras(
        BASE,
        {
            "request-id": "req-9",
            "run-id": "run-1",
            "document-id": "doc-1",
            "page-count": "12",
            "ticket-id": "T-1",
            "outcome": "resolved",
            "strategy": "LATENCY",
            "provider-order": " groq, openai ,",
            "provider-only": "groq,openai,,azure",
            "provider-ignore": "together",
            "tag-workflow": "invoices",
        },
    )
    assert c.request_id == "req-9"
    assert c.units == BusinessUnits("run-1", "doc-1", 12, "T-1", "resolved")
    assert c.strategy == "latency"  # lower-cased
    assert c.prefs == ProviderPreferences(
        order=("groq", "openai"), only=("groq", "openai", "azure"), ignore=("together",)
    )
    assert c.tags == {"workflow": "invoices"}
    assert (c.models, c.messages, c.params) == (BASE.models, BASE.messages, BASE.params)


@pytest.mark.parametrize("text", ["abc", "2.5", "1e3", "twelve"])
def test_page_count_that_is_not_a_whole_number_is_invalid(text):
    with pytest.raises(InvalidArgument) as err:
        apply_extras(BASE, {"page-count": text})
    assert err.value.field == "business_units.page_count"


def test_negative_page_count_is_rejected_by_validation():
    c = apply_extras(BASE, {"page-count": "-2"})
    assert field_of(c) == "business_units.page_count"


def test_empty_page_count_means_none_declared():
    assert apply_extras(BASE, {"page-count": ""}).units.page_count == 0


def test_unknown_strategy_from_a_header_is_rejected_by_validation():
    assert field_of(apply_extras(BASE, {"strategy": "Fastest"})) == "routing_strategy"


def test_explicit_fields_win_over_extras():
    base = chat(
        request_id="body-req",
        tags={"workflow": "body"},
        strategy="fixed",
        prefs=ProviderPreferences(order=("azure",), only=("azure",), ignore=("x",)),
        units=BusinessUnits("body-run", "body-doc", 5, "body-ticket", "body-outcome"),
    )
    c = apply_extras(
        base,
        {
            "request-id": "h-req",
            "run-id": "h-run",
            "document-id": "h-doc",
            "page-count": "9",
            "ticket-id": "h-ticket",
            "outcome": "h-outcome",
            "strategy": "latency",
            "provider-order": "groq",
            "provider-only": "groq",
            "provider-ignore": "y",
            "tag-workflow": "header",
            "tag-extra": "header",
        },
    )
    assert c.request_id == "body-req"
    assert c.units == base.units
    assert c.strategy == "fixed"
    assert c.prefs == base.prefs
    assert c.tags == {"workflow": "body", "extra": "header"}  # tags merge, the body's win


# -- precedence through the two front doors (explicit field > header/metadata > OpenAI metadata) --


def test_http_precedence_body_over_header_over_openai_metadata():
    body = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "hi"}],
        "tags": {"a": "body"},
        "route": "fixed",
        "provider": {"order": ["azure"]},
        "metadata": {
            "tollgate_run_id": "md-run",
            "tollgate_document_id": "md-doc",
            "tollgate_ticket_id": "md-ticket",
            "tollgate_strategy": "cheapest",
            "tollgate_provider_order": "openai",
            "tollgate_provider_only": "openai,azure",
            "tollgate_tag_a": "md",
            "tollgate_tag_b": "md",
            "tollgate_tag_c": "md",
        },
    }
    headers = {
        "X-Tollgate-Run-Id": "h-run",
        "x-tollgate-document-id": "h-doc",
        "x-tollgate-strategy": "latency",
        "x-tollgate-provider-order": "groq",
        "x-tollgate-tag-a": "h",
        "x-tollgate-tag-b": "h",
    }
    c = http_api.decode_chat(body, headers)
    assert c.units.run_id == "h-run"  # header beats metadata
    assert c.units.document_id == "h-doc"
    assert c.units.ticket_id == "md-ticket"  # only in metadata
    assert c.strategy == "fixed"  # body beats both
    assert c.prefs.order == ("azure",)  # body beats both
    assert c.prefs.only == ("openai", "azure")  # only in metadata
    assert c.tags == {"a": "body", "b": "h", "c": "md"}
    assert validate(c, {"a": "key", "d": "key"}) == {"a": "body", "b": "h", "c": "md", "d": "key"}


def test_grpc_precedence_field_over_call_metadata_over_openai_metadata():
    req = inference_pb2.CreateChatCompletionRequest(
        model="gpt-4o-mini",
        messages=[inference_pb2.ChatMessage(role="user", content="hi")],
        tags={"a": "field"},
        business_units=inference_pb2.BusinessUnits(run_id="field-run"),
        metadata={
            "tollgate_run_id": "md-run",
            "tollgate_document_id": "md-doc",
            "tollgate_outcome": "md-outcome",
            "tollgate_tag_a": "md",
            "tollgate_tag_b": "md",
            "tollgate_tag_c": "md",
        },
    )
    call_metadata = [
        ("x-tollgate-document-id", "h-doc"),
        ("x-tollgate-request-id", "h-req"),
        ("x-tollgate-tag-a", "h"),
        ("x-tollgate-tag-b", "h"),
    ]
    c = api.decode_chat(req, call_metadata)
    assert c.units.run_id == "field-run"
    assert c.units.document_id == "h-doc"
    assert c.units.outcome == "md-outcome"
    assert c.request_id == "h-req"
    assert c.tags == {"a": "field", "b": "h", "c": "md"}
