from datetime import UTC, datetime
from decimal import Decimal as D

from billing.domain import (
    BucketPrice,
    Charge,
    ChargeUsage,
    CostPlusMarkup,
    EarningsKind,
    EarningsParties,
    EarningsReason,
    PlanSpec,
    PlatformFeeRule,
    SizeBuckets,
    allocate_credit,
    build_invoice,
    earnings_for_credit,
    earnings_for_payment,
    period_containing,
    void_allocation,
)

PARTIES = EarningsParties(builder_id="b1", app_id="app1", customer_id="cust1", invoice_id="inv1")
MARCH = period_containing(datetime(2025, 3, 2, tzinfo=UTC))
FEE = PlatformFeeRule(percent_of_line=D(5), percent_of_margin=D(10))
PLAN = PlanSpec(
    "USD",
    (
        Charge("documents", "documents", "Documents", SizeBuckets((BucketPrice("1-10", D("0.50")),))),
        Charge("tokens", "provider_cost", "AI usage", CostPlusMarkup(D(25))),
    ),
    base_fee=D("49.00"),
)


def invoice():
    return build_invoice(
        PLAN,
        {
            "documents": ChargeUsage(
                bucket_counts={"1-10": D(30)}, quantity_by_workflow={"intake": D(20), "review": D(10)}
            ),
            "tokens": ChargeUsage(quantity=D("8.00"), quantity_by_workflow={"intake": D("8.00")}),
        },
        FEE,
        MARCH,
    )


def test_a_paid_invoice_becomes_entries_that_sum_to_the_amount_paid():
    inv = invoice()
    entries = earnings_for_payment(inv.lines, "USD", PARTIES)
    assert sum(e.amount for e in entries) == inv.total == D("74.00")  # 49 + 15 + 10
    assert all(e.reason is EarningsReason.PAYMENT and e.amount > 0 for e in entries)
    assert {(e.builder_id, e.app_id, e.customer_id, e.invoice_id) for e in entries} == {
        ("b1", "app1", "cust1", "inv1")
    }
    by_kind = {k: sum(e.amount for e in entries if e.kind is k) for k in EarningsKind}
    assert by_kind[EarningsKind.PROVIDER_COST] == inv.provider_cost_total == D("8.00")
    assert by_kind[EarningsKind.PLATFORM_FEE] == inv.platform_fee_total
    assert by_kind[EarningsKind.BUILDER_MARGIN] == inv.builder_margin_total


def test_entries_are_attributed_to_workflows_in_proportion_to_usage():
    entries = earnings_for_payment(invoice().lines, "USD", PARTIES)
    docs = [e for e in entries if e.charge_key == "documents"]
    # Documents line 15.00: fee 0.75 + 10% of 15.00 = 2.25, margin 12.75; split 2:1 by workflow.
    assert {(e.kind, e.workflow): e.amount for e in docs} == {
        (EarningsKind.PLATFORM_FEE, "intake"): D("1.50"),
        (EarningsKind.PLATFORM_FEE, "review"): D("0.75"),
        (EarningsKind.BUILDER_MARGIN, "intake"): D("8.50"),
        (EarningsKind.BUILDER_MARGIN, "review"): D("4.25"),
    }
    assert {e.meter_key for e in docs} == {"documents"}
    base = [e for e in entries if e.charge_key is None]
    assert {e.workflow for e in base} == {""}


def test_credit_note_after_payment_produces_negative_entries_summing_to_the_credit():
    inv = invoice()
    allocation = allocate_credit(inv.lines, (), D("10.01"), "USD")
    entries = earnings_for_credit(inv.lines, "USD", PARTIES, allocation)
    assert sum(e.amount for e in entries) == D("-10.01")
    assert all(e.reason is EarningsReason.CREDIT_NOTE for e in entries)


def test_void_after_partial_credit_reverses_exactly_what_remains():
    inv = invoice()
    paid = earnings_for_payment(inv.lines, "USD", PARTIES)
    credit = allocate_credit(inv.lines, (), D("20.00"), "USD")
    credited = earnings_for_credit(inv.lines, "USD", PARTIES, credit)
    voided = earnings_for_credit(
        inv.lines, "USD", PARTIES, void_allocation(inv.lines, credit, "USD"), reason=EarningsReason.VOID
    )
    assert sum(e.amount for e in voided) == D("-54.00")
    net: dict[tuple, D] = {}
    for e in (*paid, *credited, *voided):
        key = (e.line_index, e.kind, e.workflow)
        net[key] = net.get(key, D(0)) + e.amount
    assert set(net.values()) == {D(0)}


def test_credit_before_payment_reduces_what_the_payment_earns():
    inv = invoice()
    credit = allocate_credit(inv.lines, (), D("4.00"), "USD")
    entries = earnings_for_payment(inv.lines, "USD", PARTIES, credited_before_payment=credit)
    assert sum(e.amount for e in entries) == D("70.00")


def test_negative_margin_is_paid_out_as_a_negative_entry():
    plan = PlanSpec(
        "USD",
        (
            Charge(
                "calls",
                "calls",
                "Calls",
                SizeBuckets((BucketPrice("all", D(1)),)),
                provider_cost_meter_key="c",
            ),
        ),
    )
    inv = build_invoice(
        plan, {"calls": ChargeUsage(bucket_counts={"all": D(10)}, provider_cost=D(12))}, FEE, MARCH
    )
    entries = earnings_for_payment(inv.lines, "USD", PARTIES)
    amounts = {e.kind: e.amount for e in entries}
    assert amounts == {
        EarningsKind.PROVIDER_COST: D("12.00"),
        EarningsKind.PLATFORM_FEE: D("0.50"),
        EarningsKind.BUILDER_MARGIN: D("-2.50"),
    }
    assert sum(amounts.values()) == D("10.00")
