"""Typed wrappers over billing's and metering's gRPC APIs: a deadline on every call.

Each client takes a ready grpc.aio.Channel from app.py (which owns credentials and closing). A call
that cannot reach the other context raises Unavailable: payouts waits and retries, never guesses.
Any other refusal is FailedPrecondition naming the other context's answer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import grpc

from common.errors import FailedPrecondition, Unavailable
from common.money import from_money, from_timestamp, to_timestamp
from payouts.domain.ledger import EntryKind, FeedEntry
from tollgate.billing.v1 import billing_pb2 as bpb
from tollgate.billing.v1 import billing_pb2_grpc
from tollgate.metering.v1 import metering_pb2 as mpb
from tollgate.metering.v1 import metering_pb2_grpc

_UNREACHABLE = (
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.CANCELLED,
)
_KINDS = {
    bpb.EARNINGS_KIND_BUILDER_MARGIN: EntryKind.BUILDER_MARGIN,
    bpb.EARNINGS_KIND_PLATFORM_FEE: EntryKind.PLATFORM_FEE,
    bpb.EARNINGS_KIND_PROVIDER_COST: EntryKind.PROVIDER_COST,
}
_REASONS = {
    bpb.EARNINGS_REASON_PAYMENT: "payment",
    bpb.EARNINGS_REASON_CREDIT_NOTE: "credit_note",
    bpb.EARNINGS_REASON_VOID: "void",
}


def _translate(context: str, exc: grpc.aio.AioRpcError) -> Exception:
    if exc.code() in _UNREACHABLE:
        return Unavailable(f"{context} is unavailable ({exc.code().name}); nothing was changed, retry later")
    return FailedPrecondition(f"{context} refused the call ({exc.code().name}): {exc.details()}")


@dataclass(frozen=True)
class FeedPage:
    entries: list[FeedEntry]
    next_token: str


@dataclass(frozen=True)
class InvoiceLineFacts:
    position: int
    kind: str
    meter_key: str
    quantity: Decimal
    split_total: Decimal


@dataclass(frozen=True)
class InvoiceFacts:
    id: str
    builder_id: str
    customer_id: str
    number: str
    status: str
    paid: bool
    currency: str
    period_start: datetime
    period_end: datetime
    usage_cutoff: datetime | None
    total: Decimal
    credited: Decimal
    lines: tuple[InvoiceLineFacts, ...]


def entry_from_pb(e: bpb.EarningsEntry) -> FeedEntry:
    """A feed entry; an entry kind or reason payouts does not know stops the feed (never guessed)."""
    if e.kind not in _KINDS or e.reason not in _REASONS:
        raise FailedPrecondition(
            f"billing's earnings entry {e.sequence} has a kind ({e.kind}) or reason ({e.reason}) payouts "
            "does not know; the feed stops here until payouts is upgraded"
        )
    return FeedEntry(
        sequence=e.sequence,
        builder_id=e.builder_id,
        app_id=e.app_id,
        customer_id=e.customer_id,
        invoice_id=e.invoice_id,
        line_position=e.line_position,
        workflow=e.workflow,
        meter_key=e.meter_key,
        kind=_KINDS[e.kind],
        reason=_REASONS[e.reason],
        amount=from_money(e.amount),
        currency=e.amount.currency_code,
        source_id=e.source_id,
        create_time=from_timestamp(e.create_time),
    )


def _invoice(inv: bpb.Invoice) -> InvoiceFacts:
    lines = tuple(
        InvoiceLineFacts(
            position=ln.position,
            kind={bpb.LINE_KIND_USAGE: "usage", bpb.LINE_KIND_BASE_FEE: "base_fee"}.get(ln.kind, "other"),
            meter_key=ln.meter_key,
            quantity=Decimal(ln.quantity or "0"),
            split_total=from_money(ln.split.provider_cost)
            + from_money(ln.split.platform_fee)
            + from_money(ln.split.builder_margin),
        )
        for ln in inv.lines
    )
    return InvoiceFacts(
        id=inv.id,
        builder_id=inv.builder_id,
        customer_id=inv.customer_id,
        number=inv.number,
        status={bpb.INVOICE_STATUS_FINALIZED: "finalized", bpb.INVOICE_STATUS_VOID: "void"}.get(
            inv.status, "other"
        ),
        paid=inv.payment_status == bpb.PAYMENT_STATUS_PAID,
        currency=inv.currency_code,
        period_start=from_timestamp(inv.period_start_time),
        period_end=from_timestamp(inv.period_end_time),
        usage_cutoff=from_timestamp(inv.usage_cutoff_time) if inv.HasField("usage_cutoff_time") else None,
        total=from_money(inv.total),
        credited=from_money(inv.credited),
        lines=lines,
    )


class BillingClient:
    def __init__(self, channel: grpc.aio.Channel, *, deadline_seconds: float) -> None:
        self._stub = billing_pb2_grpc.BillingServiceStub(channel)
        self._deadline = deadline_seconds

    async def list_earnings(self, page_token: str, page_size: int) -> FeedPage:
        try:
            reply = await self._stub.ListEarnings(
                bpb.ListEarningsRequest(page_size=page_size, page_token=page_token), timeout=self._deadline
            )
        except grpc.aio.AioRpcError as exc:
            raise _translate("billing", exc) from None
        return FeedPage([entry_from_pb(e) for e in reply.entries], reply.next_page_token)

    async def invoices(self, builder_id: str) -> AsyncIterator[InvoiceFacts]:
        """Every stored invoice of the builder (finalized and void), page by page."""
        token = ""
        while True:
            try:
                reply = await self._stub.ListInvoices(
                    bpb.ListInvoicesRequest(builder_id=builder_id, page_size=1000, page_token=token),
                    timeout=self._deadline,
                )
            except grpc.aio.AioRpcError as exc:
                raise _translate("billing", exc) from None
            for inv in reply.invoices:
                yield _invoice(inv)
            token = reply.next_page_token
            if not token:
                return


class MeteringClient:
    def __init__(self, channel: grpc.aio.Channel, *, deadline_seconds: float) -> None:
        self._stub = metering_pb2_grpc.MeteringServiceStub(channel)
        self._deadline = deadline_seconds

    async def usage_total(
        self,
        *,
        builder_id: str,
        meter_key: str,
        customer_id: str,
        start: datetime,
        end: datetime,
        cutoff: datetime,
    ) -> Decimal:
        """The customer's usage of the meter in [start, end) as metering saw it at the cutoff."""
        request = mpb.QueryUsageRequest(
            builder_id=builder_id,
            meter_key=meter_key,
            customer_id=customer_id,
            start_time=to_timestamp(start),
            end_time=to_timestamp(end),
            group_by_customer=True,
            ingested_before_time=to_timestamp(cutoff),
        )
        try:
            reply = await self._stub.QueryUsage(request, timeout=self._deadline)
        except grpc.aio.AioRpcError as exc:
            raise _translate("metering", exc) from None
        return sum((Decimal(r.value or "0") for r in reply.rows if r.customer_id == customer_id), Decimal(0))
