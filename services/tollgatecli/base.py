"""What every command shares: the invocation's state, common options, error handling, small parsers."""

from __future__ import annotations

import functools
import re
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from google.protobuf.timestamp_pb2 import Timestamp

from tollgatecli.client import Client, CliError, Exit
from tollgatecli.output import Output

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class State:
    client: Client
    as_json: bool = False


def session(ctx: typer.Context, as_json: bool) -> tuple[Client, Output]:
    """The client of this invocation and where to write (`--json` before or after the command)."""
    state: State = ctx.find_root().obj
    return state.client, Output(state.as_json or as_json)


def handled(fn: F) -> F:
    """Report a CliError on one line (stderr) and exit with its code, instead of a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except CliError as exc:
            print(f"tollgate: error: {exc.message}", file=sys.stderr)
            raise typer.Exit(int(exc.code)) from None

    return wrapper  # type: ignore[return-value]


JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document instead of tables.")]
BuilderOpt = Annotated[
    str,
    typer.Option(
        "--builder",
        "-b",
        envvar="TOLLGATE_BUILDER",
        help="The builder. An operator names one; a builder credential acts for its own when empty.",
    ),
]
RequestIdOpt = Annotated[
    str,
    typer.Option(
        "--request-id",
        help="Idempotency key: the same id and body returns the first reply. Default: a fresh one.",
    ),
]


def read_text(path: Path) -> str:
    """A file the user named, or a usage error saying why it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}", Exit.USAGE) from None
    except UnicodeDecodeError:
        raise CliError(f"cannot read {path}: it is not UTF-8 text", Exit.USAGE) from None


def request_id(given: str = "") -> str:
    return given or f"cli-{uuid.uuid4().hex}"


def key_values(pairs: list[str] | None, option: str) -> dict[str, str]:
    """["workspace=ws1", "workflow=x"] -> {"workspace": "ws1", "workflow": "x"}."""
    out: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CliError(f"{option} takes KEY=VALUE, got {pair!r}", Exit.USAGE)
        out[key] = value
    return out


_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


def month_range(period: str) -> tuple[datetime, datetime]:
    """'2026-11' -> (2026-11-01T00:00Z, 2026-12-01T00:00Z): a calendar month in UTC."""
    match = _MONTH.fullmatch(period.strip())
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise CliError(f"a period is a month as YYYY-MM, got {period!r}", Exit.USAGE)
    year, month = int(match.group(1)), int(match.group(2))
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=UTC)
    return start, end


def parse_time(text: str, option: str) -> datetime:
    """An ISO 8601 date or time; without a zone it is UTC."""
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise CliError(
            f"{option} takes an ISO date or time (2026-11-01, 2026-11-01T12:00Z), got {text!r}", Exit.USAGE
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def timestamp(value: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(value.astimezone(UTC))
    return ts


def when(ts: Timestamp, present: bool = True) -> str:
    """A timestamp for a table: '2026-11-01 00:00:00Z', or '' when unset."""
    if not present or (ts.seconds == 0 and ts.nanos == 0):
        return ""
    return ts.ToDatetime(tzinfo=UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def enum_name(name: str, prefix: str) -> str:
    """'INVOICE_STATUS_FINALIZED' -> 'finalized'."""
    return name.removeprefix(prefix).lower()
