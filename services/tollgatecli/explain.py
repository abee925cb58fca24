"""`tollgate invoices explain`: the metered events behind an invoice line (billing's ExplainInvoiceLine
and ExportInvoiceLine). Its own module beside billing.py, which holds the rest of `invoices`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tollgate.billing.v1 import billing_pb2 as bpb
from tollgatecli.base import BuilderOpt, JsonOpt, handled, session, when
from tollgatecli.billing import invoices
from tollgatecli.output import to_data


@invoices.command("explain")
@handled
def invoices_explain(
    ctx: typer.Context,
    invoice_id: Annotated[str, typer.Argument(help="The finalized invoice's id.")],
    position: Annotated[int, typer.Argument(help="The line's position, from 1 (as `invoices show` lists).")],
    group_by: Annotated[
        list[str],
        typer.Option(
            "--group-by",
            help="A tag to group by (repeatable; run_id groups by run). Default: workspace and workflow.",
        ),
    ] = [],  # noqa: B006 - typer reads the default, never mutates it
    events: Annotated[bool, typer.Option("--events", help="One row per event instead of groups.")] = False,
    csv_file: Annotated[
        Path | None, typer.Option("--csv", help="Write every event of the line to this CSV file.")
    ] = None,
    builder: BuilderOpt = "",
    as_json: JsonOpt = False,
) -> None:
    """The events behind one invoice line, grouped by tags or one by one; their quantities sum to the
    line's quantity (for a cost-plus line: the inference attempts and their provider cost)."""
    client, out = session(ctx, as_json)
    if csv_file is not None:
        reply = client.call(
            "billing",
            "ExportInvoiceLine",
            bpb.ExportInvoiceLineRequest(builder_id=builder, invoice_id=invoice_id, position=position),
        )
        csv_file.write_text(reply.csv, encoding="utf-8", newline="")
        if out.as_json:
            out.json({"csv": str(csv_file), "event_count": reply.event_count})
        else:
            out.note(f"wrote {reply.event_count} events to {csv_file}")
        return
    request = bpb.ExplainInvoiceLineRequest(
        builder_id=builder,
        invoice_id=invoice_id,
        position=position,
        view=bpb.EXPLAIN_VIEW_EVENTS if events else bpb.EXPLAIN_VIEW_GROUPS,
        group_by=group_by,
        page_size=1000,
    )
    first = client.call("billing", "ExplainInvoiceLine", request)
    rows = list(first.events if events else first.groups)
    token = first.next_page_token
    while token:
        request.page_token = token
        reply = client.call("billing", "ExplainInvoiceLine", request)
        rows.extend(reply.events if events else reply.groups)
        token = reply.next_page_token
    line = first.line
    if out.as_json:
        out.json(
            {
                "line": to_data(line),
                "total_quantity": first.total_quantity,
                "event_count": first.event_count,
                ("events" if events else "groups"): [to_data(r) for r in rows],
            }
        )
        return
    title = f"Line {line.position}: {line.display_name} (quantity {line.quantity})"
    if events:
        out.table(
            title,
            ["event", "type", "occurred", "run", "tags", "quantity"],
            [
                [
                    e.event_id,
                    e.type,
                    when(e.occurred_time),
                    e.run_id,
                    ", ".join(f"{k}={v}" for k, v in sorted(e.tags.items())),
                    e.contributed_quantity,
                ]
                for e in rows
            ],
        )
    else:
        keys = list(group_by) or ["workspace", "workflow"]
        out.table(
            title,
            [*keys, "events", "quantity", "provider cost"],
            [[*(g.tags.get(k, "") for k in keys), g.event_count, g.quantity, g.provider_cost] for g in rows],
        )
    out.note(f"{first.event_count} events, total {first.total_quantity}")
