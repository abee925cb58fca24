"""An operator runs a builder's month end with the command only, against real billing and metering:
customer, plan from YAML, subscription, usage, close, invoice, payment, earnings; the JSON carries the
amounts to the cent.

Hand arithmetic: the plan charges 0.50 per ticket with 2 included and a 10.00 base fee. Acme handled 7
tickets in the month: 10.00 + (7 - 2) x 0.50 = 12.50. No platform fee and no provider cost, so the whole
12.50 is builder margin once paid.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from billing_kit import event, ingest, rid

from tests.cli.cli_kit import operator_args
from tollgate.metering.v1 import metering_pb2 as mpb

BUILDER = "cli-agency"
PLAN = """
currency: USD
base_fee: "10.00"
charges:
  - key: tickets
    meter_key: tickets
    display_name: Tickets handled
    included_quantity: 2
    per_unit: {unit_price: "0.50"}
"""


def _past_month() -> tuple[str, datetime]:
    now = datetime.now(UTC)
    y, m = now.year, now.month - 2
    if m <= 0:
        y, m = y - 1, m + 12
    return f"{y:04d}-{m:02d}", datetime(y, m, 1, tzinfo=UTC)


PERIOD, START = _past_month()


@pytest.fixture(scope="module")
async def args(stack) -> list[str]:
    await stack.metering.CreateMeter(
        mpb.CreateMeterRequest(
            request_id=rid(),
            meter=mpb.Meter(
                builder_id=BUILDER,
                key="tickets",
                display_name="Tickets",
                event_types=["ticket.handled"],
                aggregation=mpb.AGGREGATION_COUNT,
            ),
        )
    )
    day = START.replace(day=3)
    await ingest(
        stack.metering,
        [event(BUILDER, "acme", "ticket.handled", day, tags={"workflow": "triage"}) for _ in range(7)],
    )
    return [*operator_args(billing=stack.billing_address, metering=stack.metering_address), "--timeout", "60"]


async def test_month_end_from_the_command_line_to_the_cent(cli, args, tmp_path):
    b = ["--builder", BUILDER]
    made = await cli(*args, "customers", "create", "acme", "--app", "app-1", "--name", "Acme Corp", *b)
    assert made.exit_code == 0, made.stderr
    plan_file = tmp_path / "support.yaml"
    plan_file.write_text(PLAN)
    applied = await cli(*args, "--json", "plans", "apply", str(plan_file), *b)
    assert applied.exit_code == 0, applied.stderr
    plan = json.loads(applied.stdout)
    assert plan["published"] is True and plan["plan"]["key"] == "support"
    assert plan["version"]["base_fee"] == {"currency_code": "USD", "amount": "10.00"}
    again = json.loads((await cli(*args, "--json", "plans", "apply", str(plan_file), *b)).stdout)
    assert again["published"] is False and again["version"]["version"] == 1

    subscribed = await cli(
        *args, "customers", "subscribe", "acme", "--plan", "support", "--start", START.isoformat(), *b
    )
    assert subscribed.exit_code == 0, subscribed.stderr

    usage = json.loads(
        (
            await cli(
                *args,
                "usage",
                "query",
                "--meter",
                "tickets",
                "--period",
                PERIOD,
                "--group-by",
                "customer",
                "--group-by",
                "workflow",
                "--json",
                *b,
            )
        ).stdout
    )
    [row] = usage["rows"]
    assert (row["customer_id"], row["tags"], row["value"], row["event_count"]) == (
        "acme",
        {"workflow": "triage"},
        "7",
        7,
    )
    table = await cli(*args, "usage", "query", "-m", "tickets", "--period", PERIOD, "-g", "customer", *b)
    assert "acme" in table.stdout and "triage" not in table.stdout

    closed = await cli(*args, "--json", "invoices", "close", "--period", PERIOD, *b)
    assert closed.exit_code == 0, closed.stderr
    summary = json.loads(closed.stdout)
    assert (summary["invoice_count"], summary["finalized_count"]) == (1, 1)
    assert summary["totals"] == [{"currency_code": "USD", "amount": "12.50"}]

    [invoice] = json.loads((await cli(*args, "invoices", "list", "--json", *b)).stdout)["invoices"]
    assert invoice["total"]["amount"] == "12.50" and invoice["amount_due"]["amount"] == "12.50"
    shown = await cli(*args, "invoices", "show", invoice["id"], *b)
    assert "Tickets handled" in shown.stdout and "2.50 USD" in shown.stdout and "12.50 USD" in shown.stdout

    paid = await cli(*args, "--json", "invoices", "pay", invoice["id"], *b)
    assert paid.exit_code == 0, paid.stderr
    after = json.loads(paid.stdout)["invoice"]
    assert after["payment_status"] == "PAYMENT_STATUS_PAID" and after["amount_due"]["amount"] == "0.00"

    feed = json.loads((await cli(*args, "earnings", "--json", *b)).stdout)
    totals = {t["kind"]: t["amount"] for t in feed["totals"]}
    assert totals["builder_margin"] == "12.50"
    assert all(isinstance(e["amount"]["amount"], str) for e in feed["entries"])


async def test_closing_a_month_that_is_not_over_exits_4(cli, args):
    now = datetime.now(UTC)
    result = await cli(
        *args, "invoices", "close", "--period", f"{now.year:04d}-{now.month:02d}", "--builder", BUILDER
    )
    assert result.exit_code == 4, result.stderr
    assert result.stderr.startswith("tollgate: error: billing ClosePeriod:")


async def test_a_malformed_period_is_a_usage_error(cli, args):
    result = await cli(*args, "invoices", "close", "--period", "November", "--builder", BUILDER)
    assert result.exit_code == 2
    assert "YYYY-MM" in result.stderr
