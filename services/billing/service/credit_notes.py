"""Credit notes: credit part of a finalized invoice and settle the money it gives back.

The note's amount is allocated over the invoice's lines and split parts (domain allocate_credit) and
split by where it goes (domain/credit.py settle_credit): first what was still due, then the part
covering money already received, credited to the wallet or recorded as a refund (service/refunds.py
moves refunds on). The earnings feed does not depend on that choice: after payment the allocation is
appended negative at once; before payment it is subtracted from the payment's entries when the
invoice becomes paid (Payments._maybe_paid), so the feed's sum for an invoice is its total less its
credits, split exactly.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from billing import store
from billing.domain import EarningsParties, allocate_credit, earnings_for_credit
from billing.domain.credit import RefundState, Settlement, settle_credit
from billing.domain.text import quote
from billing.service._core import _money_amount, _new_id, _require, _stored_line, log
from billing.service.earnings import _earnings_rows
from billing.service.payments import Payments
from billing.service.views import CreditNoteReply, CreditNoteView, _s, amount_due, refund_view
from billing.store import refunds as refund_store
from common.errors import FailedPrecondition, InvalidArgument


class CreditNotes(Payments):
    """Credits against finalized invoices (Payments' earnings helpers are shared)."""

    async def issue_credit_note(
        self,
        request_id: str,
        builder_id: str,
        invoice_id: str,
        amount: Decimal,
        currency: str,
        reason: str,
        settlement: str = "",
    ) -> CreditNoteReply:
        _require(reason, "reason", max_len=1000)
        try:
            requested = Settlement(settlement)
        except ValueError:
            raise InvalidArgument(
                f"settlement has no value {quote(settlement)}", field="settlement"
            ) from None

        async def work(conn: AsyncConnection) -> Any:
            inv = await self._invoice(conn, builder_id, invoice_id, for_update=True)
            _money_amount(amount, currency, inv["currency_code"], "amount")
            if inv["status"] == "void":
                raise FailedPrecondition(f"invoice {quote(invoice_id)} is void", field="invoice_id")
            line_rows = (await store.lines_of(conn, [invoice_id]))[invoice_id]
            lines = [_stored_line(r) for r in line_rows]
            credited = await self._credited_splits(conn, invoice_id, len(lines))
            allocation = allocate_credit(lines, credited, amount, inv["currency_code"])
            parts = settle_credit(amount, amount_due(inv), requested)
            after_payment = inv["paid_time"] is not None
            note = await store.insert_credit_note(
                conn,
                {
                    "id": _new_id("cn"),
                    "builder_id": builder_id,
                    "invoice_id": invoice_id,
                    "amount": amount,
                    "reason": reason,
                    "after_payment": after_payment,
                    "allocation": [
                        [_s(s.provider_cost), _s(s.platform_fee), _s(s.builder_margin)] for s in allocation
                    ],
                    "settlement": parts.settlement.value,
                    "due_reduced": parts.due_reduced,
                    "wallet_credited": parts.wallet_credited,
                    "refunded": parts.refunded,
                },
            )
            if after_payment:
                parties = EarningsParties(builder_id, inv["app_id"], inv["customer_id"], invoice_id)
                entries = earnings_for_credit(lines, inv["currency_code"], parties, allocation)
                await store.append_earnings(conn, _earnings_rows(entries, note["id"]))
            if parts.wallet_credited > 0:
                # The wallet transaction names the invoice; the next close applies the balance as usual.
                await store.add_to_wallet(
                    conn, _new_id("wtx"), builder_id, inv["customer_id"], parts.wallet_credited, invoice_id
                )
            refund = None
            if parts.refunded > 0:
                refund = await refund_store.insert_refund(
                    conn,
                    {
                        "id": _new_id("rf"),
                        "builder_id": builder_id,
                        "customer_id": inv["customer_id"],
                        "invoice_id": invoice_id,
                        "credit_note_id": note["id"],
                        "currency_code": inv["currency_code"],
                        "amount": parts.refunded,
                        "state": RefundState.PENDING.value,
                    },
                )
            inv = await store.update_invoice(conn, invoice_id, {"credited": inv["credited"] + amount})
            inv = await self._maybe_paid(conn, inv, note["id"])
            log.info(
                "billing.credit_note.issued",
                invoice_id=invoice_id,
                credit_note_id=note["id"],
                amount=_s(amount),
                after_payment=after_payment,
                settlement=parts.settlement.value,
                due_reduced=_s(parts.due_reduced),
                wallet_credited=_s(parts.wallet_credited),
                refunded=_s(parts.refunded),
            )
            return CreditNoteReply(
                CreditNoteView(
                    note["id"],
                    invoice_id,
                    amount,
                    inv["currency_code"],
                    reason,
                    note["create_time"],
                    parts.settlement.value,
                    parts.due_reduced,
                    parts.wallet_credited,
                    parts.refunded,
                    refund["id"] if refund else "",
                ),
                await self._invoice_view(conn, inv),
                refund_view(refund) if refund else None,
            )

        body = {
            "builder_id": builder_id,
            "invoice_id": invoice_id,
            "amount": _s(amount),
            "currency": currency,
            "reason": reason,
        }
        if requested is not Settlement.NONE:
            # Only when given: a request without one keeps the fingerprint it had before settlements.
            body["settlement"] = requested.value
        return await self._idempotent("IssueCreditNote", builder_id, request_id, body, work, CreditNoteReply)
