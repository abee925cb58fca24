"""Metering's tables and queries: the only code that touches its database.

Meters and idempotency keys go through SQLAlchemy Core. Events take the hot path through the raw
asyncpg connection underneath the pool: one statement per step of a batch, arrays in, no per-event
round trips.

Tables (created by migrations/versions/0001_initial.py, reshaped by 0002 and 0003):
- meters: one row per (builder_id, key).
- event_ids: the permanent dedup registry, primary key (builder_id, event_id), with the sha256 of the
  event's content. Not partitioned, so uniqueness holds across all time.
- events: PARTITIONED BY RANGE (occurred_time), one partition per calendar month (UTC), created on
  demand. seq (a sequence) orders ingestion; ingested_time is clock_timestamp() at insert.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import structlog
from sqlalchemy import (
    ARRAY,
    BigInteger,
    Column,
    DateTime,
    LargeBinary,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from common.db import new_metadata
from common.idempotency import idempotency_table
from metering.domain.events import EventStatus, ValidEvent
from metering.domain.meters import Aggregation, Bucket, Meter, MeterSpec, MeterState
from metering.domain.usage import QueryPlan, RawRow, WindowSize

log = structlog.get_logger("metering.store")

metadata = new_metadata()

meters = Table(
    "meters",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("builder_id", String(128), nullable=False),
    Column("key", String(64), nullable=False),
    Column("display_name", String(256), nullable=False, server_default=""),
    Column("event_types", ARRAY(Text), nullable=False),
    Column("aggregation", SmallInteger, nullable=False),
    Column("quantity", String(64), nullable=False, server_default=""),
    Column("unique_tag", String(64), nullable=False, server_default=""),
    Column("tag_filters", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("statuses", ARRAY(SmallInteger), nullable=False),
    Column("bucket_quantity", String(64), nullable=False, server_default=""),
    # [[key, max_value or null], ...] with max_value an exact decimal string.
    Column("buckets", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("state", SmallInteger, nullable=False),
    Column("create_time", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("archive_time", DateTime(timezone=True), nullable=True),
    UniqueConstraint("builder_id", "key"),
)

idempotency_keys = idempotency_table(metadata)

event_ids = Table(
    "event_ids",
    metadata,
    Column("builder_id", String(128, collation="C"), primary_key=True),
    Column("event_id", String(128, collation="C"), primary_key=True),
    Column("content_hash", LargeBinary, nullable=False),
)

# Declared for reference and autogenerate; the migration creates it with PARTITION BY and indexes.
events = Table(
    "events",
    metadata,
    Column("seq", BigInteger, nullable=False),
    Column("occurred_time", DateTime(timezone=True), nullable=False),
    Column("ingested_time", DateTime(timezone=True), nullable=False),
    Column("status", SmallInteger, nullable=False),
    Column("builder_id", Text(collation="C"), nullable=False),
    Column("customer_id", Text(collation="C"), nullable=False),
    Column("type", Text(collation="C"), nullable=False),
    Column("quantities", JSONB, nullable=False),
    Column("app_id", Text(collation="C"), nullable=False),
    Column("run_id", Text(collation="C"), nullable=True),
    Column("tags", JSONB, nullable=False),
    Column("event_id", Text(collation="C"), nullable=False),
    postgresql_partition_by="RANGE (occurred_time)",
)

_MICROS_PER_DAY = 86_400_000_000
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class IngestTimedOut(Exception):
    """An ingest transaction hit its time bound or lost its connection before it was acknowledged."""


class PartitionBusy(Exception):
    """A needed monthly partition could not be created because the events table stayed locked."""


class PartitionMissing(Exception):
    """An insert found no partition for a row: the in-process cache went stale."""


def month_of_day(day: int) -> tuple[int, int]:
    # Date arithmetic rather than fromtimestamp: valid for every year 1 to 9999 on every platform.
    d = _EPOCH + timedelta(days=day)
    return d.year, d.month


def month_of_us(occurred_us: int) -> tuple[int, int]:
    return month_of_day(occurred_us // _MICROS_PER_DAY)


def partition_months(occurred_us: Iterable[int]) -> set[tuple[int, int]]:
    days = {us // _MICROS_PER_DAY for us in occurred_us}
    return {month_of_day(day) for day in days}


def rows_per_month(occurred_us: Iterable[int]) -> Counter[tuple[int, int]]:
    per_day = Counter(us // _MICROS_PER_DAY for us in occurred_us)
    out: Counter[tuple[int, int]] = Counter()
    for day, n in per_day.items():
        out[month_of_day(day)] += n
    return out


def _row_to_meter(row: Any) -> Meter:
    buckets = tuple(
        Bucket(key, Decimal(max_value) if max_value is not None else None) for key, max_value in row.buckets
    )
    spec = MeterSpec(
        builder_id=row.builder_id,
        key=row.key,
        display_name=row.display_name,
        event_types=tuple(row.event_types),
        aggregation=Aggregation(row.aggregation),
        quantity=row.quantity,
        unique_tag=row.unique_tag,
        tag_filters=dict(row.tag_filters),
        statuses=tuple(EventStatus(s) for s in row.statuses),
        bucket_quantity=row.bucket_quantity,
        buckets=buckets,
    )
    return Meter(
        id=str(row.id),
        spec=spec,
        state=MeterState(row.state),
        create_time=row.create_time,
        archive_time=row.archive_time,
    )


@dataclass
class StoredEvent:
    seq: int
    event_id: str
    type: str
    occurred_time: datetime
    builder_id: str
    app_id: str
    customer_id: str
    status: int
    run_id: str
    tags: dict[str, str]
    quantities: dict[str, str]
    ingested_time: datetime


class IngestTx:
    """The statements of one ingest transaction, on a raw asyncpg connection."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def ingest(self, firsts: list[ValidEvent]) -> dict[tuple[str, str], str]:
        """Register every key and store the events whose key was new, in one statement.

        Returns the stored content hash of each key that was registered before. Keys go in sorted
        order so two batches sharing ids lock them in the same order and cannot deadlock; ON
        CONFLICT waits for an in-flight insert of the same key, so of several concurrent clients
        exactly one registers it. The stored hashes are read by a second statement: only a new
        statement's snapshot sees a row whose insert we waited for.
        """
        ordered = sorted(firsts, key=_event_key)
        try:
            # Columns travel as JSON arrays (one C-encoded string each) rather than as PostgreSQL
            # arrays: asyncpg's array encoder inspects every element, which cost more than the
            # rest of the batch's Python work. ROWS FROM zips them back by position.
            (_, ids, types, occurred, builders, apps, customers, statuses, runs, tags, quantities, hashes) = (
                zip(*ordered, strict=True)
            )
            unclaimed = await self.conn.fetchval(
                _INGEST_SQL,
                _dumps(builders),
                _dumps(ids),
                _dumps(hashes),
                _dumps(types),
                _dumps(occurred),
                _dumps(apps),
                _dumps(customers),
                _dumps(statuses),
                _dumps(runs),
                # Already JSON objects: joined, not re-encoded.
                "[" + ",".join(tags) + "]",
                "[" + ",".join(quantities) + "]",
            )
        except asyncpg.CheckViolationError as exc:
            if "no partition" in str(exc):
                # Neither the text nor the chained error: its detail quotes the row's occurred_time,
                # and whatever logs this exception must not log a caller's values.
                raise PartitionMissing(f"no partition for a row (SQLSTATE {exc.sqlstate})") from None
            raise
        if not unclaimed:
            return {}
        taken = [ordered[n - 1] for n in unclaimed]
        stored = await self.conn.fetch(
            "SELECT r.builder_id, r.event_id, encode(r.content_hash, 'hex') "
            "FROM unnest($1::text[], $2::text[]) AS u(b, i) "
            "JOIN event_ids r ON r.builder_id = u.b AND r.event_id = u.i",
            [e.builder_id for e in taken],
            [e.id for e in taken],
        )
        return {(r[0], r[1]): r[2] for r in stored}


def _event_key(event: ValidEvent) -> tuple[str, str]:
    return (event.builder_id, event.id)


# One round trip per batch: unnest the columns once, register the keys (ON CONFLICT DO NOTHING),
# insert the events whose key this statement registered, and return the (1-based) positions of
# the keys registered before, whose stored hashes a second statement then reads. Tags and
# quantities arrive as jsonb arrays: parsed once, their elements are already jsonb (json elements
# would be parsed a second time by a cast).
_INGEST_SQL = """
WITH input AS (
    SELECT u.b, u.i, decode(u.h, 'hex') AS h, u.t, u.o::bigint AS o, u.a, u.c, u.s::smallint AS s,
           nullif(u.r, '') AS r, u.g, u.q, u.n
    FROM ROWS FROM (
        json_array_elements_text($1::text::json), json_array_elements_text($2::text::json),
        json_array_elements_text($3::text::json), json_array_elements_text($4::text::json),
        json_array_elements_text($5::text::json), json_array_elements_text($6::text::json),
        json_array_elements_text($7::text::json), json_array_elements_text($8::text::json),
        json_array_elements_text($9::text::json), jsonb_array_elements($10::text::jsonb),
        jsonb_array_elements($11::text::jsonb)
    ) WITH ORDINALITY AS u(b, i, h, t, o, a, c, s, r, g, q, n)
),
claimed AS (
    INSERT INTO event_ids (builder_id, event_id, content_hash)
    SELECT b, i, h FROM input ORDER BY b, i
    ON CONFLICT DO NOTHING
    RETURNING builder_id, event_id
),
stored AS (
    INSERT INTO events (builder_id, event_id, type, occurred_time, app_id, customer_id, status, run_id,
                        tags, quantities)
    SELECT input.b, input.i, input.t, timestamptz 'epoch' + input.o * interval '1 microsecond', input.a,
           input.c, input.s, input.r, input.g, input.q
    FROM input JOIN claimed ON claimed.builder_id = input.b AND claimed.event_id = input.i
)
SELECT array_agg(input.n) FROM input
LEFT JOIN claimed ON claimed.builder_id = input.b AND claimed.event_id = input.i
WHERE claimed.event_id IS NULL
"""


_PARTITION_NAME = re.compile(r"events_p\d{4}_\d{2}")


def _partition_name(year: int, month: int) -> str:
    return f"events_p{year:04d}_{month:02d}"


class MeteringStore:
    def __init__(self, engine: AsyncEngine, *, ingest_timeout_seconds: float) -> None:
        self.engine = engine
        # Each statement and each idle gap of an ingest transaction is bounded by this (see app.py
        # for why a quarter of the settle period).
        self._ingest_timeout_ms = max(1, int(ingest_timeout_seconds * 1000))
        self._partitions: set[tuple[int, int]] = set()
        self._partition_lock = asyncio.Lock()
        # Rows this process inserted per month since it last analyzed that month's partition, and
        # how many it had inserted in total then (see note_inserted).
        self._since_analyze: Counter[tuple[int, int]] = Counter()
        self._at_analyze: Counter[tuple[int, int]] = Counter()
        self._analyze_task: asyncio.Task[None] | None = None

    # ---- meters -------------------------------------------------------------------------

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.begin() as conn:
            yield conn

    async def insert_meter(self, conn: AsyncConnection, meter_id: str, spec: MeterSpec) -> Meter | None:
        """Insert a meter; None when (builder_id, key) is taken."""
        statement = (
            pg_insert(meters)
            .values(
                id=meter_id,
                builder_id=spec.builder_id,
                key=spec.key,
                display_name=spec.display_name,
                event_types=list(spec.event_types),
                aggregation=int(spec.aggregation),
                quantity=spec.quantity,
                unique_tag=spec.unique_tag,
                tag_filters=spec.tag_filters,
                statuses=[int(s) for s in spec.statuses],
                bucket_quantity=spec.bucket_quantity,
                buckets=[
                    [b.key, str(b.max_value) if b.max_value is not None else None] for b in spec.buckets
                ],
                state=int(MeterState.ACTIVE),
            )
            .on_conflict_do_nothing(index_elements=["builder_id", "key"])
            .returning(*meters.c)
        )
        row = (await conn.execute(statement)).first()
        return _row_to_meter(row) if row is not None else None

    async def get_meter(
        self, conn: AsyncConnection, builder_id: str, key: str, *, for_update: bool = False
    ) -> Meter | None:
        query = select(meters).where(meters.c.builder_id == builder_id, meters.c.key == key)
        if for_update:
            query = query.with_for_update()
        row = (await conn.execute(query)).first()
        return _row_to_meter(row) if row is not None else None

    async def list_meters(
        self,
        conn: AsyncConnection,
        builder_id: str,
        *,
        include_archived: bool,
        after_key: str | None,
        limit: int,
    ) -> list[Meter]:
        query = select(meters).where(meters.c.builder_id == builder_id)
        if not include_archived:
            query = query.where(meters.c.state == int(MeterState.ACTIVE))
        if after_key is not None:
            query = query.where(meters.c.key > after_key)
        query = query.order_by(meters.c.key).limit(limit)
        return [_row_to_meter(row) for row in (await conn.execute(query))]

    async def archive_meter(self, conn: AsyncConnection, meter: Meter) -> Meter:
        row = (
            await conn.execute(
                meters.update()
                .where(meters.c.id == meter.id)
                .values(state=int(MeterState.ARCHIVED), archive_time=func.now())
                .returning(*meters.c)
            )
        ).one()
        return _row_to_meter(row)

    # ---- events: ingest ---------------------------------------------------------------

    async def ensure_partitions(
        self, months: set[tuple[int, int]], *, max_new: int | None = None
    ) -> set[tuple[int, int]]:
        """Create the monthly partitions these events need, each once per process; return the months
        refused because creating them would exceed max_new new partitions (newest months first).

        Runs in its own short transactions before the ingest transaction, so DDL locks never sit
        inside an ingest. CREATE ... IF NOT EXISTS plus catching the race makes it safe when several
        processes create the same month at once. A month whose partition already exists (another
        process made it, or an earlier run) costs nothing and never counts against max_new.
        """
        missing = months - self._partitions
        if not missing:
            return set()
        async with self._partition_lock:
            missing = months - self._partitions
            if not missing:
                return set()
            async with self.engine.connect() as sa_conn:
                raw = await sa_conn.get_raw_connection()
                conn: asyncpg.Connection = raw.driver_connection  # type: ignore[assignment]
                names = {_partition_name(y, m): (y, m) for y, m in missing}
                existing = await conn.fetch(
                    "SELECT n FROM unnest($1::text[]) AS n WHERE to_regclass(n) IS NOT NULL", list(names)
                )
                for record in existing:
                    month = names[record[0]]
                    self._partitions.add(month)
                    missing.discard(month)
                newest_first = sorted(missing, reverse=True)
                allowed = newest_first if max_new is None else newest_first[:max_new]
                for year, month in sorted(allowed):
                    await self._create_partition(conn, year, month)
                    self._partitions.add((year, month))
            return set(newest_first[len(allowed) :])

    @staticmethod
    async def _create_partition(conn: asyncpg.Connection, year: int, month: int) -> None:
        name = _partition_name(year, month)
        assert _PARTITION_NAME.fullmatch(name)
        exists = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", name)
        if exists:
            return
        start = f"{year:04d}-{month:02d}-01 00:00:00+00"
        ny, nm = (year + 1, 1) if month == 12 else (year, month + 1)
        end = f"{ny:04d}-{nm:02d}-01 00:00:00+00"
        for attempt in range(5):
            try:
                # Creating a partition locks the parent against every ingest and query: wait for
                # that lock only briefly, and retry, rather than queue behind a long query while
                # everything else queues behind us.
                async with conn.transaction():
                    await conn.execute("SET LOCAL lock_timeout = '2s'")
                    # Insert-only tables: analyze and vacuum them after 5% new rows rather than
                    # 20%, so the planner knows a filling month is big.
                    await conn.execute(
                        f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF events "
                        f"FOR VALUES FROM ('{start}') TO ('{end}') WITH ("
                        "autovacuum_analyze_scale_factor = 0.05, "
                        "autovacuum_vacuum_insert_scale_factor = 0.05)"
                    )
                log.info("metering.partition.created", partition=name)
                return
            except (asyncpg.UniqueViolationError, asyncpg.DuplicateTableError, asyncpg.DuplicateObjectError):
                # Another process created it between our check and our CREATE.
                return
            except (asyncpg.DeadlockDetectedError, asyncpg.LockNotAvailableError):
                await asyncio.sleep(0.1 * (attempt + 1))
        raise PartitionBusy(f"could not create partition {name}: its parent stayed locked")

    async def prepare_partitions(self, now: datetime) -> None:
        """Create this month's and next month's partitions ahead of need (at start-up), so live
        traffic rarely waits for DDL."""
        following = now.replace(day=28) + timedelta(days=4)
        await self.ensure_partitions({(now.year, now.month), (following.year, following.month)})

    def forget_partitions(self) -> None:
        self._partitions.clear()

    # Autovacuum analyzes a partition only after its naptime, and a month filled faster than that
    # keeps the statistics of an empty table: the planner then expects one row and picks a sorted,
    # single-process plan that is several times slower for a month-wide QueryUsage. So the process
    # that inserts also asks for ANALYZE, in the background, each time a partition has doubled
    # since its last analysis (at least ANALYZE_MIN_ROWS new rows): a logarithmic number of
    # analyses, each sampling a fixed 30,000 rows whatever the partition's size.
    ANALYZE_MIN_ROWS = 50_000

    def note_inserted(self, per_month: Counter[tuple[int, int]]) -> None:
        self._since_analyze.update(per_month)
        if self._analyze_task is not None and not self._analyze_task.done():
            return
        due = [
            month
            for month, n in self._since_analyze.items()
            if n >= max(self.ANALYZE_MIN_ROWS, self._at_analyze[month])
        ]
        if due:
            for month in due:
                self._at_analyze[month] += self._since_analyze.pop(month)
            self._analyze_task = asyncio.get_running_loop().create_task(self._analyze(due))

    async def _analyze(self, months: list[tuple[int, int]]) -> None:
        try:
            async with self.engine.connect() as sa_conn:
                raw = await sa_conn.get_raw_connection()
                conn: asyncpg.Connection = raw.driver_connection  # type: ignore[assignment]
                for year, month in months:
                    name = f"events_p{year:04d}_{month:02d}"
                    await conn.execute(f"ANALYZE {name}")
                    log.info("metering.partition.analyzed", partition=name)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Statistics are an optimisation: a failure costs plan quality, never data.
            # By type and SQLSTATE only: a database error's text can quote values.
            log.warning(
                "metering.partition.analyze_failed",
                error_type=type(exc).__name__,
                sqlstate=getattr(exc, "sqlstate", None),
            )

    async def close(self) -> None:
        if self._analyze_task is not None and not self._analyze_task.done():
            self._analyze_task.cancel()
            try:
                await self._analyze_task
            except (asyncio.CancelledError, Exception):
                pass
        await self.engine.dispose()

    @asynccontextmanager
    async def ingest_transaction(self) -> AsyncIterator[IngestTx]:
        async with self.engine.connect() as sa_conn:
            raw = await sa_conn.get_raw_connection()
            conn: asyncpg.Connection = raw.driver_connection  # type: ignore[assignment]
            try:
                async with conn.transaction():
                    await conn.execute(
                        f"SET LOCAL statement_timeout = {self._ingest_timeout_ms}; "
                        f"SET LOCAL idle_in_transaction_session_timeout = {self._ingest_timeout_ms}"
                    )
                    yield IngestTx(conn)
            except (
                asyncpg.QueryCanceledError,
                asyncpg.IdleInTransactionSessionTimeoutError,
                asyncpg.ConnectionDoesNotExistError,
                asyncpg.InterfaceError,
            ) as exc:
                # A statement or an idle gap hit its bound (the server then cancels the statement
                # or ends the session), or the connection was lost. Before COMMIT nothing is
                # stored; during it the outcome is unknown. Either way a retry is safe.
                raise IngestTimedOut(
                    f"{type(exc).__name__} (SQLSTATE {getattr(exc, 'sqlstate', None)})"
                ) from None

    # ---- events: read -----------------------------------------------------------------

    async def db_now(self) -> datetime:
        async with self.engine.connect() as conn:
            return (await conn.execute(text("SELECT clock_timestamp()"))).scalar_one()

    async def query_usage(self, plan: QueryPlan) -> list[RawRow]:
        if plan.empty:
            return []
        sql, params = _render_usage(plan)
        async with self.engine.connect() as sa_conn:
            raw = await sa_conn.get_raw_connection()
            conn: asyncpg.Connection = raw.driver_connection  # type: ignore[assignment]
            async with conn.transaction(readonly=True):
                # Room to hash-aggregate every group of a large builder in memory.
                await conn.execute("SET LOCAL work_mem = '64MB'")
                # asyncpg prepares and caches statements; after five runs PostgreSQL would switch to
                # a generic plan that cannot prune partitions by the real range nor size the
                # aggregate (a sort on disk instead of a parallel hash: seconds, not milliseconds).
                await conn.execute("SET LOCAL plan_cache_mode = force_custom_plan")
                records = await conn.fetch(sql, *params)
        ntags = len(plan.group_by_tags)
        out: list[RawRow] = []
        for r in records:
            out.append(
                RawRow(
                    window_start=r["w"],
                    customer_id=r["c"],
                    app_id=r["a"],
                    tags=tuple(r[f"t{i}"] for i in range(ntags)),
                    bucket_index=r["b"],
                    value=Decimal(r["v"]) if r["v"] is not None else Decimal(0),
                    event_count=r["n"],
                )
            )
        return out

    async def list_events(
        self,
        *,
        builder_id: str,
        customer_id: str,
        type_: str,
        run_id: str,
        start: datetime | None,
        end: datetime | None,
        after: tuple[datetime, int] | None,
        limit: int,
    ) -> list[StoredEvent]:
        where = ["builder_id = $1"]
        params: list[Any] = [builder_id]

        def add(cond: str, value: Any) -> None:
            params.append(value)
            where.append(cond.replace("?", f"${len(params)}"))

        if customer_id:
            add("customer_id = ?", customer_id)
        if type_:
            add("type = ?", type_)
        if run_id:
            add("run_id = ?", run_id)
        if start is not None:
            add("occurred_time >= ?", start)
        if end is not None:
            add("occurred_time < ?", end)
        if after is not None:
            params.extend(after)
            where.append(f"(occurred_time, seq) < (${len(params) - 1}, ${len(params)})")
        params.append(limit)
        sql = (
            "SELECT seq, event_id, type, occurred_time, builder_id, app_id, customer_id, status, run_id, "
            "tags::text AS tags, quantities::text AS quantities, ingested_time FROM events WHERE "
            + " AND ".join(where)
            + f" ORDER BY occurred_time DESC, seq DESC LIMIT ${len(params)}"
        )
        async with self.engine.connect() as sa_conn:
            raw = await sa_conn.get_raw_connection()
            conn: asyncpg.Connection = raw.driver_connection  # type: ignore[assignment]
            records = await conn.fetch(sql, *params)
        return [
            StoredEvent(
                seq=r["seq"],
                event_id=r["event_id"],
                type=r["type"],
                occurred_time=r["occurred_time"],
                builder_id=r["builder_id"],
                app_id=r["app_id"],
                customer_id=r["customer_id"],
                status=r["status"],
                run_id=r["run_id"] or "",
                tags=json.loads(r["tags"]),
                # Quantities are JSON numbers; parse them as Decimal so no digit is lost.
                quantities={
                    k: plain_decimal(v) for k, v in json.loads(r["quantities"], parse_float=Decimal).items()
                },
                ingested_time=r["ingested_time"],
            )
            for r in records
        ]


def plain_decimal(value: Any) -> str:
    if isinstance(value, Decimal):
        text_ = format(value, "f")
        if "." in text_:
            text_ = text_.rstrip("0").rstrip(".")
        return text_ or "0"
    return str(value)


_WINDOW_UNIT = {WindowSize.HOUR: "hour", WindowSize.DAY: "day", WindowSize.MONTH: "month"}


def usage_where(plan: QueryPlan, p: Callable[[Any], str]) -> list[str]:
    """The conditions that pick a plan's events (range, cutoff, types, statuses, customer, tag
    filters); `p` binds a value and returns its placeholder. Shared by QueryUsage and ExplainUsage, so
    both read exactly the same events."""
    where = [
        f"builder_id = {p(plan.builder_id)}",
        f"occurred_time >= {p(plan.start)}",
        f"occurred_time < {p(plan.end)}",
        f"ingested_time < {p(plan.cutoff)}",
    ]
    if len(plan.event_types) == 1:
        where.append(f"type = {p(plan.event_types[0])}")
    else:
        where.append(f"type = ANY({p(list(plan.event_types))}::text[])")
    if set(plan.statuses) != {1, 2, 3}:
        if len(plan.statuses) == 1:
            where.append(f"status = {p(plan.statuses[0])}::smallint")
        else:
            where.append(f"status = ANY({p(list(plan.statuses))}::smallint[])")
    if plan.customer_id is not None:
        where.append(f"customer_id = {p(plan.customer_id)}")
    if plan.tag_filters:
        where.append(f"tags @> {p(json.dumps(plan.tag_filters, sort_keys=True))}::text::jsonb")
    return where


def _render_usage(plan: QueryPlan) -> tuple[str, list[Any]]:
    """One SELECT ... GROUP BY for the plan. Every value is a bind parameter; identifiers are fixed."""
    params: list[Any] = []

    def p(value: Any) -> str:
        params.append(value)
        return f"${len(params)}"

    where = usage_where(plan, p)
    select_cols: list[str] = []
    group: list[str] = []
    order: list[str] = []
    if plan.window is WindowSize.NONE:
        select_cols.append("NULL::timestamptz AS w")
    else:
        select_cols.append(f"date_trunc('{_WINDOW_UNIT[plan.window]}', occurred_time, 'UTC') AS w")
        group.append("w")
        order.append("w")
    if plan.group_by_customer:
        select_cols.append("customer_id AS c")
        group.append("c")
        order.append("c")
    else:
        select_cols.append("''::text AS c")
    if plan.group_by_app:
        select_cols.append("app_id AS a")
        group.append("a")
        order.append("a")
    else:
        select_cols.append("''::text AS a")
    for i, tag in enumerate(plan.group_by_tags):
        select_cols.append(f"coalesce(tags ->> {p(tag)}::text, '') AS t{i}")
        group.append(f"t{i}")
        order.append(f"t{i}")
    if plan.bucket_quantity is not None:
        qty = f"coalesce((quantities ->> {p(plan.bucket_quantity)}::text)::numeric, 0)"
        cases = " ".join(
            f"WHEN {qty} <= {p(bound)}::numeric THEN {i}" for i, bound in enumerate(plan.bucket_bounds)
        )
        last = len(plan.bucket_bounds)
        select_cols.append(f"(CASE {cases} ELSE {last} END) AS b" if cases else f"{last} AS b")
        group.append("b")
        order.append("b")
    else:
        select_cols.append("NULL::int AS b")

    agg = plan.aggregation
    if agg is Aggregation.COUNT:
        value = "count(*)::numeric"
    elif agg is Aggregation.SUM:
        value = f"coalesce(sum((quantities ->> {p(plan.quantity)}::text)::numeric), 0)"
    elif agg is Aggregation.UNIQUE_COUNT:
        if plan.unique_tag:
            value = f"count(DISTINCT nullif(tags ->> {p(plan.unique_tag)}::text, ''))::numeric"
        else:
            value = "count(DISTINCT run_id)::numeric"
    elif agg is Aggregation.MAX:
        value = f"max((quantities ->> {p(plan.quantity)}::text)::numeric)"
    else:
        q = p(plan.quantity)
        # Ties on occurred_time go to the event ingested last. ingested_time (clock_timestamp() at
        # insert) orders events across connections; seq only within one batch, because the sequence
        # hands each connection its own cached block of values.
        value = (
            "(array_agg((quantities ->> "
            f"{q}::text)::numeric ORDER BY occurred_time DESC, ingested_time DESC, seq DESC) "
            f"FILTER (WHERE quantities ? {q}::text))[1]"
        )
    select_cols.append(f"{value} AS v")
    select_cols.append("count(*) AS n")
    sql = "SELECT " + ", ".join(select_cols) + " FROM events WHERE " + " AND ".join(where)
    if group:
        sql += " GROUP BY " + ", ".join(group) + " ORDER BY " + ", ".join(order)
    else:
        # An aggregate without GROUP BY yields a row even over no events; rows need matching events.
        sql += " HAVING count(*) > 0"
    return sql, params
