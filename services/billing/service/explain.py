"""ExplainInvoiceLine and ExportInvoiceLine: the metered events behind a finalized line (nothing written).

A usage line records the metering read it priced (invoice_lines.usage_start_time .. ingested_before_time,
migration 0004): its meter, the customer, the usage range and the ingestion cutoff(s). Explaining it is
metering's ExplainUsage over exactly that read, so the events' contributions sum to the quantity the
line priced (for a cost-plus line the meter is the provider-cost meter: the events are the inference
attempts and their contributions the provider cost). Events that arrived after the close are not read
(the cutoff). Lines finalized before 0004 (NULL columns) fall back to what they were read with: a usage
line the invoice's period and usage cutoff; a late-usage line its adjusted period, between the usage
cutoff of that period's invoice and this invoice's.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from billing import store
from billing.domain import period_containing
from billing.service._core import ServiceCore, log
from billing.service.views import InvoiceView
from common.errors import FailedPrecondition, InvalidArgument, NotFound
from common.money import format_decimal, from_timestamp
from common.paging import decode_token, encode_token, page_size
from tollgate.metering.v1 import metering_pb2

DEFAULT_GROUP_BY = ("workspace", "workflow")
MAX_EXPORT_EVENTS = 100_000
EXPORT_PAGE = 1_000
CSV_HEADER = (
    "event_id",
    "occurred_time",
    "ingest_time",
    "run_id",
    "status",
    "tags",
    "quantities",
    "contributed_quantity",
)
STATUS_NAMES = {1: "succeeded", 2: "failed", 3: "test"}
_NOT_ISSUED = "page_token is not a token this service issued"


@dataclass(frozen=True)
class LineRead:
    """The metering read a line priced."""

    meter_key: str
    customer_id: str
    start: datetime
    end: datetime
    ingested_after: datetime | None
    ingested_before: datetime


@dataclass(frozen=True)
class LineExplanation:
    invoice: InvoiceView
    position: int
    total: Decimal
    event_count: int
    # Metering's messages, passed on as they are (api.py maps them to billing's).
    groups: list[metering_pb2.UsageGroup]
    events: list[metering_pb2.ExplainedEvent]
    next_page_token: str


def _utc(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def event_status(status: int) -> str:
    return STATUS_NAMES.get(status, "unspecified")


class Explaining(ServiceCore):
    """Explaining and exporting a finalized line."""

    async def _line_read(
        self, builder_id: str, invoice_id: str, position: int
    ) -> tuple[InvoiceView, LineRead]:
        if position < 1:
            raise InvalidArgument("position is required (lines are numbered from 1)", field="position")
        async with self.engine.connect() as conn:
            inv = await self._invoice(conn, builder_id, invoice_id)
            view = await self._invoice_view(conn, inv)
            rows = (await store.lines_of(conn, [invoice_id]))[invoice_id]
            row = next((r for r in rows if r["position"] == position), None)
            if row is None:
                raise NotFound(f"invoice {invoice_id} has no line {position}", field="position")
            if row["kind"] == "base_fee" or not row["meter_key"]:
                raise FailedPrecondition(
                    f"line {position} is a base fee: no metered events are behind it", field="position"
                )
            start, end = row["usage_start_time"], row["usage_end_time"]
            after, before = row["ingested_after_time"], row["ingested_before_time"]
            if start is None or end is None or before is None:
                # Finalized before the line recorded its read (migration 0004).
                before = inv["usage_cutoff"]
                if row["kind"] == "late_usage" and row["usage_period_start"] is not None:
                    adjusted = period_containing(row["usage_period_start"])
                    start, end = adjusted.start, adjusted.end
                    earlier = await store.period_invoices(conn, builder_id, adjusted.start)
                    closed = earlier.get(inv["customer_id"])
                    after = closed["usage_cutoff"] if closed is not None else None
                    if after is None:
                        raise FailedPrecondition(
                            f"line {position} adjusts a period whose invoice is not on record",
                            field="position",
                        )
                else:
                    start, end, after = inv["period_start"], inv["period_end"], None
        if before is None:
            raise FailedPrecondition(f"invoice {invoice_id} has no usage cutoff", field="invoice_id")
        read = LineRead(row["meter_key"], inv["customer_id"], start, end, after, before)
        return view, read

    def _check_total(self, invoice_id: str, position: int, quantity: str, total: Decimal) -> None:
        if Decimal(quantity) != total:
            # Metering's read no longer adds up to what was priced: a defect to investigate, never
            # to hide; the explanation is still returned as metering gives it.
            log.error(
                "billing.explain.total_mismatch",
                invoice_id=invoice_id,
                position=position,
                line_quantity=quantity,
                explained=format_decimal(total),
            )

    async def explain_invoice_line(
        self,
        builder_id: str,
        invoice_id: str,
        position: int,
        *,
        events: bool,
        group_by: tuple[str, ...],
        size: int,
        token: str,
    ) -> LineExplanation:
        size = page_size(size)
        if len(set(group_by)) != len(group_by):
            raise InvalidArgument("group_by lists a tag twice", field="group_by")
        view, read = await self._line_read(builder_id, invoice_id, position)
        cursor = decode_token(token)
        inner = ""
        if cursor is not None:
            # Billing's token wraps metering's, bound to this line.
            if set(cursor) != {"i", "p", "m"} or cursor["i"] != invoice_id or cursor["p"] != position:
                raise InvalidArgument(_NOT_ISSUED, field="page_token")
            inner = cursor["m"]
            if not isinstance(inner, str) or not inner or len(inner) > 512:
                raise InvalidArgument(_NOT_ISSUED, field="page_token")
        reply = await self.metering.explain_usage(
            builder_id=builder_id,
            meter_key=read.meter_key,
            customer_id=read.customer_id,
            start=read.start,
            end=read.end,
            ingested_before=read.ingested_before,
            ingested_after=read.ingested_after,
            events=events,
            group_by=group_by or DEFAULT_GROUP_BY,
            page_size=size,
            page_token=inner,
        )
        total = Decimal(reply.total_quantity or "0")
        line = next(ln for ln in view.lines if ln.position == position)
        self._check_total(invoice_id, position, line.quantity, total)
        next_token = ""
        if reply.next_page_token:
            next_token = encode_token({"i": invoice_id, "p": position, "m": reply.next_page_token})
        return LineExplanation(
            view,
            position,
            total,
            reply.event_count,
            list(reply.groups),
            list(reply.events),
            next_token,
        )

    async def export_invoice_line(self, builder_id: str, invoice_id: str, position: int) -> tuple[str, int]:
        """Every event of the line as RFC 4180 CSV (CRLF line ends, quoted where needed), header first."""
        view, read = await self._line_read(builder_id, invoice_id, position)
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(CSV_HEADER)
        token = ""
        written = 0
        total = Decimal(0)
        while True:
            reply = await self.metering.explain_usage(
                builder_id=builder_id,
                meter_key=read.meter_key,
                customer_id=read.customer_id,
                start=read.start,
                end=read.end,
                ingested_before=read.ingested_before,
                ingested_after=read.ingested_after,
                events=True,
                page_size=EXPORT_PAGE,
                page_token=token,
            )
            if reply.event_count > MAX_EXPORT_EVENTS:
                raise FailedPrecondition(
                    f"line {position} has {reply.event_count} events, more than {MAX_EXPORT_EVENTS:,} "
                    "for one export: page ExplainInvoiceLine instead",
                    field="position",
                )
            total = Decimal(reply.total_quantity or "0")
            for e in reply.events:
                ev = e.event
                writer.writerow(
                    (
                        ev.id,
                        _utc(from_timestamp(ev.occurred_time)),
                        _utc(from_timestamp(e.ingest_time)),
                        ev.run_id,
                        event_status(ev.status),
                        json.dumps(dict(ev.tags), sort_keys=True, separators=(",", ":"), ensure_ascii=False),
                        json.dumps(
                            dict(ev.quantities), sort_keys=True, separators=(",", ":"), ensure_ascii=False
                        ),
                        e.contributed_quantity,
                    )
                )
                written += 1
            token = reply.next_page_token
            if not token:
                break
        line = next(ln for ln in view.lines if ln.position == position)
        self._check_total(invoice_id, position, line.quantity, total)
        return out.getvalue(), written


def group_tags(tags: Any) -> dict[str, str]:
    """A group's tags as the contract states them: a tag the events lack is absent."""
    return {k: v for k, v in tags.items() if v}
