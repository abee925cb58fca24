"""`tollgate customers|plans|invoices|earnings ...`: billing's API."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer

from common.money import from_money, parse_decimal, to_money
from tollgate.billing.v1 import billing_pb2 as bpb
from tollgatecli.base import (
    BuilderOpt,
    JsonOpt,
    RequestIdOpt,
    enum_name,
    handled,
    month_range,
    parse_time,
    read_text,
    request_id,
    session,
    timestamp,
    when,
)
from tollgatecli.client import Client, CliError, Exit
from tollgatecli.output import amount_text, money, to_data

customers = typer.Typer(help="A builder's paying customers.", no_args_is_help=True)
plans = typer.Typer(
    help="Plans as code: apply a plan YAML, show plans and their versions.", no_args_is_help=True
)
invoices = typer.Typer(help="Close a month, list and show invoices, record payments.", no_args_is_help=True)


# ---- customers --------------------------------------------------------------------------------------


@customers.command("list")
@handled
def customers_list(ctx: typer.Context, builder: BuilderOpt = "", as_json: JsonOpt = False) -> None:
    """A builder's customers, by id."""
    client, out = session(ctx, as_json)
    items = client.pages(
        "billing", "ListCustomers", bpb.ListCustomersRequest(builder_id=builder, page_size=1000), "customers"
    )
    if out.as_json:
        out.json({"customers": [to_data(c) for c in items]})
        return
    out.table(
        "Customers",
        ["id", "builder", "app", "currency", "name", "billing email", "created"],
        [
            [
                c.id,
                c.builder_id,
                c.app_id,
                c.currency_code,
                c.display_name,
                c.billing_email,
                when(c.create_time),
            ]
            for c in items
        ],
    )


@customers.command("create")
@handled
def customers_create(
    ctx: typer.Context,
    customer_id: Annotated[str, typer.Argument(help="The builder's own id for the customer.")],
    app: Annotated[str, typer.Option("--app", help="The builder's app the customer uses.")] = "",
    name: Annotated[str, typer.Option("--name", help="The name printed on invoices.")] = "",
    email: Annotated[str, typer.Option("--email", help="Where invoices are sent.")] = "",
    currency: Annotated[str, typer.Option("--currency", help="ISO 4217 code of its invoices.")] = "USD",
    builder: BuilderOpt = "",
    rid: RequestIdOpt = "",
    as_json: JsonOpt = False,
) -> None:
    """Register a paying customer."""
    client, out = session(ctx, as_json)
    reply = client.call(
        "billing",
        "CreateCustomer",
        bpb.CreateCustomerRequest(
            request_id=request_id(rid),
            customer=bpb.Customer(
                id=customer_id,
                builder_id=builder,
                app_id=app,
                currency_code=currency,
                display_name=name or customer_id,
                billing_email=email,
            ),
        ),
    )
    c = reply.customer
    if out.as_json:
        out.json({"customer": to_data(c)})
        return
    out.table(
        "Customer",
        ["id", "builder", "app", "currency", "name"],
        [[c.id, c.builder_id, c.app_id, c.currency_code, c.display_name]],
    )


@customers.command("subscribe")
@handled
def customers_subscribe(
    ctx: typer.Context,
    customer_id: Annotated[str, typer.Argument(help="The customer's id.")],
    plan: Annotated[str, typer.Option("--plan", help="The plan's key or id.")],
    version: Annotated[int, typer.Option("--version", help="The plan version; 0 = the latest.")] = 0,
    start: Annotated[
        str, typer.Option("--start", help="When billing starts (ISO date/time). Default: now.")
    ] = "",
    builder: BuilderOpt = "",
    rid: RequestIdOpt = "",
    as_json: JsonOpt = False,
) -> None:
    """Put a customer on a plan; periods are calendar months from the month billing starts."""
    client, out = session(ctx, as_json)
    plan_id = _plan_id(client, builder, plan)
    request = bpb.SubscribeRequest(
        request_id=request_id(rid),
        builder_id=builder,
        customer_id=customer_id,
        plan_id=plan_id,
        plan_version=version,
    )
    if start:
        request.start_time.CopyFrom(timestamp(parse_time(start, "--start")))
    sub = client.call("billing", "Subscribe", request).subscription
    if out.as_json:
        out.json({"subscription": to_data(sub)})
        return
    out.table(
        "Subscription",
        ["id", "customer", "plan", "version", "start"],
        [[sub.id, sub.customer_id, sub.plan_id, sub.plan_version, when(sub.start_time)]],
    )


def _plan_id(client: Client, builder: str, plan: str) -> str:
    """A plan key becomes its id (ids are what the API takes); anything else is taken as an id."""
    items = client.pages(
        "billing", "ListPlans", bpb.ListPlansRequest(builder_id=builder, page_size=1000), "plans"
    )
    for p in items:
        if p.key == plan:
            return p.id
    return plan


# ---- plans ------------------------------------------------------------------------------------------


def _price_text(charge: bpb.Charge) -> str:
    kind = charge.WhichOneof("price")
    if kind == "per_unit":
        return f"{charge.per_unit.unit_price} per unit"
    if kind in ("graduated", "volume"):
        tiers = getattr(charge, kind).tiers
        return f"{kind}: " + "; ".join(f"up to {t.up_to or 'inf'} at {t.unit_price}" for t in tiers)
    if kind == "package":
        return f"{charge.package.package_price} per {charge.package.package_size}"
    if kind == "size_buckets":
        return "per event: " + "; ".join(f"{b.bucket} at {b.unit_price}" for b in charge.size_buckets.buckets)
    if kind == "cost_plus":
        fixed = charge.cost_plus.fixed_per_request
        return f"cost + {charge.cost_plus.markup_percent}%" + (f" + {fixed}/request" if fixed else "")
    return ""


@plans.command("apply")
@handled
def plans_apply(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="A plan YAML (services/billing/README.md shows its shape).")],
    key: Annotated[
        str, typer.Option("--key", help="The plan's key. Default: the file name without .yaml.")
    ] = "",
    name: Annotated[str, typer.Option("--name", help="The plan's name when it is created.")] = "",
    builder: BuilderOpt = "",
    rid: RequestIdOpt = "",
    as_json: JsonOpt = False,
) -> None:
    """Create the plan if missing and publish a new version when the pricing changed."""
    client, out = session(ctx, as_json)
    text = read_text(file)
    plan_key = key or file.name.removesuffix(".yaml").removesuffix(".yml")
    reply = client.call(
        "billing",
        "ApplyPlanYaml",
        bpb.ApplyPlanYamlRequest(
            request_id=request_id(rid),
            builder_id=builder,
            yaml=text,
            plan_key=plan_key,
            display_name=name or plan_key,
        ),
    )
    if out.as_json:
        out.json(
            {"plan": to_data(reply.plan), "version": to_data(reply.version), "published": reply.published}
        )
        return
    _show_version(out, reply.plan, reply.version)
    out.note(
        f"plan {reply.plan.key} ({reply.plan.id}): "
        + (
            f"published version {reply.version.version}"
            if reply.published
            else f"unchanged, version {reply.version.version} stays in force"
        )
    )


def _show_version(out: Any, plan: bpb.Plan, version: bpb.PlanVersion) -> None:
    rows: list[list[Any]] = []
    if version.HasField("base_fee") and from_money(version.base_fee):
        rows.append(["(base fee)", "", "per period", "", money(version.base_fee)])
    for c in version.charges:
        rows.append(
            [
                c.key,
                c.meter_key,
                _price_text(c),
                c.included_quantity or "0",
                c.maximum_amount and f"cap {c.maximum_amount}",
            ]
        )
    out.table(
        f"Plan {plan.key} v{version.version} ({plan.currency_code})",
        ["charge", "meter", "price", "included", "notes"],
        rows,
    )


@plans.command("show")
@handled
def plans_show(
    ctx: typer.Context,
    plan_id: Annotated[str, typer.Argument(help="One plan's id; omit to list the builder's plans.")] = "",
    builder: BuilderOpt = "",
    as_json: JsonOpt = False,
) -> None:
    """List a builder's plans, or show one plan's latest version charge by charge."""
    client, out = session(ctx, as_json)
    if plan_id:
        plan = client.call("billing", "GetPlan", bpb.GetPlanRequest(builder_id=builder, plan_id=plan_id)).plan
        if out.as_json:
            out.json({"plan": to_data(plan)})
            return
        if not plan.versions:
            out.note(f"plan {plan.key} ({plan.id}) has no published version")
            return
        _show_version(out, plan, plan.versions[-1])
        return
    items = client.pages(
        "billing", "ListPlans", bpb.ListPlansRequest(builder_id=builder, page_size=1000), "plans"
    )
    if out.as_json:
        out.json({"plans": [to_data(p) for p in items]})
        return
    out.table(
        "Plans",
        ["id", "key", "name", "currency", "versions", "charges (latest)"],
        [
            [
                p.id,
                p.key,
                p.display_name,
                p.currency_code,
                len(p.versions),
                ", ".join(c.key for c in p.versions[-1].charges) if p.versions else "",
            ]
            for p in items
        ],
    )


# ---- invoices ---------------------------------------------------------------------------------------

_STATUSES = {
    "any": bpb.INVOICE_STATUS_UNSPECIFIED,
    "finalized": bpb.INVOICE_STATUS_FINALIZED,
    "void": bpb.INVOICE_STATUS_VOID,
}


def _invoice_row(i: bpb.Invoice) -> list[Any]:
    return [
        i.id,
        i.number or "",
        i.customer_id,
        when(i.period_start_time)[:10],
        enum_name(bpb.InvoiceStatus.Name(i.status), "INVOICE_STATUS_"),
        money(i.total),
        money(i.amount_due),
        enum_name(bpb.PaymentStatus.Name(i.payment_status), "PAYMENT_STATUS_"),
    ]


INVOICE_COLUMNS = ["id", "number", "customer", "period", "status", "total", "due", "payment"]


@invoices.command("close")
@handled
def invoices_close(
    ctx: typer.Context,
    period: Annotated[
        str, typer.Option("--period", help="The month to close, YYYY-MM (UTC); it must be over.")
    ],
    builder: BuilderOpt = "",
    rid: RequestIdOpt = "",
    as_json: JsonOpt = False,
) -> None:
    """Finalize the invoice of every subscribed customer of the builder for one month (idempotent)."""
    client, out = session(ctx, as_json)
    _, end = month_range(period)
    reply = client.call(
        "billing",
        "ClosePeriod",
        bpb.ClosePeriodRequest(
            request_id=request_id(rid), builder_id=builder, period_end_time=timestamp(end)
        ),
    )
    if out.as_json:
        out.json({"period": period, **to_data(reply)})
        return
    out.table(
        f"Closed {period}",
        ["invoices", "finalized now", "usage read before", "totals"],
        [
            [
                reply.invoice_count,
                reply.finalized_count,
                when(reply.usage_cutoff_time),
                ", ".join(money(t) for t in reply.totals),
            ]
        ],
    )


@invoices.command("list")
@handled
def invoices_list(
    ctx: typer.Context,
    builder: BuilderOpt = "",
    customer: Annotated[str, typer.Option("--customer", help="Only this customer's invoices.")] = "",
    status: Annotated[str, typer.Option("--status", help="any, finalized or void.")] = "any",
    as_json: JsonOpt = False,
) -> None:
    """A builder's invoices, newest period first."""
    client, out = session(ctx, as_json)
    if status not in _STATUSES:
        raise CliError(f"--status is one of {', '.join(_STATUSES)}, got {status!r}", Exit.USAGE)
    items = client.pages(
        "billing",
        "ListInvoices",
        bpb.ListInvoicesRequest(
            builder_id=builder, customer_id=customer, status=_STATUSES[status], page_size=1000
        ),
        "invoices",
    )
    if out.as_json:
        out.json({"invoices": [to_data(i) for i in items]})
        return
    out.table("Invoices", INVOICE_COLUMNS, [_invoice_row(i) for i in items])


@invoices.command("show")
@handled
def invoices_show(
    ctx: typer.Context,
    invoice_id: Annotated[str, typer.Argument(help="The invoice's id.")],
    builder: BuilderOpt = "",
    as_json: JsonOpt = False,
) -> None:
    """One invoice, line by line, with each line's split (provider cost, platform fee, builder margin)."""
    client, out = session(ctx, as_json)
    inv = client.call(
        "billing", "GetInvoice", bpb.GetInvoiceRequest(builder_id=builder, invoice_id=invoice_id)
    )
    inv = inv.invoice
    if out.as_json:
        out.json({"invoice": to_data(inv)})
        return
    out.table("Invoice", INVOICE_COLUMNS, [_invoice_row(inv)])
    out.table(
        "Lines",
        ["#", "line", "quantity", "included", "amount", "provider cost", "platform fee", "builder margin"],
        [
            [
                ln.position,
                ln.display_name,
                ln.quantity,
                ln.included_quantity,
                money(ln.amount),
                money(ln.split.provider_cost),
                money(ln.split.platform_fee),
                money(ln.split.builder_margin),
            ]
            for ln in inv.lines
        ],
    )


@invoices.command("pay")
@handled
def invoices_pay(
    ctx: typer.Context,
    invoice_id: Annotated[str, typer.Argument(help="The invoice's id.")],
    amount: Annotated[
        str, typer.Option("--amount", help="The amount received. Default: all that is due.")
    ] = "",
    reference: Annotated[
        str,
        typer.Option("--reference", help="The processor's reference (idempotency). Default: a fresh one."),
    ] = "",
    builder: BuilderOpt = "",
    as_json: JsonOpt = False,
) -> None:
    """Record a payment received for an invoice."""
    client, out = session(ctx, as_json)
    inv = client.call(
        "billing", "GetInvoice", bpb.GetInvoiceRequest(builder_id=builder, invoice_id=invoice_id)
    )
    inv = inv.invoice
    value = _amount(amount) if amount else from_money(inv.amount_due)
    if value <= 0:
        raise CliError(f"invoice {invoice_id} has nothing due", Exit.REQUEST)
    reply = client.call(
        "billing",
        "RecordPayment",
        bpb.RecordPaymentRequest(
            request_id=request_id(),
            builder_id=inv.builder_id,
            invoice_id=invoice_id,
            amount=to_money(value, inv.currency_code),
            external_reference=reference or request_id(),
        ),
    )
    if out.as_json:
        out.json({"payment": to_data(reply.payment), "invoice": to_data(reply.invoice)})
        return
    out.table("Invoice after payment", INVOICE_COLUMNS, [_invoice_row(reply.invoice)])
    out.note(
        f"payment {reply.payment.id}: {money(reply.payment.amount)} "
        f"(reference {reply.payment.external_reference})"
    )


def _amount(text: str) -> Decimal:
    try:
        return parse_decimal(text, allow_negative=False, max_places=9)
    except ValueError as exc:
        raise CliError(f"--amount {exc}", Exit.USAGE) from None


# ---- earnings ---------------------------------------------------------------------------------------


def earnings(
    ctx: typer.Context,
    builder: BuilderOpt = "",
    after: Annotated[
        str, typer.Option("--after", help="A cursor from an earlier listing (next_page_token).")
    ] = "",
    limit: Annotated[int, typer.Option("--limit", help="At most this many entries.")] = 1000,
    as_json: JsonOpt = False,
) -> None:
    """The earnings feed: paid invoices split into builder margin, platform fee and provider cost."""
    client, out = session(ctx, as_json)
    entries, cursor = _feed(client, builder, after, limit)
    totals: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for e in entries:
        totals[(enum_name(bpb.EarningsKind.Name(e.kind), "EARNINGS_KIND_"), e.amount.currency_code)] += (
            from_money(e.amount)
        )
    if out.as_json:
        out.json(
            {
                "entries": [to_data(e) for e in entries],
                "totals": [
                    {"kind": k, "currency_code": c, "amount": amount_text(v)}
                    for (k, c), v in sorted(totals.items())
                ],
                "next_page_token": cursor,
            }
        )
        return
    out.table(
        "Earnings",
        ["seq", "builder", "customer", "invoice", "line", "kind", "reason", "amount"],
        [
            [
                e.sequence,
                e.builder_id,
                e.customer_id,
                e.invoice_id,
                e.line_position,
                enum_name(bpb.EarningsKind.Name(e.kind), "EARNINGS_KIND_"),
                enum_name(bpb.EarningsReason.Name(e.reason), "EARNINGS_REASON_"),
                money(e.amount),
            ]
            for e in entries
        ],
    )
    out.table(
        "Totals", ["kind", "amount"], [[k, money(to_money(v, c))] for (k, c), v in sorted(totals.items())]
    )
    if cursor:
        out.note(f"cursor for newer entries: --after {cursor}")


def _feed(client: Client, builder: str, after: str, limit: int) -> tuple[list[bpb.EarningsEntry], str]:
    entries: list[bpb.EarningsEntry] = []
    cursor = after
    while len(entries) < limit:
        reply = client.call(
            "billing",
            "ListEarnings",
            bpb.ListEarningsRequest(
                builder_id=builder, page_size=min(1000, limit - len(entries)), page_token=cursor
            ),
        )
        entries.extend(reply.entries)
        cursor = reply.next_page_token
        if not reply.entries:
            break
    return entries, cursor
