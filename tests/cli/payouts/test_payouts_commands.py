"""An operator settles a month with the command: payout run, list, bank file, statement, reconcile,
against real metering, billing and payouts. The expected figures are billing's own earnings feed, to the
cent: the builder is paid exactly its margin, the providers' pool exactly the provider cost."""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from payouts_kit import billing_feed, close_and_pay, dec, ended_months, ingest, set_up_builder, usage_events

from tests.cli.cli_kit import operator_args
from tollgate.billing.v1 import billing_pb2 as bpb

BUILDER = "cli-payee"
POOL = "provider:all"
M1, M2, _ = ended_months()


def _month(value: datetime) -> str:
    return f"{value.year:04d}-{value.month:02d}"


@pytest.fixture(scope="module")
async def shares(suite) -> dict[str, Decimal]:
    """The builder's margin and the provider cost the customers paid, from billing's feed."""
    await set_up_builder(suite.billing, suite.metering, BUILDER, ["acme"], M1)
    await ingest(suite.metering, usage_events(BUILDER, "acme", M1.replace(day=9), 12, "4.5678", "triage"))
    assert await close_and_pay(suite.billing, BUILDER, M2)
    entries, _ = await billing_feed(suite.billing)
    out: dict[str, Decimal] = defaultdict(Decimal)
    for e in entries:
        if e.builder_id == BUILDER:
            out[bpb.EarningsKind.Name(e.kind)] += dec(e.amount)
    return out


def _args(suite) -> list[str]:
    return operator_args(**suite.addresses)


async def test_a_month_settled_from_the_command_line_to_the_cent(cli, suite, shares, tmp_path):
    margin, cost = shares["EARNINGS_KIND_BUILDER_MARGIN"], shares["EARNINGS_KIND_PROVIDER_COST"]
    assert margin > 0 and cost > 0
    suite.clock.offset = timedelta(days=15)  # past the hold
    period = _month(datetime.now(UTC) + suite.clock.offset)

    run = await cli(*_args(suite), "--json", "payouts", "run", "--period", period)
    assert run.exit_code == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["earnings_applied"] > 0 and summary["holds_released"] > 0
    assert summary["created_count"] == summary["payout_count"] == 2
    again = json.loads((await cli(*_args(suite), "--json", "payouts", "run", "--period", period)).stdout)
    assert (again["created_count"], again["payout_count"]) == (0, 2)

    listed = json.loads((await cli(*_args(suite), "payouts", "list", "--period", period, "--json")).stdout)
    amounts = {p["payee_id"]: p["amount"] for p in listed["payouts"]}
    assert amounts == {
        BUILDER: {"currency_code": "USD", "amount": f"{margin:.2f}"},
        POOL: {"currency_code": "USD", "amount": f"{cost:.2f}"},
    }
    table = await cli(*_args(suite), "payouts", "list", "--period", period)
    assert BUILDER in table.stdout and f"{margin:.2f} USD" in table.stdout

    bank = tmp_path / "bank.csv"
    exported = await cli(*_args(suite), "payouts", "export", "--period", period, "--output", str(bank))
    assert exported.exit_code == 0, exported.stderr
    rows = list(csv.DictReader(io.StringIO(bank.read_text())))
    assert {(r["payee_id"], r["amount"]) for r in rows} == {(BUILDER, f"{margin:.2f}"), (POOL, f"{cost:.2f}")}
    to_stdout = await cli(*_args(suite), "payouts", "export", "--period", period, "-o", "-")
    assert to_stdout.stdout == bank.read_text()  # the same bytes every time

    earned = _month(datetime.now(UTC))  # the feed's entries were posted now
    statement = await cli(*_args(suite), "--json", "payouts", "statement", BUILDER, "--period", earned)
    assert statement.exit_code == 0, statement.stderr
    st = json.loads(statement.stdout)["statement"]
    assert st["summary"]["earnings"]["amount"] == f"{margin:.2f}"
    csv_statement = await cli(
        *_args(suite), "payouts", "statement", BUILDER, "--period", earned, "--csv", "-"
    )
    assert csv_statement.stdout.startswith("section,key,amount,currency_code")

    clean = await cli(*_args(suite), "reconcile", _month(M1))
    assert clean.exit_code == 0, clean.stdout + clean.stderr
    assert "clean" in clean.stdout and "NO" not in clean.stdout


async def test_reconcile_exits_6_when_the_figures_disagree(cli, suite, shares):
    # Another month paid in billing but not yet read by payouts: the earnings check disagrees.
    await ingest(suite.metering, usage_events(BUILDER, "acme", M2.replace(day=3), 2, "1.25", "triage"))
    _, _, m3 = ended_months()
    assert await close_and_pay(suite.billing, BUILDER, m3)
    result = await cli(*_args(suite), "--json", "reconcile", _month(M2))
    assert result.exit_code == 6, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["clean"] is False
    assert any(not c["ok"] and c["name"] == "earnings_match_paid_invoices" for c in report["checks"])
    assert "not clean" in result.stderr


async def test_a_malformed_period_is_a_usage_error(cli, suite):
    result = await cli(*_args(suite), "payouts", "run", "--period", "2026-13")
    assert result.exit_code == 2 and "YYYY-MM" in result.stderr
