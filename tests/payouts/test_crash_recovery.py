"""`python -m payouts` as a real process, killed with SIGKILL mid-work and restarted.

- RunPayouts killed mid-run (a few times, at random points), then run to the end: exactly one payout
  per payee and period, each equal to the available balance it consumed, and Reconcile clean.
- The feed consumer killed mid-page while it catches up with a real billing: every entry applied
  exactly once, the cursor at billing's last entry, the ledger balanced.

Kept to a few kills each (seconds, not minutes); the rules are also covered by the state machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import socket
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path

import asyncpg
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from payouts_kit import (
    billing_feed,
    close_and_pay,
    dec,
    ended_months,
    ingest,
    rid,
    set_up_builder,
    usage_events,
)

from common.db import create_engine, libpq_url
from payouts import store
from payouts.domain.ledger import EntryKind, FeedEntry, entry_transfer, release_transfer
from payouts.domain.periods import Period
from tests.conftest import auth_channel, security_env
from tests.payouts.conftest import payouts_database
from tollgate.payouts.v1 import payouts_pb2 as ppb
from tollgate.payouts.v1 import payouts_pb2_grpc

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
KILLS = 3


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def start_process(
    database_url: str, log_path: Path, *, wait: bool = True, **settings: str
) -> tuple[asyncio.subprocess.Process, str]:
    port = _port()
    env = dict(os.environ)
    env.update(
        PAYOUTS_DATABASE_URL=database_url,
        PAYOUTS_GRPC_ADDRESS=f"127.0.0.1:{port}",
        PAYOUTS_METRICS_PORT="off",
        PAYOUTS_LOG_LEVEL="INFO",
        **{f"PAYOUTS_{k.upper()}": v for k, v in settings.items()},
        **security_env("payouts"),
    )
    log = log_path.open("ab")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "payouts", cwd=REPO, env=env, stdout=log, stderr=log
    )
    log.close()
    address = f"127.0.0.1:{port}"
    if not wait:
        return proc, address
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    async with auth_channel(address) as ch:
        health = health_pb2_grpc.HealthStub(ch)
        while loop.time() < deadline:
            if proc.returncode is not None:
                raise AssertionError(f"payouts exited with {proc.returncode}: {_tail(log_path)}")
            with contextlib.suppress(grpc.aio.AioRpcError):
                answer = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    return proc, address
            await asyncio.sleep(0.05)
    raise AssertionError(f"payouts never became SERVING: {_tail(log_path)}")


def _tail(path: Path) -> str:
    return path.read_text()[-2000:]


async def kill(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGKILL)
    await proc.wait()


async def seed_available(database_url: str, payees: int) -> dict[str, D]:
    """Available balances for `payees` builders, posted through the store as the feed would."""
    engine = create_engine(database_url, pool_size=2)
    when = datetime.now(UTC) - timedelta(days=1)
    amounts = {f"builder-{i:05d}": D(10 + i % 990) + D(i % 100) / 100 for i in range(payees)}
    try:
        async with engine.begin() as conn:
            await store.ensure_payees(conn, [(p, "USD", "builder") for p in amounts], D(50), 0)
            earned = []
            for seq, (payee, amount) in enumerate(amounts.items(), start=1):
                entry = FeedEntry(
                    seq, payee, "app", "c", "inv", 0, "", "", EntryKind.BUILDER_MARGIN, "payment",
                    amount, "USD", "pay", when,
                )  # fmt: skip
                earned.append(entry_transfer(entry, hold_days=0))
            await store.post(conn, earned)
            await store.post(conn, [release_transfer(t, when) for t in earned])
            await store.drop_holds(conn, [t.id for t in earned])
    finally:
        await engine.dispose()
    return amounts


async def test_run_payouts_killed_mid_run_and_restarted_pays_each_payee_once(make_database, tmp_path):
    url = await payouts_database(make_database)
    amounts = await seed_available(url, 3000)
    expected = {p: a for p, a in amounts.items() if a >= 50}
    period = str(Period.of(datetime.now(UTC)))
    log_path = tmp_path / "payouts.log"
    dead = f"127.0.0.1:{_port()}"
    common = {"billing_address": dead, "metering_address": dead, "feed_poll_seconds": "0"}
    db = await asyncpg.connect(libpq_url(url))
    try:
        for attempt in range(KILLS):
            proc, address = await start_process(url, log_path, **common)
            async with auth_channel(address) as ch:
                call = asyncio.ensure_future(
                    payouts_pb2_grpc.PayoutsServiceStub(ch).RunPayouts(
                        ppb.RunPayoutsRequest(request_id=f"run-{attempt}", period=period)
                    )
                )
                await asyncio.sleep(random.uniform(0.05, 0.4))
                await kill(proc)
                with contextlib.suppress(grpc.aio.AioRpcError):
                    await call
            # A run is one transaction: after a kill there is all of it or none of it.
            assert await db.fetchval("SELECT count(*) FROM payouts") in (0, len(expected))

        proc, address = await start_process(url, log_path, **common)
        try:
            async with auth_channel(address) as ch:
                stub = payouts_pb2_grpc.PayoutsServiceStub(ch)
                await stub.RunPayouts(ppb.RunPayoutsRequest(request_id="run-final", period=period))
                again = await stub.RunPayouts(ppb.RunPayoutsRequest(request_id="run-again", period=period))
                assert again.created_count == 0 and again.payout_count == len(expected)
                report = await stub.Reconcile(ppb.ReconcileRequest(period=period))
                assert report.clean, [c for c in report.checks if not c.ok]
        finally:
            await kill(proc)
        rows = await db.fetch(
            "SELECT payee_id, count(*) n, sum(amount) s FROM payouts WHERE period = $1 GROUP BY 1", period
        )
        assert {r["payee_id"]: r["s"] for r in rows} == expected
        assert all(r["n"] == 1 for r in rows)
        paid_out = await db.fetch("SELECT owner, balance FROM accounts WHERE purpose = 'paid_out'")
        assert {r["owner"]: r["balance"] for r in paid_out if r["balance"]} == expected
    finally:
        await db.close()


async def test_feed_consumer_killed_mid_page_applies_every_entry_once(stack, make_database, tmp_path):
    b, m = stack.billing, stack.metering
    m1, m2, _ = ended_months(back=5)
    customers = [f"c{i:03d}" for i in range(40)]
    await set_up_builder(b, m, "crash-agency", customers, m1)
    events = []
    for i, c in enumerate(customers):
        events += usage_events(
            "crash-agency", c, m1.replace(day=9), 1 + i % 5, f"{1 + i % 7}.25", f"wf-{i % 3}"
        )
    await ingest(m, events)
    await close_and_pay(b, "crash-agency", m2)
    entries, _ = await billing_feed(b)
    assert len(entries) > 200

    url = await payouts_database(make_database)
    log_path = tmp_path / "consumer.log"
    settings = {
        "billing_address": stack.billing_address,
        "metering_address": stack.metering_address,
        "feed_poll_seconds": "0.05",
        "feed_page_size": "1",
        "default_hold_days": "0",
    }
    db = await asyncpg.connect(libpq_url(url))
    seen: list[int] = []
    try:
        applied = 0
        for round_ in range(KILLS):
            # Kill once the consumer has gone past a random point of what is left: mid-feed, whatever
            # the machine's speed.
            target = random.randint(applied + 1, applied + (len(entries) - applied) // (KILLS - round_ + 1))
            # Not waiting for SERVING: the consumer starts before the server answers.
            proc, _address = await start_process(url, log_path, wait=False, **settings)
            for _ in range(6000):
                if await db.fetchval("SELECT count(*) FROM feed_entries") >= target:
                    break
                await asyncio.sleep(0.005)
            await kill(proc)
            applied = await db.fetchval("SELECT count(*) FROM feed_entries")
            cursor = await db.fetchval("SELECT coalesce(max(last_sequence), 0) FROM feed_cursor")
            # The cursor and the entries move together: never one without the other.
            assert cursor == (await db.fetchval("SELECT coalesce(max(sequence), 0) FROM feed_entries"))
            assert applied == sum(1 for e in entries if e.sequence <= cursor)
            seen.append(applied)
        # Every kill landed while the consumer was part-way through the feed.
        assert all(0 < n < len(entries) for n in seen), seen

        proc, address = await start_process(url, log_path, **settings)
        try:
            async with auth_channel(address) as ch:
                await payouts_pb2_grpc.PayoutsServiceStub(ch).SyncEarnings(
                    ppb.SyncEarningsRequest(request_id=rid())
                )
        finally:
            await kill(proc)
        rows = await db.fetch("SELECT sequence, amount FROM feed_entries ORDER BY sequence")
        assert [r["sequence"] for r in rows] == [e.sequence for e in entries]
        assert [r["amount"] for r in rows] == [dec(e.amount) for e in entries]
        posted = await db.fetchval("SELECT count(*) FROM transfers WHERE source_kind = 'earnings_entry'")
        assert posted == sum(1 for e in entries if dec(e.amount) != 0)
        assert await db.fetchval("SELECT sum(balance) FROM accounts") == 0
        clearing = await db.fetchval("SELECT balance FROM accounts WHERE purpose = 'clearing'")
        assert clearing == -sum((dec(e.amount) for e in entries), D(0))
    finally:
        await db.close()
