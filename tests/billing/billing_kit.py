"""Helpers for billing's API tests: money, meters, events and status checks."""

from __future__ import annotations

import socket
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from common.money import from_money, to_money, to_timestamp
from tollgate.billing.v1 import billing_pb2 as bpb
from tollgate.metering.v1 import metering_pb2 as mpb


def rid() -> str:
    return uuid.uuid4().hex


def usd(amount: str) -> object:
    return to_money(Decimal(amount), "USD")


def dec(money: object) -> Decimal:
    return from_money(money)  # type: ignore[arg-type]


def at(year: int, month: int, day: int = 1, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


def ts(value: datetime) -> object:
    return to_timestamp(value)


async def create_meters(metering, builder: str) -> None:
    meters = [
        mpb.Meter(
            builder_id=builder,
            key="documents",
            display_name="Documents processed",
            event_types=["document.processed"],
            aggregation=mpb.AGGREGATION_COUNT,
            bucket_quantity="pages",
            buckets=[
                mpb.Bucket(key="1-10", max_value="10"),
                mpb.Bucket(key="11-50", max_value="50"),
                mpb.Bucket(key="51+"),
            ],
        ),
        mpb.Meter(
            builder_id=builder,
            key="tickets",
            display_name="Support tickets handled",
            event_types=["ticket.handled"],
            aggregation=mpb.AGGREGATION_COUNT,
        ),
        mpb.Meter(
            builder_id=builder,
            key="llm_cost",
            display_name="Model usage",
            event_types=["ai.request"],
            aggregation=mpb.AGGREGATION_SUM,
            quantity="provider_cost",
        ),
    ]
    for meter in meters:
        await metering.CreateMeter(mpb.CreateMeterRequest(request_id=rid(), meter=meter))


def event(
    builder: str,
    customer: str,
    etype: str,
    when: datetime,
    *,
    quantities: dict[str, str] | None = None,
    tags: dict[str, str] | None = None,
) -> mpb.UsageEvent:
    return mpb.UsageEvent(
        id=rid(),
        type=etype,
        occurred_time=to_timestamp(when),
        builder_id=builder,
        app_id="app-1",
        customer_id=customer,
        status=mpb.EVENT_STATUS_SUCCEEDED,
        quantities=quantities or {},
        tags=tags or {},
    )


async def ingest(metering, events: list[mpb.UsageEvent]) -> None:
    for i in range(0, len(events), 5000):
        reply = await metering.IngestEvents(
            mpb.IngestEventsRequest(request_id=rid(), events=events[i : i + 5000])
        )
        assert reply.accepted_count == len(events[i : i + 5000]), reply


def field_of(err: grpc.aio.AioRpcError) -> str | None:
    status = rpc_status.from_call(err)
    if status is None:
        return None
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            info = error_details_pb2.BadRequest()
            detail.Unpack(info)
            return info.field_violations[0].field
    return None


def line_by(invoice: bpb.Invoice, charge_key: str, kind: int = bpb.LINE_KIND_USAGE) -> bpb.InvoiceLine:
    for line in invoice.lines:
        if line.charge_key == charge_key and line.kind == kind:
            return line
    raise AssertionError(f"no {charge_key} line of kind {kind} on invoice {invoice.number}")


def free_port() -> int:
    """A loopback port nothing listens on (bound and released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
