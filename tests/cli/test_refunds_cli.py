"""Credit notes and refunds from the command line, against real billing and metering.

A 50.00 base-fee invoice (no usage), paid in full: a 10.00 credit settled as a refund is all money
received, so the whole 10.00 becomes a PENDING refund; marked paid it carries the processor's reference.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from billing_kit import rid, ts, usd

from tests.cli.cli_kit import operator_args
from tollgate.billing.v1 import billing_pb2 as bpb

BUILDER = "cli-refunds"


def _months() -> tuple[datetime, datetime]:
    now = datetime.now(UTC)
    y, m = now.year, now.month - 2
    if m <= 0:
        y, m = y - 1, m + 12
    return datetime(y, m, 1, tzinfo=UTC), datetime(y + (m == 12), m % 12 + 1, 1, tzinfo=UTC)


START, END = _months()


@pytest.fixture(scope="module")
async def invoice_id(stack) -> str:
    b = stack.billing
    await b.CreateCustomer(
        bpb.CreateCustomerRequest(
            request_id=rid(),
            customer=bpb.Customer(id="acme", builder_id=BUILDER, app_id="app-1", currency_code="USD"),
        )
    )
    plan = await b.ApplyPlanYaml(
        bpb.ApplyPlanYamlRequest(
            request_id=rid(), builder_id=BUILDER, plan_key="flat", yaml='currency: USD\nbase_fee: "50.00"\n'
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
    await b.ClosePeriod(bpb.ClosePeriodRequest(request_id=rid(), builder_id=BUILDER, period_end_time=ts(END)))
    (invoice,) = (await b.ListInvoices(bpb.ListInvoicesRequest(builder_id=BUILDER))).invoices
    await b.RecordPayment(
        bpb.RecordPaymentRequest(
            request_id=rid(),
            builder_id=BUILDER,
            invoice_id=invoice.id,
            amount=usd("50.00"),
            external_reference="ch_cli_1",
        )
    )
    return invoice.id


async def test_credit_a_paid_invoice_as_a_refund_then_mark_it_paid(cli, stack, invoice_id):
    args = [*operator_args(billing=stack.billing_address), "--timeout", "60"]
    b = ["--builder", BUILDER]

    refused = await cli(*args, "invoices", "credit", invoice_id, "10.00", "--reason", "re-run", *b)
    assert refused.exit_code == 4
    assert "settlement" in refused.stderr

    credited = await cli(
        *args,
        "--json",
        "invoices",
        "credit",
        invoice_id,
        "10.00",
        "--reason",
        "re-run",
        "--settle",
        "refund",
        *b,
    )
    assert credited.exit_code == 0, credited.stderr
    reply = json.loads(credited.stdout)
    assert reply["credit_note"]["refunded"] == {"currency_code": "USD", "amount": "10.00"}
    assert reply["refund"]["state"] == "REFUND_STATE_PENDING"
    refund_id = reply["refund"]["id"]

    listed = json.loads((await cli(*args, "--json", "refunds", "list", "--state", "pending", *b)).stdout)
    assert [(r["id"], r["amount"]["amount"]) for r in listed["refunds"]] == [(refund_id, "10.00")]

    marked = await cli(*args, "refunds", "mark", refund_id, "paid", "--reference", "re_cli_1", *b)
    assert marked.exit_code == 0, marked.stderr
    assert "re_cli_1" in marked.stdout and "paid" in marked.stdout
    again = await cli(*args, "refunds", "mark", refund_id, "failed", "--reason", "bounced", *b)
    assert again.exit_code == 4 and "PENDING" in again.stderr

    table = await cli(*args, "refunds", "list", *b)
    assert refund_id in table.stdout and "10.00 USD" in table.stdout
