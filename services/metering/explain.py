"""ExplainUsage's queries: each event's contribution to a QueryUsage value, grouped or one by one.

Store code (the only other module with SQL beside store.py). The events read are exactly QueryUsage's
(store.usage_where on the same plan: range, cutoff, types, statuses, customer, tag filters); what each
contributes is decided here, in one statement, so the contributions sum to QueryUsage's value exactly:

- COUNT: 1 per event. SUM: the event's quantity (0 when it lacks it, as SUM ignores it).
- UNIQUE_COUNT: 1 for the first event of each run id (or unique tag value, "" counting as none) in
  ingestion order, 0 for the others.
- MAX: the value goes to the first-ingested event holding the maximum; LATEST: to the event QueryUsage
  picks (latest occurred time, then the last ingested). The others contribute 0.

Ingestion order is (ingested_time, seq): ingested_time orders events across connections, seq within
one batch. Because the first-ingested event keeps its contribution, events that arrive later never
change what earlier ones contributed (apart from MAX/LATEST's chosen event).

With an ingested_after cutoff A (and before cutoff B) an event contributes contribution(B) -
contribution(A), where contribution(A) is 0 for events ingested at or after A: SUM and COUNT list the
events ingested in [A, B); UNIQUE_COUNT the first event of a run that had none before A; MAX and
LATEST give the newly chosen event the new value and the formerly chosen one minus the old value.
The rows read are the events ingested in [A, B) plus any older event whose contribution is not 0.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from metering.domain.meters import Aggregation
from metering.domain.usage import QueryPlan
from metering.store import StoredEvent, plain_decimal, usage_where

RUN_ID = "run_id"
PROVIDER_COST = "provider_cost"


@dataclass(frozen=True)
class ExplainPlan:
    usage: QueryPlan
    ingested_after: datetime | None
    group_by: tuple[str, ...]


@dataclass(frozen=True)
class Group:
    tags: dict[str, str]
    quantity: Decimal
    event_count: int
    provider_cost: Decimal


@dataclass(frozen=True)
class Explained:
    event: StoredEvent
    contributed: Decimal


@dataclass(frozen=True)
class Totals:
    quantity: Decimal
    event_count: int


def _contributions(plan: ExplainPlan, p: Any) -> str:
    """The CTEs `m` (the events with q, k and old) and `r` (the events read, with `contrib`)."""
    u = plan.usage
    where = usage_where(u, p)
    if plan.ingested_after is not None:
        # The lower cutoff: rows before it count only by what their contribution changed.
        old = f"ingested_time < {p(plan.ingested_after)}"
    else:
        old = "false"
    if u.quantity:
        q_key = p(u.quantity)
        q = f"(quantities ->> {q_key}::text)::numeric"
        has = f"quantities ? {q_key}::text"
    else:
        q, has = "NULL::numeric", "false"
    if u.unique_tag:
        k = f"nullif(tags ->> {p(u.unique_tag)}::text, '')"
    else:
        k = "nullif(run_id, '')"
    m = (
        "m AS (SELECT seq, event_id, type, occurred_time, ingested_time, status, builder_id, app_id, "
        f"customer_id, run_id, tags, quantities, {q} AS q, {k} AS k, ({old}) AS old "
        f"FROM events WHERE {' AND '.join(where)})"
    )
    chosen = ""
    agg = u.aggregation
    if agg is Aggregation.COUNT:
        contrib = "CASE WHEN old THEN 0 ELSE 1 END::numeric"
    elif agg is Aggregation.SUM:
        contrib = "CASE WHEN old THEN 0 ELSE coalesce(q, 0) END"
    elif agg is Aggregation.UNIQUE_COUNT:
        contrib = (
            "CASE WHEN NOT old AND k IS NOT NULL AND "
            "row_number() OVER (PARTITION BY k ORDER BY ingested_time, seq) = 1 THEN 1 ELSE 0 END::numeric"
        )
    else:
        if agg is Aggregation.MAX:
            # Ties go to the first ingested: a later event of the same value takes nothing away.
            pick, order = "q IS NOT NULL", "q DESC, ingested_time, seq"
        else:
            # QueryUsage's own choice: latest occurred, then the last ingested.
            pick, order = has, "occurred_time DESC, ingested_time DESC, seq DESC"
        chosen = (
            f", chosen AS (SELECT (SELECT seq FROM m WHERE {pick} ORDER BY {order} LIMIT 1) AS b, "
            f"(SELECT seq FROM m WHERE {pick} AND old ORDER BY {order} LIMIT 1) AS a)"
        )
        contrib = (
            "(CASE WHEN m.seq = chosen.b THEN coalesce(q, 0) ELSE 0 END) - "
            "(CASE WHEN m.seq = chosen.a THEN coalesce(q, 0) ELSE 0 END)"
        )
    source = "m CROSS JOIN chosen" if chosen else "m"
    return (
        f"WITH {m}{chosen}, c AS (SELECT m.*, {contrib} AS contrib FROM {source}), "
        "r AS (SELECT * FROM c WHERE NOT old OR contrib <> 0) "
    )


def _group_keys(plan: ExplainPlan, p: Any) -> list[str]:
    keys = []
    for tag in plan.group_by:
        if tag == RUN_ID:
            keys.append("coalesce(run_id, '') COLLATE \"C\"")
        else:
            keys.append(f"coalesce(tags ->> {p(tag)}::text, '') COLLATE \"C\"")
    return keys


class ExplainStore:
    """Reads for ExplainUsage; each call one read-only, repeatable-read transaction."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def _fetch(self, statements: list[tuple[str, list[Any]]]) -> list[list[asyncpg.Record]]:
        async with self.engine.connect() as sa_conn:
            raw = await sa_conn.get_raw_connection()
            conn: asyncpg.Connection = raw.driver_connection  # type: ignore[assignment]
            async with conn.transaction(readonly=True, isolation="repeatable_read"):
                await conn.execute("SET LOCAL work_mem = '64MB'")
                await conn.execute("SET LOCAL plan_cache_mode = force_custom_plan")
                return [await conn.fetch(sql, *params) for sql, params in statements]

    @staticmethod
    def _binder() -> tuple[list[Any], Any]:
        params: list[Any] = []

        def p(value: Any) -> str:
            params.append(value)
            return f"${len(params)}"

        return params, p

    def _totals_sql(self, plan: ExplainPlan) -> tuple[str, list[Any]]:
        params, p = self._binder()
        sql = _contributions(plan, p) + "SELECT coalesce(sum(contrib), 0)::text AS v, count(*) AS n FROM r"
        return sql, params

    async def groups(
        self, plan: ExplainPlan, after: tuple[Decimal, tuple[str, ...]] | None, limit: int
    ) -> tuple[Totals, list[Group]]:
        """Totals and one page of groups by descending quantity, then tag values (byte order)."""
        params, p = self._binder()
        head = _contributions(plan, p)
        keys = _group_keys(plan, p)
        cols = [f"{key} AS g{i}" for i, key in enumerate(keys)]
        names = [f"g{i}" for i in range(len(keys))]
        cost = f"coalesce(sum((quantities ->> {p(PROVIDER_COST)}::text)::numeric), 0)"
        g = (
            "g AS (SELECT "
            + ", ".join([*cols, "sum(contrib) AS qty", "count(*) AS n", f"{cost} AS cost"])
            + " FROM r"
            # Without group keys an aggregate over no rows is still one row: a group needs events.
            + (" GROUP BY " + ", ".join(names) if names else " HAVING count(*) > 0")
            + ")"
        )
        sql = head.rstrip() + ", " + g
        sql += (
            " SELECT " + ", ".join([*names, "qty::text AS quantity", "n", "cost::text AS cost"]) + " FROM g"
        )
        if after is not None:
            qty, values = after
            left = ", ".join(["-qty", *names])
            right = ", ".join([f"-{p(str(qty))}::numeric", *(f'{p(v)}::text COLLATE "C"' for v in values)])
            sql += f" WHERE ({left}) > ({right})"
        # Ordered by g's numeric qty (the text column is named apart: "9" sorts after "10").
        sql += " ORDER BY " + ", ".join(["g.qty DESC", *names]) + f" LIMIT {p(limit)}"
        totals, rows = await self._fetch([self._totals_sql(plan), (sql, params)])
        out = [
            Group(
                tags={tag: r[f"g{i}"] for i, tag in enumerate(plan.group_by)},
                quantity=Decimal(r["quantity"]),
                event_count=r["n"],
                provider_cost=Decimal(r["cost"]),
            )
            for r in rows
        ]
        return Totals(Decimal(totals[0]["v"]), totals[0]["n"]), out

    async def events(
        self, plan: ExplainPlan, after: tuple[datetime, str] | None, limit: int
    ) -> tuple[Totals, list[Explained]]:
        """Totals and one page of events by occurred time, then event id (byte order)."""
        params, p = self._binder()
        sql = _contributions(plan, p) + (
            "SELECT seq, event_id, type, occurred_time, builder_id, app_id, customer_id, status, run_id, "
            "tags::text AS tags, quantities::text AS quantities, ingested_time, contrib::text AS contrib "
            "FROM r"
        )
        if after is not None:
            sql += f' WHERE (occurred_time, event_id) > ({p(after[0])}, {p(after[1])}::text COLLATE "C")'
        sql += f" ORDER BY occurred_time, event_id LIMIT {p(limit)}"
        totals, rows = await self._fetch([self._totals_sql(plan), (sql, params)])
        out = [
            Explained(
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
                    quantities={
                        k: plain_decimal(v)
                        for k, v in json.loads(r["quantities"], parse_float=Decimal).items()
                    },
                    ingested_time=r["ingested_time"],
                ),
                Decimal(r["contrib"]),
            )
            for r in rows
        ]
        return Totals(Decimal(totals[0]["v"]), totals[0]["n"]), out
