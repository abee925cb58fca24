"""Ordering candidate offerings: strategies, ties, provider preferences and fallback models."""

from decimal import Decimal as D

import pytest

from common.errors import InvalidArgument
from gateway.config import Settings
from gateway.domain.catalog import Model, Offering, Provider, Route
from gateway.domain.chat import ChatInput
from gateway.domain.health import BreakerPolicy
from gateway.domain.keys import ApiKey
from gateway.domain.routing import (
    CHEAPEST,
    FIXED,
    LATENCY,
    NO_PREFERENCES,
    ProviderPreferences,
    order_routes,
    plan,
)
from gateway.service import Catalog, ChatService, HealthBoard, KeyCache, Limiter


def r(oid: str, provider: str, position: int, in_p: str = "1", out_p: str = "1", weight: int = 1, model="m"):
    return Route(
        model=model,
        offering_id=oid,
        provider=provider,
        upstream_model=oid,
        url="http://127.0.0.1:1/v1/chat/completions",
        credential_env="",
        input_price_per_mtok=D(in_p),
        output_price_per_mtok=D(out_p),
        weight=weight,
        position=position,
    )


def no_latency(route: Route) -> float:
    return 0.0


def ids(routes):
    return [x.offering_id for x in routes]


def order(routes, strategy=CHEAPEST, prefs=NO_PREFERENCES, est_in=100, est_out=10, latency_of=no_latency):
    return ids(order_routes(routes, strategy, prefs, est_in, est_out, latency_of))


# -- cheapest ------------------------------------------------------------------------------------

# a: cheap input, dear output; b: the reverse
A = r("a", "pa", 0, in_p="1", out_p="10")
B = r("b", "pb", 1, in_p="5", out_p="2")


def test_cheapest_weighs_both_estimates_by_their_prices():
    # est 100 in / 10 out: a = 100 + 100 = 200, b = 500 + 20 = 520
    assert order([B, A], est_in=100, est_out=10) == ["a", "b"]
    # est 10 in / 100 out: a = 10 + 1,000 = 1,010, b = 50 + 200 = 250
    assert order([A, B], est_in=10, est_out=100) == ["b", "a"]


def test_cheapest_exact_decimal_prices_decide_close_calls():
    # 0.000000001 apart per token: 1,000 x (0.150000001 - 0.15) = 0.000001, still decides it
    dear = r("dear", "p1", 0, in_p="0.150000001", out_p="0")
    cheap = r("cheap", "p2", 1, in_p="0.15", out_p="0")
    assert order([dear, cheap], est_in=1000, est_out=0) == ["cheap", "dear"]


def test_cheapest_ties_go_to_higher_weight_then_catalog_order():
    x = r("x", "p1", 0, weight=1)
    y = r("y", "p2", 1, weight=5)
    z = r("z", "p3", 2, weight=5)
    w = r("w", "p4", 3, weight=1)
    # same price everywhere: weight 5 first (catalog order between y and z), then weight 1 (x before w)
    assert order([w, z, x, y]) == ["y", "z", "x", "w"]


def test_cheapest_with_equal_weights_keeps_catalog_order_not_input_order():
    routes = [r("third", "p3", 2), r("first", "p1", 0), r("second", "p2", 1)]
    assert order(routes) == ["first", "second", "third"]


# -- latency -------------------------------------------------------------------------------------


def test_latency_puts_never_observed_first_then_lowest_ewma():
    routes = [
        r("slow", "p1", 0),
        r("new1", "p2", 1),
        r("fast", "p3", 2),
        r("new2", "p4", 3),
        r("mid", "p5", 4),
    ]
    ewma = {"slow": 900.0, "fast": 20.0, "mid": 150.5}
    got = order(routes, LATENCY, latency_of=lambda x: ewma.get(x.offering_id, 0.0))
    assert got == ["new1", "new2", "fast", "mid", "slow"]


def test_latency_ties_go_to_higher_weight_then_catalog_order():
    routes = [r("a", "p1", 0, weight=1), r("b", "p2", 1, weight=3), r("c", "p3", 2, weight=1)]
    assert order(routes, LATENCY, latency_of=lambda x: 50.0) == ["b", "a", "c"]


def test_latency_ignores_price():
    dear = r("dear", "p1", 0, in_p="100", out_p="100")
    cheap = r("cheap", "p2", 1, in_p="0", out_p="0")
    ewma = {"dear": 10.0, "cheap": 500.0}
    assert order([cheap, dear], LATENCY, latency_of=lambda x: ewma[x.offering_id]) == ["dear", "cheap"]


# -- fixed ---------------------------------------------------------------------------------------


def test_fixed_keeps_catalog_order_whatever_price_weight_or_latency():
    routes = [
        r("c", "p3", 2, in_p="0", weight=1000),
        r("a", "p1", 0, in_p="99", weight=1),
        r("b", "p2", 1, in_p="50", weight=7),
    ]
    assert order(routes, FIXED, latency_of=lambda x: {"a": 999.0, "b": 1.0, "c": 0.0}[x.offering_id]) == [
        "a",
        "b",
        "c",
    ]


# -- provider preferences ------------------------------------------------------------------------

CATALOG = [
    r("openai-1", "openai", 0, in_p="5"),
    r("azure", "azure", 1, in_p="1"),
    r("groq", "groq", 2, in_p="3"),
    r("openai-2", "openai", 3, in_p="2"),
    r("together", "together", 4, in_p="4"),
]


def test_cheapest_baseline_for_the_preference_tests():
    assert order(CATALOG) == ["azure", "openai-2", "groq", "together", "openai-1"]


def test_order_moves_named_providers_to_the_front_in_that_order():
    prefs = ProviderPreferences(order=("together", "openai"))
    # together, then openai's two offerings in the strategy's (cheapest) order, then the rest as before
    assert order(CATALOG, prefs=prefs) == ["together", "openai-2", "openai-1", "azure", "groq"]


def test_order_applies_after_the_strategy_for_fixed_too():
    prefs = ProviderPreferences(order=("groq",))
    assert order(CATALOG, FIXED, prefs) == ["groq", "openai-1", "azure", "openai-2", "together"]


def test_order_naming_an_absent_provider_changes_nothing_else():
    prefs = ProviderPreferences(order=("nobody", "groq"))
    assert order(CATALOG, prefs=prefs) == ["groq", "azure", "openai-2", "together", "openai-1"]


def test_only_keeps_just_the_named_providers():
    prefs = ProviderPreferences(only=("openai", "groq"))
    assert order(CATALOG, prefs=prefs) == ["openai-2", "groq", "openai-1"]


def test_ignore_drops_the_named_providers():
    prefs = ProviderPreferences(ignore=("openai", "azure"))
    assert order(CATALOG, prefs=prefs) == ["groq", "together"]


def test_only_ignore_and_order_combine():
    prefs = ProviderPreferences(order=("groq",), only=("openai", "groq", "azure"), ignore=("azure",))
    assert order(CATALOG, prefs=prefs) == ["groq", "openai-2", "openai-1"]


@pytest.mark.parametrize(
    "prefs",
    [
        ProviderPreferences(only=("nobody",)),
        ProviderPreferences(ignore=("openai", "azure", "groq", "together")),
        ProviderPreferences(only=("groq",), ignore=("groq",)),
    ],
)
def test_preferences_can_leave_a_model_with_nothing(prefs):
    assert order(CATALOG, prefs=prefs) == []


def test_ordering_does_not_reorder_the_callers_list():
    routes = list(CATALOG)
    order(routes)
    assert routes == CATALOG


# -- fallback models -----------------------------------------------------------------------------


def test_plan_is_the_primary_models_offerings_then_each_fallbacks():
    primary = [
        r("p-dear", "openai", 0, in_p="9", model="big"),
        r("p-cheap", "azure", 1, in_p="1", model="big"),
    ]
    fallback = [r("f-only", "groq", 0, in_p="0", model="small")]
    got = plan([primary, fallback], CHEAPEST, NO_PREFERENCES, 100, 10, no_latency)
    # the fallback is cheaper than anything in the primary model, and still comes last
    assert ids(got) == ["p-cheap", "p-dear", "f-only"]


def test_plan_applies_preferences_per_model_and_keeps_what_survives():
    primary = [r("p-openai", "openai", 0, model="big")]
    fallback = [r("f-groq", "groq", 0, model="small"), r("f-openai", "openai", 1, model="small")]
    got = plan([primary, fallback], FIXED, ProviderPreferences(ignore=("openai",)), 1, 1, no_latency)
    assert ids(got) == ["f-groq"]


# -- the service turns "nothing left" into InvalidArgument on provider_preferences -----------------


def _service() -> ChatService:
    catalog = Catalog()
    providers = {
        name: Provider(name=name, base_url=f"http://127.0.0.1:1/{name}") for name in ("openai", "groq")
    }
    offerings = (
        Offering(
            id="openai",
            provider="openai",
            upstream_model="x",
            input_price_per_mtok=D("1"),
            output_price_per_mtok=D("1"),
        ),
        Offering(
            id="groq",
            provider="groq",
            upstream_model="x",
            input_price_per_mtok=D("2"),
            output_price_per_mtok=D("2"),
        ),
    )
    catalog.replace(providers, [Model(name="m", offerings=offerings)], {})
    # upstream, outbox and entitlements are never reached while planning
    return ChatService(
        Settings(), KeyCache(), catalog, HealthBoard(BreakerPolicy()), Limiter(), None, None, None
    )


KEY = ApiKey(id="key_1", builder_id="b", app_id="a", customer_id="c", display_name="")


def _chat(prefs: ProviderPreferences) -> ChatInput:
    return ChatInput(
        request_id="req-1",
        models=("m",),
        messages=[{"role": "user", "content": "hi"}],
        params={},
        prefs=prefs,
    )


def test_preferences_leaving_nothing_are_invalid_argument_on_provider_preferences():
    svc = _service()
    with pytest.raises(InvalidArgument) as err:
        svc._plan(KEY, _chat(ProviderPreferences(only=("anthropic",))))
    assert err.value.field == "provider_preferences"
    with pytest.raises(InvalidArgument) as err:
        svc._plan(KEY, _chat(ProviderPreferences(ignore=("openai", "groq"))))
    assert err.value.field == "provider_preferences"


def test_preferences_leaving_something_plan_normally():
    request_id, tags, candidates = _service()._plan(KEY, _chat(ProviderPreferences(ignore=("openai",))))
    assert request_id == "req-1"
    assert tags == {}
    assert ids(candidates) == ["groq"]
