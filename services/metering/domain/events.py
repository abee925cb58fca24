"""Usage events: validation, normalisation and the content hash that tells duplicates from conflicts.

Kept lean on purpose: IngestEvents runs these functions for up to 10,000 events per call, so they
work on plain tuples of values and build one small frozen result per event, nothing more.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import IntEnum
from hashlib import sha256 as _sha256
from typing import NamedTuple

MAX_ID_LENGTH = 128
MAX_TYPE_LENGTH = 128
MAX_REF_LENGTH = 128  # builder, app, customer and run ids
MAX_TAGS = 32
MAX_TAG_KEY_LENGTH = 64
MAX_TAG_VALUE_LENGTH = 256
MAX_QUANTITIES = 32
MAX_QUANTITY_KEY_LENGTH = 64
# Quantities are stored as exact numerics; we bound them like NUMERIC(38, 9): at most 29 digits
# before the point and 9 after, which covers token counts and per-token costs with room to spare.
MAX_QUANTITY_PLACES = 9
MAX_QUANTITY_INTEGER_DIGITS = 29

_TYPE_RE = re.compile(r"[a-z0-9._-]{1,128}\Z")
# A literal already in canonical form: no sign, no leading zeros, no trailing fractional zeros,
# within the NUMERIC(38, 9) bound. Nearly every real quantity matches, and skips Decimal entirely.
_CANONICAL = re.compile(r"(0|[1-9][0-9]{0,28})(\.[0-9]{0,8}[1-9])?")
_PLAIN_DECIMAL = re.compile(r"^([0-9]+(\.[0-9]*)?|\.[0-9]+)$")
_INTEGER_LIMIT = Decimal(10) ** MAX_QUANTITY_INTEGER_DIGITS
_MICROS_PER_SECOND = 1_000_000
_MICROS_PER_DAY = 86_400 * _MICROS_PER_SECOND
# occurred_us bounds: google.protobuf.Timestamp's range, 0001-01-01 to 9999-12-31 (UTC).
MIN_TIME_US = -62_135_596_800 * _MICROS_PER_SECOND
MAX_TIME_US = 253_402_300_799 * _MICROS_PER_SECOND + 999_999
# What a decoder passes for a timestamp it could not read (nanos out of range): below MIN_TIME_US.
INVALID_TIME = MIN_TIME_US - 1


class EventStatus(IntEnum):
    """How the work ended; numbers match the wire enum."""

    SUCCEEDED = 1
    FAILED = 2
    TEST = 3


class Outcome(IntEnum):
    """What happened to one event of a batch; numbers match the wire enum."""

    ACCEPTED = 1
    DUPLICATE = 2
    CONFLICT = 3
    INVALID = 4


class EventIn(NamedTuple):
    """One event as received. occurred_us is microseconds since the Unix epoch (UTC), None when unset.

    Immutable like the frozen dataclasses elsewhere, but a NamedTuple: IngestEvents builds up to
    10,000 of these per call, and a frozen dataclass's __init__ costs several times more.
    """

    id: str
    type: str
    occurred_us: int | None
    builder_id: str
    app_id: str
    customer_id: str
    status: int
    run_id: str
    # Any read-only mapping: the API hands over the request's protobuf maps without copying.
    tags: Mapping[str, str]
    quantities: Mapping[str, str]


class ValidEvent(NamedTuple):
    """An event that passed validation, with its quantities normalised and its content hash.

    quantities_json holds exact decimal literals as JSON numbers ("1.50" becomes 1.5): two events
    whose quantities are equal as numbers have the same content.
    """

    index: int
    id: str
    type: str
    occurred_us: int
    builder_id: str
    app_id: str
    customer_id: str
    status: int
    run_id: str
    tags_json: str
    quantities_json: str
    content_hash: str  # sha256, hex


@dataclass(frozen=True, slots=True)
class Invalid:
    index: int
    reason: str
    field: str


def quoted(value: str, limit: int = 64) -> str:
    """User input as it may appear in an error message: repr'd and cut to `limit` characters, so a
    megabyte-long or control-character-laden value never travels back in full (nor into a log)."""
    if len(value) <= limit:
        return repr(value)
    return repr(value[:limit]) + f"... ({len(value)} characters)"


def normalise_quantity(text: str) -> str:
    """The canonical literal of a quantity ("007.50" -> "7.5"); raises ValueError with a reason."""
    if _CANONICAL.fullmatch(text):
        return text
    s = text.strip()
    if not s:
        raise ValueError("is empty")
    negative = s[0] == "-"
    body = s[1:] if s[0] in "+-" else s
    if body.lower() in ("inf", "infinity", "nan", "snan"):
        raise ValueError("is not finite")
    if not _PLAIN_DECIMAL.fullmatch(body):
        raise ValueError(f"{quoted(text)} is not a decimal number")
    value = Decimal(body)
    if value == 0:
        return "0"
    if negative:
        raise ValueError("is negative")
    exponent = value.normalize().as_tuple().exponent
    # Trailing zeros after the point do not count against the bound.
    if isinstance(exponent, int) and -exponent > MAX_QUANTITY_PLACES:
        raise ValueError(f"has more than {MAX_QUANTITY_PLACES} decimal places")
    if value >= _INTEGER_LIMIT:
        raise ValueError(f"has more than {MAX_QUANTITY_INTEGER_DIGITS} digits before the point")
    out = format(value, "f")
    if "." in out:
        out = out.rstrip("0").rstrip(".")
    return out


def _json_str(value: str) -> str:
    """A JSON string literal, exactly as json.dumps(value, ensure_ascii=False) writes it."""
    if value.isprintable() and '"' not in value and "\\" not in value:
        return f'"{value}"'
    return json.dumps(value, ensure_ascii=False)


def _check_ref(value: str, name: str, required: bool) -> tuple[str, str] | None:
    if not value:
        return (f"{name} is required", name) if required else None
    if len(value) > MAX_REF_LENGTH:
        return f"{name} is longer than {MAX_REF_LENGTH} characters", name
    return None


_STATUSES = frozenset((1, 2, 3))


def validate_event(
    index: int, event: EventIn, *, now_us: int, future_tolerance_us: int, oldest_us: int = MIN_TIME_US
) -> ValidEvent | Invalid:
    """Check one event against every rule; the first broken rule is reported with its field path.

    occurred_us must lie in [oldest_us, now_us + future_tolerance_us]: oldest_us is the start of
    the retention window (the caller's clock minus the stated maximum age).

    The common case (a valid event) takes one pass of cheap checks; only an event that fails one
    goes through _first_problem, which names the rule and the field.
    """
    (event_id, event_type, occurred_us, builder_id, app_id, customer_id, status, run_id, tags, quantities) = (
        event
    )
    ok = (
        0 < len(event_id) <= MAX_ID_LENGTH
        and _TYPE_RE.match(event_type) is not None
        and 0 < len(builder_id) <= MAX_REF_LENGTH
        and 0 < len(customer_id) <= MAX_REF_LENGTH
        and len(app_id) <= MAX_REF_LENGTH
        and len(run_id) <= MAX_REF_LENGTH
        and occurred_us is not None
        and oldest_us <= occurred_us <= now_us + future_tolerance_us
        and status in _STATUSES
        and len(tags) <= MAX_TAGS
        and len(quantities) <= MAX_QUANTITIES
    )
    tags_json = "{}"
    if ok and tags:
        tag_keys = sorted(tags)
        tag_values = [tags[k] for k in tag_keys]
        for key, value in zip(tag_keys, tag_values, strict=True):
            if not (0 < len(key) <= MAX_TAG_KEY_LENGTH and len(value) <= MAX_TAG_VALUE_LENGTH):
                ok = False
                break
        else:
            raw = "".join(tag_keys) + "".join(tag_values)
            if raw.isprintable() and '"' not in raw and "\\" not in raw:
                # Nothing to escape: the literal json.dumps would write, built directly.
                tags_json = (
                    "{" + ",".join([f'"{k}":"{v}"' for k, v in zip(tag_keys, tag_values, strict=True)]) + "}"
                )
            elif "\x00" in raw:
                ok = False
            else:
                tags_json = (
                    "{"
                    + ",".join(
                        [f"{_json_str(k)}:{_json_str(v)}" for k, v in zip(tag_keys, tag_values, strict=True)]
                    )
                    + "}"
                )
    quantities_json = "{}"
    if ok and quantities:
        parts: list[str] = []
        for key in sorted(quantities):
            if not 0 < len(key) <= MAX_QUANTITY_KEY_LENGTH or "\x00" in key:
                ok = False
                break
            text = quantities[key]
            if _CANONICAL.fullmatch(text) is None:
                try:
                    text = normalise_quantity(text)
                except ValueError:
                    ok = False
                    break
            parts.append(f"{_json_str(key)}:{text}")
        quantities_json = "{" + ",".join(parts) + "}"
    content = (
        f"{event_type}\x1f{occurred_us}\x1f{app_id}\x1f{customer_id}\x1f{status}"
        f"\x1f{run_id}\x1f{tags_json}\x1f{quantities_json}"
    )
    # PostgreSQL text cannot hold NUL; tags and quantity keys were checked above.
    if not ok or "\x00" in content or "\x00" in event_id or "\x00" in builder_id:
        return _first_problem(
            index, event, now_us=now_us, future_tolerance_us=future_tolerance_us, oldest_us=oldest_us
        )

    return ValidEvent(
        index,
        event_id,
        event_type,
        occurred_us,  # type: ignore[arg-type]
        builder_id,
        app_id,
        customer_id,
        status,
        run_id,
        tags_json,
        quantities_json,
        _sha256(content.encode()).hexdigest(),
    )


def _first_problem(
    index: int, event: EventIn, *, now_us: int, future_tolerance_us: int, oldest_us: int
) -> Invalid:
    """The first rule the event breaks, with a sentence and the field path inside the request."""
    prefix = f"events[{index}]."

    def bad(reason: str, field: str) -> Invalid:
        return Invalid(index, reason, prefix + field)

    if not event.id:
        return bad("id is required", "id")
    if len(event.id) > MAX_ID_LENGTH:
        return bad(f"id is longer than {MAX_ID_LENGTH} characters", "id")
    for value, name in (
        (event.id, "id"),
        (event.builder_id, "builder_id"),
        (event.customer_id, "customer_id"),
        (event.app_id, "app_id"),
        (event.run_id, "run_id"),
    ):
        if "\x00" in value:
            return bad(f"{name} contains a NUL character", name)
    if not event.type:
        return bad("type is required", "type")
    if not _TYPE_RE.match(event.type):
        return bad(f"type must be 1 to {MAX_TYPE_LENGTH} characters of [a-z0-9._-]", "type")
    for value, name, required in (
        (event.builder_id, "builder_id", True),
        (event.customer_id, "customer_id", True),
        (event.app_id, "app_id", False),
        (event.run_id, "run_id", False),
    ):
        problem = _check_ref(value, name, required)
        if problem is not None:
            return bad(*problem)
    if event.occurred_us is None:
        return bad("occurred_time is required", "occurred_time")
    if not MIN_TIME_US <= event.occurred_us <= MAX_TIME_US:
        return bad(
            "occurred_time is not a valid timestamp (years 1 to 9999, nanos 0 to 999999999)", "occurred_time"
        )
    if event.occurred_us < oldest_us:
        return bad(
            f"occurred_time is more than {(now_us - oldest_us) // _MICROS_PER_DAY} days in the past, "
            "outside the retention window",
            "occurred_time",
        )
    if event.occurred_us > now_us + future_tolerance_us:
        return bad(
            f"occurred_time is more than {future_tolerance_us // _MICROS_PER_SECOND} seconds in the future",
            "occurred_time",
        )
    if event.status not in _STATUSES:
        if event.status == 0:
            return bad("status is required", "status")
        return bad(f"status {event.status} is not a known status", "status")
    tags = event.tags
    if len(tags) > MAX_TAGS:
        return bad(f"has {len(tags)} tags, more than {MAX_TAGS}", "tags")
    for key, value in tags.items():
        if not key:
            return bad("tag key is empty", "tags")
        if len(key) > MAX_TAG_KEY_LENGTH:
            return bad(f"tag key is longer than {MAX_TAG_KEY_LENGTH} characters", f"tags.{key[:64]}")
        if len(value) > MAX_TAG_VALUE_LENGTH:
            return bad(f"tag {key} is longer than {MAX_TAG_VALUE_LENGTH} characters", f"tags.{key}")
        if "\x00" in key or "\x00" in value:
            return bad(
                f"tag {key.replace(chr(0), '')} contains a NUL character", f"tags.{key.replace(chr(0), '')}"
            )
    quantities = event.quantities
    if len(quantities) > MAX_QUANTITIES:
        return bad(f"has {len(quantities)} quantities, more than {MAX_QUANTITIES}", "quantities")
    for key in sorted(quantities):
        if not key:
            return bad("quantity key is empty", "quantities")
        if len(key) > MAX_QUANTITY_KEY_LENGTH:
            return bad(
                f"quantity key is longer than {MAX_QUANTITY_KEY_LENGTH} characters", f"quantities.{key[:64]}"
            )
        if "\x00" in key:
            return bad("quantity key contains a NUL character", f"quantities.{key.replace(chr(0), '')}")
        try:
            normalise_quantity(quantities[key])
        except ValueError as exc:
            return bad(f"quantity {key} {exc}", f"quantities.{key}")
    raise AssertionError("validate_event's fast path rejected a valid event")  # pragma: no cover


@dataclass(frozen=True, slots=True)
class BatchResult:
    outcome: Outcome
    reason: str = ""
    field: str = ""


ACCEPTED = BatchResult(Outcome.ACCEPTED)
DUPLICATE = BatchResult(Outcome.DUPLICATE)
CONFLICT = BatchResult(
    Outcome.CONFLICT, "an event with this id and different content was stored before; the first one stays"
)


def split_batch(
    valid: list[ValidEvent],
) -> tuple[list[ValidEvent], dict[int, tuple[int, ValidEvent]]]:
    """Separate the first occurrence of each (builder_id, id) from its repeats within the batch.

    Returns the first occurrences, and for each repeat (by batch index) the index of its first
    occurrence; a repeat is later judged against whatever content won for its key.
    """
    firsts: dict[tuple[str, str], ValidEvent] = {}
    repeats: dict[int, tuple[int, ValidEvent]] = {}
    for event in valid:
        key = (event.builder_id, event.id)
        first = firsts.get(key)
        if first is None:
            firsts[key] = event
        else:
            repeats[event.index] = (first.index, event)
    return list(firsts.values()), repeats
