"""Helpers for payouts' API tests: a builder's month in billing, money, status checks."""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from common.money import from_money, to_money, to_timestamp
from tollgate.billing.v1 import billing_pb2 as bpb
from tollgate.metering.v1 import metering_pb2 as mpb
from tollgate.payouts.v1 import payouts_pb2 as ppb

PLAN_YAML = """
currency: USD
base_fee: "100.00"
charges:
  - key: tickets
    meter_key: tickets
    display_name: Tickets handled
    per_unit: {unit_price: "0.80"}
  - key: tokens
    meter_key: llm_cost
    display_name: AI model usage
    cost_plus: {markup_percent: 25}
"""


def rid() -> str:
    return uuid.uuid4().hex


def usd(amount: str) -> object:
    return to_money(Decimal(amount), "USD")


def dec(money: object) -> Decimal:
    return from_money(money)  # type: ignore[arg-type]


def at(year: int, month: int, day: int = 1) -> datetime:
    return datetime(year, month, day, tzinfo=UTC)


def ended_months(back: int = 3) -> tuple[datetime, datetime, datetime]:
    """Three consecutive month starts, the last of them ended well before now."""
    now = datetime.now(UTC)
    y, m = now.year, now.month - back
    while m <= 0:
        y, m = y - 1, m + 12
    first = at(y, m)
    second = at(y + (m == 12), m % 12 + 1)
    third = at(second.year + (second.month == 12), second.month % 12 + 1)
    return first, second, third


def field_of(err: grpc.aio.AioRpcError) -> str | None:
    status = rpc_status.from_call(err)
    if status is None:
        return None
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            info = error_details_pb2.BadRequest()
            detail.Unpack(info)
            return info.field_violations[0].field
    return None


async def set_up_builder(billing, metering, builder: str, customers: list[str], start: datetime) -> str:
    """Meters, a 5% platform fee, customers subscribed to a base fee + tickets + tokens-at-cost plan."""
    for meter in (
        mpb.Meter(builder_id=builder, key="tickets", display_name="Tickets", event_types=["ticket.handled"],
                  aggregation=mpb.AGGREGATION_COUNT),
        mpb.Meter(builder_id=builder, key="llm_cost", display_name="Model usage", event_types=["ai.request"],
                  aggregation=mpb.AGGREGATION_SUM, quantity="provider_cost"),
    ):  # fmt: skip
        await metering.CreateMeter(mpb.CreateMeterRequest(request_id=rid(), meter=meter))
    await billing.SetPlatformFee(
        bpb.SetPlatformFeeRequest(
            request_id=rid(),
            platform_fee=bpb.PlatformFee(builder_id=builder, percent_of_line="5", percent_of_margin="0"),
        )
    )
    plan = await billing.ApplyPlanYaml(
        bpb.ApplyPlanYamlRequest(
            request_id=rid(), builder_id=builder, plan_key="support", display_name="Support", yaml=PLAN_YAML
        )
    )
    for cid in customers:
        await billing.CreateCustomer(
            bpb.CreateCustomerRequest(
                request_id=rid(),
                customer=bpb.Customer(
                    id=cid, builder_id=builder, app_id="app-1", currency_code="USD",
                    display_name=cid.title(), billing_email=f"billing@{cid}.example",
                ),
            )
        )  # fmt: skip
        await billing.Subscribe(
            bpb.SubscribeRequest(
                request_id=rid(), builder_id=builder, customer_id=cid, plan_id=plan.plan.id,
                start_time=to_timestamp(start),
            )
        )  # fmt: skip
    return plan.plan.id


def usage_events(builder: str, customer: str, when: datetime, tickets: int, cost: str, workflow: str) -> list:
    def ev(etype: str, quantities: dict[str, str]) -> mpb.UsageEvent:
        return mpb.UsageEvent(
            id=rid(), type=etype, occurred_time=to_timestamp(when), builder_id=builder, app_id="app-1",
            customer_id=customer, status=mpb.EVENT_STATUS_SUCCEEDED, quantities=quantities,
            tags={"workflow": workflow},
        )  # fmt: skip

    return [ev("ticket.handled", {}) for _ in range(tickets)] + [ev("ai.request", {"provider_cost": cost})]


async def ingest(metering, events: list) -> None:
    for i in range(0, len(events), 5000):
        reply = await metering.IngestEvents(
            mpb.IngestEventsRequest(request_id=rid(), events=events[i : i + 5000])
        )
        assert reply.accepted_count == len(events[i : i + 5000])


async def close_and_pay(billing, builder: str, period_end: datetime) -> list[bpb.Invoice]:
    """Close the period and pay every invoice of it in full; the paid invoices."""
    await billing.ClosePeriod(
        bpb.ClosePeriodRequest(request_id=rid(), builder_id=builder, period_end_time=to_timestamp(period_end))
    )
    paid = []
    listed = await billing.ListInvoices(bpb.ListInvoicesRequest(builder_id=builder, page_size=1000))
    for inv in listed.invoices:
        if inv.period_end_time.ToDatetime(tzinfo=UTC) != period_end or dec(inv.amount_due) == 0:
            continue
        reply = await billing.RecordPayment(
            bpb.RecordPaymentRequest(
                request_id=rid(), builder_id=builder, invoice_id=inv.id, amount=inv.amount_due,
                external_reference=f"pay-{inv.id}",
            )
        )  # fmt: skip
        paid.append(reply.invoice)
    return paid


@dataclass
class Shares:
    """Sums of billing's earnings entries by kind (builder margin, provider cost, platform fee)."""

    by_kind: dict[int, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    count: int = 0


async def billing_feed(billing, after_token: str = "") -> tuple[list[bpb.EarningsEntry], str]:
    entries, token = [], after_token
    while True:
        page = await billing.ListEarnings(bpb.ListEarningsRequest(page_size=1000, page_token=token))
        entries.extend(page.entries)
        token = page.next_page_token
        if not page.entries:
            return entries, token


def sums(entries: list[bpb.EarningsEntry], *, negative: bool | None = None) -> dict[int, Decimal]:
    out: dict[int, Decimal] = defaultdict(Decimal)
    for e in entries:
        amount = dec(e.amount)
        if negative is None or (amount < 0) == negative:
            out[e.kind] += amount
    return out


def balances(reply: ppb.GetBalanceResponse) -> dict[int, Decimal]:
    return {a.account.purpose: dec(a.balance) for a in reply.accounts}
