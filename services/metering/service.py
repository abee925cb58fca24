"""Metering use cases, one async method each; each owns its transaction and idempotency."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import structlog

from common import idempotency
from common.errors import AlreadyExists, InvalidArgument, NotFound, Unavailable
from metering.domain import meters as meter_rules
from metering.domain import usage
from metering.domain.events import (
    ACCEPTED,
    CONFLICT,
    DUPLICATE,
    MIN_TIME_US,
    BatchResult,
    EventIn,
    Invalid,
    Outcome,
    ValidEvent,
    quoted,
    split_batch,
    validate_event,
)
from metering.domain.meters import Meter, MeterError, MeterSpec
from metering.domain.usage import QueryError, UsageQuery, UsageRow
from metering.explain import Explained, ExplainPlan, ExplainStore, Group
from metering.store import (
    IngestTimedOut,
    MeteringStore,
    PartitionBusy,
    PartitionMissing,
    StoredEvent,
    idempotency_keys,
    month_of_us,
    partition_months,
    rows_per_month,
)

log = structlog.get_logger("metering.service")

MAX_REQUEST_ID_LENGTH = 128


@dataclass(frozen=True)
class IngestReport:
    results: list[BatchResult]
    accepted: int
    duplicates: int
    conflicts: int
    invalid: int


@dataclass(frozen=True)
class UsageAnswer:
    rows: list[UsageRow]
    cutoff: datetime
    settled: bool


@dataclass(frozen=True)
class ExplainQuery:
    builder_id: str
    meter_key: str
    customer_id: str
    start: datetime
    end: datetime
    ingested_before: datetime | None
    ingested_after: datetime | None
    events_view: bool
    group_by: tuple[str, ...]
    tag_filters: dict[str, str]
    size: int
    after: tuple[Any, Any] | None


@dataclass(frozen=True)
class ExplainAnswer:
    total: Decimal
    event_count: int
    groups: list[Group]
    events: list[Explained]
    cutoff: datetime
    # The last row's position when more rows follow.
    next_after: tuple[Any, Any] | None


@dataclass(frozen=True)
class EventPage:
    events: list[StoredEvent]
    next_cursor: tuple[datetime, int] | None


def _require_request_id(request_id: str) -> None:
    if not request_id:
        raise InvalidArgument("request_id is required", field="request_id")
    if len(request_id) > MAX_REQUEST_ID_LENGTH:
        raise InvalidArgument(
            f"request_id is longer than {MAX_REQUEST_ID_LENGTH} characters", field="request_id"
        )


class MeteringService:
    def __init__(
        self,
        store: MeteringStore,
        *,
        max_batch_size: int,
        future_tolerance_seconds: int,
        settle_seconds: float,
        max_event_age_days: int = 400,
        max_new_partitions_per_batch: int = 4,
    ) -> None:
        self.store = store
        self.explain = ExplainStore(store.engine)
        self.max_batch_size = max_batch_size
        self.future_tolerance_us = future_tolerance_seconds * 1_000_000
        self.max_event_age_us = max_event_age_days * 86_400_000_000
        self.max_new_partitions = max_new_partitions_per_batch
        self.settle = timedelta(seconds=settle_seconds)
        # Meters never change apart from archiving, which QueryUsage ignores: safe to cache.
        self._meters: dict[tuple[str, str], Meter] = {}

    # ---- IngestEvents -------------------------------------------------------------------

    async def ingest_events(self, events: list[EventIn]) -> IngestReport:
        if not events:
            raise InvalidArgument("events must hold at least one event", field="events")
        if len(events) > self.max_batch_size:
            raise InvalidArgument(
                f"events holds {len(events)} events, more than {self.max_batch_size}", field="events"
            )
        now_us = time.time_ns() // 1000
        oldest_us = max(MIN_TIME_US, now_us - self.max_event_age_us)
        tolerance_us = self.future_tolerance_us
        results: list[BatchResult | None] = [None] * len(events)
        valid: list[ValidEvent] = []
        invalid = 0
        for i, event in enumerate(events):
            checked = validate_event(
                i, event, now_us=now_us, future_tolerance_us=tolerance_us, oldest_us=oldest_us
            )
            if type(checked) is Invalid:
                results[i] = BatchResult(Outcome.INVALID, checked.reason, checked.field)
                invalid += 1
            else:
                valid.append(checked)  # type: ignore[arg-type]

        months: set[tuple[int, int]] = set()
        if valid:
            months = partition_months(e.occurred_us for e in valid)
            try:
                refused = await self.store.ensure_partitions(months, max_new=self.max_new_partitions)
            except PartitionBusy:
                raise Unavailable(
                    "a new month's storage is being prepared; retry the batch", field="events"
                ) from None
            if refused:
                # Rejected per event, never the batch: the rest is stored, and the refused months'
                # events are stored when resent (their partitions then count against a new batch).
                months -= refused
                kept: list[ValidEvent] = []
                for e in valid:
                    month = month_of_us(e.occurred_us)
                    if month in refused:
                        results[e.index] = BatchResult(
                            Outcome.INVALID,
                            f"this batch needs more than {self.max_new_partitions} new monthly partitions; "
                            f"events of {month[0]:04d}-{month[1]:02d} were not stored, send them again "
                            "in another batch",
                            f"events[{e.index}].occurred_time",
                        )
                        invalid += 1
                    else:
                        kept.append(e)
                valid = kept
                log.warning("metering.events.partitions_capped", refused_months=len(refused))

        firsts, repeats = split_batch(valid)
        stored: dict[tuple[str, str], str] = {}
        if firsts:
            for attempt in range(3):
                try:
                    async with self.store.ingest_transaction() as tx:
                        stored = await tx.ingest(firsts)
                    break
                except IngestTimedOut:
                    # Not acknowledged, so possibly not stored; dedup makes the retry safe either way.
                    log.warning("metering.events.ingest_cut_off", events=len(firsts))
                    raise Unavailable(
                        "the batch was cut off by the ingest time bound or a lost database connection "
                        "and may not have been stored; retry the same batch (events already stored "
                        "come back as duplicates)",
                        field="events",
                    ) from None
                except PartitionMissing:
                    # A partition was dropped or detached behind our cache: recreate and retry;
                    # the failed transaction rolled back, registry rows included.
                    log.warning("metering.partition.missing", attempt=attempt + 1)
                    if attempt == 2:
                        raise Unavailable(
                            "a month's storage is being changed; retry the same batch", field="events"
                        ) from None
                    self.store.forget_partitions()
                    await self.store.ensure_partitions(months)

        accepted = [e for e in firsts if (e.builder_id, e.id) not in stored] if stored else firsts
        if accepted:
            self.store.note_inserted(rows_per_month(e.occurred_us for e in accepted))
        winners: dict[tuple[str, str], str] = {}
        duplicates = conflicts = 0
        for event in firsts:
            key = (event.builder_id, event.id)
            prior = stored.get(key)
            if prior is None:
                results[event.index] = ACCEPTED
                winners[key] = event.content_hash
            else:
                winners[key] = prior
                if prior == event.content_hash:
                    results[event.index] = DUPLICATE
                    duplicates += 1
                else:
                    results[event.index] = CONFLICT
                    conflicts += 1
        for index, (_first_index, event) in repeats.items():
            if winners[(event.builder_id, event.id)] == event.content_hash:
                results[index] = DUPLICATE
                duplicates += 1
            else:
                results[index] = CONFLICT
                conflicts += 1
        log.info(
            "metering.events.ingested",
            accepted=len(accepted),
            duplicates=duplicates,
            conflicts=conflicts,
            invalid=invalid,
        )
        return IngestReport(results, len(accepted), duplicates, conflicts, invalid)  # type: ignore[arg-type]

    # ---- meters -------------------------------------------------------------------------

    async def create_meter(self, request_id: str, definition: dict) -> Meter:
        _require_request_id(request_id)
        try:
            spec: MeterSpec = meter_rules.new_spec(**definition)
        except MeterError as exc:
            raise InvalidArgument(exc.message, field=exc.field) from None
        body = {"op": "create_meter", **meter_rules.spec_fingerprint_body(spec)}
        scope = idempotency.builder_scope("create_meter", spec.builder_id)
        async with self.store.begin() as conn:
            prior = await idempotency.claim(
                conn, idempotency_keys, scope, request_id, idempotency.fingerprint(body)
            )
            if prior is not None:
                return meter_rules.from_json(prior)
            meter = await self.store.insert_meter(conn, uuid.uuid4().hex, spec)
            if meter is None:
                raise AlreadyExists(
                    f"builder {quoted(spec.builder_id)} already has a meter with key {quoted(spec.key)}",
                    field="meter.key",
                )
            await idempotency.complete(conn, idempotency_keys, scope, request_id, meter_rules.to_json(meter))
        log.info("metering.meter.created", meter_id=meter.id, builder_id=spec.builder_id, key=spec.key)
        return meter

    async def get_meter(self, builder_id: str, key: str) -> Meter:
        _check_meter_ref(builder_id, key)
        async with self.store.begin() as conn:
            meter = await self.store.get_meter(conn, builder_id, key)
        if meter is None:
            raise NotFound(f"builder {quoted(builder_id)} has no meter with key {quoted(key)}", field="key")
        return meter

    async def list_meters(
        self, builder_id: str, *, include_archived: bool, after_key: str | None, limit: int
    ) -> tuple[list[Meter], str | None]:
        if not builder_id:
            raise InvalidArgument("builder_id is required", field="builder_id")
        async with self.store.begin() as conn:
            found = await self.store.list_meters(
                conn, builder_id, include_archived=include_archived, after_key=after_key, limit=limit + 1
            )
        if len(found) > limit:
            page = found[:limit]
            return page, page[-1].spec.key
        return found, None

    async def archive_meter(self, request_id: str, builder_id: str, key: str) -> Meter:
        _require_request_id(request_id)
        _check_meter_ref(builder_id, key)
        body = {"op": "archive_meter", "builder_id": builder_id, "key": key}
        scope = idempotency.builder_scope("archive_meter", builder_id)
        async with self.store.begin() as conn:
            prior = await idempotency.claim(
                conn, idempotency_keys, scope, request_id, idempotency.fingerprint(body)
            )
            if prior is not None:
                return meter_rules.from_json(prior)
            meter = await self.store.get_meter(conn, builder_id, key, for_update=True)
            if meter is None:
                raise NotFound(
                    f"builder {quoted(builder_id)} has no meter with key {quoted(key)}", field="key"
                )
            if meter.state is not meter_rules.MeterState.ARCHIVED:
                meter = await self.store.archive_meter(conn, meter)
                log.info("metering.meter.archived", meter_id=meter.id, builder_id=builder_id, key=key)
            await idempotency.complete(conn, idempotency_keys, scope, request_id, meter_rules.to_json(meter))
        self._meters[(builder_id, key)] = meter
        return meter

    # ---- QueryUsage ---------------------------------------------------------------------

    async def _meter(self, builder_id: str, key: str) -> Meter:
        cached = self._meters.get((builder_id, key))
        if cached is not None:
            return cached
        async with self.store.begin() as conn:
            meter = await self.store.get_meter(conn, builder_id, key)
        if meter is None:
            raise NotFound(
                f"builder {quoted(builder_id)} has no meter with key {quoted(key)}", field="meter_key"
            )
        self._meters[(builder_id, key)] = meter
        return meter

    async def query_usage(self, query: UsageQuery) -> UsageAnswer:
        try:
            usage.check_query(query)
        except QueryError as exc:
            raise InvalidArgument(exc.message, field=exc.field) from None
        meter = await self._meter(query.builder_id, query.meter_key)
        now = await self.store.db_now()
        cutoff = query.ingested_before or now
        try:
            plan = usage.plan(meter, query, cutoff)
        except QueryError as exc:
            raise InvalidArgument(exc.message, field=exc.field) from None
        raw = await self.store.query_usage(plan)
        rows = usage.rows(plan, raw, tuple(b.key for b in meter.spec.buckets))
        return UsageAnswer(rows=rows, cutoff=cutoff, settled=cutoff <= now - self.settle)

    # ---- ExplainUsage -------------------------------------------------------------------

    async def explain_usage(self, query: ExplainQuery) -> ExplainAnswer:
        """The events behind one customer's QueryUsage value and what each contributed (explain.py)."""
        meter = await self._meter(query.builder_id, query.meter_key)
        cutoff = query.ingested_before or await self.store.db_now()
        if query.ingested_after is not None and query.ingested_after >= cutoff:
            raise InvalidArgument(
                "ingested_after_time must be before ingested_before_time", field="ingested_after_time"
            )
        try:
            plan = usage.plan(
                meter,
                UsageQuery(
                    builder_id=query.builder_id,
                    meter_key=query.meter_key,
                    customer_id=query.customer_id,
                    start=query.start,
                    end=query.end,
                    tag_filters=query.tag_filters,
                    ingested_before=cutoff,
                ),
                cutoff,
            )
        except QueryError as exc:
            raise InvalidArgument(exc.message, field=exc.field) from None
        if plan.empty:
            return ExplainAnswer(Decimal(0), 0, [], [], cutoff, None)
        explain_plan = ExplainPlan(plan, query.ingested_after, query.group_by)
        # One row more than the page: whether another page follows.
        if query.events_view:
            totals, events = await self.explain.events(explain_plan, query.after, query.size + 1)
            more = len(events) > query.size
            events = events[: query.size]
            last = events[-1].event if events else None
            next_after = (last.occurred_time, last.event_id) if more and last else None
            return ExplainAnswer(totals.quantity, totals.event_count, [], events, cutoff, next_after)
        totals, groups = await self.explain.groups(explain_plan, query.after, query.size + 1)
        more = len(groups) > query.size
        groups = groups[: query.size]
        next_group = (
            (groups[-1].quantity, tuple(groups[-1].tags[t] for t in query.group_by)) if more else None
        )
        return ExplainAnswer(totals.quantity, totals.event_count, groups, [], cutoff, next_group)

    # ---- ListEvents ---------------------------------------------------------------------

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
    ) -> EventPage:
        if not builder_id:
            raise InvalidArgument("builder_id is required", field="builder_id")
        if start is not None and end is not None and end <= start:
            raise InvalidArgument("end_time must be after start_time", field="end_time")
        found = await self.store.list_events(
            builder_id=builder_id,
            customer_id=customer_id,
            type_=type_,
            run_id=run_id,
            start=start,
            end=end,
            after=after,
            limit=limit + 1,
        )
        if len(found) > limit:
            page = found[:limit]
            return EventPage(page, (page[-1].occurred_time, page[-1].seq))
        return EventPage(found, None)


def _check_meter_ref(builder_id: str, key: str) -> None:
    if not builder_id:
        raise InvalidArgument("builder_id is required", field="builder_id")
    if not key:
        raise InvalidArgument("key is required", field="key")
