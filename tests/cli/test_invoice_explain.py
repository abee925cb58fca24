"""`tollgate invoices explain` against real billing and metering: a client asks why it was billed 7
tickets; the command shows them by workspace and workflow, one by one, and as a CSV file, each view
adding up to the line's quantity.

Acme handled 4 tickets in the ops workspace's triage workflow and 3 in billing's refunds workflow, plus
one failed ticket (not billed, not listed): the tickets line's quantity is 7.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from billing_kit import event, ingest, rid, ts

from tests.cli.cli_kit import operator_args
from tollgate.billing.v1 import billing_pb2 as bpb
from tollgate.metering.v1 import metering_pb2 as mpb

BUILDER = "cli-explain"
PLAN = """
currency: USD
base_fee: "10.00"
charges:
  - key: tickets
    meter_key: tickets
    display_name: Tickets handled
    per_unit: {unit_price: "0.50"}
"""


def _past_month() -> tuple[datetime, datetime]:
    now = datetime.now(UTC)
    y, m = now.year, now.month - 2
    if m <= 0:
        y, m = y - 1, m + 12
    start = datetime(y, m, 1, tzinfo=UTC)
    return start, datetime(y + (m == 12), m % 12 + 1, 1, tzinfo=UTC)


START, END = _past_month()


@pytest.fixture(scope="module")
async def invoice(stack) -> bpb.Invoice:
    b, m = stack.billing, stack.metering
    await m.CreateMeter(
        mpb.CreateMeterRequest(
            request_id=rid(),
            meter=mpb.Meter(
                builder_id=BUILDER,
                key="tickets",
                event_types=["ticket.handled"],
                aggregation=mpb.AGGREGATION_COUNT,
            ),
        )
    )
    await b.CreateCustomer(
        bpb.CreateCustomerRequest(
            request_id=rid(),
            customer=bpb.Customer(
                id="acme", builder_id=BUILDER, app_id="app-1", currency_code="USD", display_name="Acme"
            ),
        )
    )
    plan = await b.ApplyPlanYaml(
        bpb.ApplyPlanYamlRequest(
            request_id=rid(), builder_id=BUILDER, plan_key="support", display_name="Support", yaml=PLAN
        )
    )
    await b.Subscribe(
        bpb.SubscribeRequest(
            request_id=rid(),
            builder_id=BUILDER,
            customer_id="acme",
            plan_id=plan.plan.id,
            start_time=ts(START),
        )
    )
    day = START.replace(day=3)
    events = [
        event(BUILDER, "acme", "ticket.handled", day, tags={"workspace": "ops", "workflow": "triage"})
        for _ in range(4)
    ] + [
        event(BUILDER, "acme", "ticket.handled", day, tags={"workspace": "billing", "workflow": "refunds"})
        for _ in range(3)
    ]
    failed = event(BUILDER, "acme", "ticket.handled", day, tags={"workspace": "ops", "workflow": "triage"})
    failed.status = mpb.EVENT_STATUS_FAILED
    await ingest(m, [*events, failed])
    await b.ClosePeriod(bpb.ClosePeriodRequest(request_id=rid(), builder_id=BUILDER, period_end_time=ts(END)))
    [inv] = (await b.ListInvoices(bpb.ListInvoicesRequest(builder_id=BUILDER))).invoices
    return inv


@pytest.fixture(scope="module")
def args(stack) -> list[str]:
    return [*operator_args(billing=stack.billing_address, metering=stack.metering_address), "--timeout", "60"]


async def test_explain_a_line_by_group_by_event_and_as_csv(cli, args, invoice, tmp_path):
    b = ["--builder", BUILDER]
    line = next(ln for ln in invoice.lines if ln.charge_key == "tickets")
    assert line.quantity == "7"
    pos = str(line.position)

    grouped = await cli(*args, "--json", "invoices", "explain", invoice.id, pos, *b)
    assert grouped.exit_code == 0, grouped.stderr
    data = json.loads(grouped.stdout)
    assert data["total_quantity"] == "7" and data["event_count"] == 7
    assert [(g["tags"], g["quantity"]) for g in data["groups"]] == [
        ({"workspace": "ops", "workflow": "triage"}, "4"),
        ({"workspace": "billing", "workflow": "refunds"}, "3"),
    ]

    table = await cli(*args, "invoices", "explain", invoice.id, pos, "--group-by", "workflow", *b)
    assert table.exit_code == 0, table.stderr
    assert "triage" in table.stdout and "refunds" in table.stdout and "Tickets handled" in table.stdout

    listed = json.loads(
        (await cli(*args, "--json", "invoices", "explain", invoice.id, pos, "--events", *b)).stdout
    )
    assert len(listed["events"]) == 7
    assert sum(Decimal(e["contributed_quantity"]) for e in listed["events"]) == 7

    target = tmp_path / "line.csv"
    exported = await cli(*args, "invoices", "explain", invoice.id, pos, "--csv", str(target), *b)
    assert exported.exit_code == 0, exported.stderr
    rows = list(csv.reader(io.StringIO(target.read_text(encoding="utf-8"), newline="")))
    assert rows[0][0] == "event_id" and rows[0][-1] == "contributed_quantity" and len(rows) == 8
    assert sum(Decimal(r[-1]) for r in rows[1:]) == 7


async def test_explaining_the_base_fee_exits_with_the_reason(cli, args, invoice):
    base = next(ln for ln in invoice.lines if ln.kind == bpb.LINE_KIND_BASE_FEE)
    result = await cli(*args, "invoices", "explain", invoice.id, str(base.position), "--builder", BUILDER)
    assert result.exit_code == 4, result.stderr
    assert "base fee" in result.stderr
