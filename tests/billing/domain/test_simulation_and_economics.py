"""Pure rules of plan simulations and unit economics: described months read as metering answers
are read, scaling, totals that sum exactly, and per-workflow attribution to the cent."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D

import pytest

from billing.domain import (
    BucketPrice,
    Charge,
    ChargeUsage,
    CostPlusMarkup,
    PerUnit,
    PlanSpec,
    PlatformFeeRule,
    SizeBuckets,
    Split,
    build_invoice,
    period_containing,
)
from billing.domain.economics import EconomicsLine, unit_economics
from billing.domain.simulation import MeterMonth, Totals, draft_totals, scale_usage, usage_from_meters
from common.errors import InvalidArgument

PERIOD = period_containing(datetime(2026, 3, 10, tzinfo=UTC))
FEE = PlatformFeeRule(D("5"), D("0"))
PLAN = PlanSpec(
    currency="USD",
    charges=(
        Charge(
            key="documents",
            meter_key="documents",
            display_name="Documents",
            price=SizeBuckets((BucketPrice("small", D("0.50")), BucketPrice("large", D("3.00")))),
            included_quantity=D(10),
        ),
        Charge(key="tokens", meter_key="llm_cost", display_name="AI", price=CostPlusMarkup(D(20))),
        Charge(
            key="runs",
            meter_key="runs",
            display_name="Runs",
            price=PerUnit(D("0.10")),
            provider_cost_meter_key="llm_cost",
        ),
    ),
)


def test_a_described_month_is_read_like_metering_answers() -> None:
    usage = usage_from_meters(
        PLAN,
        {
            "documents": MeterMonth(D(30), D(30), {"small": D(20), "large": D(10)}),
            "llm_cost": MeterMonth(D("4.20"), D(12)),
            "runs": MeterMonth(D(7)),
        },
    )
    assert usage["documents"].bucket_counts == {"small": D(20), "large": D(10)}
    assert usage["tokens"] == ChargeUsage(quantity=D("4.20"), request_count=D(12))
    # A per-unit charge with a provider-cost meter carries that meter's value as its cost.
    assert usage["runs"] == ChargeUsage(quantity=D(7), provider_cost=D("4.20"))
    draft = build_invoice(PLAN, usage, FEE, PERIOD)
    # Documents: the 10 included come out of the small ones: 10 x 0.50 + 10 x 3.00 = 35.00.
    # Tokens: 4.20 x 1.20 = 5.04. Runs: 7 x 0.10 = 0.70. Total 40.74.
    totals = draft_totals(draft)
    assert totals.total == D("40.74")
    assert totals.provider_cost + totals.platform_fee + totals.builder_margin == totals.total


def test_a_meter_not_described_is_zero_and_buckets_only_reach_size_bucket_prices() -> None:
    usage = usage_from_meters(PLAN, {"runs": MeterMonth(D(3), buckets={"small": D(3)})})
    assert usage["runs"].bucket_counts == {}
    assert usage["documents"] == ChargeUsage()


def test_scaling_multiplies_every_quantity_and_refuses_factors_out_of_range() -> None:
    real = {"a": ChargeUsage(D(3), {"x": D(2)}, D("1.5"), D(4), {"wf": D(3)})}
    assert scale_usage(real, D("2.5")) == {
        "a": ChargeUsage(D("7.5"), {"x": D(5)}, D("3.75"), D(10), {"wf": D("7.5")})
    }
    for bad in (D(-1), D(1_000_001), D("0.0000000001")):
        with pytest.raises(InvalidArgument):
            scale_usage(real, bad)


def test_totals_add_only_in_one_currency() -> None:
    a = Totals("USD", D("1.00"), D("0.50"), D("0.05"), D("0.45"))
    assert a + a == Totals("USD", D("2.00"), D("1.00"), D("0.10"), D("0.90"))
    with pytest.raises(ValueError):
        a + Totals("EUR")


def test_workflow_rows_sum_exactly_to_each_meter_even_with_a_negative_margin() -> None:
    lines = [
        # 10.00 priced below its 10.50 cost: margin -1.00 after a 0.50 fee, over workflows 1:2.
        EconomicsLine(
            "USD",
            "llm_cost",
            D("10.50"),
            D("10.00"),
            Split(D("10.50"), D("0.50"), D("-1.00")),
            (("a", D(1)), ("b", D(2))),
        ),
        EconomicsLine("USD", "runs", D(3), D("0.30"), Split(D(0), D("0.02"), D("0.28")), ()),
    ]
    meters, flows = unit_economics(lines)
    by_meter = {r.meter_key: r for r in meters}
    assert by_meter["llm_cost"].margin_per_unit == D("-0.095238095")  # -1.00 / 10.50, half up
    assert by_meter["runs"].margin_per_unit == D("0.093333333")
    rows = {(r.meter_key, r.workflow): r for r in flows}
    # Cost 1050 cents by 1:2 -> 350 / 700; fee 50 -> 16.67 / 33.33 -> 17 / 33; margin -100 ->
    # -33.33 / -66.67 -> -33 / -67 (largest remainder). Revenue is the sum of the parts.
    assert (rows[("llm_cost", "a")].provider_cost, rows[("llm_cost", "a")].platform_fee) == (
        D("3.50"),
        D("0.17"),
    )
    assert (rows[("llm_cost", "a")].builder_margin, rows[("llm_cost", "b")].builder_margin) == (
        D("-0.33"),
        D("-0.67"),
    )
    # a: 3.50 + 0.17 - 0.33 = 3.34; b: 7.00 + 0.33 - 0.67 = 6.66; 10.00 in all.
    assert (rows[("llm_cost", "a")].revenue, rows[("llm_cost", "b")].revenue) == (D("3.34"), D("6.66"))
    for r in flows:
        assert r.provider_cost + r.platform_fee + r.builder_margin == r.revenue
    # A line without workflow usage goes to workflow "" with all its units.
    assert rows[("runs", "")].units == D(3)
    assert rows[("runs", "")].margin_per_unit == D("0.093333333")


def test_no_margin_per_unit_without_units() -> None:
    meters, _ = unit_economics([EconomicsLine("USD", "", D(0), D("5.00"), Split(D(0), D(0), D("5.00")), ())])
    assert meters[0].margin_per_unit is None
