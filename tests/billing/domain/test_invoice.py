from datetime import UTC, datetime
from decimal import Decimal as D

import pytest

from billing.domain import (
    NO_PLATFORM_FEE,
    BillingPeriod,
    BucketPrice,
    Charge,
    ChargeUsage,
    CostPlusMarkup,
    LateUsage,
    LineKind,
    PerUnit,
    PlanSpec,
    PlatformFeeRule,
    SizeBuckets,
    Split,
    Tier,
    Volume,
    allocate_credit,
    apply_wallet,
    build_invoice,
    creditable_amount,
    next_period,
    period_containing,
    plan_change_effective_time,
)
from common.errors import InvalidArgument

MARCH = period_containing(datetime(2025, 3, 15, 12, tzinfo=UTC))
FEE = PlatformFeeRule(percent_of_line=D(5), percent_of_margin=D(10))

DOCS = Charge(
    "documents",
    "documents",
    "Documents processed",
    SizeBuckets(
        (BucketPrice("1-10", D("0.50")), BucketPrice("11-100", D("2.00")), BucketPrice("101+", D(5)))
    ),
    included_quantity=D(100),
)
TOKENS = Charge("tokens", "provider_cost", "AI usage", CostPlusMarkup(D(25), D("0.001")))
TICKETS = Charge("tickets", "tickets", "Support tickets", PerUnit(D("1.20")), minimum_amount=D("10.00"))
PLAN = PlanSpec("USD", (DOCS, TOKENS, TICKETS), base_fee=D("49.00"))


def usage():
    return {
        "documents": ChargeUsage(bucket_counts={"1-10": D(150), "11-100": D(10), "101+": D(2)}),
        "tokens": ChargeUsage(quantity=D("12.345678901"), request_count=D(1000)),
    }


def test_calendar_month_periods_are_utc_and_half_open():
    assert MARCH == BillingPeriod(datetime(2025, 3, 1, tzinfo=UTC), datetime(2025, 4, 1, tzinfo=UTC))
    december = period_containing(datetime(2025, 12, 31, 23, 59, 59, tzinfo=UTC))
    assert next_period(december) == BillingPeriod(
        datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)
    )
    assert not MARCH.contains(MARCH.end) and MARCH.contains(MARCH.start)
    assert plan_change_effective_time(datetime(2025, 3, 31, 23, 59, tzinfo=UTC)) == datetime(
        2025, 4, 1, tzinfo=UTC
    )


def test_invoice_has_base_fee_then_charges_in_plan_order_with_exact_splits():
    invoice = build_invoice(PLAN, usage(), FEE, MARCH)
    rows = [(line.kind, line.charge_key, line.amount, line.split) for line in invoice.lines]
    assert rows == [
        (LineKind.BASE_FEE, None, D("49.00"), Split(D("0.00"), D("7.35"), D("41.65"))),
        (LineKind.USAGE, "documents", D("55.00"), Split(D("0.00"), D("8.25"), D("46.75"))),
        # 12.345678901 * 1.25 + 1000 * 0.001 = 16.432098626 -> 16.43; fee 0.8215 + 0.408 -> 1.23.
        (LineKind.USAGE, "tokens", D("16.43"), Split(D("12.35"), D("1.23"), D("2.85"))),
        # No tickets this month: the 10.00 minimum applies.
        (LineKind.USAGE, "tickets", D("10.00"), Split(D("0.00"), D("1.50"), D("8.50"))),
    ]
    assert invoice.subtotal == invoice.total == D("130.43")
    assert invoice.lines[2].amount_unrounded == D("16.432098626")
    assert invoice.lines[3].minimum_applied
    assert (invoice.provider_cost_total, invoice.platform_fee_total, invoice.builder_margin_total) == (
        D("12.35"),
        D("18.33"),
        D("99.75"),
    )


def test_invoice_total_is_the_sum_of_rounded_lines_not_the_rounded_sum():
    third = Charge("a", "a", "A", PerUnit(D("0.005")))
    other = Charge("b", "b", "B", PerUnit(D("0.005")))
    plan = PlanSpec("USD", (third, other))
    invoice = build_invoice(
        plan, {"a": ChargeUsage(quantity=D(1)), "b": ChargeUsage(quantity=D(1))}, NO_PLATFORM_FEE, MARCH
    )
    assert [line.amount for line in invoice.lines] == [D("0.01"), D("0.01")]
    assert invoice.total == D("0.02")  # rounding the unrounded sum (0.010) would give 0.01


def test_usage_for_an_unknown_charge_is_refused():
    with pytest.raises(InvalidArgument) as err:
        build_invoice(PLAN, {"nope": ChargeUsage(quantity=D(1))}, FEE, MARCH)
    assert err.value.field == "usage_by_charge[nope]"


def test_late_usage_becomes_a_marked_line_priced_as_the_difference():
    late = LateUsage(
        TICKETS, MARCH, usage_at_close=ChargeUsage(quantity=D(7)), usage_now=ChargeUsage(quantity=D(12))
    )
    april = next_period(MARCH)
    invoice = build_invoice(PLAN, {"tickets": ChargeUsage(quantity=D(20))}, NO_PLATFORM_FEE, april, [late])
    line = invoice.lines[-1]
    assert line.kind is LineKind.LATE_USAGE
    assert line.display_name == "Support tickets (late usage for 2025-03)"
    assert line.late.period == MARCH and line.late.quantity_at_close == 7 and line.late.quantity_now == 12
    # At close 7 tickets (8.40) cost the 10.00 minimum; now 12 cost 14.40: 4.40 more, not 5 * 1.20.
    assert line.quantity == D(5) and line.amount == D("4.40")
    assert line.split == Split(D(0), D(0), D("4.40"))
    assert invoice.total == D("49.00") + D("24.00") + D("4.40")  # base, 20 tickets, late


def test_late_usage_that_lowers_a_volume_price_is_a_negative_adjustment():
    volume = Charge(
        "calls",
        "calls",
        "Calls",
        Volume((Tier(D(100), D(1)), Tier(None, D("0.50")))),
        provider_cost_meter_key="cost",
    )
    late = LateUsage(
        volume,
        MARCH,
        ChargeUsage(quantity=D(100), provider_cost=D("30.004")),
        ChargeUsage(quantity=D(101), provider_cost=D("30.305")),
    )
    invoice = build_invoice(PlanSpec("USD", base_fee=D(1)), {}, FEE, next_period(MARCH), [late])
    line = invoice.lines[-1]
    assert line.amount == D("50.50") - D("100.00")
    # split(now) - split(at close): each side sums to its line, so the difference sums to the adjustment.
    assert line.split.provider_cost == D("30.31") - D("30.00")
    assert line.split.total == line.amount


def test_late_usage_that_changes_nothing_adds_no_line():
    late = LateUsage(
        DOCS, MARCH, ChargeUsage(bucket_counts={"1-10": D(3)}), ChargeUsage(bucket_counts={"1-10": D(3)})
    )
    invoice = build_invoice(PLAN, {}, FEE, next_period(MARCH), [late])
    assert all(line.kind is not LineKind.LATE_USAGE for line in invoice.lines)


def test_late_usage_inside_the_allowance_is_shown_at_zero():
    late = LateUsage(
        DOCS, MARCH, ChargeUsage(bucket_counts={"1-10": D(3)}), ChargeUsage(bucket_counts={"1-10": D(5)})
    )
    line = build_invoice(PLAN, {}, FEE, next_period(MARCH), [late]).lines[-1]
    assert line.kind is LineKind.LATE_USAGE and line.quantity == 2 and line.amount == 0


@pytest.mark.parametrize(
    "total,balance,applied,due",
    [
        ("100.00", "30.00", "30.00", "70.00"),
        ("100.00", "150.00", "100.00", "0.00"),
        ("0", "5", "0", "0"),
        ("20.00", "0", "0", "20.00"),
        ("20.00", "-3.00", "0", "20.00"),
    ],
)
def test_wallet_pays_what_it_can_and_leaves_the_rest_due(total, balance, applied, due):
    result = apply_wallet(D(total), D(balance))
    assert (result.applied, result.amount_due) == (D(applied), D(due))


def test_credit_note_is_allocated_over_lines_and_parts_summing_exactly():
    invoice = build_invoice(PLAN, usage(), FEE, MARCH)
    allocation = allocate_credit(invoice.lines, (), D("10.00"), "USD")
    assert sum(s.total for s in allocation) == D("10.00")
    assert len(allocation) == len(invoice.lines)
    # Proportional: the base fee line is 49.00 / 130.43 of the invoice.
    assert allocation[0].total in (D("3.75"), D("3.76"))


def test_credits_cannot_exceed_what_remains_creditable():
    invoice = build_invoice(PLAN, usage(), FEE, MARCH)
    first = allocate_credit(invoice.lines, (), D("100.00"), "USD")
    assert creditable_amount(invoice.lines, first) == D("30.43")
    with pytest.raises(InvalidArgument) as err:
        allocate_credit(invoice.lines, first, D("30.44"), "USD")
    assert err.value.field == "amount" and "30.43" in err.value.message
    rest = allocate_credit(invoice.lines, first, D("30.43"), "USD")
    # Crediting the whole remainder gives back exactly every line's split.
    assert tuple(a + b for a, b in zip(first, rest, strict=True)) == tuple(
        line.split for line in invoice.lines
    )


@pytest.mark.parametrize("amount", ["0", "-1.00", "0.001"])
def test_credit_amount_must_be_positive_whole_cents(amount):
    invoice = build_invoice(PLAN, usage(), FEE, MARCH)
    with pytest.raises(InvalidArgument) as err:
        allocate_credit(invoice.lines, (), D(amount), "USD")
    assert err.value.field == "amount"


def test_credits_on_an_invoice_with_a_negative_late_line_still_sum_exactly():
    volume = Charge("calls", "calls", "Calls", Volume((Tier(D(100), D(1)), Tier(None, D("0.50")))))
    late = LateUsage(volume, MARCH, ChargeUsage(quantity=D(100)), ChargeUsage(quantity=D(101)))
    invoice = build_invoice(PLAN, usage(), FEE, next_period(MARCH), [late])
    assert invoice.lines[-1].amount == D("-49.50")
    first = allocate_credit(invoice.lines, (), D("33.33"), "USD")
    assert sum(s.total for s in first) == D("33.33")
    rest = creditable_amount(invoice.lines, first)
    assert rest == invoice.total - D("33.33")
    second = allocate_credit(invoice.lines, first, rest, "USD")
    assert tuple(a + b for a, b in zip(first, second, strict=True)) == tuple(
        line.split for line in invoice.lines
    )


def test_a_negative_invoice_total_takes_nothing_from_the_wallet():
    result = apply_wallet(D("-4.50"), D("20.00"))
    assert (result.applied, result.amount_due) == (D(0), D("-4.50"))
