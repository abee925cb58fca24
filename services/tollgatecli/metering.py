"""`tollgate usage ...`: metering's aggregated usage."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from tollgate.metering.v1 import metering_pb2
from tollgatecli.base import (
    BuilderOpt,
    JsonOpt,
    handled,
    key_values,
    month_range,
    parse_time,
    session,
    timestamp,
    when,
)
from tollgatecli.client import CliError, Exit
from tollgatecli.output import to_data

usage = typer.Typer(
    help="Metered usage: aggregate a meter over a period, grouped as you ask.", no_args_is_help=True
)

_WINDOWS = {
    "none": metering_pb2.WINDOW_SIZE_UNSPECIFIED,
    "hour": metering_pb2.WINDOW_SIZE_HOUR,
    "day": metering_pb2.WINDOW_SIZE_DAY,
    "month": metering_pb2.WINDOW_SIZE_MONTH,
}


def _range(period: str, start: str, end: str) -> tuple[datetime, datetime]:
    if period and (start or end):
        raise CliError("give either --period or --from/--to, not both", Exit.USAGE)
    if period:
        return month_range(period)
    if start:
        return parse_time(start, "--from"), parse_time(end, "--to") if end else datetime.now(UTC)
    now = datetime.now(UTC)
    return month_range(f"{now.year:04d}-{now.month:02d}")


@usage.command("query")
@handled
def usage_query(
    ctx: typer.Context,
    meter: Annotated[str, typer.Option("--meter", "-m", help="The meter's key.")],
    builder: BuilderOpt = "",
    period: Annotated[
        str, typer.Option("--period", help="A calendar month, YYYY-MM (UTC). Default: this month.")
    ] = "",
    start: Annotated[str, typer.Option("--from", help="Range start (ISO date/time, inclusive).")] = "",
    end: Annotated[
        str, typer.Option("--to", help="Range end (ISO date/time, exclusive). Default: now.")
    ] = "",
    customer: Annotated[str, typer.Option("--customer", help="Only this customer.")] = "",
    group_by: Annotated[
        list[str] | None,
        typer.Option(
            "--group-by",
            "-g",
            help="customer, app, bucket, or a tag name (workspace, workflow, ...); repeatable.",
        ),
    ] = None,
    window: Annotated[str, typer.Option("--window", help="none, hour, day or month.")] = "none",
    tag_filter: Annotated[
        list[str] | None, typer.Option("--where", help="Only events with tag KEY=VALUE (repeatable).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Aggregate one meter over a period: one row per window and group that had events."""
    client, out = session(ctx, as_json)
    if window not in _WINDOWS:
        raise CliError(f"--window is one of {', '.join(_WINDOWS)}, got {window!r}", Exit.USAGE)
    first, last = _range(period, start, end)
    groups = list(group_by or [])
    tags = [g for g in groups if g not in ("customer", "app", "bucket")]
    reply = client.call(
        "metering",
        "QueryUsage",
        metering_pb2.QueryUsageRequest(
            builder_id=builder,
            meter_key=meter,
            customer_id=customer,
            start_time=timestamp(first),
            end_time=timestamp(last),
            window_size=_WINDOWS[window],
            group_by_customer="customer" in groups,
            group_by_app="app" in groups,
            group_by_bucket="bucket" in groups,
            group_by_tags=tags,
            tag_filters=key_values(tag_filter, "--where"),
        ),
    )
    if out.as_json:
        out.json(
            {
                "meter": meter,
                "start_time": timestamp(first).ToJsonString(),
                "end_time": timestamp(last).ToJsonString(),
                **to_data(reply),
            }
        )
        return
    columns = ["window start", "window end"]
    columns += [g for g in groups if g in ("customer", "app")] + tags
    columns += ["bucket"] if "bucket" in groups else []
    columns += ["value", "events"]
    rows = []
    for r in reply.rows:
        row = [when(r.window_start_time), when(r.window_end_time)]
        row += [r.customer_id if g == "customer" else r.app_id for g in groups if g in ("customer", "app")]
        row += [r.tags.get(t, "") for t in tags]
        row += [r.bucket] if "bucket" in groups else []
        row += [r.value, r.event_count]
        rows.append(row)
    out.table(f"Usage of {meter}", columns, rows)
    settled = "settled" if reply.cutoff_settled else "not settled yet (recent events may still arrive)"
    out.note(f"counted events ingested before {when(reply.ingested_before_time)}: {settled}")
