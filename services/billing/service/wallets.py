"""Wallets: a customer's prepaid balance, topped up and read."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from billing import store
from billing.domain.text import quote
from billing.service._core import (
    MAX_WALLET_BALANCE,
    ServiceCore,
    _money_amount,
    _new_id,
    _require,
    log,
)
from billing.service.views import (
    WalletTransactionView,
    WalletView,
    _s,
)
from common.errors import (
    FailedPrecondition,
    NotFound,
)


class Wallets(ServiceCore):
    """Prepaid balances."""

    async def top_up_wallet(
        self, request_id: str, builder_id: str, customer_id: str, amount: Decimal, currency: str
    ) -> dict[str, Any]:
        _require(builder_id, "builder_id")
        _require(customer_id, "customer_id")

        async def work(conn: AsyncConnection) -> Any:
            customer = await store.get_customer(conn, builder_id, customer_id)
            if customer is None:
                raise NotFound(f"customer {quote(customer_id)} not found", field="customer_id")
            _money_amount(amount, currency, customer["currency_code"], "amount")
            balance = await store.add_to_wallet(conn, _new_id("wtx"), builder_id, customer_id, amount, None)
            if balance > MAX_WALLET_BALANCE:
                # Raised inside the transaction: the top-up and its wallet row roll back together.
                raise FailedPrecondition(
                    f"the top-up would take the wallet to {_s(balance)}, above the maximum balance of "
                    f"{MAX_WALLET_BALANCE:,}",
                    field="amount",
                )
            log.info(
                "billing.wallet.topped_up", builder_id=builder_id, customer_id=customer_id, amount=_s(amount)
            )
            return await self._wallet(conn, builder_id, customer)

        body = {
            "builder_id": builder_id,
            "customer_id": customer_id,
            "amount": _s(amount),
            "currency": currency,
        }
        return await self._idempotent("TopUpWallet", builder_id, request_id, body, work, WalletView)

    async def _wallet(
        self, conn: AsyncConnection, builder_id: str, customer: dict[str, Any]
    ) -> dict[str, Any]:
        balance, txs = await store.get_wallet(conn, builder_id, customer["id"])
        return WalletView(
            builder_id,
            customer["id"],
            customer["currency_code"],
            balance,
            tuple(
                WalletTransactionView(t["id"], t["amount"], t["invoice_id"] or "", t["create_time"])
                for t in txs
            ),
        )

    async def get_wallet(self, builder_id: str, customer_id: str) -> dict[str, Any]:
        _require(builder_id, "builder_id")
        _require(customer_id, "customer_id")
        async with self.engine.connect() as conn:
            customer = await store.get_customer(conn, builder_id, customer_id)
            if customer is None:
                raise NotFound(f"customer {quote(customer_id)} not found", field="customer_id")
            return await self._wallet(conn, builder_id, customer)
