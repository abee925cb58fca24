"""How results are shown: Rich tables for people, one JSON document for scripts (`--json`).

Amounts are exact decimal strings in JSON ("12.30"), never floats, and Money becomes
{"currency_code": "USD", "amount": "12.30"}; timestamps are RFC 3339 in UTC; enums are their names.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from google.protobuf.message import Message
from rich.console import Console
from rich.table import Table
from rich.text import Text

from common.money import from_money

MONEY = "tollgate.type.v1.Money"
DECIMAL = "tollgate.type.v1.Decimal"
TIMESTAMP = "google.protobuf.Timestamp"


def console(stderr: bool = False) -> Console:
    """A console on the current stdout/stderr (so test runners that swap them see the output). Not on a
    terminal, it is wide enough that ids and amounts are never folded or cut."""
    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() else 200
    return Console(file=stream, width=width, soft_wrap=False, highlight=False)


def money(value: Message | None) -> str:
    """12.3 USD -> "12.30 USD" (at least two places; more when the amount has them)."""
    if value is None or not value.currency_code:
        return ""
    amount = from_money(value)
    return f"{amount_text(amount)} {value.currency_code}"


def amount_text(amount: Decimal) -> str:
    text = format(amount.normalize(), "f")
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac.ljust(2, '0')}"


def to_data(message: Message) -> dict[str, Any]:
    """A proto message as plain JSON-ready data, every field present (zero values included)."""
    out: dict[str, Any] = {}
    for f in message.DESCRIPTOR.fields:
        value = getattr(message, f.name)
        mtype = f.message_type
        if mtype is not None and mtype.GetOptions().map_entry:
            vfield = mtype.fields_by_name["value"]
            out[f.name] = {k: _scalar_or_message(vfield, v) for k, v in value.items()}
        elif f.is_repeated:
            out[f.name] = [_scalar_or_message(f, v) for v in value]
        elif mtype is not None and not message.HasField(f.name):
            out[f.name] = None
        else:
            out[f.name] = _scalar_or_message(f, value)
    return out


def _scalar_or_message(f: Any, value: Any) -> Any:
    mtype = f.message_type
    if mtype is None:
        if f.enum_type is not None:
            named = f.enum_type.values_by_number.get(value)
            return named.name if named else value
        return value
    if mtype.full_name == MONEY:
        return {"currency_code": value.currency_code, "amount": amount_text(from_money(value))}
    if mtype.full_name == DECIMAL:
        return value.value or "0"
    if mtype.full_name == TIMESTAMP:
        return value.ToJsonString()
    return to_data(value)


class Output:
    """Where one command writes: tables and notes, or a single JSON document."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json

    def json(self, data: Any) -> None:
        sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")

    def table(self, title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        table = Table(title=Text(title), title_justify="left", show_lines=False)
        for name in columns:
            numeric = name.lower() in {"amount", "total", "due", "paid", "value", "events", "quantity"}
            table.add_column(name, justify="right" if numeric else "left", overflow="fold")
        count = 0
        for row in rows:
            table.add_row(*(Text("" if v is None else str(v)) for v in row))
            count += 1
        if count == 0:
            console().print(f"{title}: none", markup=False)
            return
        console().print(table)

    def note(self, text: str) -> None:
        """A line for people; in --json mode it goes to stderr so stdout stays one JSON document."""
        console(stderr=self.as_json).print(text, soft_wrap=True, markup=False)
