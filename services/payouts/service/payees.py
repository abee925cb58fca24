"""Payees and reading the ledger: balances and transfers."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from common.errors import AlreadyExists, InvalidArgument, NotFound
from common.paging import decode_token, encode_token, page_size
from payouts import store
from payouts.domain.ledger import PAYEE_PURPOSES, PLATFORM, PLATFORM_PURPOSES, Purpose
from payouts.domain.money import ZERO
from payouts.domain.periods import Period
from payouts.service.base import Base, dec, iso, scope


@dataclass(frozen=True)
class PayeeInput:
    payee_id: str
    currency: str
    kind: str
    minimum: Decimal
    method_reference: str
    hold_days: int
    schedule: str


def payee_view(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "payee_id": row["id"],
        "currency_code": row["currency_code"],
        "kind": row["kind"],
        "minimum_amount": dec(row["minimum_amount"]),
        "method_reference": row["method_reference"],
        "hold_days": row["hold_days"],
        "schedule": row["schedule"],
        "create_time": iso(row["create_time"]),
        "update_time": iso(row["update_time"]),
    }


def _token_int(cursor: dict[str, Any] | None, key: str) -> Any:
    if cursor is None:
        return None
    value = cursor.get(key)
    if value is None:
        raise InvalidArgument("page_token is not a token this service issued", field="page_token")
    return value


class Payees(Base):
    async def create_payee(self, request_id: str, p: PayeeInput) -> dict[str, Any]:
        body = p.__dict__ | {"minimum": dec(p.minimum)}

        async def work(conn: Any) -> dict[str, Any]:
            row = await store.insert_payee(
                conn,
                {
                    "id": p.payee_id,
                    "currency_code": p.currency,
                    "kind": p.kind,
                    "minimum_amount": p.minimum,
                    "method_reference": p.method_reference,
                    "hold_days": p.hold_days,
                    "schedule": p.schedule,
                },
            )
            if row is None:
                raise AlreadyExists(
                    f"payee {p.payee_id} in {p.currency} already exists; use UpdatePayee",
                    field="payee.payee_id",
                )
            return payee_view(row)

        return await self.idempotent(scope("CreatePayee", p.payee_id), request_id, body, work)

    async def update_payee(self, request_id: str, p: PayeeInput) -> dict[str, Any]:
        body = p.__dict__ | {"minimum": dec(p.minimum)}

        async def work(conn: Any) -> dict[str, Any]:
            row = await store.update_payee(
                conn,
                p.payee_id,
                p.currency,
                {
                    "minimum_amount": p.minimum,
                    "method_reference": p.method_reference,
                    "hold_days": p.hold_days,
                    "schedule": p.schedule,
                },
            )
            if row is None:
                raise NotFound(f"no payee {p.payee_id} in {p.currency}", field="payee.payee_id")
            return payee_view(row)

        return await self.idempotent(scope("UpdatePayee", p.payee_id), request_id, body, work)

    async def get_payee(self, payee_id: str, currency: str) -> dict[str, Any]:
        async with self.engine.connect() as conn:
            row = await store.get_payee(conn, payee_id, currency)
        if row is None:
            raise NotFound(f"no payee {payee_id} in {currency}", field="payee_id")
        return payee_view(row)

    async def list_payees(self, size: int, token: str) -> tuple[list[dict[str, Any]], str]:
        limit = page_size(size)
        cursor = decode_token(token)
        after = None
        if cursor is not None:
            after = (_token_int(cursor, "p"), _token_int(cursor, "c"))
            if not all(isinstance(x, str) for x in after):
                raise InvalidArgument("page_token is not a token this service issued", field="page_token")
        async with self.engine.connect() as conn:
            rows = await store.list_payees(conn, after, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        next_token = encode_token({"p": rows[-1]["id"], "c": rows[-1]["currency_code"]}) if more else ""
        return [payee_view(r) for r in rows], next_token

    async def get_balance(self, owner: str, currency: str) -> dict[Purpose, Decimal]:
        async with self.engine.connect() as conn:
            balances = await store.balances_of(conn, owner, currency)
            if not balances and owner != PLATFORM and await store.get_payee(conn, owner, currency) is None:
                raise NotFound(f"no payee {owner} in {currency}", field="payee_id")
        purposes = PLATFORM_PURPOSES if owner == PLATFORM else PAYEE_PURPOSES
        return {p: balances.get(p, ZERO) for p in purposes}

    async def list_transfers(
        self,
        *,
        owner: str | None,
        currency: str | None,
        purpose: Purpose | None,
        period: Period | None,
        source_id: str | None,
        size: int,
        token: str,
    ) -> tuple[list[dict[str, Any]], str]:
        limit = page_size(size)
        cursor = decode_token(token)
        filters = [owner, currency, purpose and purpose.value, period and str(period), source_id]
        after = 0
        if cursor is not None:
            after = _token_int(cursor, "s")
            # A token carries the filters it was issued for: reusing it with others is a caller error.
            if not isinstance(after, int) or cursor.get("f") != filters:
                raise InvalidArgument(
                    "page_token is not a token this service issued for these filters", field="page_token"
                )
        async with self.engine.connect() as conn:
            rows = await store.list_transfers(
                conn,
                owner=owner,
                currency=currency,
                purpose=purpose,
                start=period.start if period else None,
                end=period.end if period else None,
                source_id=source_id,
                after_seq=after,
                limit=limit + 1,
            )
        more = len(rows) > limit
        rows = rows[:limit]
        next_token = encode_token({"s": rows[-1]["seq"], "f": filters}) if more else ""
        return rows, next_token
