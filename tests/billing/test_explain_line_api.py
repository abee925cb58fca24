"""ExplainInvoiceLine and ExportInvoiceLine on an agency's month, over real gRPC, PostgreSQL and metering.

Three clients on plans that use every price model: Acme pays per document in page-range buckets
(size buckets) and its model usage at cost plus 25%; Beta a base fee, per-unit tickets and cost plus;
Gamma pages on graduated and volume tiers and tickets in packages. For every line of every invoice the
explained events' contributions sum exactly to the line's quantity, the groups sum to the same total,
paging gives every event once, and the CSV export's last column sums to it too. Then events of the
closed month arrive late: the closed invoice's lines still explain to the same totals (its cutoff),
and the next invoice's late-usage line explains to exactly the late events.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import grpc
import pytest
from billing_kit import at, event, field_of, ingest, rid, ts

from tollgate.billing.v1 import billing_pb2 as bpb
from tollgate.metering.v1 import metering_pb2 as mpb

BUILDER = f"explain-{uuid.uuid4().hex[:6]}"

ACME_YAML = """
currency: USD
charges:
  - key: documents
    meter_key: documents
    display_name: Documents processed
    included_quantity: 10
    size_buckets:
      buckets:
        - {bucket: "1-10", unit_price: "0.50"}
        - {bucket: "11-50", unit_price: "1.20"}
        - {bucket: "51+", unit_price: "3.00"}
  - key: tokens
    meter_key: llm_cost
    display_name: AI model usage
    cost_plus: {markup_percent: 25, fixed_per_request: "0.01"}
"""

BETA_YAML = """
currency: USD
base_fee: "49.00"
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

GAMMA_YAML = """
currency: USD
charges:
  - key: pages_graduated
    meter_key: pages
    display_name: Pages (graduated)
    graduated:
      tiers:
        - {up_to: 100, unit_price: "0.05"}
        - {up_to: null, unit_price: "0.03"}
  - key: pages_volume
    meter_key: pages
    display_name: Pages (volume)
    volume:
      tiers:
        - {up_to: 50, unit_price: "0.04"}
        - {up_to: null, unit_price: "0.02", flat_price: 1}
  - key: tickets
    meter_key: tickets
    display_name: Tickets (packages of 10)
    package: {package_size: 10, package_price: "5.00"}
"""


def _months() -> tuple[datetime, datetime, datetime]:
    now = datetime.now(UTC)
    y, m = now.year, now.month - 3
    if m <= 0:
        y, m = y - 1, m + 12
    first = at(y, m)
    second = at(y + (m == 12), m % 12 + 1)
    third = at(second.year + (second.month == 12), second.month % 12 + 1)
    return first, second, third


M1, M2, M3 = _months()
WORK = [("ops", "invoices"), ("ops", "contracts"), ("legal", "contracts"), ("", "triage")]


def _tags(i: int) -> dict[str, str]:
    workspace, workflow = WORK[i % len(WORK)]
    return {k: v for k, v in (("workspace", workspace), ("workflow", workflow)) if v}


async def _meters(metering) -> None:
    meters = [
        mpb.Meter(
            builder_id=BUILDER,
            key="documents",
            event_types=["document.processed"],
            aggregation=mpb.AGGREGATION_COUNT,
            bucket_quantity="pages",
            buckets=[
                mpb.Bucket(key="1-10", max_value="10"),
                mpb.Bucket(key="11-50", max_value="50"),
                mpb.Bucket(key="51+"),
            ],
        ),
        mpb.Meter(
            builder_id=BUILDER,
            key="tickets",
            event_types=["ticket.handled"],
            aggregation=mpb.AGGREGATION_COUNT,
        ),
        mpb.Meter(
            builder_id=BUILDER,
            key="llm_cost",
            event_types=["ai.request"],
            aggregation=mpb.AGGREGATION_SUM,
            quantity="provider_cost",
        ),
        mpb.Meter(
            builder_id=BUILDER,
            key="pages",
            event_types=["document.processed"],
            aggregation=mpb.AGGREGATION_SUM,
            quantity="pages",
        ),
    ]
    for m in meters:
        await metering.CreateMeter(mpb.CreateMeterRequest(request_id=rid(), meter=m))


def _month_events(day: datetime, scale: int = 1) -> list[mpb.UsageEvent]:
    out = []
    for i in range(23 * scale):
        pages = str([3, 20, 80, 7][i % 4])
        out.append(
            event(BUILDER, "acme", "document.processed", day, quantities={"pages": pages}, tags=_tags(i))
        )
    for i in range(6 * scale):
        out.append(
            event(
                BUILDER, "acme", "ai.request", day, quantities={"provider_cost": "0.0123456"}, tags=_tags(i)
            )
        )
    for i in range(37 * scale):
        out.append(event(BUILDER, "beta", "ticket.handled", day, tags=_tags(i)))
    for i in range(3 * scale):
        out.append(
            event(BUILDER, "beta", "ai.request", day, quantities={"provider_cost": "1.002"}, tags=_tags(i))
        )
    for i in range(31 * scale):
        out.append(
            event(
                BUILDER, "gamma", "document.processed", day, quantities={"pages": str(i % 9)}, tags=_tags(i)
            )
        )
    for i in range(23 * scale):
        out.append(event(BUILDER, "gamma", "ticket.handled", day, tags=_tags(i)))
    # Failed work is not billed, and not explained.
    failed = event(BUILDER, "beta", "ticket.handled", day, tags={"workflow": "triage"})
    failed.status = mpb.EVENT_STATUS_FAILED
    out.append(failed)
    return out


@pytest.fixture(scope="module")
async def month(stack) -> dict[str, bpb.Invoice]:
    b, m = stack.billing, stack.metering
    await _meters(m)
    plans = {}
    for key, text in (("acme", ACME_YAML), ("beta", BETA_YAML), ("gamma", GAMMA_YAML)):
        applied = await b.ApplyPlanYaml(
            bpb.ApplyPlanYamlRequest(
                request_id=rid(), builder_id=BUILDER, plan_key=key, display_name=key, yaml=text
            )
        )
        plans[key] = applied.plan.id
        await b.CreateCustomer(
            bpb.CreateCustomerRequest(
                request_id=rid(),
                customer=bpb.Customer(
                    id=key,
                    builder_id=BUILDER,
                    app_id="app-1",
                    currency_code="USD",
                    display_name=key.title(),
                    billing_email=f"billing@{key}.example",
                ),
            )
        )
        await b.Subscribe(
            bpb.SubscribeRequest(
                request_id=rid(), builder_id=BUILDER, customer_id=key, plan_id=plans[key], start_time=ts(M1)
            )
        )
    await ingest(m, _month_events(M1.replace(day=10)))
    await b.ClosePeriod(bpb.ClosePeriodRequest(request_id=rid(), builder_id=BUILDER, period_end_time=ts(M2)))
    listed = await b.ListInvoices(bpb.ListInvoicesRequest(builder_id=BUILDER))
    return {inv.customer_id: inv for inv in listed.invoices}


async def _explain_all(b, invoice: bpb.Invoice, position: int, *, events: bool, size: int, group_by=()):
    token, pages = "", []
    while True:
        reply = await b.ExplainInvoiceLine(
            bpb.ExplainInvoiceLineRequest(
                builder_id=BUILDER,
                invoice_id=invoice.id,
                position=position,
                view=bpb.EXPLAIN_VIEW_EVENTS if events else bpb.EXPLAIN_VIEW_GROUPS,
                group_by=list(group_by),
                page_size=size,
                page_token=token,
            )
        )
        pages.append(reply)
        token = reply.next_page_token
        if not token:
            return pages


async def _check_line(b, invoice: bpb.Invoice, line: bpb.InvoiceLine) -> Decimal:
    """Every view of the line adds up to its quantity; returns the quantity."""
    quantity = Decimal(line.quantity)
    pages = await _explain_all(b, invoice, line.position, events=True, size=7)
    events = [e for p in pages for e in p.events]
    assert pages[0].line.position == line.position and pages[0].line.quantity == line.quantity
    assert Decimal(pages[0].total_quantity) == quantity, (line.display_name, pages[0].total_quantity)
    assert sum((Decimal(e.contributed_quantity) for e in events), Decimal(0)) == quantity, line.display_name
    ids = [e.event_id for e in events]
    assert len(ids) == len(set(ids)) == pages[0].event_count
    assert all(e.status == "succeeded" for e in events)

    gpages = await _explain_all(b, invoice, line.position, events=False, size=2)
    groups = [g for p in gpages for g in p.groups]
    assert sum((Decimal(g.quantity) for g in groups), Decimal(0)) == quantity
    assert sum(g.event_count for g in groups) == len(events)
    # The default grouping is by workspace and workflow; a tag an event lacks is absent.
    assert {tuple(sorted(g.tags)) for g in groups} <= {("workflow", "workspace"), ("workflow",)}
    by_run = await _explain_all(b, invoice, line.position, events=False, size=100, group_by=["run_id"])
    assert sum((Decimal(g.quantity) for g in by_run[0].groups), Decimal(0)) == quantity

    export = await b.ExportInvoiceLine(
        bpb.ExportInvoiceLineRequest(builder_id=BUILDER, invoice_id=invoice.id, position=line.position)
    )
    rows = list(csv.reader(io.StringIO(export.csv, newline="")))
    assert rows[0] == [
        "event_id",
        "occurred_time",
        "ingest_time",
        "run_id",
        "status",
        "tags",
        "quantities",
        "contributed_quantity",
    ]
    assert export.csv.endswith("\r\n") and export.event_count == len(rows) - 1 == len(events)
    assert sum((Decimal(r[-1]) for r in rows[1:]), Decimal(0)) == quantity
    assert {r[0] for r in rows[1:]} == set(ids)
    for r in rows[1:]:
        json.loads(r[5]), json.loads(r[6])
    return quantity


async def test_every_line_of_every_price_model_explains_to_its_quantity(stack, month) -> None:
    b = stack.billing
    assert sorted(month) == ["acme", "beta", "gamma"]
    kinds = {}
    for invoice in month.values():
        for line in invoice.lines:
            if line.kind == bpb.LINE_KIND_BASE_FEE:
                continue
            kinds[(invoice.customer_id, line.charge_key)] = await _check_line(b, invoice, line)
    # The quantities by hand: 23 documents (all in priced buckets), 6 x 0.0123456 provider cost, 37
    # succeeded tickets (the failed one is not billed), 3 x 1.002, pages 0..8 over 31 documents.
    assert kinds == {
        ("acme", "documents"): Decimal(23),
        ("acme", "tokens"): Decimal("0.0740736"),
        ("beta", "tickets"): Decimal(37),
        ("beta", "tokens"): Decimal("3.006"),
        ("gamma", "pages_graduated"): Decimal(sum(i % 9 for i in range(31))),
        ("gamma", "pages_volume"): Decimal(sum(i % 9 for i in range(31))),
        ("gamma", "tickets"): Decimal(23),
    }


async def test_cost_plus_line_lists_the_inference_attempts_and_their_provider_cost(stack, month) -> None:
    invoice = month["beta"]
    line = next(ln for ln in invoice.lines if ln.charge_key == "tokens")
    reply = await stack.billing.ExplainInvoiceLine(
        bpb.ExplainInvoiceLineRequest(
            builder_id=BUILDER, invoice_id=invoice.id, position=line.position, view=bpb.EXPLAIN_VIEW_EVENTS
        )
    )
    assert [e.type for e in reply.events] == ["ai.request"] * 3
    assert [e.contributed_quantity for e in reply.events] == ["1.002"] * 3
    assert all(e.quantities["provider_cost"] == "1.002" for e in reply.events)
    groups = await stack.billing.ExplainInvoiceLine(
        bpb.ExplainInvoiceLineRequest(builder_id=BUILDER, invoice_id=invoice.id, position=line.position)
    )
    assert sum((Decimal(g.provider_cost) for g in groups.groups), Decimal(0)) == Decimal("3.006")


async def test_base_fee_unknown_line_and_foreign_tokens_are_refused(stack, month) -> None:
    b = stack.billing
    beta = month["beta"]
    base = next(ln for ln in beta.lines if ln.kind == bpb.LINE_KIND_BASE_FEE)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await b.ExplainInvoiceLine(
            bpb.ExplainInvoiceLineRequest(builder_id=BUILDER, invoice_id=beta.id, position=base.position)
        )
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "base fee" in err.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await b.ExportInvoiceLine(
            bpb.ExportInvoiceLineRequest(builder_id=BUILDER, invoice_id=beta.id, position=base.position)
        )
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await b.ExplainInvoiceLine(
            bpb.ExplainInvoiceLineRequest(builder_id=BUILDER, invoice_id=beta.id, position=99)
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND and "no line 99" in err.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await b.ExplainInvoiceLine(
            bpb.ExplainInvoiceLineRequest(builder_id=BUILDER, invoice_id="inv_" + "0" * 26, position=1)
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    # Another builder sees nothing of this one's invoices.
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await b.ExplainInvoiceLine(
            bpb.ExplainInvoiceLineRequest(builder_id="someone-else", invoice_id=beta.id, position=2)
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    # A page token of one line is not one of another's.
    tickets = next(ln for ln in beta.lines if ln.charge_key == "tickets")
    first = await b.ExplainInvoiceLine(
        bpb.ExplainInvoiceLineRequest(
            builder_id=BUILDER,
            invoice_id=beta.id,
            position=tickets.position,
            view=bpb.EXPLAIN_VIEW_EVENTS,
            page_size=5,
        )
    )
    assert first.next_page_token
    tokens = next(ln for ln in beta.lines if ln.charge_key == "tokens")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await b.ExplainInvoiceLine(
            bpb.ExplainInvoiceLineRequest(
                builder_id=BUILDER,
                invoice_id=beta.id,
                position=tokens.position,
                view=bpb.EXPLAIN_VIEW_EVENTS,
                page_token=first.next_page_token,
            )
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and field_of(err.value) == "page_token"
    # The same line in the other view is another read: its token does not fit either.
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await b.ExplainInvoiceLine(
            bpb.ExplainInvoiceLineRequest(
                builder_id=BUILDER,
                invoice_id=beta.id,
                position=tickets.position,
                page_token=first.next_page_token,
            )
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and field_of(err.value) == "page_token"


async def test_late_events_leave_the_closed_lines_and_explain_the_adjustment(stack, month) -> None:
    b, m = stack.billing, stack.metering
    # More events of the closed month arrive after its close, then the next month closes.
    await ingest(m, _month_events(M1.replace(day=27)))
    await b.ClosePeriod(bpb.ClosePeriodRequest(request_id=rid(), builder_id=BUILDER, period_end_time=ts(M3)))
    for invoice in month.values():
        for line in invoice.lines:
            if line.kind != bpb.LINE_KIND_BASE_FEE:
                # The closed invoice's lines still explain to what they priced: the cutoff holds.
                await _check_line(b, invoice, line)
    listed = await b.ListInvoices(bpb.ListInvoicesRequest(builder_id=BUILDER, page_size=3))
    assert {i.period_start_time.seconds for i in listed.invoices} == {ts(M2).seconds}
    late_lines = 0
    for invoice in listed.invoices:
        for line in invoice.lines:
            if line.kind == bpb.LINE_KIND_BASE_FEE:
                continue
            quantity = await _check_line(b, invoice, line)
            if line.kind == bpb.LINE_KIND_LATE_USAGE_ADJUSTMENT:
                late_lines += 1
                # The late events doubled the month: the adjustment is the first quantity again.
                first = next(
                    ln for ln in month[invoice.customer_id].lines if ln.charge_key == line.charge_key
                )
                assert quantity == Decimal(first.quantity)
            else:
                assert quantity == 0  # nothing happened in the second month
    assert late_lines == 7


async def test_an_export_above_the_event_limit_is_refused(stack, month, monkeypatch) -> None:
    # The limit is 100,000 events; the billing server runs in this process, so the test lowers it
    # rather than ingesting 100,001 events.
    import billing.service.explain as explain

    monkeypatch.setattr(explain, "MAX_EXPORT_EVENTS", 36)
    beta = month["beta"]
    tickets = next(ln for ln in beta.lines if ln.charge_key == "tickets")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stack.billing.ExportInvoiceLine(
            bpb.ExportInvoiceLineRequest(builder_id=BUILDER, invoice_id=beta.id, position=tickets.position)
        )
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "more than 36 for one export" in err.value.details()
    monkeypatch.setattr(explain, "MAX_EXPORT_EVENTS", 37)
    export = await stack.billing.ExportInvoiceLine(
        bpb.ExportInvoiceLineRequest(builder_id=BUILDER, invoice_id=beta.id, position=tickets.position)
    )
    assert export.event_count == 37
