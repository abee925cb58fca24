"""Refunds: money owed back to a customer for a credit note settled as REFUND (service/credit_notes.py
records them PENDING). The operator marks each one PAID, with the processor's reference, or FAILED, with
a reason: a failed refund's amount is credited to the customer's wallet in the same transaction, so
nothing owed is lost (domain/credit.py states the moves).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from billing import store
from billing.domain.credit import RefundState, check_move, check_outcome
from billing.domain.text import quote
from billing.service._core import (
    _MAX_TIME,
    _MIN_TIME,
    ServiceCore,
    _cursor,
    _new_id,
    _not_our_token,
    _require,
    log,
)
from billing.service.views import RefundView, _s, _t, refund_view
from billing.store import refunds as refund_store
from common.errors import InvalidArgument, NotFound
from common.paging import encode_token, page_size


def _state(value: str, field: str) -> RefundState:
    try:
        return RefundState(value)
    except ValueError:
        raise InvalidArgument(f"{field} has no value {quote(value)}", field=field) from None


class Refunds(ServiceCore):
    """Refunds listed and marked."""

    async def list_refunds(
        self, builder_id: str, customer_id: str, state: str, size: int, token: str
    ) -> tuple[list[RefundView], str]:
        _require(builder_id, "builder_id")
        if state:
            _state(state, "state")
        limit = page_size(size)
        cursor = _cursor(token, {"t": str, "id": str})
        before = None
        if cursor:
            try:
                time = datetime.fromisoformat(cursor["t"])
            except ValueError:
                raise _not_our_token() from None
            if time.tzinfo is None or not _MIN_TIME <= time < _MAX_TIME:
                raise _not_our_token()
            before = (time, cursor["id"])
        async with self.engine.connect() as conn:
            rows = await refund_store.list_refunds(
                conn, builder_id, customer_id or None, state or None, before, limit + 1
            )
        more = len(rows) > limit
        rows = rows[:limit]
        token_out = encode_token({"t": _t(rows[-1]["create_time"]), "id": rows[-1]["id"]}) if more else ""
        return [refund_view(r) for r in rows], token_out

    async def mark_refund(
        self,
        request_id: str,
        builder_id: str,
        refund_id: str,
        state: str,
        external_reference: str,
        failure_reason: str,
    ) -> RefundView:
        _require(builder_id, "builder_id")
        _require(refund_id, "refund_id", max_len=64)
        target = _state(state, "state")
        check_outcome(target, external_reference, failure_reason)

        async def work(conn: AsyncConnection) -> Any:
            refund = await refund_store.get_refund(conn, builder_id, refund_id, for_update=True)
            if refund is None:
                raise NotFound(f"refund {quote(refund_id)} not found", field="refund_id")
            check_move(RefundState(refund["state"]))
            if target is RefundState.PAID:
                refund = await refund_store.update_refund(
                    conn, refund_id, {"state": target.value, "external_reference": external_reference}
                )
            else:
                refund = await refund_store.update_refund(
                    conn, refund_id, {"state": target.value, "failure_reason": failure_reason}
                )
                # Not paid back: the customer keeps the money as prepaid balance, named by the invoice.
                await store.add_to_wallet(
                    conn,
                    _new_id("wtx"),
                    builder_id,
                    refund["customer_id"],
                    refund["amount"],
                    refund["invoice_id"],
                )
            log.info(
                "billing.refund.marked",
                builder_id=builder_id,
                refund_id=refund_id,
                state=target.value,
                amount=_s(refund["amount"]),
            )
            return refund_view(refund)

        body = {
            "builder_id": builder_id,
            "refund_id": refund_id,
            "state": target.value,
            "external_reference": external_reference,
            "failure_reason": failure_reason,
        }
        return await self._idempotent("MarkRefund", builder_id, request_id, body, work, RefundView)
