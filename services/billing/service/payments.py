"""Payments: record a payment, void an invoice; the earnings a paid invoice produces (credit notes,
which use them, are service/credit_notes.py).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from billing import store
from billing.domain import (
    EarningsParties,
    EarningsReason,
    Split,
    earnings_for_credit,
    earnings_for_payment,
    void_allocation,
)
from billing.domain.text import quote
from billing.service._core import (
    ServiceCore,
    _money_amount,
    _new_id,
    _require,
    _stored_line,
    log,
)
from billing.service.earnings import _earnings_rows
from billing.service.views import (
    ZERO,
    InvoiceView,
    PaymentReply,
    _s,
    amount_due,
    payment_view,
)
from common.errors import (
    AlreadyExists,
    FailedPrecondition,
)


class Payments(ServiceCore):
    """Money in against invoices, and corrections."""

    async def _credited_splits(
        self, conn: AsyncConnection, invoice_id: str, n_lines: int, only_before_payment: bool = False
    ) -> list[Split]:
        totals = [Split(ZERO, ZERO, ZERO) for _ in range(n_lines)]
        for note in await store.credit_notes_of(conn, invoice_id):
            if only_before_payment and note["after_payment"]:
                continue
            for i, (pc, pf, bm) in enumerate(note["allocation"]):
                totals[i] = totals[i] + Split(Decimal(pc), Decimal(pf), Decimal(bm))
        return totals

    async def _maybe_paid(self, conn: AsyncConnection, inv: dict[str, Any], source_id: str) -> dict[str, Any]:
        """When wallet + payments + credits first cover the total, append the payment earnings."""
        if inv["paid_time"] is not None or inv["status"] != "finalized" or amount_due(inv) > 0:
            return inv
        lines = (await store.lines_of(conn, [inv["id"]]))[inv["id"]]
        credited = await self._credited_splits(conn, inv["id"], len(lines))
        parties = EarningsParties(inv["builder_id"], inv["app_id"], inv["customer_id"], inv["id"])
        entries = earnings_for_payment(
            [_stored_line(r) for r in lines], inv["currency_code"], parties, credited
        )
        await store.append_earnings(conn, _earnings_rows(entries, source_id))
        log.info(
            "billing.invoice.paid", invoice_id=inv["id"], builder_id=inv["builder_id"], entries=len(entries)
        )
        return await store.update_invoice(conn, inv["id"], {"paid_time": self.clock()})

    async def record_payment(
        self,
        request_id: str,
        builder_id: str,
        invoice_id: str,
        amount: Decimal,
        currency: str,
        reference: str,
    ) -> dict[str, Any]:
        _require(reference, "external_reference")

        async def work(conn: AsyncConnection) -> Any:
            inv = await self._invoice(conn, builder_id, invoice_id, for_update=True)
            prior = await store.get_payment_by_reference(conn, builder_id, reference)
            if prior is not None:
                if prior["invoice_id"] != invoice_id or prior["amount"] != amount:
                    raise AlreadyExists(
                        f"external_reference {quote(reference)} was recorded for another payment",
                        field="external_reference",
                    )
                return PaymentReply(
                    payment_view(prior, inv["currency_code"]), await self._invoice_view(conn, inv)
                )
            _money_amount(amount, currency, inv["currency_code"], "amount")
            if inv["status"] == "void":
                raise FailedPrecondition(
                    f"invoice {quote(invoice_id)} is void; nothing can be paid", field="invoice_id"
                )
            due = amount_due(inv)
            if amount > due:
                raise FailedPrecondition(f"amount {amount} exceeds the amount due {due}", field="amount")
            payment = await store.insert_payment(
                conn,
                {
                    "id": _new_id("pay"),
                    "builder_id": builder_id,
                    "invoice_id": invoice_id,
                    "amount": amount,
                    "external_reference": reference,
                },
            )
            inv = await store.update_invoice(conn, invoice_id, {"amount_paid": inv["amount_paid"] + amount})
            inv = await self._maybe_paid(conn, inv, payment["id"])
            log.info(
                "billing.payment.recorded", invoice_id=invoice_id, payment_id=payment["id"], amount=_s(amount)
            )
            return PaymentReply(
                payment_view(payment, inv["currency_code"]), await self._invoice_view(conn, inv)
            )

        body = {
            "builder_id": builder_id,
            "invoice_id": invoice_id,
            "amount": _s(amount),
            "currency": currency,
            "reference": reference,
        }
        return await self._idempotent("RecordPayment", builder_id, request_id, body, work, PaymentReply)

    async def void_invoice(
        self, request_id: str, builder_id: str, invoice_id: str, reason: str
    ) -> dict[str, Any]:
        _require(reason, "reason", max_len=1000)

        async def work(conn: AsyncConnection) -> Any:
            inv = await self._invoice(conn, builder_id, invoice_id, for_update=True)
            if inv["status"] == "void":
                raise FailedPrecondition(f"invoice {quote(invoice_id)} is already void", field="invoice_id")
            remaining = inv["total"] - inv["credited"]
            if inv["amount_paid"] > 0 and remaining > 0:
                raise FailedPrecondition(
                    f"invoice {quote(invoice_id)} has payments; issue a credit note for the remaining "
                    f"{_s(remaining)} {inv['currency_code']} before voiding it",
                    field="invoice_id",
                )
            if inv["paid_time"] is not None and remaining > 0:
                # Paid from the wallet alone: the earnings it produced are reversed.
                line_rows = (await store.lines_of(conn, [invoice_id]))[invoice_id]
                lines = [_stored_line(r) for r in line_rows]
                credited = await self._credited_splits(conn, invoice_id, len(lines))
                parties = EarningsParties(builder_id, inv["app_id"], inv["customer_id"], invoice_id)
                entries = earnings_for_credit(
                    lines,
                    inv["currency_code"],
                    parties,
                    void_allocation(lines, credited, inv["currency_code"]),
                    EarningsReason.VOID,
                )
                await store.append_earnings(conn, _earnings_rows(entries, invoice_id))
            refund = min(inv["wallet_applied"], remaining)
            if refund > 0:
                await store.add_to_wallet(
                    conn, _new_id("wtx"), builder_id, inv["customer_id"], refund, invoice_id
                )
            inv = await store.update_invoice(
                conn, invoice_id, {"status": "void", "void_time": self.clock(), "void_reason": reason}
            )
            log.info("billing.invoice.voided", invoice_id=invoice_id, builder_id=builder_id)
            return await self._invoice_view(conn, inv)

        body = {"builder_id": builder_id, "invoice_id": invoice_id, "reason": reason}
        return await self._idempotent("VoidInvoice", builder_id, request_id, body, work, InvoiceView)
