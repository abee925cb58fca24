"""Payouts' tables and queries: the only code that touches the payouts database.

- Amounts are NUMERIC(38, 9); the ledger never rounds (domain/money.py).
- `transfers` is append-only: rows are inserted with ON CONFLICT (id) DO NOTHING and never updated
  or deleted. `accounts.balance` caches the sum of an account's transfers, updated in the same
  transaction as the insert; Reconcile compares the two. A CHECK on accounts backs the bounds up.
- `holds` lists earnings still pending: operational state, deleted as each hold is released (the
  release transfer itself has a deterministic id, so a release is posted once either way).
- Lock order: a transaction locks the accounts it will change in one statement, ascending by id, so
  the feed consumer, hold releases and payout runs never deadlock one another.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    func,
    or_,
    select,
    text,
    tuple_,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from common.db import new_metadata
from common.idempotency import idempotency_table
from payouts.domain.ledger import BOUNDS, AccountKey, LedgerError, Purpose, Transfer, deltas, within_bound
from payouts.domain.money import ZERO

metadata = new_metadata()
idempotency_keys = idempotency_table(metadata)

AMOUNT = Numeric(38, 9)
# Limits shared with api.py: a payee id is a billing builder id (64) or "provider:" + 64.
PAYEE_ID_LEN = 80
TRANSFER_ID_LEN = 200
PAYOUT_ID_LEN = 160

payees = Table(
    "payees",
    metadata,
    Column("id", String(PAYEE_ID_LEN), primary_key=True),
    Column("currency_code", String(3), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("minimum_amount", AMOUNT, nullable=False),
    Column("method_reference", String(256), nullable=False, server_default=""),
    Column("hold_days", Integer, nullable=False),
    Column("schedule", String(16), nullable=False, server_default="monthly"),
    Column("create_time", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("update_time", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("minimum_amount >= 0", name="minimum_not_negative"),
    CheckConstraint("hold_days BETWEEN 0 AND 365", name="hold_days_range"),
    CheckConstraint("kind IN ('builder', 'provider')", name="kind_known"),
)

accounts = Table(
    "accounts",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("owner", String(PAYEE_ID_LEN), nullable=False),
    Column("currency_code", String(3), nullable=False),
    Column("purpose", String(16), nullable=False),
    Column("bound", String(16), nullable=False),
    Column("balance", AMOUNT, nullable=False, server_default="0"),
    UniqueConstraint("owner", "currency_code", "purpose"),
    CheckConstraint(
        "(bound = 'non_negative' AND balance >= 0) OR (bound = 'non_positive' AND balance <= 0) "
        "OR bound = 'none'",
        name="within_bound",
    ),
)

transfers = Table(
    "transfers",
    metadata,
    Column("id", String(TRANSFER_ID_LEN), primary_key=True),
    Column("seq", BigInteger, Identity(), nullable=False, unique=True),
    Column("debit_account_id", BigInteger, ForeignKey("accounts.id"), nullable=False),
    Column("credit_account_id", BigInteger, ForeignKey("accounts.id"), nullable=False),
    Column("amount", AMOUNT, nullable=False),
    Column("currency_code", String(3), nullable=False),
    Column("reason", String(24), nullable=False),
    Column("source_kind", String(24), nullable=False),
    Column("source_id", String(TRANSFER_ID_LEN), nullable=False),
    Column("corrects", String(TRANSFER_ID_LEN), ForeignKey("transfers.id"), nullable=True),
    # The payee whose accounts it touches; NULL for platform-only transfers. Filters use it.
    Column("payee_id", String(PAYEE_ID_LEN), nullable=True),
    Column("effective_time", DateTime(timezone=True), nullable=False),
    Column("available_time", DateTime(timezone=True), nullable=True),
    Column("post_time", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("amount > 0", name="amount_positive"),
    CheckConstraint("debit_account_id <> credit_account_id", name="two_accounts"),
    Index("ix_transfers_payee_time", "payee_id", "currency_code", "effective_time"),
    Index("ix_transfers_source_id", "source_id"),
    Index("ix_transfers_effective_time", "effective_time"),
)

holds = Table(
    "holds",
    metadata,
    Column("transfer_id", String(TRANSFER_ID_LEN), ForeignKey("transfers.id"), primary_key=True),
    Column("available_time", DateTime(timezone=True), nullable=False),
    Index("ix_holds_available_time_transfer_id", "available_time", "transfer_id"),
)

feed_entries = Table(
    "feed_entries",
    metadata,
    Column("sequence", BigInteger, primary_key=True, autoincrement=False),
    Column("builder_id", String(128), nullable=False),
    Column("app_id", String(128), nullable=False),
    Column("customer_id", String(128), nullable=False),
    Column("invoice_id", String(128), nullable=False),
    Column("line_position", Integer, nullable=False),
    Column("workflow", String(128), nullable=False),
    Column("meter_key", String(128), nullable=False),
    Column("kind", String(24), nullable=False),
    Column("reason", String(24), nullable=False),
    Column("amount", AMOUNT, nullable=False),
    Column("currency_code", String(3), nullable=False),
    Column("source_id", String(128), nullable=False),
    Column("create_time", DateTime(timezone=True), nullable=False),
    Column("transfer_id", String(TRANSFER_ID_LEN), nullable=True),
    Index("ix_feed_entries_builder_time", "builder_id", "currency_code", "create_time"),
    Index("ix_feed_entries_invoice", "invoice_id"),
)

feed_cursor = Table(
    "feed_cursor",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("page_token", Text, nullable=False, server_default=""),
    Column("last_sequence", BigInteger, nullable=False, server_default="0"),
    Column("update_time", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

payouts = Table(
    "payouts",
    metadata,
    Column("id", String(PAYOUT_ID_LEN), primary_key=True),
    Column("payee_id", String(PAYEE_ID_LEN), nullable=False),
    Column("currency_code", String(3), nullable=False),
    Column("period", String(7), nullable=False),
    Column("amount", AMOUNT, nullable=False),
    Column("available_consumed", AMOUNT, nullable=False),
    Column("clawback_offset", AMOUNT, nullable=False),
    Column("method_reference", String(256), nullable=False),
    Column("state", String(16), nullable=False),
    Column("external_reference", String(128), nullable=False, server_default=""),
    Column("failure_reason", String(500), nullable=False, server_default=""),
    Column("create_time", DateTime(timezone=True), nullable=False),
    Column("settle_time", DateTime(timezone=True), nullable=True),
    UniqueConstraint("payee_id", "currency_code", "period"),
    CheckConstraint("amount > 0", name="amount_positive"),
    CheckConstraint("amount = available_consumed - clawback_offset", name="amount_consumed"),
    CheckConstraint("state IN ('pending', 'paid', 'failed')", name="state_known"),
    Index("ix_payouts_period", "period", "payee_id", "currency_code"),
)

FEED = "billing.earnings"


def _rows(result: Any) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in result]


def _pg_type(column: Column) -> str:
    kind = column.type
    if isinstance(kind, Numeric):
        return "numeric"
    if isinstance(kind, BigInteger):
        return "bigint"
    if isinstance(kind, Integer):
        return "integer"
    if isinstance(kind, DateTime):
        return "timestamptz"
    return "text"


async def _bulk_insert(
    conn: AsyncConnection, table: Table, rows: list[dict[str, Any]], *, returning: str | None = None
) -> list[Any]:
    """INSERT ... SELECT FROM unnest(arrays) ON CONFLICT DO NOTHING: one statement per call whatever the
    row count, and nothing for SQLAlchemy to compile per row (a VALUES list of thousands of rows spends
    seconds in the compiler). Returns the `returning` column of the inserted rows."""
    if not rows:
        return []
    names = list(rows[0])
    cols = [table.c[n] for n in names]
    arrays = ", ".join(f"CAST(:{n} AS {_pg_type(c)}[])" for n, c in zip(names, cols, strict=True))
    sql = (
        f"INSERT INTO {table.name} ({', '.join(names)}) SELECT * FROM unnest({arrays}) "
        "ON CONFLICT DO NOTHING" + (f" RETURNING {returning}" if returning else "")
    )
    result = await conn.execute(text(sql), {n: [r[n] for r in rows] for n in names})
    return [r[0] for r in result] if returning else []


# ---- accounts and posting -------------------------------------------------------------------------


async def _account_ids(conn: AsyncConnection, keys: list[AccountKey]) -> dict[AccountKey, int]:
    # A join on unnest, not a tuple IN list: PostgreSQL turns a long IN list of rows into an OR chain it
    # checks for every row (quadratic at thousands of keys).
    rows = await conn.execute(
        text(
            "SELECT a.id, a.owner, a.currency_code, a.purpose FROM accounts a "
            "JOIN unnest(CAST(:o AS text[]), CAST(:c AS text[]), CAST(:p AS text[])) AS k(o, c, p) "
            "ON a.owner = k.o AND a.currency_code = k.c AND a.purpose = k.p"
        ),
        {"o": [k.owner for k in keys], "c": [k.currency for k in keys], "p": [k.purpose.value for k in keys]},
    )
    return {AccountKey(r.owner, r.currency_code, Purpose(r.purpose)): r.id for r in rows}


async def ensure_accounts(conn: AsyncConnection, keys: Iterable[AccountKey]) -> dict[AccountKey, int]:
    """The ids of the accounts, creating the missing ones. Read first: almost every posting touches
    accounts that exist, and an INSERT ... ON CONFLICT of thousands of existing keys is not free."""
    wanted = list(set(keys))
    if not wanted:
        return {}
    out = await _account_ids(conn, wanted)
    missing = [k for k in wanted if k not in out]
    if missing:
        await _bulk_insert(
            conn,
            accounts,
            [
                {"owner": k.owner, "currency_code": k.currency, "purpose": k.purpose.value,
                 "bound": BOUNDS[k.purpose].value}
                for k in missing
            ],
        )  # fmt: skip
        out.update(await _account_ids(conn, missing))
    return out


async def lock_accounts(conn: AsyncConnection, ids: Iterable[int]) -> dict[int, Decimal]:
    """Lock accounts ascending by id (the one lock order) and return their balances."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    rows = await conn.execute(
        text(
            "SELECT id, balance FROM accounts WHERE id = ANY(CAST(:ids AS bigint[])) ORDER BY id FOR UPDATE"
        ),
        {"ids": wanted},
    )
    return {r.id: r.balance for r in rows}


def _transfer_row(t: Transfer, ids: dict[AccountKey, int]) -> dict[str, Any]:
    return {
        "id": t.id,
        "debit_account_id": ids[t.debit],
        "credit_account_id": ids[t.credit],
        "amount": t.amount,
        "currency_code": t.currency,
        "reason": t.reason.value,
        "source_kind": t.source_kind,
        "source_id": t.source_id,
        "corrects": t.corrects,
        "payee_id": t.payee_id,
        "effective_time": t.effective_time,
        "available_time": t.available_time,
    }


async def post(conn: AsyncConnection, batch: Sequence[Transfer]) -> list[Transfer]:
    """Insert the transfers not yet posted and move the cached balances, all or nothing.

    Returns the transfers this call inserted; a replayed id is skipped (ledger rule 3). Raises
    LedgerError, before writing a balance, when an account would leave its bound (rule 5)."""
    if not batch:
        return []
    ids = await ensure_accounts(conn, [k for t in batch for k in (t.debit, t.credit)])
    # Lock first: a concurrent poster of the same ids waits here, then sees them as posted.
    balances = await lock_accounts(conn, ids.values())
    inserted = set(
        await _bulk_insert(conn, transfers, [_transfer_row(t, ids) for t in batch], returning="id")
    )
    fresh = [t for t in batch if t.id in inserted]
    change = deltas(fresh)
    for key, delta in change.items():
        after = balances[ids[key]] + delta
        if not within_bound(key, after):
            raise LedgerError(f"account {key} would be {after}, outside its bound; nothing was posted")
    moved = [(ids[k], d) for k, d in sorted(change.items(), key=lambda kv: ids[kv[0]]) if d != 0]
    if moved:
        await conn.execute(
            text(
                "UPDATE accounts SET balance = accounts.balance + d.delta "
                "FROM unnest(CAST(:ids AS bigint[]), CAST(:deltas AS numeric[])) AS d(id, delta) "
                "WHERE accounts.id = d.id"
            ),
            {"ids": [m[0] for m in moved], "deltas": [m[1] for m in moved]},
        )
    holds_rows = [
        {"transfer_id": t.id, "available_time": t.available_time}
        for t in fresh
        if t.available_time is not None
    ]
    await _bulk_insert(conn, holds, holds_rows)
    return fresh


async def balances_of(conn: AsyncConnection, owner: str, currency: str) -> dict[Purpose, Decimal]:
    rows = await conn.execute(
        select(accounts.c.purpose, accounts.c.balance).where(
            accounts.c.owner == owner, accounts.c.currency_code == currency
        )
    )
    return {Purpose(r.purpose): r.balance for r in rows}


async def owner_exists(conn: AsyncConnection, owner: str, currency: str) -> bool:
    row = await conn.execute(
        select(accounts.c.id).where(accounts.c.owner == owner, accounts.c.currency_code == currency).limit(1)
    )
    return row.first() is not None


# ---- holds ----------------------------------------------------------------------------------------


async def due_holds(
    conn: AsyncConnection,
    now: datetime,
    limit: int,
    after: tuple[datetime, str] | None = None,
    *,
    wait: bool = False,
) -> list[Transfer]:
    """Earnings whose hold has ended, oldest first, after the key `after` of the previous batch (a
    sweep walks the index instead of re-reading the rows it just deleted), locked. Background sweeps
    skip holds another sweep has locked and share the work; `wait` waits for them instead, so a payout
    run sees every hold due before it as released."""
    debit, credit = accounts.alias("d"), accounts.alias("c")
    q = (
        select(transfers, debit.c.owner.label("d_owner"), debit.c.purpose.label("d_purpose"),
               credit.c.owner.label("c_owner"), credit.c.purpose.label("c_purpose"))
        .select_from(
            holds.join(transfers, transfers.c.id == holds.c.transfer_id)
            .join(debit, debit.c.id == transfers.c.debit_account_id)
            .join(credit, credit.c.id == transfers.c.credit_account_id)
        )
        .where(holds.c.available_time <= now)
        .where(
            tuple_(holds.c.available_time, holds.c.transfer_id) > after if after is not None else text("true")
        )
        .order_by(holds.c.available_time, holds.c.transfer_id)
        .limit(limit)
        .with_for_update(of=holds, skip_locked=not wait)
    )  # fmt: skip
    return [_transfer_from_row(r) for r in _rows(await conn.execute(q))]


async def drop_holds(conn: AsyncConnection, transfer_ids: list[str]) -> None:
    if transfer_ids:
        await conn.execute(
            text("DELETE FROM holds WHERE transfer_id = ANY(CAST(:ids AS text[]))"), {"ids": transfer_ids}
        )


def _transfer_from_row(r: dict[str, Any]) -> Transfer:
    from payouts.domain.ledger import Reason

    cur = r["currency_code"]
    return Transfer(
        id=r["id"],
        debit=AccountKey(r["d_owner"], cur, Purpose(r["d_purpose"])),
        credit=AccountKey(r["c_owner"], cur, Purpose(r["c_purpose"])),
        amount=r["amount"],
        reason=Reason(r["reason"]),
        source_kind=r["source_kind"],
        source_id=r["source_id"],
        effective_time=r["effective_time"],
        payee_id=r["payee_id"],
        corrects=r["corrects"],
        available_time=r["available_time"],
    )


# ---- transfers listing ----------------------------------------------------------------------------


async def list_transfers(
    conn: AsyncConnection,
    *,
    owner: str | None,
    currency: str | None,
    purpose: Purpose | None,
    start: datetime | None,
    end: datetime | None,
    source_id: str | None,
    after_seq: int,
    limit: int,
) -> list[dict[str, Any]]:
    debit, credit = accounts.alias("d"), accounts.alias("c")
    q = select(
        transfers,
        debit.c.owner.label("d_owner"),
        debit.c.purpose.label("d_purpose"),
        credit.c.owner.label("c_owner"),
        credit.c.purpose.label("c_purpose"),
    ).select_from(
        transfers.join(debit, debit.c.id == transfers.c.debit_account_id).join(
            credit, credit.c.id == transfers.c.credit_account_id
        )
    )
    q = q.where(transfers.c.seq > after_seq)
    if owner is not None:
        q = q.where(or_(debit.c.owner == owner, credit.c.owner == owner))
    if currency is not None:
        q = q.where(transfers.c.currency_code == currency)
    if purpose is not None:
        if owner is not None:
            q = q.where(
                or_(
                    and_(debit.c.owner == owner, debit.c.purpose == purpose.value),
                    and_(credit.c.owner == owner, credit.c.purpose == purpose.value),
                )
            )
        else:
            q = q.where(or_(debit.c.purpose == purpose.value, credit.c.purpose == purpose.value))
    if start is not None and end is not None:
        q = q.where(transfers.c.effective_time >= start, transfers.c.effective_time < end)
    if source_id is not None:
        q = q.where(transfers.c.source_id == source_id)
    return _rows(await conn.execute(q.order_by(transfers.c.seq).limit(limit)))


# ---- payees ---------------------------------------------------------------------------------------


async def ensure_payees(
    conn: AsyncConnection,
    keys: Iterable[tuple[str, str, str]],
    default_minimum: Decimal,
    default_hold_days: int,
) -> dict[tuple[str, str], int]:
    """Create the payees not yet known with the default settings; return each one's hold days."""
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    await _bulk_insert(
        conn,
        payees,
        [
            {"id": p, "currency_code": c, "kind": k, "minimum_amount": default_minimum,
             "hold_days": default_hold_days, "method_reference": "", "schedule": "monthly"}
            for p, c, k in wanted
        ],
    )  # fmt: skip
    rows = await conn.execute(
        text(
            "SELECT p.id, p.currency_code, p.hold_days FROM payees p "
            "JOIN unnest(CAST(:i AS text[]), CAST(:c AS text[])) AS k(i, c) "
            "ON p.id = k.i AND p.currency_code = k.c"
        ),
        {"i": [p for p, _, _ in wanted], "c": [c for _, c, _ in wanted]},
    )
    return {(r.id, r.currency_code): r.hold_days for r in rows}


async def insert_payee(conn: AsyncConnection, values: dict[str, Any]) -> dict[str, Any] | None:
    row = (
        await conn.execute(insert(payees).values(**values).on_conflict_do_nothing().returning(payees))
    ).first()
    return dict(row._mapping) if row else None


async def update_payee(
    conn: AsyncConnection, payee_id: str, currency: str, values: dict[str, Any]
) -> dict | None:
    row = (
        await conn.execute(
            payees.update()
            .where(payees.c.id == payee_id, payees.c.currency_code == currency)
            .values(**values, update_time=func.now())
            .returning(payees)
        )
    ).first()
    return dict(row._mapping) if row else None


async def get_payee(conn: AsyncConnection, payee_id: str, currency: str) -> dict[str, Any] | None:
    row = (
        await conn.execute(select(payees).where(payees.c.id == payee_id, payees.c.currency_code == currency))
    ).first()
    return dict(row._mapping) if row else None


async def list_payees(conn: AsyncConnection, after: tuple[str, str] | None, limit: int) -> list[dict]:
    q = select(payees)
    if after is not None:
        q = q.where(tuple_(payees.c.id, payees.c.currency_code) > after)
    return _rows(await conn.execute(q.order_by(payees.c.id, payees.c.currency_code).limit(limit)))


# ---- the feed -------------------------------------------------------------------------------------


async def lock_cursor(conn: AsyncConnection) -> tuple[str, int]:
    """The feed cursor, locked until the transaction ends: one page is applied at a time, everywhere."""
    await conn.execute(insert(feed_cursor).values(name=FEED).on_conflict_do_nothing())
    row = (await conn.execute(select(feed_cursor).where(feed_cursor.c.name == FEED).with_for_update())).one()
    return row.page_token, row.last_sequence


async def read_cursor(conn: AsyncConnection) -> int:
    row = (await conn.execute(select(feed_cursor.c.last_sequence).where(feed_cursor.c.name == FEED))).first()
    return row.last_sequence if row else 0


async def save_cursor(conn: AsyncConnection, token: str, last_sequence: int) -> None:
    await conn.execute(
        feed_cursor.update()
        .where(feed_cursor.c.name == FEED)
        .values(page_token=token, last_sequence=last_sequence, update_time=func.now())
    )


async def insert_feed_entries(conn: AsyncConnection, rows: list[dict[str, Any]]) -> int:
    return len(await _bulk_insert(conn, feed_entries, rows, returning="sequence"))


# ---- payouts --------------------------------------------------------------------------------------


async def advisory_lock(conn: AsyncConnection, key: str) -> None:
    """A transaction-scoped PostgreSQL advisory lock: one payout run per period across replicas."""
    await conn.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"), {"k": key})


async def payout_candidates(conn: AsyncConnection, period: str) -> list[dict[str, Any]]:
    """Payees without a payout for the period, with their available and clawback balances, after
    locking every available, clawback and paid_out account ascending by id."""
    await conn.execute(
        select(accounts.c.id)
        .where(accounts.c.purpose.in_(["available", "clawback", "paid_out"]))
        .order_by(accounts.c.id)
        .with_for_update()
    )
    avail, claw = accounts.alias("a"), accounts.alias("k")
    q = (
        select(
            payees.c.id, payees.c.currency_code, payees.c.minimum_amount, payees.c.method_reference,
            func.coalesce(avail.c.balance, 0).label("available"),
            func.coalesce(claw.c.balance, 0).label("clawback"),
        )
        .select_from(
            payees.join(
                avail,
                and_(avail.c.owner == payees.c.id, avail.c.currency_code == payees.c.currency_code,
                     avail.c.purpose == "available"),
            ).outerjoin(
                claw,
                and_(claw.c.owner == payees.c.id, claw.c.currency_code == payees.c.currency_code,
                     claw.c.purpose == "clawback"),
            )
        )
        .where(avail.c.balance > 0)
        .where(
            ~select(payouts.c.id)
            .where(payouts.c.payee_id == payees.c.id, payouts.c.currency_code == payees.c.currency_code,
                   payouts.c.period == period)
            .exists()
        )
        .order_by(payees.c.id, payees.c.currency_code)
    )  # fmt: skip
    return _rows(await conn.execute(q))


async def insert_payouts(conn: AsyncConnection, rows: list[dict[str, Any]]) -> set[str]:
    return set(await _bulk_insert(conn, payouts, rows, returning="id"))


async def get_payout(conn: AsyncConnection, payout_id: str, *, for_update: bool = False) -> dict | None:
    q = select(payouts).where(payouts.c.id == payout_id)
    if for_update:
        q = q.with_for_update()
    row = (await conn.execute(q)).first()
    return dict(row._mapping) if row else None


async def set_payout_state(conn: AsyncConnection, payout_id: str, values: dict[str, Any]) -> dict:
    row = (
        await conn.execute(
            payouts.update().where(payouts.c.id == payout_id).values(**values).returning(payouts)
        )
    ).one()
    return dict(row._mapping)


async def period_totals(conn: AsyncConnection, period: str) -> tuple[int, list[tuple[str, Decimal]]]:
    rows = (
        await conn.execute(
            select(payouts.c.currency_code, func.count(), func.sum(payouts.c.amount))
            .where(payouts.c.period == period)
            .group_by(payouts.c.currency_code)
            .order_by(payouts.c.currency_code)
        )
    ).all()
    return sum(r[1] for r in rows), [(r[0], r[2]) for r in rows]


async def list_payouts(
    conn: AsyncConnection,
    *,
    payee_id: str | None,
    period: str | None,
    state: str | None,
    after: tuple[str, str, str] | None,
    limit: int,
) -> list[dict[str, Any]]:
    q = select(payouts)
    if payee_id is not None:
        q = q.where(payouts.c.payee_id == payee_id)
    if period is not None:
        q = q.where(payouts.c.period == period)
    if state is not None:
        q = q.where(payouts.c.state == state)
    if after is not None:
        q = q.where(tuple_(payouts.c.period, payouts.c.payee_id, payouts.c.currency_code) > after)
    order = (payouts.c.period, payouts.c.payee_id, payouts.c.currency_code)
    return _rows(await conn.execute(q.order_by(*order).limit(limit)))


async def payouts_of_period(conn: AsyncConnection, period: str) -> list[dict[str, Any]]:
    return _rows(
        await conn.execute(
            select(payouts)
            .where(payouts.c.period == period)
            .order_by(payouts.c.payee_id, payouts.c.currency_code)
        )
    )


# ---- statements -----------------------------------------------------------------------------------


async def entry_facts(
    conn: AsyncConnection,
    *,
    builder_id: str | None,
    provider: bool,
    currency: str,
    start: datetime,
    end: datetime,
) -> list[dict[str, Any]]:
    q = select(
        feed_entries.c.kind,
        feed_entries.c.app_id,
        feed_entries.c.customer_id,
        feed_entries.c.workflow,
        feed_entries.c.meter_key,
        feed_entries.c.amount,
    ).where(
        feed_entries.c.currency_code == currency,
        feed_entries.c.create_time >= start,
        feed_entries.c.create_time < end,
    )
    q = (
        q.where(feed_entries.c.kind == "provider_cost")
        if provider
        else q.where(feed_entries.c.builder_id == builder_id)
    )
    return _rows(await conn.execute(q))


async def payee_flows(
    conn: AsyncConnection, payee_id: str, currency: str, start: datetime, end: datetime | None
) -> dict[str, Decimal]:
    """Sums of the payee's transfers by reason, effective in [start, end) (start None: from the beginning)."""
    q = (
        select(transfers.c.reason, func.sum(transfers.c.amount))
        .where(transfers.c.payee_id == payee_id, transfers.c.currency_code == currency)
        .group_by(transfers.c.reason)
    )
    if start is not None:
        q = q.where(transfers.c.effective_time >= start)
    if end is not None:
        q = q.where(transfers.c.effective_time < end)
    return {r[0]: r[1] for r in (await conn.execute(q)).all()}


# ---- reconcile ------------------------------------------------------------------------------------


async def balance_totals(conn: AsyncConnection) -> dict[str, Decimal]:
    rows = await conn.execute(
        select(accounts.c.currency_code, func.sum(accounts.c.balance)).group_by(accounts.c.currency_code)
    )
    return {r[0]: r[1] for r in rows}


async def balances_vs_transfers(conn: AsyncConnection) -> dict[str, tuple[Decimal, Decimal]]:
    """Per currency: (sum of |cached balance - transfer sum| over accounts, 0). A sum of absolute
    differences, so two wrong accounts cannot cancel out."""
    rows = await conn.execute(
        text(
            "WITH moves AS ("
            "  SELECT credit_account_id AS id, amount FROM transfers"
            "  UNION ALL SELECT debit_account_id, -amount FROM transfers"
            "), sums AS (SELECT id, sum(amount) AS total FROM moves GROUP BY id) "
            "SELECT a.currency_code, sum(abs(a.balance - coalesce(s.total, 0))) "
            "FROM accounts a LEFT JOIN sums s ON s.id = a.id GROUP BY a.currency_code"
        )
    )
    return {r[0]: (r[1], ZERO) for r in rows}


async def payout_consumption(conn: AsyncConnection, period: str) -> dict[str, tuple[Decimal, Decimal]]:
    """Per currency: (sum of payout amounts, available consumed by the run's transfers less offsets)."""
    rows = await conn.execute(
        text(
            "SELECT p.currency_code, sum(p.amount), "
            "  sum(coalesce((SELECT sum(CASE WHEN t.reason = 'payout' THEN t.amount ELSE 0 END) "
            "   FROM transfers t WHERE t.source_id = p.id AND t.reason IN ('payout')), 0)) "
            "FROM payouts p WHERE p.period = :period GROUP BY p.currency_code"
        ),
        {"period": period},
    )
    return {r[0]: (r[1], r[2]) for r in rows}


async def offsets_vs_payouts(conn: AsyncConnection, period: str) -> dict[str, tuple[Decimal, Decimal]]:
    """Per currency: (sum of the payouts' recorded clawback offsets, sum of their offset transfers)."""
    rows = await conn.execute(
        text(
            "SELECT p.currency_code, sum(p.clawback_offset), "
            "  sum(coalesce((SELECT sum(t.amount) FROM transfers t "
            "   WHERE t.source_id = p.id AND t.reason = 'clawback_offset'), 0)) "
            "FROM payouts p WHERE p.period = :period GROUP BY p.currency_code"
        ),
        {"period": period},
    )
    return {r[0]: (r[1], r[2]) for r in rows}


async def builders_seen(conn: AsyncConnection) -> list[str]:
    rows = await conn.execute(
        select(feed_entries.c.builder_id).distinct().order_by(feed_entries.c.builder_id)
    )
    return [r[0] for r in rows]


async def applied_by_invoice(conn: AsyncConnection, invoice_ids: list[str]) -> dict[str, dict[str, Decimal]]:
    """Applied entries per invoice and kind."""
    out: dict[str, dict[str, Decimal]] = defaultdict(dict)
    for i in range(0, len(invoice_ids), 5000):
        rows = await conn.execute(
            text(
                "SELECT invoice_id, kind, sum(amount) FROM feed_entries "
                "WHERE invoice_id = ANY(CAST(:ids AS text[])) GROUP BY invoice_id, kind"
            ),
            {"ids": invoice_ids[i : i + 5000]},
        )
        for r in rows:
            out[r[0]][r[1]] = r[2]
    return dict(out)
