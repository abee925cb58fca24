"""Earnings: the append-only feed payouts reads by cursor, and the rows it is made of."""

from __future__ import annotations

from typing import Any

from billing import store
from billing.service._core import (
    ServiceCore,
    _cursor,
)
from billing.service.views import (
    earnings_view,
)
from common.paging import encode_token, page_size


def _earnings_rows(entries: Any, source_id: str, line_positions: dict[int, int] | None = None) -> list[dict]:
    return [
        {
            "builder_id": e.builder_id,
            "app_id": e.app_id,
            "customer_id": e.customer_id,
            "invoice_id": e.invoice_id,
            "line_position": e.line_index + 1,
            "workflow": e.workflow,
            "meter_key": e.meter_key or "",
            "kind": e.kind.value,
            "reason": e.reason.value,
            "currency_code": e.currency,
            "amount": e.amount,
            "source_id": source_id,
        }
        for e in entries
    ]


# The largest amount an invoice line or total may carry: amounts go out as Money, whose units are an
# int64 (about 9.2 x 10^18), and are stored as NUMERIC(38, 9). Quantities are stored in the same type


class Earnings(ServiceCore):
    """The earnings feed."""

    async def list_earnings(self, builder_id: str, size: int, token: str) -> tuple[list[dict], str]:
        limit = page_size(size)
        cursor = _cursor(token, {"s": int})
        after = cursor["s"] if cursor else 0
        async with self.engine.connect() as conn:
            rows = await store.list_earnings(conn, builder_id or None, after, limit)
        last = rows[-1]["sequence"] if rows else after
        return [earnings_view(r) for r in rows], encode_token({"s": last})
