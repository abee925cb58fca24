"""Metering demo: two meters, one batch with a duplicate, a conflict and an invalid event, a workflow
run with a retried failed request, and the usage those events add up to, all through the public API."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from scripts.demo import operator_channel
from tollgate.metering.v1 import metering_pb2 as pb
from tollgate.metering.v1 import metering_pb2_grpc

DEADLINE = 10.0
OUTCOME = {
    pb.INGEST_OUTCOME_ACCEPTED: "accepted",
    pb.INGEST_OUTCOME_DUPLICATE: "duplicate",
    pb.INGEST_OUTCOME_CONFLICT: "conflict",
    pb.INGEST_OUTCOME_INVALID: "invalid",
}


def _event(
    builder: str,
    event_id: str,
    event_type: str,
    at: datetime,
    *,
    customer: str,
    status: int = pb.EVENT_STATUS_SUCCEEDED,
    run_id: str = "",
    tags: dict[str, str] | None = None,
    quantities: dict[str, str] | None = None,
) -> pb.UsageEvent:
    event = pb.UsageEvent(
        id=event_id,
        type=event_type,
        builder_id=builder,
        app_id="contracts-assistant",
        customer_id=customer,
        status=status,
        run_id=run_id,
        tags=tags or {},
        quantities=quantities or {},
    )
    event.occurred_time.FromDatetime(at)
    return event


async def run(endpoints: dict[str, str]) -> None:
    builder = f"demo-agency-{uuid.uuid4().hex[:6]}"
    now = datetime.now(UTC).replace(microsecond=0)
    start = now - timedelta(hours=1)
    async with operator_channel(endpoints["metering"]) as channel:
        stub = metering_pb2_grpc.MeteringServiceStub(channel)

        documents = pb.Meter(
            builder_id=builder,
            key="documents_processed",
            display_name="Documents processed",
            event_types=["document.processed"],
            aggregation=pb.AGGREGATION_COUNT,
            bucket_quantity="pages",
            buckets=[
                pb.Bucket(key="1-10", max_value="10"),
                pb.Bucket(key="11-100", max_value="100"),
                pb.Bucket(key="101+"),
            ],
        )
        runs = pb.Meter(
            builder_id=builder,
            key="workflow_runs",
            display_name="Workflow runs",
            event_types=["ai.request"],
            aggregation=pb.AGGREGATION_UNIQUE_COUNT,
        )
        tokens = pb.Meter(
            builder_id=builder,
            key="input_tokens",
            display_name="Input tokens",
            event_types=["ai.request"],
            aggregation=pb.AGGREGATION_SUM,
            quantity="input_tokens",
            statuses=[pb.EVENT_STATUS_SUCCEEDED, pb.EVENT_STATUS_FAILED],
        )
        for meter in (documents, runs, tokens):
            await stub.CreateMeter(
                pb.CreateMeterRequest(request_id=f"{builder}-{meter.key}", meter=meter), timeout=DEADLINE
            )
        print(
            f"builder {builder}: meters documents_processed (by page bucket), workflow_runs "
            "(distinct runs), input_tokens (sum, failed attempts included)"
        )

        acme, globex = "acme-legal", "globex-hr"
        batch = [
            _event(
                builder,
                "doc-1",
                "document.processed",
                start + timedelta(minutes=1),
                customer=acme,
                quantities={"pages": "4"},
            ),
            _event(
                builder,
                "doc-2",
                "document.processed",
                start + timedelta(minutes=2),
                customer=acme,
                quantities={"pages": "37"},
            ),
            _event(
                builder,
                "doc-3",
                "document.processed",
                start + timedelta(minutes=3),
                customer=acme,
                quantities={"pages": "212"},
            ),
            _event(
                builder,
                "doc-4",
                "document.processed",
                start + timedelta(minutes=4),
                customer=globex,
                quantities={"pages": "9"},
            ),
            # The gateway's relay re-sent doc-1 after a timeout: same content, no effect.
            _event(
                builder,
                "doc-1",
                "document.processed",
                start + timedelta(minutes=1),
                customer=acme,
                quantities={"pages": "4"},
            ),
            # A buggy client reused doc-2's id for another document: rejected, the first stays.
            _event(
                builder,
                "doc-2",
                "document.processed",
                start + timedelta(minutes=5),
                customer=acme,
                quantities={"pages": "3"},
            ),
            # A negative page count is invalid; its batch-mates are unaffected.
            _event(
                builder,
                "doc-5",
                "document.processed",
                start + timedelta(minutes=6),
                customer=globex,
                quantities={"pages": "-2"},
            ),
            # Run r-100: the first model call failed, its retry and a second step succeeded.
            _event(
                builder,
                "req-1",
                "ai.request",
                start + timedelta(minutes=10),
                customer=acme,
                status=pb.EVENT_STATUS_FAILED,
                run_id="r-100",
                tags={"workflow": "contract-review"},
                quantities={"input_tokens": "1200"},
            ),
            _event(
                builder,
                "req-2",
                "ai.request",
                start + timedelta(minutes=11),
                customer=acme,
                run_id="r-100",
                tags={"workflow": "contract-review"},
                quantities={"input_tokens": "1200", "provider_cost": "0.0036"},
            ),
            _event(
                builder,
                "req-3",
                "ai.request",
                start + timedelta(minutes=12),
                customer=acme,
                run_id="r-100",
                tags={"workflow": "contract-review"},
                quantities={"input_tokens": "800.5", "provider_cost": "0.0024015"},
            ),
            # Run r-200 for another customer, one request.
            _event(
                builder,
                "req-4",
                "ai.request",
                start + timedelta(minutes=20),
                customer=globex,
                run_id="r-200",
                tags={"workflow": "onboarding"},
                quantities={"input_tokens": "450"},
            ),
        ]
        reply = await stub.IngestEvents(
            pb.IngestEventsRequest(request_id=uuid.uuid4().hex, events=batch), timeout=DEADLINE
        )
        print(
            f"\ningested a batch of {len(batch)}: {reply.accepted_count} accepted, "
            f"{reply.duplicate_count} duplicate, {reply.conflict_count} conflict, "
            f"{reply.invalid_count} invalid"
        )
        for result in reply.results:
            if result.outcome != pb.INGEST_OUTCOME_ACCEPTED:
                detail = (
                    f" ({result.reason}{'; field ' + result.field if result.field else ''})"
                    if result.reason
                    else ""
                )
                print(f"  {result.event_id}: {OUTCOME[result.outcome]}{detail}")

        again = await stub.IngestEvents(
            pb.IngestEventsRequest(request_id=uuid.uuid4().hex, events=batch), timeout=DEADLINE
        )
        print(
            f"the whole batch retried: {again.accepted_count} accepted, {again.duplicate_count} "
            "duplicate -> nothing counted twice"
        )

        def window(request: pb.QueryUsageRequest) -> pb.QueryUsageRequest:
            request.start_time.FromDatetime(start)
            request.end_time.FromDatetime(now + timedelta(minutes=1))
            return request

        docs = await stub.QueryUsage(
            window(
                pb.QueryUsageRequest(
                    builder_id=builder,
                    meter_key="documents_processed",
                    group_by_customer=True,
                    group_by_bucket=True,
                )
            ),
            timeout=DEADLINE,
        )
        print("\ndocuments_processed by customer and page bucket:")
        for row in docs.rows:
            print(f"  {row.customer_id:<11} {row.bucket:<7} {row.value}")

        run_rows = await stub.QueryUsage(
            window(
                pb.QueryUsageRequest(
                    builder_id=builder,
                    meter_key="workflow_runs",
                    group_by_customer=True,
                    group_by_tags=["workflow"],
                )
            ),
            timeout=DEADLINE,
        )
        print("workflow_runs by customer and workflow (a run counts once, retries included):")
        for row in run_rows.rows:
            print(
                f"  {row.customer_id:<11} {row.tags['workflow']:<16} {row.value} run(s) "
                f"from {row.event_count} request(s)"
            )

        token_rows = await stub.QueryUsage(
            window(pb.QueryUsageRequest(builder_id=builder, meter_key="input_tokens", customer_id=acme)),
            timeout=DEADLINE,
        )
        total = token_rows.rows[0].value if token_rows.rows else "0"
        print(f"input_tokens for {acme}: {total} (exact decimal; failed attempt included by the meter)")

        # A late event arrives; a query with the earlier cutoff still gives the earlier answer.
        cutoff = token_rows.ingested_before_time
        await stub.IngestEvents(
            pb.IngestEventsRequest(
                request_id=uuid.uuid4().hex,
                events=[
                    _event(
                        builder,
                        "req-late",
                        "ai.request",
                        start + timedelta(minutes=30),
                        customer=acme,
                        run_id="r-101",
                        quantities={"input_tokens": "1000"},
                    )
                ],
            ),
            timeout=DEADLINE,
        )
        later = await stub.QueryUsage(
            window(pb.QueryUsageRequest(builder_id=builder, meter_key="input_tokens", customer_id=acme)),
            timeout=DEADLINE,
        )
        replay = window(pb.QueryUsageRequest(builder_id=builder, meter_key="input_tokens", customer_id=acme))
        replay.ingested_before_time.CopyFrom(cutoff)
        replayed = await stub.QueryUsage(replay, timeout=DEADLINE)
        print(
            f"after a late event: now {later.rows[0].value}; with the first query's cutoff still "
            f"{replayed.rows[0].value} (settled: {replayed.cutoff_settled}, becomes true after the "
            "settle period)"
        )

        listed = await stub.ListEvents(
            pb.ListEventsRequest(builder_id=builder, run_id="r-100", page_size=10), timeout=DEADLINE
        )
        print(
            "raw events of run r-100, newest first: "
            + ", ".join(
                f"{e.id} ({pb.EventStatus.Name(e.status).removeprefix('EVENT_STATUS_').lower()})"
                for e in listed.events
            )
        )
