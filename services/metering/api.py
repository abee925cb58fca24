"""The gRPC servicer: check at the edge (edge.py), decode, call the service, encode."""

from __future__ import annotations

import grpc

from common.auth import Access
from common.money import format_decimal, to_timestamp
from common.paging import encode_token
from metering import edge
from metering.domain.events import INVALID_TIME, EventIn
from metering.domain.meters import Meter
from metering.domain.usage import UsageQuery
from metering.service import ExplainQuery, MeteringService
from metering.store import StoredEvent
from tollgate.metering.v1 import metering_pb2, metering_pb2_grpc

pb = metering_pb2


def _meter_to_pb(meter: Meter) -> pb.Meter:
    spec = meter.spec
    message = pb.Meter(
        id=meter.id,
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
            pb.Bucket(key=b.key, max_value=format_decimal(b.max_value) if b.max_value is not None else "")
            for b in spec.buckets
        ],
        state=int(meter.state),
        create_time=to_timestamp(meter.create_time),
    )
    if meter.archive_time is not None:
        message.archive_time.CopyFrom(to_timestamp(meter.archive_time))
    return message


def _event_to_pb(e: StoredEvent) -> pb.UsageEvent:
    return pb.UsageEvent(
        id=e.event_id,
        type=e.type,
        occurred_time=to_timestamp(e.occurred_time),
        builder_id=e.builder_id,
        app_id=e.app_id,
        customer_id=e.customer_id,
        status=e.status,
        run_id=e.run_id,
        tags=e.tags,
        quantities=e.quantities,
        ingested_time=to_timestamp(e.ingested_time),
    )


# Who may call what (common/auth.py): operators everything; a builder its own usage and meters; the
# gateway delivers usage events, billing and payouts read usage.
_READERS = ("billing", "payouts")
ACCESS = {
    "IngestEvents": Access.for_builder("events[].builder_id", services=("gateway",)),
    "CreateMeter": Access.for_builder("meter.builder_id"),
    "GetMeter": Access.for_builder("builder_id", services=_READERS),
    "ListMeters": Access.for_builder("builder_id", services=_READERS),
    "ArchiveMeter": Access.for_builder("builder_id"),
    "QueryUsage": Access.for_builder("builder_id", services=_READERS),
    "ListEvents": Access.for_builder("builder_id", services=_READERS),
    "ExplainUsage": Access.for_builder("builder_id", services=_READERS),
}


class MeteringServicer(metering_pb2_grpc.MeteringServiceServicer):
    def __init__(self, service: MeteringService) -> None:
        self.service = service

    async def IngestEvents(self, request: pb.IngestEventsRequest, context: grpc.aio.ServicerContext):
        # The hot path: one pass over the decoded batch. The protobuf maps are handed over as they
        # are (read-only Mappings): validation reads each entry once, so copying them first would
        # only add work.
        edge.check_ingest_events(request)
        events: list[EventIn] = []
        append = events.append
        for e in request.events:
            if e.HasField("occurred_time"):
                ts = e.occurred_time
                nanos = ts.nanos
                occurred_us: int | None = (
                    ts.seconds * 1_000_000 + nanos // 1000 if 0 <= nanos <= 999_999_999 else INVALID_TIME
                )
            else:
                occurred_us = None
            append(
                EventIn(
                    e.id,
                    e.type,
                    occurred_us,
                    e.builder_id,
                    e.app_id,
                    e.customer_id,
                    e.status,
                    e.run_id,
                    e.tags,
                    e.quantities,
                )
            )
        report = await self.service.ingest_events(events)
        response = pb.IngestEventsResponse(
            accepted_count=report.accepted,
            duplicate_count=report.duplicates,
            conflict_count=report.conflicts,
            invalid_count=report.invalid,
        )
        # results.add with only the set fields is several times cheaper than building messages.
        add = response.results.add
        for event, result in zip(events, report.results, strict=True):
            if result.reason:
                add(event_id=event.id, outcome=result.outcome, reason=result.reason, field=result.field)
            else:
                add(event_id=event.id, outcome=result.outcome)
        return response

    async def CreateMeter(self, request: pb.CreateMeterRequest, context: grpc.aio.ServicerContext):
        edge.check_create_meter(request)
        m = request.meter
        meter = await self.service.create_meter(
            request.request_id,
            {
                "builder_id": m.builder_id,
                "key": m.key,
                "display_name": m.display_name,
                "event_types": list(m.event_types),
                "aggregation": m.aggregation,
                "quantity": m.quantity,
                "unique_tag": m.unique_tag,
                "tag_filters": dict(m.tag_filters),
                "statuses": list(m.statuses),
                "bucket_quantity": m.bucket_quantity,
                "buckets": [(b.key, b.max_value) for b in m.buckets],
            },
        )
        return pb.CreateMeterResponse(meter=_meter_to_pb(meter))

    async def GetMeter(self, request: pb.GetMeterRequest, context: grpc.aio.ServicerContext):
        edge.check_get_meter(request)
        meter = await self.service.get_meter(request.builder_id, request.key)
        return pb.GetMeterResponse(meter=_meter_to_pb(meter))

    async def ListMeters(self, request: pb.ListMetersRequest, context: grpc.aio.ServicerContext):
        size, after_key = edge.check_list_meters(request)
        found, last_key = await self.service.list_meters(
            request.builder_id, include_archived=request.include_archived, after_key=after_key, limit=size
        )
        token = encode_token({"b": request.builder_id, "k": last_key}) if last_key is not None else ""
        return pb.ListMetersResponse(meters=[_meter_to_pb(m) for m in found], next_page_token=token)

    async def ArchiveMeter(self, request: pb.ArchiveMeterRequest, context: grpc.aio.ServicerContext):
        edge.check_archive_meter(request)
        meter = await self.service.archive_meter(request.request_id, request.builder_id, request.key)
        return pb.ArchiveMeterResponse(meter=_meter_to_pb(meter))

    async def QueryUsage(self, request: pb.QueryUsageRequest, context: grpc.aio.ServicerContext):
        start, end, ingested_before = edge.check_query_usage(request)
        answer = await self.service.query_usage(
            UsageQuery(
                builder_id=request.builder_id,
                meter_key=request.meter_key,
                customer_id=request.customer_id,
                start=start,
                end=end,
                window=request.window_size,
                group_by_customer=request.group_by_customer,
                group_by_app=request.group_by_app,
                group_by_tags=tuple(request.group_by_tags),
                group_by_bucket=request.group_by_bucket,
                tag_filters=dict(request.tag_filters),
                ingested_before=ingested_before,
                statuses=tuple(request.statuses),
            )
        )
        return pb.QueryUsageResponse(
            rows=[
                pb.UsageRow(
                    window_start_time=to_timestamp(r.window_start),
                    window_end_time=to_timestamp(r.window_end),
                    customer_id=r.customer_id,
                    app_id=r.app_id,
                    tags=r.tags,
                    bucket=r.bucket,
                    value=format_decimal(r.value),
                    event_count=r.event_count,
                )
                for r in answer.rows
            ],
            ingested_before_time=to_timestamp(answer.cutoff),
            cutoff_settled=answer.settled,
        )

    async def ExplainUsage(self, request: pb.ExplainUsageRequest, context: grpc.aio.ServicerContext):
        args = edge.check_explain_usage(request)
        events_view = request.view == pb.EXPLAIN_VIEW_EVENTS
        answer = await self.service.explain_usage(
            ExplainQuery(
                builder_id=request.builder_id,
                meter_key=request.meter_key,
                customer_id=request.customer_id,
                start=args.start,
                end=args.end,
                # Later pages keep the first page's cutoff, so paging never mixes two snapshots.
                ingested_before=args.ingested_before or args.cutoff,
                ingested_after=args.ingested_after,
                events_view=events_view,
                group_by=tuple(request.group_by_tags),
                tag_filters=dict(request.tag_filters),
                size=args.size,
                after=args.after,
            )
        )
        token = ""
        if answer.next_after is not None:
            a, b = answer.next_after
            position = [a.isoformat(), b] if events_view else [str(a), list(b)]
            token = encode_token({"f": args.fingerprint, "c": answer.cutoff.isoformat(), "k": position})
        return pb.ExplainUsageResponse(
            total_quantity=format_decimal(answer.total),
            event_count=answer.event_count,
            groups=[
                pb.UsageGroup(
                    tags=g.tags,
                    quantity=format_decimal(g.quantity),
                    event_count=g.event_count,
                    provider_cost=format_decimal(g.provider_cost),
                )
                for g in answer.groups
            ],
            events=[
                pb.ExplainedEvent(
                    event=_event_to_pb(e.event),
                    ingest_time=to_timestamp(e.event.ingested_time),
                    contributed_quantity=format_decimal(e.contributed),
                )
                for e in answer.events
            ],
            next_page_token=token,
            ingested_before_time=to_timestamp(answer.cutoff),
        )

    async def ListEvents(self, request: pb.ListEventsRequest, context: grpc.aio.ServicerContext):
        size, start, end, after = edge.check_list_events(request)
        page = await self.service.list_events(
            builder_id=request.builder_id,
            customer_id=request.customer_id,
            type_=request.type,
            run_id=request.run_id,
            start=start,
            end=end,
            after=after,
            limit=size,
        )
        token = ""
        if page.next_cursor is not None:
            token = encode_token({"t": page.next_cursor[0].isoformat(), "s": page.next_cursor[1]})
        return pb.ListEventsResponse(
            events=[_event_to_pb(e) for e in page.events],
            next_page_token=token,
        )
