"""Expiry and margin alerts over real gRPC, PostgreSQL and metering, with 2 s leases, a 0.2 s expiry
sweep and a 0.5 s margin watch: an abandoned lease gives its hold back, and usage priced below its
provider cost alerts once at the close (per invoice and charge) and once from the watch's preview (per
customer, period and charge)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from billing_kit import at, dec, event, ingest, rid, ts
from spend_kit import create_ai_meters, create_customer, money, set_control, spend_stack

from tollgate.billing.v1 import billing_pb2 as bpb
from tollgate.billing.v1 import spend_pb2 as spb

BUILDER = "spend-alerts"

# Priced at 0.001 a call while each call costs 0.05 from the provider: a loss on every call.
LOSS_YAML = """
currency: USD
charges:
  - key: calls
    meter_key: ai_calls
    display_name: AI calls
    per_unit: {unit_price: "0.001"}
    provider_cost_meter_key: llm_cost
"""


def _previous_month() -> tuple[datetime, datetime]:
    now = datetime.now(UTC)
    y, m = (now.year, now.month - 1) if now.month > 1 else (now.year - 1, 12)
    return at(y, m), at(now.year, now.month)


@pytest.fixture(scope="module")
async def stack(make_database, fast_metering_address):
    async with spend_stack(
        make_database,
        fast_metering_address,
        spend_lease_seconds=2,
        spend_sweep_seconds=0.2,
        margin_watch_seconds=0.5,
    ) as s:
        await create_ai_meters(s.metering, BUILDER)
        for cid in ("exp", "closed", "watched"):
            await create_customer(s.billing, BUILDER, cid)
        yield s


async def _alerts(stack, customer: str) -> list[spb.Alert]:
    reply = await stack.spend.ListAlerts(spb.ListAlertsRequest(builder_id=BUILDER, customer_id=customer))
    return list(reply.alerts)


async def _status(stack, customer: str) -> spb.SpendStatus:
    listed = await stack.spend.ListSpendControls(
        spb.ListSpendControlsRequest(builder_id=BUILDER, customer_id=customer)
    )
    (only,) = listed.controls
    return only


def _calls(customer: str, when: datetime, n: int) -> list:
    return [
        event(
            BUILDER, customer, "ai.request", when, quantities={"provider_cost": "0.05", "input_tokens": "100"}
        )
        for _ in range(n)
    ]


async def test_expired_lease_returns_its_hold(stack) -> None:
    ctl = await set_control(stack.spend, BUILDER, "exp", hard_cap=money("5"))
    lease = (
        await stack.spend.AcquireSpendLease(
            spb.AcquireSpendLeaseRequest(
                request_id=rid(),
                builder_id=BUILDER,
                customer_id="exp",
                control_id=ctl.control.id,
                holder="gw-crashed",
                amount=money("3"),
            )
        )
    ).lease
    assert dec(lease.granted) == 3 and lease.state == spb.SPEND_LEASE_STATE_ACTIVE

    def rep(consumed: str, release: bool = False) -> spb.ReportSpendLeaseRequest:
        return spb.ReportSpendLeaseRequest(
            request_id=rid(), builder_id=BUILDER, lease_id=lease.id, consumed=money(consumed), release=release
        )

    await stack.spend.ReportSpendLease(rep("1"))
    s = await _status(stack, "exp")
    assert (dec(s.spent), dec(s.held), s.active_lease_count) == (1, 2, 1)
    for _ in range(100):  # the holder never comes back
        s = await _status(stack, "exp")
        if s.active_lease_count == 0:
            break
        await asyncio.sleep(0.1)
    assert (dec(s.spent), dec(s.held), s.active_lease_count, dec(s.remaining)) == (1, 0, 0, 4)
    # A late report still counts what was consumed; it frees nothing more.
    late = await stack.spend.ReportSpendLease(rep("2.5", release=True))
    assert late.lease.state == spb.SPEND_LEASE_STATE_EXPIRED and dec(late.lease.consumed) == Decimal("2.5")
    s = await _status(stack, "exp")
    assert (dec(s.spent), dec(s.held)) == (Decimal("2.5"), 0)


async def _subscribe(stack, customer: str, start: datetime) -> None:
    applied = await stack.billing.ApplyPlanYaml(
        bpb.ApplyPlanYamlRequest(
            request_id=rid(), builder_id=BUILDER, plan_key="loss", display_name="Loss", yaml=LOSS_YAML
        )
    )
    await stack.billing.Subscribe(
        bpb.SubscribeRequest(
            request_id=rid(),
            builder_id=BUILDER,
            customer_id=customer,
            plan_id=applied.plan.id,
            plan_version=1,
            start_time=ts(start),
        )
    )


async def test_negative_margin_alerts_once_at_close(stack) -> None:
    start, end = _previous_month()
    await _subscribe(stack, "closed", start)
    await ingest(stack.metering, _calls("closed", start.replace(day=10), 10))
    closed = await stack.billing.ClosePeriod(
        bpb.ClosePeriodRequest(request_id=rid(), builder_id=BUILDER, period_end_time=ts(end))
    )
    assert closed.finalized_count == 1
    invoices = await stack.billing.ListInvoices(
        bpb.ListInvoicesRequest(builder_id=BUILDER, customer_id="closed")
    )
    (invoice,) = invoices.invoices
    # A second close of the month with another request id finalizes nothing more.
    await stack.billing.ClosePeriod(
        bpb.ClosePeriodRequest(request_id=rid(), builder_id=BUILDER, period_end_time=ts(end))
    )
    alerts = [a for a in await _alerts(stack, "closed") if a.period_start_time == ts(start)]
    (alert,) = alerts
    assert alert.kind == spb.ALERT_KIND_NEGATIVE_MARGIN and alert.charge_key == "calls"
    # 10 calls x 0.001 = 0.01 billed against 10 x 0.05 = 0.50 of provider cost.
    assert (dec(alert.amount), dec(alert.limit)) == (Decimal("0.01"), Decimal("0.5"))
    assert alert.message == "calls of closed is priced at 0.01 USD, below its provider cost of 0.5 USD"
    assert invoice.lines[0].split.builder_margin.units == 0 and dec(invoice.lines[0].split.builder_margin) < 0


async def test_margin_watch_alerts_once_per_period(stack) -> None:
    now = datetime.now(UTC)
    await _subscribe(stack, "watched", at(now.year, now.month))
    await ingest(stack.metering, _calls("watched", now, 4))
    found: list[spb.Alert] = []
    for _ in range(150):
        found = await _alerts(stack, "watched")
        if found:
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.5)  # three more rounds of the watch
    (alert,) = await _alerts(stack, "watched")
    assert alert.kind == spb.ALERT_KIND_NEGATIVE_MARGIN and alert.charge_key == "calls"
    assert alert.period_start_time == ts(at(now.year, now.month))
    assert dec(alert.limit) == Decimal("0.2") and dec(alert.amount) == 0  # 4 x 0.001 = 0.004 -> 0.00
