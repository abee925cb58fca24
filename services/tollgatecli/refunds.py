"""`tollgate invoices credit` and `tollgate refunds list|mark`: credit notes that move money, and the
refunds they record (billing's IssueCreditNote, ListRefunds, MarkRefund)."""

from __future__ import annotations

from typing import Annotated

import typer

from common.money import to_money
from tollgate.billing.v1 import billing_pb2 as bpb
from tollgatecli.base import BuilderOpt, JsonOpt, RequestIdOpt, enum_name, handled, request_id, session
from tollgatecli.billing import INVOICE_COLUMNS, _amount, _invoice_row, invoices
from tollgatecli.client import CliError, Exit
from tollgatecli.output import money, to_data

refunds = typer.Typer(
    help="Refunds owed to customers: list them, mark them paid or failed.", no_args_is_help=True
)

_SETTLE = {
    "": bpb.CREDIT_SETTLEMENT_UNSPECIFIED,
    "wallet": bpb.CREDIT_SETTLEMENT_WALLET,
    "refund": bpb.CREDIT_SETTLEMENT_REFUND,
}
_STATES = {
    "any": bpb.REFUND_STATE_UNSPECIFIED,
    "pending": bpb.REFUND_STATE_PENDING,
    "paid": bpb.REFUND_STATE_PAID,
    "failed": bpb.REFUND_STATE_FAILED,
}
REFUND_COLUMNS = ["id", "customer", "invoice", "amount", "state", "reference / reason", "created"]


def _refund_row(r: bpb.Refund) -> list[str]:
    detail = r.external_reference or r.failure_reason
    return [
        r.id,
        r.customer_id,
        r.invoice_id,
        money(r.amount),
        enum_name(bpb.RefundState.Name(r.state), "REFUND_STATE_"),
        detail,
        r.create_time.ToDatetime().isoformat(timespec="seconds") if r.HasField("create_time") else "",
    ]


@invoices.command("credit")
@handled
def invoices_credit(
    ctx: typer.Context,
    invoice_id: Annotated[str, typer.Argument(help="The finalized invoice's id.")],
    amount: Annotated[str, typer.Argument(help="The amount to credit, in the invoice's currency.")],
    reason: Annotated[str, typer.Option("--reason", help="Why, in a sentence.")] = "",
    settle: Annotated[
        str,
        typer.Option(
            "--settle",
            help="Where the part covering money already received goes: wallet or refund. "
            "Needed only when the credit is more than what is still due.",
        ),
    ] = "",
    builder: BuilderOpt = "",
    rid: RequestIdOpt = "",
    as_json: JsonOpt = False,
) -> None:
    """Credit part or all of an invoice: first what is still due, the rest to the wallet or a refund."""
    if settle not in _SETTLE:
        raise CliError("--settle must be wallet or refund", Exit.USAGE)
    if not reason:
        raise CliError("--reason is required", Exit.USAGE)
    value = _amount(amount)
    client, out = session(ctx, as_json)
    inv = client.call(
        "billing", "GetInvoice", bpb.GetInvoiceRequest(builder_id=builder, invoice_id=invoice_id)
    ).invoice
    reply = client.call(
        "billing",
        "IssueCreditNote",
        bpb.IssueCreditNoteRequest(
            request_id=request_id(rid),
            builder_id=inv.builder_id,
            invoice_id=invoice_id,
            amount=to_money(value, inv.currency_code),
            reason=reason,
            settlement=_SETTLE[settle],
        ),
    )
    if out.as_json:
        data = {"credit_note": to_data(reply.credit_note), "invoice": to_data(reply.invoice)}
        if reply.HasField("refund"):
            data["refund"] = to_data(reply.refund)
        out.json(data)
        return
    note = reply.credit_note
    out.table("Invoice after the credit", INVOICE_COLUMNS, [_invoice_row(reply.invoice)])
    out.note(
        f"credit note {note.id}: {money(note.amount)} = {money(note.due_reduced)} off what was due"
        f" + {money(note.wallet_credited)} to the wallet + {money(note.refunded)} to refund"
        + (f" (refund {note.refund_id}, pending)" if note.refund_id else "")
    )


@refunds.command("list")
@handled
def refunds_list(
    ctx: typer.Context,
    customer: Annotated[str, typer.Option("--customer", help="Only this customer's refunds.")] = "",
    state: Annotated[str, typer.Option("--state", help="any, pending, paid or failed.")] = "any",
    builder: BuilderOpt = "",
    as_json: JsonOpt = False,
) -> None:
    """A builder's refunds, newest first."""
    if state not in _STATES:
        raise CliError("--state must be any, pending, paid or failed", Exit.USAGE)
    client, out = session(ctx, as_json)
    items: list[bpb.Refund] = []
    token = ""
    while True:
        page = client.call(
            "billing",
            "ListRefunds",
            bpb.ListRefundsRequest(
                builder_id=builder,
                customer_id=customer,
                state=_STATES[state],
                page_size=1000,
                page_token=token,
            ),
        )
        items += page.refunds
        token = page.next_page_token
        if not token:
            break
    if out.as_json:
        out.json({"refunds": [to_data(r) for r in items]})
        return
    out.table("Refunds", REFUND_COLUMNS, [_refund_row(r) for r in items])


@refunds.command("mark")
@handled
def refunds_mark(
    ctx: typer.Context,
    refund_id: Annotated[str, typer.Argument(help="The refund's id.")],
    state: Annotated[str, typer.Argument(help="paid or failed.")],
    reference: Annotated[str, typer.Option("--reference", help="For paid: the processor's reference.")] = "",
    reason: Annotated[
        str, typer.Option("--reason", help="For failed: why (its amount goes to the wallet).")
    ] = "",
    builder: BuilderOpt = "",
    rid: RequestIdOpt = "",
    as_json: JsonOpt = False,
) -> None:
    """Record that a pending refund was paid back, or failed (operator only)."""
    if state not in ("paid", "failed"):
        raise CliError("STATE must be paid or failed", Exit.USAGE)
    client, out = session(ctx, as_json)
    reply = client.call(
        "billing",
        "MarkRefund",
        bpb.MarkRefundRequest(
            request_id=request_id(rid),
            builder_id=builder,
            refund_id=refund_id,
            state=_STATES[state],
            external_reference=reference,
            failure_reason=reason,
        ),
    )
    if out.as_json:
        out.json({"refund": to_data(reply.refund)})
        return
    out.table("Refund", REFUND_COLUMNS, [_refund_row(reply.refund)])
