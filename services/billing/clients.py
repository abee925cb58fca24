"""Typed wrappers over metering's gRPC API: every call has a deadline; UNAVAILABLE is retried.

Billing reads usage only through metering.v1.QueryUsage (and ExplainUsage, the events behind a
finalized line), and meter definitions (for the spend rate card) through GetMeter, cached per builder
and meter for METER_CACHE_SECONDS. Quantities come back as exact decimal strings and stay Decimal here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import grpc
import structlog

from billing.domain.spend import MeterInfo
from billing.domain.text import quote
from common.errors import FailedPrecondition, InvalidArgument, Unavailable
from common.money import from_timestamp, to_timestamp
from tollgate.metering.v1 import metering_pb2, metering_pb2_grpc

log = structlog.get_logger("billing.clients")

_RETRYABLE = (
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
)


# Metering's answers about the query itself: the close or preview cannot go on as asked.
_REFUSED = (
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.OUT_OF_RANGE,
)


@dataclass(frozen=True)
class UsageRow:
    customer_id: str
    bucket: str
    tags: dict[str, str]
    value: Decimal
    event_count: int


@dataclass(frozen=True)
class UsageAnswer:
    rows: list[UsageRow] = field(default_factory=list)
    cutoff: datetime | None = None
    settled: bool = False


# A meter's definition changes rarely (event types, aggregation and statuses are fixed at create): the
# rate card reads it at most once a minute per builder and meter.
METER_CACHE_SECONDS = 60.0
# GetSpendPolicy sits on the gateway's path to a customer's first request: one short try, no retries.
METER_DEADLINE_SECONDS = 5.0


def _enum_name(prefix: str, name: str) -> str:
    return name.removeprefix(prefix).lower()


class MeteringClient:
    """QueryUsage and ExplainUsage with a deadline per call and retries on UNAVAILABLE for up to
    `retry_seconds`."""

    def __init__(
        self,
        connect: Callable[[list[tuple[str, Any]]], grpc.aio.Channel],
        *,
        deadline_seconds: float = 30.0,
        retry_seconds: float = 60.0,
    ) -> None:
        # connect(options) opens the channel with billing's credential (and TLS): app.py decides how.
        self._connect = connect
        self._deadline = deadline_seconds
        self._retry_seconds = retry_seconds
        self._channel: grpc.aio.Channel | None = None
        self._stub: metering_pb2_grpc.MeteringServiceStub | None = None
        self._meters: dict[tuple[str, str], tuple[float, MeterInfo | None]] = {}

    def _ensure(self) -> metering_pb2_grpc.MeteringServiceStub:
        if self._stub is None:
            self._channel = self._connect(
                [
                    ("grpc.max_receive_message_length", 256 * 1024 * 1024),
                    ("grpc.max_send_message_length", 64 * 1024 * 1024),
                ],
            )
            self._stub = metering_pb2_grpc.MeteringServiceStub(self._channel)
        return self._stub

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
            self._stub = None

    async def get_meter(self, builder_id: str, meter_key: str) -> MeterInfo | None:
        """The meter's definition, or None when metering has no such meter (cached either way)."""
        key = (builder_id, meter_key)
        cached = self._meters.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        request = metering_pb2.GetMeterRequest(builder_id=builder_id, key=meter_key)
        try:
            reply = await self._ensure().GetMeter(
                request, timeout=min(self._deadline, METER_DEADLINE_SECONDS)
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() not in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                log.warning("billing.metering.get_meter_failed", meter_key=meter_key, code=exc.code().name)
                raise Unavailable(
                    f"metering did not answer for meter {quote(meter_key)} ({exc.code().name})"
                ) from None
            info = None
        else:
            m = reply.meter
            info = MeterInfo(
                event_types=tuple(m.event_types),
                aggregation=_enum_name("AGGREGATION_", metering_pb2.Aggregation.Name(m.aggregation)),
                quantity=m.quantity,
                statuses=tuple(
                    _enum_name("EVENT_STATUS_", metering_pb2.EventStatus.Name(s)) for s in m.statuses
                ),
            )
        if len(self._meters) > 10_000:
            self._meters.clear()
        self._meters[key] = (time.monotonic() + METER_CACHE_SECONDS, info)
        return info

    async def query_usage(
        self,
        *,
        builder_id: str,
        meter_key: str,
        start: datetime,
        end: datetime,
        customer_id: str = "",
        group_by_customer: bool = False,
        group_by_bucket: bool = False,
        group_by_tags: tuple[str, ...] = (),
        cutoff: datetime | None = None,
        statuses: tuple[int, ...] = (),
    ) -> UsageAnswer:
        request = metering_pb2.QueryUsageRequest(
            builder_id=builder_id,
            meter_key=meter_key,
            customer_id=customer_id,
            start_time=to_timestamp(start),
            end_time=to_timestamp(end),
            group_by_customer=group_by_customer,
            group_by_bucket=group_by_bucket,
            group_by_tags=list(group_by_tags),
            statuses=list(statuses),
        )
        if cutoff is not None:
            request.ingested_before_time.CopyFrom(to_timestamp(cutoff))
        response = await self._call(request, meter_key)
        rows = [
            UsageRow(
                customer_id=r.customer_id,
                bucket=r.bucket,
                tags=dict(r.tags),
                value=Decimal(r.value or "0"),
                event_count=r.event_count,
            )
            for r in response.rows
        ]
        return UsageAnswer(
            rows=rows,
            cutoff=from_timestamp(response.ingested_before_time)
            if response.HasField("ingested_before_time")
            else None,
            settled=response.cutoff_settled,
        )

    async def explain_usage(
        self,
        *,
        builder_id: str,
        meter_key: str,
        customer_id: str,
        start: datetime,
        end: datetime,
        ingested_before: datetime,
        ingested_after: datetime | None,
        events: bool,
        group_by: tuple[str, ...] = (),
        page_size: int = 0,
        page_token: str = "",
    ) -> metering_pb2.ExplainUsageResponse:
        """One page of metering's ExplainUsage (the events behind a value and their contributions).
        A page token metering did not issue for this read is the caller's INVALID_ARGUMENT."""
        request = metering_pb2.ExplainUsageRequest(
            builder_id=builder_id,
            meter_key=meter_key,
            customer_id=customer_id,
            start_time=to_timestamp(start),
            end_time=to_timestamp(end),
            ingested_before_time=to_timestamp(ingested_before),
            view=metering_pb2.EXPLAIN_VIEW_EVENTS if events else metering_pb2.EXPLAIN_VIEW_GROUPS,
            group_by_tags=list(group_by),
            page_size=page_size,
            page_token=page_token,
        )
        if ingested_after is not None:
            request.ingested_after_time.CopyFrom(to_timestamp(ingested_after))
        return await self._call(request, meter_key, rpc="ExplainUsage")

    async def _call(self, request: Any, meter_key: str, *, rpc: str = "QueryUsage") -> Any:
        stub = self._ensure()
        method = getattr(stub, rpc)
        # A close or preview reads with QueryUsage; ExplainUsage only ever serves a read.
        done = "nothing was finalized" if rpc == "QueryUsage" else "nothing was changed"
        give_up = time.monotonic() + self._retry_seconds
        delay = 0.2
        while True:
            try:
                return await method(request, timeout=self._deadline)
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in _RETRYABLE:
                    details = (exc.details() or "")[:200]
                    if rpc == "ExplainUsage" and exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
                        if "page_token" in details:
                            raise InvalidArgument(
                                "page_token is not a token this service issued", field="page_token"
                            ) from None
                    if exc.code() == grpc.StatusCode.NOT_FOUND:
                        raise FailedPrecondition(
                            f"metering has no meter {quote(meter_key)} for this builder: {details}",
                            field="meter_key",
                        ) from None
                    if exc.code() in _REFUSED:
                        raise FailedPrecondition(
                            f"metering refused the usage query for meter {quote(meter_key)}: {details}",
                            field="meter_key",
                        ) from None
                    # Anything else (a credential metering refuses, its own failure) is metering
                    # not serving billing: nothing was finalized, a later close can succeed.
                    log.warning("billing.metering.failed", meter_key=meter_key, code=exc.code().name)
                    raise Unavailable(
                        f"metering failed the usage query ({exc.code().name}); {done}"
                    ) from None
                if time.monotonic() + delay > give_up:
                    log.warning("billing.metering.unavailable", meter_key=meter_key, code=exc.code().name)
                    raise Unavailable(
                        f"metering is unavailable ({exc.code().name}); {done}, retry later"
                    ) from None
                log.info("billing.metering.retry", meter_key=meter_key, code=exc.code().name, delay=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
