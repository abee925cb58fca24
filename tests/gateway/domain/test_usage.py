"""Usage events and provider cost: the gateway's only rounding, and what each attempt's event says."""

from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal, localcontext

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.domain.catalog import Route
from gateway.domain.chat import NO_UNITS, BusinessUnits, ChatInput, validate
from gateway.domain.usage import (
    EVENT_TYPE,
    FAILED,
    SUCCEEDED,
    build_event,
    estimate_tokens,
    event_id,
    provider_cost,
)

D = Decimal
T0 = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)


def route(in_price: str = "0.15", out_price: str = "0.60") -> Route:
    return Route(
        model="gpt-4o-mini",
        offering_id="openai-eu",
        provider="openai",
        upstream_model="gpt-4o-mini-2024-07-18",
        url="http://127.0.0.1:1/v1/chat/completions",
        credential_env="OPENAI_API_KEY",
        input_price_per_mtok=D(in_price),
        output_price_per_mtok=D(out_price),
        weight=1,
        position=0,
    )


def event(**overrides):
    args = dict(
        request_id="req-1",
        attempt=1,
        occurred_time=T0,
        builder_id="b1",
        app_id="a1",
        customer_id="c1",
        route=route(),
        succeeded=True,
        input_tokens=1000,
        output_tokens=500,
        estimated=False,
        latency_ms=42,
        tags={},
        units=NO_UNITS,
    )
    args.update(overrides)
    return build_event(**args)


# -- provider cost -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "in_tokens,out_tokens,in_price,out_price,expected",
    [
        # (1000 x 0.15 + 500 x 0.60) / 1e6 = 450 / 1e6
        (1000, 500, "0.15", "0.60", "0.00045"),
        # 1 x 0.0025 / 1e6 = 0.0000000025: a tie at the 10th place goes to the even 2, not up to 3
        (1, 0, "0.0025", "0", "0.000000002"),
        # 0.0000000035: tie, the even neighbour is 4 (up)
        (1, 0, "0.0035", "0", "0.000000004"),
        # 0.0000000005: tie between 0 and 1 -> 0
        (1, 0, "0.0005", "0", "0"),
        # output side ties the same way: 3 x 0.0005 / 1e6 = 0.0000000015 -> 2
        (0, 3, "9", "0.0005", "0.000000002"),
        # 349 x 0.00001 / 1e6 = 0.00000000349 -> 3 nanos. Rounding twice (to 10 places, 0.0000000035,
        # then to 9) would give 4: the rule is one rounding.
        (349, 0, "0.00001", "0", "0.000000003"),
        # zero tokens cost nothing whatever the price
        (0, 0, "15", "60", "0"),
        # large counts stay exact: 123,456,789 x 0.15 + 987,654,321 x 0.60 = 611,111,110.95
        (123_456_789, 987_654_321, "0.15", "0.60", "611.11111095"),
        # a trillion tokens: (1e12 x 0.15 + 1e11 x 0.60) / 1e6 = 210,000 exactly
        (10**12, 10**11, "0.15", "0.60", "210000"),
        # 999,999,999,999 x 0.000000001 / 1e6 = 0.000999999999999 -> rounds up at the 9th place
        (999_999_999_999, 0, "0.000000001", "0", "0.001"),
        # 3 x 0.1 / 1e6: float arithmetic gives 3.0000000000000004e-07, Decimal gives 0.0000003
        (3, 0, "0.1", "0", "0.0000003"),
    ],
)
def test_provider_cost_is_the_exact_formula_rounded_half_even_to_nine_places(
    in_tokens, out_tokens, in_price, out_price, expected
):
    cost = provider_cost(route(in_price, out_price), in_tokens, out_tokens)
    assert type(cost) is Decimal
    assert cost == D(expected)
    assert cost.as_tuple().exponent == -9  # quantized to nanos, whatever the value


def _exact_once(in_tokens: int, out_tokens: int, in_price: Decimal, out_price: Decimal) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = 200  # no intermediate rounding at all
        raw = (D(in_tokens) * in_price + D(out_tokens) * out_price) / D(1_000_000)
        return raw.quantize(D("0.000000001"), rounding=ROUND_HALF_EVEN)


_price = st.decimals(min_value=0, max_value=10_000, places=9, allow_nan=False, allow_infinity=False)
_tokens = st.integers(min_value=0, max_value=10**12)


@settings(max_examples=300, deadline=None)
@given(in_tokens=_tokens, out_tokens=_tokens, in_price=_price, out_price=_price)
def test_provider_cost_equals_the_exact_decimal_formula_quantized_once(
    in_tokens, out_tokens, in_price, out_price
):
    cost = provider_cost(route(str(in_price), str(out_price)), in_tokens, out_tokens)
    assert cost == _exact_once(in_tokens, out_tokens, in_price, out_price)
    with localcontext() as ctx:
        ctx.prec = 200
        exact = (D(in_tokens) * in_price + D(out_tokens) * out_price) / D(1_000_000)
        assert abs(cost - exact) <= D("0.0000000005")


# -- events --------------------------------------------------------------------------------------


def test_event_id_is_request_id_colon_attempt():
    assert event_id("req-1", 1) == "req-1:1"
    assert event_id("a:b", 12) == "a:b:12"
    assert event(request_id="abc", attempt=3).id == "abc:3"


def test_succeeded_event_carries_parties_route_tags_and_quantities():
    e = event(latency_ms=42)
    assert e.type == EVENT_TYPE == "ai.request"
    assert e.status == SUCCEEDED
    assert (e.builder_id, e.app_id, e.customer_id) == ("b1", "a1", "c1")
    assert e.occurred_time == T0
    assert e.run_id == ""
    assert e.tags == {
        "model": "gpt-4o-mini",
        "provider": "openai",
        "offering": "openai-eu",
        "upstream_model": "gpt-4o-mini-2024-07-18",
        "attempt": "1",
    }
    assert e.quantities == {
        "input_tokens": "1000",
        "output_tokens": "500",
        "provider_cost": "0.00045",  # formatted without exponent or trailing zeros
        "latency_ms": "42",
    }


def test_failed_attempt_is_failed_with_its_error_and_its_cost():
    e = event(succeeded=False, attempt=2, input_tokens=0, output_tokens=0, error="http 503")
    assert e.status == FAILED
    assert e.id == "req-1:2"
    assert e.tags["error"] == "http 503"
    assert e.tags["attempt"] == "2"
    assert e.quantities["provider_cost"] == "0"
    # a broken stream still costs the tokens it consumed
    broken = event(succeeded=False, input_tokens=1000, output_tokens=10, error="stream interrupted")
    assert broken.status == FAILED
    assert broken.quantities["provider_cost"] == "0.000156"  # (150 + 6) / 1e6


def test_error_tag_is_capped_at_256_characters_and_absent_on_success():
    assert event(succeeded=False, error="x" * 1000).tags["error"] == "x" * 256
    assert "error" not in event().tags


def test_tokens_estimated_marks_only_estimated_usage():
    assert event(estimated=True).tags["tokens_estimated"] == "true"
    assert "tokens_estimated" not in event(estimated=False).tags


@pytest.mark.parametrize("chars,tokens", [(0, 0), (1, 1), (3, 1), (4, 1), (5, 2), (8, 2), (9, 3), (400, 100)])
def test_estimate_is_four_characters_a_token_rounded_up(chars, tokens):
    assert estimate_tokens(chars) == tokens


def test_request_tags_override_key_defaults_and_route_tags_override_both():
    chat = ChatInput(
        request_id="",
        models=("gpt-4o-mini",),
        messages=[{"role": "user", "content": "hi"}],
        params={},
        tags={"workflow": "invoices", "model": "spoofed"},
    )
    merged = validate(chat, {"workspace": "acme", "workflow": "default", "usage_type": "batch"})
    e = event(tags=merged)
    assert e.tags["workspace"] == "acme"
    assert e.tags["usage_type"] == "batch"
    assert e.tags["workflow"] == "invoices"  # request beats key default
    assert e.tags["model"] == "gpt-4o-mini"  # the route's own tags cannot be overridden by a caller


def test_event_does_not_mutate_the_callers_tags():
    tags = {"workspace": "acme"}
    event(tags=tags, estimated=True, error="boom", succeeded=False)
    assert tags == {"workspace": "acme"}


def test_business_units_become_run_id_tags_and_pages():
    units = BusinessUnits(run_id="run-9", document_id="doc-1", page_count=12, ticket_id="T-7", outcome="ok")
    e = event(units=units)
    assert e.run_id == "run-9"
    assert (e.tags["document_id"], e.tags["ticket_id"], e.tags["outcome"]) == ("doc-1", "T-7", "ok")
    assert e.quantities["pages"] == "12"
    assert "run_id" not in e.tags


def test_undeclared_units_add_no_tags_and_no_pages():
    e = event(units=BusinessUnits(page_count=0))
    assert not {"document_id", "ticket_id", "outcome"} & e.tags.keys()
    assert "pages" not in e.quantities
