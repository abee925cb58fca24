"""The spend rules (billing.domain.spend): scopes, grants, reports, thresholds, the rate card, and the
cap property under any interleaving of acquires, reports, releases and expiries (Hypothesis)."""

from datetime import UTC, datetime
from decimal import Decimal as D

from hypothesis import given, settings
from hypothesis import strategies as st

from billing.domain import spend
from billing.domain.plan import plan_from_dict
from billing.domain.spend import Lease, MeterInfo, Scope

# ---- scope, period, grant ---------------------------------------------------------------------------


def test_scopes_match_customer_always_key_and_tag_exactly() -> None:
    controls = [
        ("all", Scope("customer")),
        ("key", Scope("api_key", api_key_id="k1")),
        ("legal", Scope("tag", tag_key="workspace", tag_value="legal")),
    ]
    assert spend.applicable(controls, "k1", {"workspace": "legal"}) == ["all", "key", "legal"]
    assert spend.applicable(controls, "k2", {"workspace": "Legal"}) == ["all"]
    assert spend.applicable(controls, "", {"team": "legal"}) == ["all"]


def test_period_is_the_calendar_month() -> None:
    p = spend.spend_period(datetime(2026, 12, 31, 23, 59, tzinfo=UTC))
    assert (p.start, p.end) == (datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))


def test_grant_is_what_is_left_down_to_the_minimum() -> None:
    assert spend.grant(D("5"), D("1"), D("10"), D("3"), D("2")) == D("5")
    assert spend.grant(D("5"), D("1"), D("10"), D("3"), D("4.5")) == D("2.5")
    assert spend.grant(D("5"), D("2.5000000001"), D("10"), D("3"), D("4.5")) is None
    assert spend.grant(D("5"), D("0"), D("10"), D("6"), D("4")) is None  # nothing left: refused
    assert spend.grant(D("5"), D("5"), None, D("1000000000"), D("0")) == D("5")  # no hard cap


def test_report_is_cumulative_and_release_frees_the_rest() -> None:
    lease = Lease(D("3"))
    first = spend.report(lease, D("1"), False)
    assert (first.lease.consumed, first.spent_delta, first.held_delta) == (D("1"), D("1"), D("-1"))
    lower = spend.report(first.lease, D("0.5"), False)
    assert (lower.lease, lower.spent_delta, lower.held_delta) == (first.lease, 0, 0)
    done = spend.report(first.lease, D("1.25"), True)
    assert done.lease.state == spend.RELEASED
    assert (done.spent_delta, done.held_delta, done.uncovered) == (D("0.25"), D("-2"), 0)
    over = spend.report(Lease(D("1")), D("1.4"), False)
    assert (over.spent_delta, over.held_delta, over.uncovered) == (D("1.4"), D("-1"), D("0.4"))
    late = spend.report(spend.expire(Lease(D("2"), D("0.5"))).lease, D("1.5"), True)
    assert late.lease.state == spend.EXPIRED
    assert (late.spent_delta, late.held_delta, late.uncovered) == (D("1"), 0, D("1"))


def test_thresholds_cross_once_each_exactly() -> None:
    basis = spend.threshold_basis(D("100"), D("33.333333333"))
    assert basis == D("33.333333333")
    assert spend.threshold_amount(basis, 50) == D("16.6666666665")
    assert spend.crossed([50, 80, 100], basis, D("16.6666666664"), []) == []
    assert spend.crossed([50, 80, 100], basis, D("16.6666666665"), []) == [50]
    assert spend.crossed([50, 80, 100], basis, D("40"), [50]) == [80, 100]
    assert spend.crossed([50], None, D("40"), []) == []


# ---- rate card --------------------------------------------------------------------------------------

AI = ("ai.request",)
OK = ("succeeded",)


def test_rate_card_prices_only_what_one_request_can_be_priced_by() -> None:
    spec = plan_from_dict(
        {
            "currency": "USD",
            "charges": [
                {
                    "key": "cost",
                    "display_name": "cost",
                    "meter_key": "cost",
                    "cost_plus": {"markup_percent": "12.5"},
                },
                {
                    "key": "calls",
                    "display_name": "calls",
                    "meter_key": "calls",
                    "included_quantity": "100",
                    "per_unit": {"unit_price": "0.01"},
                },
                {
                    "key": "tok",
                    "display_name": "tok",
                    "meter_key": "tok",
                    "volume": {
                        "tiers": [{"up_to": "10", "unit_price": "0.3"}, {"up_to": None, "unit_price": "0.2"}]
                    },
                },
                {
                    "key": "pack",
                    "display_name": "pack",
                    "meter_key": "calls",
                    "package": {"package_size": "7", "package_price": "2"},
                },
                {"key": "peak", "display_name": "peak", "meter_key": "peak", "per_unit": {"unit_price": "1"}},
                {"key": "docs", "display_name": "docs", "meter_key": "docs", "per_unit": {"unit_price": "1"}},
                {"key": "gone", "display_name": "gone", "meter_key": "gone", "per_unit": {"unit_price": "1"}},
            ],
        }
    )
    meters = {
        "cost": MeterInfo(AI, "sum", "provider_cost", OK),
        "calls": MeterInfo(AI, "count", "", ("succeeded", "failed")),
        "tok": MeterInfo(AI, "sum", "output_tokens", OK),
        "peak": MeterInfo(AI, "max", "output_tokens", OK),
        "docs": MeterInfo(("document.processed",), "count", "", OK),
        "gone": None,
    }
    card = spend.rate_card(spec, meters)
    assert [
        (i.charge_key, i.kind, i.markup_percent, i.fixed_per_event, i.unit_price, i.quantity) for i in card
    ] == [
        ("cost", "cost_plus", D("12.5"), D("0"), None, ""),
        ("calls", "per_event", None, None, D("0.01"), ""),
        ("tok", "per_quantity", None, None, D("0.3"), "output_tokens"),
        ("pack", "per_event", None, None, D("0.285714286"), ""),  # 2/7 rounded up
    ]
    assert card[1].statuses == ("succeeded", "failed") and card[0].event_type == "ai.request"


# ---- the cap property -------------------------------------------------------------------------------

NANOS = st.integers(min_value=0, max_value=5 * 10**9).map(lambda n: D(n).scaleb(-9))
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("acquire"), NANOS, NANOS),
        st.tuples(st.just("report"), st.integers(0, 40), NANOS, st.booleans()),
        st.tuples(st.just("expire"), st.integers(0, 40)),
    ),
    max_size=60,
)


def _run(cap: D | None, ops: list, disciplined: bool) -> None:
    """Drive one control's period through `ops`; with `disciplined`, reports stay within their grant
    and are made only while the lease is active (what a healthy gateway does)."""
    leases: list[Lease] = []
    spent = held = uncovered = D(0)
    for op in ops:
        if op[0] == "acquire":
            amount, minimum = max(op[1], D("0.000000001")), min(op[2], op[1])
            granted = spend.grant(amount, minimum, cap, spent, held)
            if granted is not None:
                assert minimum <= granted <= amount
                leases.append(Lease(granted))
                held += granted
        elif leases:
            i = op[1] % len(leases)
            if op[0] == "report":
                consumed = op[2]
                if disciplined:
                    if leases[i].state != spend.ACTIVE:
                        continue
                    consumed = min(consumed, leases[i].granted)
                change = spend.report(leases[i], consumed, op[3])
            else:
                change = spend.expire(leases[i])
            leases[i] = change.lease
            spent += change.spent_delta
            held += change.held_delta
            uncovered += change.uncovered
        assert held == sum(x.holding for x in leases) and held >= 0
        assert spent == sum(x.consumed for x in leases)
        if cap is not None:
            assert spent + held <= cap + uncovered
        if disciplined:
            assert uncovered == 0
    for i, lease in enumerate(leases):
        change = spend.expire(lease)
        leases[i] = change.lease
        held += change.held_delta
    assert held == 0


@settings(max_examples=300, deadline=None)
@given(cap=st.one_of(st.none(), NANOS), ops=OPS, disciplined=st.booleans())
def test_spent_plus_held_never_passes_the_cap_but_by_uncovered_consumption(cap, ops, disciplined) -> None:
    _run(cap, ops, disciplined)
