"""payouts as a real process (payouts' main(), forked from a server that did its imports once), killed
with SIGKILL mid-work and restarted.

- RunPayouts killed mid-run (20 times, at random points once the run holds its period lock), then run
  to the end: exactly one payout per payee and period, each equal to the available balance it
  consumed, and Reconcile clean.
- The feed consumer (driven by SyncEarnings, page by page) killed mid-page (20 times) while it catches
  up with a real billing: every entry applied exactly once, the cursor at billing's last entry, the
  ledger balanced.

Every kill waits for progress it can see in the database (the run's lock, the feed's entries), not for
a fixed sleep; with the fork server and a standby process, the 40 restarts take about a minute on a
loaded 2-core machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
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
KILLS = 20
# The period's payout-run lock (store.advisory_lock) held in this database: a run is in its transaction.
RUN_LOCK = """
SELECT count(*) FROM pg_locks l
WHERE l.locktype = 'advisory' AND l.granted
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND ((l.classid::bigint << 32) | l.objid::bigint) = hashtextextended($1, 0)
"""


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# What `python -m payouts` imports (most of a start-up's CPU) is imported once, by a process that then
# forks one child per start. Each child runs payouts' main(), the body of `python -m payouts`, with its
# own environment, database connections and port: a whole service process that SIGKILL ends alone.
FORK_SERVER = r"""
import json, os, signal, sys, traceback
import payouts.__main__ as entry
signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the killed children
for line in sys.stdin:
    job = json.loads(line)
    pid = os.fork()
    if pid == 0:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.environ.clear()
        os.environ.update(job["env"])
        log = os.open(job["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        sys.argv = ["payouts"]
        code = 0
        try:
            entry.main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.stdout.write(f"{pid}\n")
    sys.stdout.flush()
"""


class Child:
    """A forked payouts process, known by its pid."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    @property
    def alive(self) -> bool:
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        return True

    async def wait(self) -> None:
        for _ in range(2000):
            if not self.alive:
                return
            await asyncio.sleep(0.005)
        raise AssertionError(f"payouts process {self.pid} outlived SIGKILL")


class ForkServer:
    def __init__(self) -> None:
        self._proc: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()

    async def spawn(self, env: dict[str, str], log_path: Path) -> Child:
        async with self._lock:
            if self._proc is None:
                self._proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-c", FORK_SERVER, cwd=REPO,
                    stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                )  # fmt: skip
            assert self._proc.stdin is not None and self._proc.stdout is not None
            self._proc.stdin.write(json.dumps({"env": env, "log": str(log_path)}).encode() + b"\n")
            await self._proc.stdin.drain()
            line = await self._proc.stdout.readline()
            if not line:
                raise AssertionError(f"the fork server exited with {await self._proc.wait()}")
            return Child(int(line))

    async def close(self) -> None:
        if self._proc is not None:
            assert self._proc.stdin is not None
            self._proc.stdin.close()
            await self._proc.wait()


async def start_process(
    forks: ForkServer, database_url: str, log_path: Path, **settings: str
) -> tuple[Child, str]:
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
    proc = await forks.spawn(env, log_path)
    address = f"127.0.0.1:{port}"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    async with auth_channel(address) as ch:
        health = health_pb2_grpc.HealthStub(ch)
        while loop.time() < deadline:
            if not proc.alive:
                raise AssertionError(f"payouts exited: {_tail(log_path)}")
            with contextlib.suppress(grpc.aio.AioRpcError):
                answer = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    return proc, address
            await asyncio.sleep(0.02)
    raise AssertionError(f"payouts never became SERVING: {_tail(log_path)}")


def _tail(path: Path) -> str:
    return path.read_text()[-2000:]


async def kill(proc: Child) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGKILL)
    await proc.wait()


class Standby:
    """payouts processes started one ahead: while a round works with one (and kills it), the next is
    already checking migrations and binding, as a standby replica would. With the fork server, twenty
    restarts of each kind fit in well under a minute."""

    def __init__(self, database_url: str, log_path: Path, **settings: str) -> None:
        self._forks = ForkServer()
        self._start = lambda: asyncio.ensure_future(
            start_process(self._forks, database_url, log_path, **settings)
        )
        self._next: asyncio.Future | None = None

    async def take(self, *, last: bool = False) -> tuple[Child, str]:
        pending, self._next = self._next or self._start(), None
        started = await pending
        if not last:
            self._next = self._start()
        return started

    async def close(self) -> None:
        if self._next is not None:
            with contextlib.suppress(Exception):
                proc, _ = await self._next
                await kill(proc)
        await self._forks.close()


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
    outcomes = []
    standby = Standby(url, log_path, **common)
    try:
        for attempt in range(KILLS):
            proc, address = await standby.take()
            async with auth_channel(address) as ch:
                call = asyncio.ensure_future(
                    payouts_pb2_grpc.PayoutsServiceStub(ch).RunPayouts(
                        ppb.RunPayoutsRequest(request_id=f"run-{attempt}", period=period)
                    )
                )
                # Kill once the run's transaction holds the period's lock, at a random point after:
                # mid-run whatever the machine's speed.
                for _ in range(6000):
                    if await db.fetchval(RUN_LOCK, f"payouts.run:{period}") or call.done():
                        break
                    await asyncio.sleep(0.005)
                await asyncio.sleep(random.uniform(0, 0.05))
                await kill(proc)
                with contextlib.suppress(grpc.aio.AioRpcError):
                    await call
            # A run is one transaction: after a kill there is all of it or none of it.
            outcomes.append(await db.fetchval("SELECT count(*) FROM payouts"))
            assert outcomes[-1] in (0, len(expected)), outcomes
        # The kills did land inside a run that had not committed yet.
        assert 0 in outcomes, outcomes

        proc, address = await standby.take(last=True)
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
        await standby.close()
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
    assert len(entries) > 10 * KILLS

    url = await payouts_database(make_database)
    log_path = tmp_path / "consumer.log"
    settings = {
        "billing_address": stack.billing_address,
        "metering_address": stack.metering_address,
        # The background poll is off so that the standby process does not consume before its turn;
        # each round drives the same consumer (Feed.catch_up, page by page) through SyncEarnings.
        "feed_poll_seconds": "0",
        "feed_page_size": "1",
        "default_hold_days": "0",
    }
    db = await asyncpg.connect(libpq_url(url))
    seen: list[int] = []
    standby = Standby(url, log_path, **settings)
    try:
        applied = 0
        for round_ in range(KILLS):
            # Kill once the consumer has gone past a random point of what is left: mid-feed, whatever
            # the machine's speed.
            step = (len(entries) - applied) // (KILLS - round_ + 1)
            target = random.randint(applied + 1, applied + max(1, step))
            proc, address = await standby.take()
            async with auth_channel(address) as ch:
                call = asyncio.ensure_future(
                    payouts_pb2_grpc.PayoutsServiceStub(ch).SyncEarnings(
                        ppb.SyncEarningsRequest(request_id=rid())
                    )
                )
                for _ in range(6000):
                    if await db.fetchval("SELECT count(*) FROM feed_entries") >= target or call.done():
                        break
                    await asyncio.sleep(0.005)
                await kill(proc)
                with contextlib.suppress(grpc.aio.AioRpcError):
                    await call
            applied = await db.fetchval("SELECT count(*) FROM feed_entries")
            cursor = await db.fetchval("SELECT coalesce(max(last_sequence), 0) FROM feed_cursor")
            # The cursor and the entries move together: never one without the other.
            assert cursor == (await db.fetchval("SELECT coalesce(max(sequence), 0) FROM feed_entries"))
            assert applied == sum(1 for e in entries if e.sequence <= cursor)
            seen.append(applied)
        # Every kill landed while the consumer was part-way through the feed.
        assert all(0 < n < len(entries) for n in seen), seen

        proc, address = await standby.take(last=True)
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
        await standby.close()
        await db.close()
