"""Properties of the billing rules, checked by Hypothesis over generated plans, usage and amounts."""

from datetime import UTC, datetime
from decimal import Decimal as D

from hypothesis import given, settings
from hypothesis import strategies as st

from billing.domain import (
    BucketPrice,
    Charge,
    ChargeUsage,
    CostPlusMarkup,
    EarningsKind,
    EarningsParties,
    Graduated,
    LateUsage,
    Package,
    PerUnit,
    PlanSpec,
    PlatformFeeRule,
    SizeBuckets,
    Tier,
    Volume,
    allocate,
    allocate_credit,
    build_invoice,
    creditable_amount,
    earnings_for_credit,
    earnings_for_payment,
    late_adjustment_line,
    period_containing,
    plan_from_dict,
    plan_to_dict,
    price_charge,
    round_line,
    split_line,
    validate_plan,
)

settings.register_profile("billing-domain", deadline=None, max_examples=75)
settings.load_profile("billing-domain")

MARCH = period_containing(datetime(2025, 3, 1, tzinfo=UTC))
PARTIES = EarningsParties("b", "a", "c", "i")
CURRENCIES = st.sampled_from(["USD", "EUR", "JPY", "KWD"])


def scaled(lo: int, hi: int, places: int):
    return st.integers(lo, hi).map(lambda n: D(n).scaleb(-places))


prices = st.one_of(scaled(0, 10**6, 9), scaled(0, 10**5, 2))  # sub-cent and whole-cent prices
quantities = st.one_of(st.integers(0, 10**7).map(D), scaled(0, 10**9, 3))
percents = scaled(0, 10_000, 2)  # 0 .. 100.00
fee_rules = st.builds(PlatformFeeRule, percents, percents)


@st.composite
def tiers(draw) -> tuple[Tier, ...]:
    bounds = sorted(set(draw(st.lists(st.integers(1, 10**6), min_size=0, max_size=5))))
    flat = scaled(0, 10**4, 2)
    out = [Tier(D(b), draw(prices), draw(flat)) for b in bounds]
    return (*out, Tier(None, draw(prices), draw(flat)))


BUCKETS = ("1-10", "11-100", "101+")


@st.composite
def charges(draw, currency: str = "USD") -> Charge:
    places = {"USD": 2, "EUR": 2, "JPY": 0, "KWD": 3}[currency]
    model = draw(
        st.one_of(
            st.builds(PerUnit, prices),
            st.builds(Graduated, tiers()),
            st.builds(Volume, tiers()),
            st.builds(Package, st.integers(1, 1000).map(D), prices),
            st.lists(prices, min_size=3, max_size=3).map(
                lambda ps: SizeBuckets(tuple(BucketPrice(k, p) for k, p in zip(BUCKETS, ps, strict=True)))
            ),
            st.builds(CostPlusMarkup, scaled(0, 50_000, 2), prices),
        )
    )
    cost_plus = isinstance(model, CostPlusMarkup)
    included = D(0) if cost_plus else draw(st.one_of(st.just(D(0)), quantities))
    caps = draw(st.lists(scaled(0, 10**7, places), min_size=0, max_size=2).map(sorted))
    minimum = caps[0] if len(caps) == 2 and draw(st.booleans()) else None
    maximum = caps[-1] if caps and draw(st.booleans()) else None
    return Charge(
        "c",
        "m",
        "C",
        model,
        included_quantity=included,
        minimum_amount=minimum,
        maximum_amount=maximum,
        provider_cost_meter_key=None if cost_plus else draw(st.sampled_from([None, "cost"])),
    )


@st.composite
def usages(draw) -> ChargeUsage:
    return ChargeUsage(
        quantity=draw(quantities),
        bucket_counts={k: draw(st.integers(0, 10**5).map(D)) for k in BUCKETS},
        provider_cost=draw(scaled(0, 10**13, 9)),
        request_count=draw(st.integers(0, 10**6).map(D)),
        quantity_by_workflow=draw(
            st.dictionaries(st.sampled_from(["w1", "w2", "w3"]), quantities, max_size=3)
        ),
    )


@given(
    line=st.integers(-(10**9), 10**9),
    cost=scaled(0, 10**13, 9),
    rule=fee_rules,
    currency=CURRENCIES,
)
def test_split_parts_always_sum_exactly_to_the_line(line, cost, rule, currency):
    amount = round_line(D(line).scaleb(-3), currency)
    split = split_line(amount, cost, rule, currency)
    assert split.provider_cost + split.platform_fee + split.builder_margin == amount
    for part in (split.provider_cost, split.platform_fee, split.builder_margin):
        assert round_line(part, currency) == part
    if amount - split.provider_cost <= 0:
        assert split.platform_fee == round_line(amount * rule.percent_of_line / 100, currency)


@given(tiers=tiers(), q=quantities, d=quantities)
def test_graduated_price_is_monotone(tiers, q, d):
    c = Charge("c", "m", "C", Graduated(tiers))
    assert (
        price_charge(c, ChargeUsage(quantity=q + d)).amount >= price_charge(c, ChargeUsage(quantity=q)).amount
    )


@given(tiers=tiers(), eps=scaled(1, 1000, 3))
def test_graduated_price_has_no_jump_at_tier_edges_beyond_the_next_flat_fee(tiers, eps):
    c = Charge("c", "m", "C", Graduated(tiers))
    for i, tier in enumerate(tiers[:-1]):
        edge = tier.up_to
        following = tiers[i + 1]
        at = price_charge(c, ChargeUsage(quantity=edge)).amount
        above = price_charge(c, ChargeUsage(quantity=edge + eps)).amount
        below = price_charge(c, ChargeUsage(quantity=max(D(0), edge - eps))).amount
        # Just above the edge: the next tier's flat fee plus eps units at its price (to nine places).
        assert abs(above - at - following.flat_price - eps * following.unit_price) <= D("0.000000002")
        # Just below the edge the price approaches the edge value from below, no flat fee in between.
        assert (
            0
            <= at - below
            <= eps * tier.unit_price + (tier.flat_price if edge - eps <= 0 else 0) + D("0.000000002")
        )


@given(charge=charges(), usage=usages(), fraction=st.integers(0, 100))
def test_usage_at_or_under_the_included_quantity_costs_nothing(charge, usage, fraction):
    if isinstance(charge.price, CostPlusMarkup) or charge.minimum_amount is not None:
        return
    quantity = (charge.included_quantity * fraction / 100).quantize(D("0.001"), rounding="ROUND_DOWN")
    if isinstance(charge.price, SizeBuckets):
        # Spread the allowed count over the buckets.
        n = int(quantity)
        usage = ChargeUsage(bucket_counts={"1-10": D(n // 2), "11-100": D(n - n // 2)})
    else:
        usage = ChargeUsage(quantity=quantity, provider_cost=usage.provider_cost)
    result = price_charge(charge, usage)
    assert result.amount == 0 and result.billable_quantity == 0


@given(charge=charges(), usage=usages(), currency=st.sampled_from(["USD", "EUR"]))
def test_a_charge_never_exceeds_its_maximum_nor_falls_below_its_minimum(charge, usage, currency):
    validate_plan(PlanSpec(currency, (charge,)))
    result = price_charge(charge, usage)
    rounded = round_line(result.amount, currency)
    if charge.maximum_amount is not None:
        assert result.amount <= charge.maximum_amount and rounded <= charge.maximum_amount
    if charge.minimum_amount is not None:
        assert result.amount >= charge.minimum_amount and rounded >= charge.minimum_amount
    assert result.amount >= 0


@given(
    charge_list=st.lists(charges(), min_size=1, max_size=4),
    usage_list=st.lists(usages(), min_size=4, max_size=4),
    base=st.one_of(st.none(), scaled(0, 10**6, 2)),
    rule=fee_rules,
)
def test_invoice_total_is_the_sum_of_rounded_lines_and_splits(charge_list, usage_list, base, rule):
    charge_list = [
        Charge(
            f"c{i}",
            c.meter_key,
            c.display_name,
            c.price,
            c.included_quantity,
            c.minimum_amount,
            c.maximum_amount,
            c.provider_cost_meter_key,
        )
        for i, c in enumerate(charge_list)
    ]
    plan = validate_plan(PlanSpec("USD", tuple(charge_list), base_fee=base))
    invoice = build_invoice(
        plan, {c.key: u for c, u in zip(charge_list, usage_list, strict=False)}, rule, MARCH
    )
    assert invoice.total == sum((line.amount for line in invoice.lines), D(0))
    assert all(round_line(line.amount, "USD") == line.amount for line in invoice.lines)
    assert all(line.amount == round_line(line.amount_unrounded, "USD") for line in invoice.lines)
    assert (
        invoice.provider_cost_total + invoice.platform_fee_total + invoice.builder_margin_total
        == invoice.total
    )
    # Paying it produces entries that sum exactly to the total, whatever the workflow attribution.
    entries = earnings_for_payment(invoice.lines, "USD", PARTIES)
    assert sum((e.amount for e in entries), D(0)) == invoice.total


@given(
    charge_list=st.lists(charges(), min_size=1, max_size=3),
    usage_list=st.lists(usages(), min_size=3, max_size=3),
    rule=fee_rules,
    cuts=st.lists(st.integers(1, 1000), min_size=1, max_size=5),
)
def test_credit_allocations_sum_exactly_and_never_exceed_the_invoice(charge_list, usage_list, rule, cuts):
    charge_list = [
        Charge(
            f"c{i}",
            c.meter_key,
            c.display_name,
            c.price,
            c.included_quantity,
            c.minimum_amount,
            c.maximum_amount,
            c.provider_cost_meter_key,
        )
        for i, c in enumerate(charge_list)
    ]
    plan = PlanSpec("USD", tuple(charge_list), base_fee=D("10.00"))
    invoice = build_invoice(
        plan, {c.key: u for c, u in zip(charge_list, usage_list, strict=False)}, rule, MARCH
    )
    credited = tuple(type(line.split)(D(0), D(0), D(0)) for line in invoice.lines)
    for cut in cuts:
        remaining = creditable_amount(invoice.lines, credited)
        amount = round_line(remaining * cut / 1000, "USD")
        if amount <= 0:
            continue
        allocation = allocate_credit(invoice.lines, credited, amount, "USD")
        assert sum((s.total for s in allocation), D(0)) == amount
        negatives = earnings_for_credit(invoice.lines, "USD", PARTIES, allocation)
        assert sum((e.amount for e in negatives), D(0)) == -amount
        credited = tuple(a + b for a, b in zip(credited, allocation, strict=True))
    remaining = creditable_amount(invoice.lines, credited)
    assert 0 <= remaining <= invoice.total
    if remaining > 0:
        last = allocate_credit(invoice.lines, credited, remaining, "USD")
        full = tuple(a + b for a, b in zip(credited, last, strict=True))
        assert full == tuple(line.split for line in invoice.lines)


@given(charge=charges(), before=usages(), extra=usages(), rule=fee_rules)
def test_late_adjustment_plus_the_closed_line_equals_the_line_priced_on_time(charge, before, extra, rule):
    now = ChargeUsage(
        quantity=before.quantity + extra.quantity,
        bucket_counts={k: before.bucket_counts[k] + extra.bucket_counts[k] for k in BUCKETS},
        provider_cost=before.provider_cost + extra.provider_cost,
        request_count=before.request_count + extra.request_count,
    )
    plan = PlanSpec("USD", (charge,))
    closed = build_invoice(plan, {"c": before}, rule, MARCH).lines[0]
    on_time = build_invoice(plan, {"c": now}, rule, MARCH).lines[0]
    adjustment = late_adjustment_line(LateUsage(charge, MARCH, before, now), rule, "USD")
    if adjustment is None:
        assert on_time.amount == closed.amount and on_time.split == closed.split
        return
    assert closed.amount + adjustment.amount == on_time.amount
    assert closed.split + adjustment.split == on_time.split
    assert adjustment.split.total == adjustment.amount


@given(
    total=st.integers(-(10**6), 10**6), weights=st.lists(st.integers(-(10**6), 10**6), min_size=1, max_size=8)
)
def test_largest_remainder_allocation_sums_exactly(total, weights):
    ws = [D(w).scaleb(-2) for w in weights]
    if sum(ws) == 0:
        return
    parts = allocate(D(total).scaleb(-2), ws, "USD")
    assert sum(parts, D(0)) == D(total).scaleb(-2)
    # Every part is within one cent of its exact share.
    for part, w in zip(parts, ws, strict=True):
        assert abs(part - D(total).scaleb(-2) * w / sum(ws)) < D("0.01")


@given(charge=charges())
def test_plans_round_trip_through_their_stored_form(charge):
    plan = validate_plan(PlanSpec("USD", (charge,), base_fee=D("1.50")))
    assert plan_from_dict(plan_to_dict(plan)) == plan


@given(
    model=st.one_of(
        st.builds(PerUnit, prices),
        st.builds(Package, st.integers(1, 1000).map(D), prices),
        st.builds(Graduated, tiers()),
    ),
    included=quantities,
    q=quantities,
    d=quantities,
)
def test_per_unit_package_and_graduated_prices_never_fall_as_usage_grows(model, included, q, d):
    c = Charge("c", "m", "C", model, included_quantity=included)
    assert (
        price_charge(c, ChargeUsage(quantity=q + d)).amount >= price_charge(c, ChargeUsage(quantity=q)).amount
    )


@given(charge=charges(), usage=usages(), rule=fee_rules)
def test_earnings_per_kind_equal_the_invoice_split_totals(charge, usage, rule):
    invoice = build_invoice(PlanSpec("USD", (charge,), base_fee=D("5.00")), {"c": usage}, rule, MARCH)
    entries = earnings_for_payment(invoice.lines, "USD", PARTIES)
    totals = {kind: sum((e.amount for e in entries if e.kind is kind), D(0)) for kind in EarningsKind}
    assert totals[EarningsKind.PROVIDER_COST] == invoice.provider_cost_total
    assert totals[EarningsKind.PLATFORM_FEE] == invoice.platform_fee_total
    assert totals[EarningsKind.BUILDER_MARGIN] == invoice.builder_margin_total
    assert all(e.amount != 0 for e in entries)
