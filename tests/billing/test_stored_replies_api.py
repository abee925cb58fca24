"""Replies stored with a request id keep the JSON shape billing has always written (decimals as plain
strings, times as ISO strings in UTC), and a reply stored by an earlier version is what a retry
returns now: the typed views are converted at the storage boundary only."""

from __future__ import annotations

import json
from decimal import Decimal

import asyncpg
from billing_kit import dec, rid, usd

from common.db import libpq_url
from common.idempotency import builder_scope, fingerprint
from tollgate.billing.v1 import billing_pb2 as bpb

BUILDER = "stored-replies"


async def _stored(database_url: str, rpc: str, request_id: str) -> dict:
    conn = await asyncpg.connect(libpq_url(database_url))
    try:
        raw = await conn.fetchval(
            "SELECT reply FROM idempotency_keys WHERE scope = $1 AND request_id = $2",
            builder_scope(rpc, BUILDER),
            request_id,
        )
    finally:
        await conn.close()
    return json.loads(raw)


async def test_a_top_up_reply_is_stored_as_plain_strings_and_a_retry_returns_it(stack) -> None:
    b = stack.billing
    await b.CreateCustomer(
        bpb.CreateCustomerRequest(
            request_id=rid(),
            customer=bpb.Customer(id="c1", builder_id=BUILDER, currency_code="USD", display_name="C1"),
        )
    )
    request = bpb.TopUpWalletRequest(
        request_id=rid(), builder_id=BUILDER, customer_id="c1", amount=usd("12.50")
    )
    first = await b.TopUpWallet(request)
    stored = await _stored(stack.database_url, "TopUpWallet", request.request_id)
    [tx] = stored["transactions"]
    assert stored["balance"] == "12.5" and tx["amount"] == "12.5" and tx["invoice_id"] == ""
    assert tx["create_time"].endswith("+00:00")
    assert sorted(stored) == ["balance", "builder_id", "currency_code", "customer_id", "transactions"]
    assert await b.TopUpWallet(request) == first
    wallet = await b.GetWallet(bpb.GetWalletRequest(builder_id=BUILDER, customer_id="c1"))
    assert dec(wallet.wallet.balance) == Decimal("12.50")  # the retry topped up nothing


async def test_a_reply_stored_by_an_earlier_version_is_returned_on_retry(stack) -> None:
    # A top-up of 7.25 for a customer this database never had, as an earlier billing stored it.
    legacy = {
        "builder_id": BUILDER,
        "customer_id": "gone",
        "currency_code": "USD",
        "balance": "7.25",
        "transactions": [
            {
                "id": "wtx_legacy",
                "amount": "7.25",
                "invoice_id": "",
                "create_time": "2026-01-02T03:04:05+00:00",
            }
        ],
    }
    request_id = rid()
    body = {"builder_id": BUILDER, "customer_id": "gone", "amount": "7.25", "currency": "USD"}
    conn = await asyncpg.connect(libpq_url(stack.database_url))
    try:
        await conn.execute(
            "INSERT INTO idempotency_keys (scope, request_id, fingerprint, reply) VALUES ($1, $2, $3, $4)",
            builder_scope("TopUpWallet", BUILDER),
            request_id,
            fingerprint(body),
            json.dumps(legacy),
        )
    finally:
        await conn.close()
    again = await stack.billing.TopUpWallet(
        bpb.TopUpWalletRequest(
            request_id=request_id, builder_id=BUILDER, customer_id="gone", amount=usd("7.25")
        )
    )
    assert again.wallet.customer_id == "gone"
    assert dec(again.wallet.balance) == Decimal("7.25")
    [tx] = again.wallet.transactions
    assert tx.id == "wtx_legacy" and dec(tx.amount) == Decimal("7.25")
    assert tx.create_time.ToJsonString() == "2026-01-02T03:04:05Z"
