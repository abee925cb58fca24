"""Pricing under a rate card and the hold of a request (gateway/domain/spend.py), as properties."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.domain import spend
from gateway.domain.catalog import Route
from gateway.domain.chat import BusinessUnits
from gateway.domain.usage import build_event, estimate_tokens

prices = st.decimals(min_value=0, max_value=100, places=6, allow_nan=False, allow_infinity=False)
markups = st.decimals(min_value=0, max_value=500, places=3, allow_nan=False, allow_infinity=False)
texts = st.text(max_size=200)


def route(inp: Decimal, out: Decimal) -> Route:
    return Route("m", "o1", "p", "up", "http://x/chat/completions", "", inp, out, 1, 0)


@st.composite
def cards(draw):
    items = []
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from([spend.COST_PLUS, spend.PER_EVENT, spend.PER_QUANTITY]))
        statuses = frozenset(draw(st.sets(st.sampled_from(["succeeded", "failed"]), min_size=1)))
        items.append(
            spend.RateItem(
                kind=kind,
                statuses=statuses,
                markup_percent=draw(markups),
                fixed_per_event=draw(prices),
                unit_price=draw(prices),
                quantity=draw(st.sampled_from(["input_tokens", "output_tokens", "provider_cost"])),
            )
        )
    return tuple(items)


def event(r: Route, ok: bool, inp: int, out: int):
    return build_event(
        request_id="r",
        attempt=1,
        occurred_time=datetime(2026, 1, 1, tzinfo=UTC),
        builder_id="b",
        app_id="a",
        customer_id="c",
        route=r,
        succeeded=ok,
        input_tokens=inp,
        output_tokens=out,
        estimated=False,
        latency_ms=0,
        tags={},
        units=BusinessUnits(),
    )


@settings(max_examples=300, deadline=None)
@given(cards(), prices, prices, st.lists(texts, min_size=1, max_size=4), st.integers(0, 5000), st.data())
def test_the_hold_covers_every_event_within_the_token_bounds(card, pin, pout, contents, max_out, data):
    messages = [{"role": "user", "content": c} for c in contents]
    r = route(pin, pout)
    bound_in = spend.input_token_bound(messages)
    held = spend.hold(card, r, bound_in, max_out)
    chars = sum(len(c) for c in contents)
    # the actual tokens: anything a tokenizer can produce within the bounds, or the gateway's estimate
    inp = data.draw(st.sampled_from([bound_in, estimate_tokens(chars), data.draw(st.integers(0, bound_in))]))
    out = data.draw(st.integers(0, max_out))
    for ok in (True, False):
        e = event(r, ok, inp, out)
        assert spend.event_price(card, e.type, e.status, e.quantities) <= held


@settings(max_examples=200, deadline=None)
@given(
    cards(),
    prices,
    prices,
    st.lists(st.tuples(st.booleans(), st.integers(0, 10**6), st.integers(0, 10**6)), max_size=5),
)
def test_pricing_is_exact_and_additive(card, pin, pout, attempts):
    r = route(pin, pout)
    events = [event(r, ok, i, o) for ok, i, o in attempts]
    each = [spend.event_price(card, e.type, e.status, e.quantities) for e in events]
    assert sum(each, Decimal(0)) == spend.event_price_many(card, events)
    for e, p in zip(events, each, strict=True):
        expected = Decimal(0)
        for item in card:
            if e.status not in item.statuses:
                continue
            if item.kind == spend.COST_PLUS:
                cost = Decimal(e.quantities["provider_cost"])
                expected += cost + cost * item.markup_percent / 100 + item.fixed_per_event
            elif item.kind == spend.PER_EVENT:
                expected += item.unit_price
            else:
                expected += item.unit_price * Decimal(e.quantities[item.quantity])
        assert p == expected


def test_a_cost_plus_event_to_the_nano():
    card = (
        spend.RateItem(
            spend.COST_PLUS,
            frozenset({"succeeded"}),
            markup_percent=Decimal("20"),
            fixed_per_event=Decimal("0.001"),
        ),
    )
    e = event(route(Decimal("3"), Decimal("15")), True, 1000, 500)  # cost 0.003 + 0.0075 = 0.0105
    assert spend.event_price(card, e.type, e.status, e.quantities) == Decimal("0.0136")
    failed = event(route(Decimal("3"), Decimal("15")), False, 1000, 500)
    assert spend.event_price(card, failed.type, failed.status, failed.quantities) == 0


def test_controls_that_count_a_request():
    cs = [
        spend.Control("c1", spend.CUSTOMER),
        spend.Control("c2", spend.API_KEY, api_key_id="k1"),
        spend.Control("c3", spend.API_KEY, api_key_id="k2"),
        spend.Control("c4", spend.TAG, tag_key="workspace", tag_value="legal"),
        spend.Control("c5", spend.TAG, tag_key="workspace", tag_value="ops"),
    ]
    got = spend.applicable(cs, "k1", {"workspace": "legal"})
    assert [c.id for c in got] == ["c1", "c2", "c4"]
