"""Statement figures and the CSVs, by hand."""

from decimal import Decimal as D

from payouts.domain.ledger import EntryKind
from payouts.domain.money import show
from payouts.domain.periods import Period
from payouts.domain.statement import (
    BankRow,
    EntryFact,
    LedgerSection,
    Statement,
    breakdown,
    payout_run_csv,
    statement_csv,
    summarize,
)


def fact(kind: EntryKind, amount: str, customer: str = "acme", workflow: str = "w") -> EntryFact:
    return EntryFact(kind, "app-1", customer, workflow, "documents", D(amount))


FACTS = [
    fact(EntryKind.BUILDER_MARGIN, "80.00"),
    fact(EntryKind.PROVIDER_COST, "15.00"),
    fact(EntryKind.PLATFORM_FEE, "5.00"),
    fact(EntryKind.BUILDER_MARGIN, "20.00", customer="beta", workflow="x"),
    fact(EntryKind.BUILDER_MARGIN, "-4.00", customer="beta", workflow="x"),
]


def test_revenue_less_cost_and_fee_is_the_builders_earnings():
    s = summarize(False, FACTS)
    # 80 + 15 + 5 + 20 - 4 = 116 revenue; 116 - 15 - 5 = 96 = 80 + 20 - 4.
    assert (s.revenue, s.provider_cost, s.platform_fee, s.earnings) == (D("116"), D("15"), D("5"), D("96"))


def test_provider_pool_statement_counts_only_provider_cost():
    s = summarize(True, FACTS)
    assert (s.revenue, s.earnings, s.provider_cost) == (D("15"), D("15"), D(0))


def test_lines_break_earnings_down_by_dimension_with_refunds_netted():
    lines = {(ln.dimension, ln.key): ln.earnings for ln in breakdown(False, FACTS)}
    assert lines[("customer", "acme")] == D("80.00")
    assert lines[("customer", "beta")] == D("16.00")
    assert lines[("app", "app-1")] == D("96.00")
    assert ("customer", "provider") not in lines


def test_closing_balance_is_opening_plus_earnings_less_clawbacks_and_payouts():
    section = LedgerSection(D("10.00"), D("100.00"), D("4.00"), D("90.00"))
    assert section.closing_balance == D("16.00")


def test_statement_csv_has_fixed_rows_and_minor_unit_amounts():
    s = Statement(
        "agency-7", "USD", "2026-10", summarize(False, FACTS),
        LedgerSection(D(0), D("100"), D("4"), D("0")), breakdown(False, FACTS),
    )  # fmt: skip
    text = statement_csv(s)
    assert text.splitlines()[0] == "section,key,amount,currency_code"
    assert "summary,earnings,96.00,USD" in text.splitlines()
    assert "ledger,closing_balance,96.00,USD" in text.splitlines()
    assert statement_csv(s) == text


def test_bank_file_is_sorted_and_stable():
    rows = [
        BankRow("zeta", "acct-z", D("10"), "USD", "po:2026-10:USD:zeta"),
        BankRow("agency-7", "acct-a", D("70.5"), "USD", "po:2026-10:USD:agency-7"),
    ]
    text = payout_run_csv(rows)
    assert text == (
        "payee_id,method_reference,amount,currency_code,payout_id\n"
        "agency-7,acct-a,70.50,USD,po:2026-10:USD:agency-7\n"
        "zeta,acct-z,10.00,USD,po:2026-10:USD:zeta\n"
    )
    assert payout_run_csv(reversed(rows)) == text


def test_minor_units_per_currency():
    assert show(D("1200"), "JPY") == "1200"
    assert show(D("1.5"), "KWD") == "1.500"
    assert show(D("-0"), "USD") == "0.00"


def test_period_bounds_are_calendar_months():
    p = Period.parse("2026-12")
    assert str(p) == "2026-12" and p.end.year == 2027 and p.end.month == 1
