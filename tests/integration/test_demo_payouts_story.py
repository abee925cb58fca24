"""`make demo`'s billing and payouts stories, played in order against real metering, billing and payouts
servers on loopback (payouts started as the demo suite starts it: no hold by default, no background
poll so the story's own SyncEarnings does the work): the builder the billing story billed is paid
exactly the builder margin of its paid invoice, the story prints that payout in the bank-file table,
and Reconcile is clean for the invoices' month and the run's month."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal as D

import pytest

import scripts.demo
from common.money import from_money
from scripts.demo import billing as billing_story
from scripts.demo import payouts as payouts_story
from tests import conftest
from tests.conftest import auth_channel, security
from tollgate.billing.v1 import billing_pb2 as bpb
from tollgate.billing.v1 import billing_pb2_grpc
from tollgate.payouts.v1 import payouts_pb2 as ppb
from tollgate.payouts.v1 import payouts_pb2_grpc

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
async def endpoints(make_database) -> AsyncIterator[dict[str, str]]:
    from billing.app import start as start_billing
    from billing.config import Settings as BillingSettings
    from metering.app import start as start_metering
    from metering.config import Settings as MeteringSettings
    from payouts.app import start as start_payouts
    from payouts.config import Settings as PayoutsSettings

    metering = await start_metering(
        MeteringSettings(
            database_url=await make_database("metering"),
            grpc_address="127.0.0.1:0",
            metrics_port=None,
            settle_seconds=0.5,
            security=security("metering"),
        )
    )
    metering_address = f"127.0.0.1:{metering.port}"
    billing = await start_billing(
        BillingSettings(
            database_url=await make_database("billing"),
            grpc_address="127.0.0.1:0",
            metrics_port=None,
            metering_address=metering_address,
            security=security("billing"),
        )
    )
    billing_address = f"127.0.0.1:{billing.port}"
    payouts = await start_payouts(
        PayoutsSettings(
            database_url=await make_database("payouts"),
            grpc_address="127.0.0.1:0",
            metrics_port=None,
            billing_address=billing_address,
            metering_address=metering_address,
            feed_poll_seconds=0,
            default_hold_days=0,
            security=security("payouts"),
        )
    )
    try:
        yield {
            "metering": metering_address,
            "billing": billing_address,
            "payouts": f"127.0.0.1:{payouts.port}",
        }
    finally:
        await payouts.stop(0)
        await billing.stop(0)
        await metering.stop(0)


async def test_the_payouts_story_pays_the_billing_storys_builder_its_margin_and_reconciles_clean(
    endpoints, monkeypatch, capsys
):
    # The stories call as the operator whose token the suite keeps in its credentials folder.
    monkeypatch.setattr(scripts.demo, "CREDENTIALS", conftest.test_credentials().directory)
    monkeypatch.setattr(billing_story, "builder_id", None)

    await billing_story.run(endpoints)
    builder = billing_story.builder_id
    assert builder is not None and builder.startswith("demo-agency-")
    await payouts_story.run(endpoints)
    out = capsys.readouterr().out

    now = datetime.now(UTC)
    this_month = f"{now:%Y-%m}"
    last_month = f"{now.year - (now.month == 1)}-{(now.month - 2) % 12 + 1:02d}"
    async with auth_channel(endpoints["billing"]) as bch, auth_channel(endpoints["payouts"]) as pch:
        billing = billing_pb2_grpc.BillingServiceStub(bch)
        payouts = payouts_pb2_grpc.PayoutsServiceStub(pch)
        [invoice] = (await billing.ListInvoices(bpb.ListInvoicesRequest(builder_id=builder))).invoices
        assert invoice.payment_status == bpb.PAYMENT_STATUS_PAID
        margin = sum((from_money(line.split.builder_margin) for line in invoice.lines), D(0))
        provider = sum((from_money(line.split.provider_cost) for line in invoice.lines), D(0))
        # Today's story: $41.16 billed and paid; the builder keeps $37.85, providers $1.25.
        assert (from_money(invoice.total), margin, provider) == (D("41.16"), D("37.85"), D("1.25"))

        listed = await payouts.ListPayouts(ppb.ListPayoutsRequest(payee_id=builder, period=this_month))
        assert [from_money(p.amount) for p in listed.payouts] == [margin]
        assert listed.payouts[0].method_reference == f"bank:{builder}"
        pool = await payouts.ListPayouts(ppb.ListPayoutsRequest(payee_id="provider:all", period=this_month))
        assert [from_money(p.amount) for p in pool.payouts] == [provider]

        for period in (last_month, this_month):
            report = await payouts.Reconcile(ppb.ReconcileRequest(period=period))
            assert report.clean, [c for c in report.checks if not c.ok]
        checked = (await payouts.Reconcile(ppb.ReconcileRequest(period=last_month))).checks
        assert [c.expected for c in checked if c.name == "earnings_match_paid_invoices"] == ["41.16"]

    # The bank file row and the statement as the operator reads them at the end of `make demo`.
    row = next(line for line in out.splitlines() if f"po:{this_month}:USD:{builder}" in line)
    assert "$37.85" in row and f"bank:{builder}" in row
    assert "Reconcile" in out and "DIFFERENCES" not in out
    closing = next(line for line in out.splitlines() if "= closing balance" in line)
    assert "$0.00" in closing
