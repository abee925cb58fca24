"""Billing demo: an agency bills a client for last month's documents and AI usage, end to end.

Drives metering and billing through their public gRPC APIs: meters, a customer, a plan written as
YAML, a subscription, usage events, a preview, the month close, a partial and a full payment, and
the earnings feed. Called by scripts/suite.py with the suite's endpoints.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

from common.money import from_money, to_money, to_timestamp
from scripts.demo import operator_channel
from tollgate.billing.v1 import billing_pb2 as bpb
from tollgate.billing.v1 import billing_pb2_grpc
from tollgate.metering.v1 import metering_pb2 as mpb
from tollgate.metering.v1 import metering_pb2_grpc

PLAN = """
currency: USD
base_fee: "29.00"
charges:
  - key: documents
    meter_key: documents
    display_name: Documents processed
    included_quantity: 20
    size_buckets:
      buckets:
        - {bucket: "1-10", unit_price: "0.40"}
        - {bucket: "11+", unit_price: "1.50"}
  - key: tokens
    meter_key: llm_cost
    display_name: AI model usage
    cost_plus: {markup_percent: 25}
"""

KIND = {
    bpb.EARNINGS_KIND_BUILDER_MARGIN: "builder margin",
    bpb.EARNINGS_KIND_PLATFORM_FEE: "platform fee",
    bpb.EARNINGS_KIND_PROVIDER_COST: "provider cost",
}

# The builder the last run() billed (random per run), for the stories played after this one.
builder_id: str | None = None


def _usd(amount: str) -> object:
    return to_money(Decimal(amount), "USD")


def _fmt(money: object) -> str:
    return f"${from_money(money):,.2f}"  # type: ignore[arg-type]


async def run(endpoints: dict[str, str]) -> None:
    global builder_id
    tag = uuid.uuid4().hex[:6]
    builder = builder_id = f"demo-agency-{tag}"
    now = datetime.now(UTC)
    this_month = datetime(now.year, now.month, 1, tzinfo=UTC)
    last_month = datetime(now.year - (now.month == 1), (now.month - 2) % 12 + 1, 1, tzinfo=UTC)
    async with (
        operator_channel(endpoints["metering"]) as mch,
        operator_channel(endpoints["billing"]) as bch,
    ):
        metering = metering_pb2_grpc.MeteringServiceStub(mch)
        billing = billing_pb2_grpc.BillingServiceStub(bch)
        for meter in (
            mpb.Meter(
                builder_id=builder,
                key="documents",
                display_name="Documents",
                event_types=["document.processed"],
                aggregation=mpb.AGGREGATION_COUNT,
                bucket_quantity="pages",
                buckets=[mpb.Bucket(key="1-10", max_value="10"), mpb.Bucket(key="11+")],
            ),
            mpb.Meter(
                builder_id=builder,
                key="llm_cost",
                display_name="Model cost",
                event_types=["ai.request"],
                aggregation=mpb.AGGREGATION_SUM,
                quantity="provider_cost",
            ),
        ):
            await metering.CreateMeter(
                mpb.CreateMeterRequest(request_id=uuid.uuid4().hex, meter=meter), timeout=10
            )
        await billing.SetPlatformFee(
            bpb.SetPlatformFeeRequest(
                request_id=uuid.uuid4().hex,
                platform_fee=bpb.PlatformFee(builder_id=builder, percent_of_line="5"),
            ),
            timeout=10,
        )
        await billing.CreateCustomer(
            bpb.CreateCustomerRequest(
                request_id=uuid.uuid4().hex,
                customer=bpb.Customer(
                    id="northwind",
                    builder_id=builder,
                    app_id="contract-reader",
                    currency_code="USD",
                    display_name="Northwind Legal",
                    billing_email="ap@northwind.example",
                ),
            ),
            timeout=10,
        )
        plan = await billing.ApplyPlanYaml(
            bpb.ApplyPlanYamlRequest(
                request_id=uuid.uuid4().hex,
                builder_id=builder,
                plan_key="contract-reader",
                display_name="Contract reader",
                yaml=PLAN,
            ),
            timeout=10,
        )
        await billing.Subscribe(
            bpb.SubscribeRequest(
                request_id=uuid.uuid4().hex,
                builder_id=builder,
                customer_id="northwind",
                plan_id=plan.plan.id,
                start_time=to_timestamp(last_month),
            ),
            timeout=10,
        )
        print(
            f"{builder} bills Northwind Legal on plan 'contract-reader' v{plan.version.version}: "
            "$29 a month, 20 documents included, then $0.40 (1-10 pages) or $1.50 (11+ pages), "
            "model usage at cost + 25%; the platform takes 5%."
        )

        day = to_timestamp(last_month.replace(day=12))
        events = []
        for i in range(30):
            pages = "4" if i < 24 else "35"
            events.append(
                mpb.UsageEvent(
                    id=f"{builder}-doc-{i}",
                    type="document.processed",
                    occurred_time=day,
                    builder_id=builder,
                    app_id="contract-reader",
                    customer_id="northwind",
                    status=mpb.EVENT_STATUS_SUCCEEDED,
                    quantities={"pages": pages},
                    tags={"workflow": "contract-review"},
                )
            )
        for i in range(30):
            events.append(
                mpb.UsageEvent(
                    id=f"{builder}-ai-{i}",
                    type="ai.request",
                    occurred_time=day,
                    builder_id=builder,
                    app_id="contract-reader",
                    customer_id="northwind",
                    status=mpb.EVENT_STATUS_SUCCEEDED,
                    quantities={"provider_cost": "0.0415"},
                    tags={"workflow": "contract-review"},
                )
            )
        await metering.IngestEvents(
            mpb.IngestEventsRequest(request_id=uuid.uuid4().hex, events=events), timeout=30
        )
        print("Last month: 30 documents (24 short, 6 of 35 pages) and 30 model calls costing $0.0415 each.")

        preview = await billing.PreviewInvoice(
            bpb.PreviewInvoiceRequest(
                builder_id=builder,
                customer_id="northwind",
                as_of_time=to_timestamp(last_month.replace(day=20)),
            ),
            timeout=30,
        )
        print(f"Preview of last month: {_fmt(preview.invoice.total)}")
        print("Closing last month (billing waits until metering's ingestion cutoff is settled)...")
        closed = await billing.ClosePeriod(
            bpb.ClosePeriodRequest(
                request_id=uuid.uuid4().hex, builder_id=builder, period_end_time=to_timestamp(this_month)
            ),
            timeout=180,
        )
        listed = await billing.ListInvoices(bpb.ListInvoicesRequest(builder_id=builder), timeout=10)
        invoice = listed.invoices[0]
        print(
            f"Closed: {closed.finalized_count} invoice, number {invoice.number}, total {_fmt(invoice.total)}:"
        )
        for line in invoice.lines:
            split = line.split
            print(
                f"  {line.display_name:<22} qty {line.quantity:>8}  {_fmt(line.amount):>8}   "
                f"(provider {_fmt(split.provider_cost)}, platform {_fmt(split.platform_fee)}, "
                f"builder {_fmt(split.builder_margin)})"
            )

        half = (from_money(invoice.total) / 2).quantize(Decimal("0.01"))
        first = await billing.RecordPayment(
            bpb.RecordPaymentRequest(
                request_id=uuid.uuid4().hex,
                builder_id=builder,
                invoice_id=invoice.id,
                amount=_usd(str(half)),
                external_reference=f"{builder}-pay-1",
            ),
            timeout=10,
        )
        print(f"Payment of {_fmt(first.payment.amount)}: {_fmt(first.invoice.amount_due)} still due.")
        second = await billing.RecordPayment(
            bpb.RecordPaymentRequest(
                request_id=uuid.uuid4().hex,
                builder_id=builder,
                invoice_id=invoice.id,
                amount=first.invoice.amount_due,
                external_reference=f"{builder}-pay-2",
            ),
            timeout=10,
        )
        print(f"Payment of {_fmt(second.payment.amount)}: invoice paid in full.")

        feed = await billing.ListEarnings(
            bpb.ListEarningsRequest(builder_id=builder, page_size=100), timeout=10
        )
        sums: dict[int, Decimal] = {}
        for entry in feed.entries:
            sums[entry.kind] = sums.get(entry.kind, Decimal(0)) + from_money(entry.amount)
        total = sum(sums.values(), Decimal(0))
        parts = ", ".join(f"{KIND[k]} ${v:,.2f}" for k, v in sorted(sums.items()))
        print(f"Earnings feed: {len(feed.entries)} entries summing to ${total:,.2f} ({parts}).")
