"""Hypothesis strategies built from protobuf message descriptors, for fuzzing every RPC of the suite.

`messages(descriptor, hints)` draws instances of any request message by walking its descriptor: the
values a boundary must survive (NUL characters, astral characters, whitespace, strings up to ~10,000
characters, integer and float extremes, unknown enum numbers, empty to large repeated fields, maps,
nested messages to a bounded depth, oneofs, Timestamp, Duration, Money and Decimal at their extremes).

Random bytes rarely get past the first check of a handler, so about half of the time a field gets a
*plausible* value instead: an id that exists in the test fixtures (`Hints.strings`, keyed by field
name), "USD", a recent or month-start timestamp, a small positive amount in cents. That mix is what
lets the fuzzer reach the database code behind validation, where INTERNAL errors hide.

Large values are built by repetition (a short drawn piece repeated to the drawn length, a few drawn
elements repeated to 2,000 items), so Hypothesis's choice budget stays small and examples stay cheap.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from google.protobuf import descriptor as _descriptor
from google.protobuf import message_factory
from google.protobuf.message import Message
from hypothesis import strategies as st

FD = _descriptor.FieldDescriptor

INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)
UINT32 = (0, 2**32 - 1)
UINT64 = (0, 2**64 - 1)

# google.protobuf.Timestamp's documented range: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z.
TIMESTAMP_MIN_SECONDS = -62_135_596_800
TIMESTAMP_MAX_SECONDS = 253_402_300_799
# google.protobuf.Duration's documented range: about +-10,000 years.
DURATION_MAX_SECONDS = 315_576_000_000

LONG_STRING_MAX = 10_000
LARGE_REPEATED_MAX = 2_000

# A request_id (or other string) hint equal to this is replaced by a fresh uuid4 at call time, so a
# derandomized run does not replay one idempotency key across every RPC (see `fresh_request_ids`).
FRESH = "\uf8ffFRESH"

# Field names (any message) whose strings are exact decimals in the contracts.
DECIMAL_FIELDS = frozenset(
    {
        "value",
        "unit_price",
        "flat_price",
        "up_to",
        "package_size",
        "package_price",
        "markup_percent",
        "fixed_per_request",
        "included_quantity",
        "minimum_amount",
        "maximum_amount",
        "max_value",
        "percent_of_margin",
        "percent_of_amount",
        "quantity",
    }
)


@dataclass(frozen=True)
class Hints:
    """Plausible values, so drawn requests get past the first check.

    strings: field name -> values that exist in the fixtures ("builder_id" -> ["b1"]); a key may also be
    "Message.field" (the message's short name) to give one field its own values.
    maps: map field name -> plausible whole maps (as dicts).
    plausible_probability: how often a field takes a plausible value (its hints, else a tame one: a
    short lower-case word, a small number, a known enum value, one to three list items) rather than a
    wild one. 0.5 explores; 0.9 is "almost valid", one or two odd fields; 1.0 reaches the deep code.
    """

    strings: Mapping[str, Sequence[str]] = field(default_factory=dict)
    maps: Mapping[str, Sequence[Mapping[str, str]]] = field(default_factory=dict)
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    # Fields a valid request usually leaves out ("page_token", "Meter.quantity", ...): left unset most of
    # the time even when the rest is plausible, so the common valid shape is reached.
    optional: frozenset[str] = frozenset()
    plausible_probability: float = 0.5
    max_depth: int = 4

    def for_field(self, fd: FD) -> Sequence[str]:
        return self.strings.get(f"{fd.containing_type.name}.{fd.name}") or self.strings.get(fd.name) or ()


def _weighted(p: float, plausible: st.SearchStrategy, wild: st.SearchStrategy) -> st.SearchStrategy:
    # Hypothesis has no weighted one_of; a drawn float picks the branch, and shrinks towards plausible.
    @st.composite
    def pick(draw):
        if draw(st.floats(0, 1, exclude_max=True)) < p:
            return draw(plausible)
        return draw(wild)

    return pick()


# ---------------------------------------------------------------------------------------------- strings

_ASTRAL = st.characters(min_codepoint=0x10000, max_codepoint=0x10FFFF, exclude_categories=("Cs",))
_ANY_CHAR = st.characters(exclude_categories=("Cs",))  # every code point UTF-8 can carry
_WHITESPACE = st.sampled_from(["", " ", "  ", "\t", "\n", "\r\n", "\u00a0", "\u2028", "\u3000", "\x0b"])


@st.composite
def long_strings(draw, max_size: int = LONG_STRING_MAX) -> str:
    """A string of up to `max_size` characters, built by repeating a short drawn piece."""
    piece = draw(st.text(_ANY_CHAR, min_size=1, max_size=8))
    size = draw(st.one_of(st.sampled_from([129, 257, 1025, 4097, max_size]), st.integers(1, max_size)))
    return (piece * (size // len(piece) + 1))[:size]


_ID_LIKE = st.one_of(
    st.from_regex(r"[a-z0-9][a-z0-9_.-]{0,63}", fullmatch=True),
    st.uuids().map(lambda u: u.hex),
    st.uuids().map(str),
)

_DECIMAL_TEXT = st.one_of(
    st.sampled_from(
        [
            "0",
            "-0",
            "1",
            "-1",
            "0.000000001",
            "0.0000000001",
            "1e3",
            "1E-400",
            "1e999999999",
            "NaN",
            "sNaN",
            "-Infinity",
            "Infinity",
            "inf",
            " 1",
            "1 ",
            "1,5",
            "١٢",  # Arabic-Indic digits: Decimal() accepts them, a NUMERIC column does not
            "9" * 40,
            "9" * 29 + "." + "9" * 9,
            "-" + "9" * 30,
            "0." + "0" * 30 + "1",
            "+5",
            ".5",
            "5.",
            "--1",
        ]
    ),
    st.decimals(allow_nan=False, allow_infinity=False, places=None).map(str),
    st.decimals(allow_nan=False, allow_infinity=False, places=2, min_value=0, max_value=10**6).map(str),
)


def wild_strings() -> st.SearchStrategy[str]:
    """Strings a boundary must refuse cleanly or store exactly."""
    return st.one_of(
        st.text(_ANY_CHAR, max_size=20),
        st.text(_ASTRAL, min_size=1, max_size=8),
        st.builds(lambda a, b: f"{a}\x00{b}", st.text(max_size=5), st.text(max_size=5)),
        _WHITESPACE,
        _ID_LIKE,
        _ID_LIKE.map(lambda s: s + "\n"),  # a "$"-anchored pattern check lets this through
        long_strings(),
        _DECIMAL_TEXT,
    )


_TAME_TEXT = st.one_of(st.from_regex(r"[a-z][a-z0-9-]{0,11}", fullmatch=True), st.just("Fuzzed name"))


def string_strategy(fd: FD, hints: Hints) -> st.SearchStrategy[str]:
    wild = wild_strings()
    plausible = list(hints.for_field(fd))
    if fd.name in DECIMAL_FIELDS:
        wild = st.one_of(_DECIMAL_TEXT, wild)
        plausible.extend(["0", "1", "0.50", "25", "10.00", "0.000001"])
    if fd.name == "currency_code":
        plausible.extend(["USD", "EUR", "JPY"])
        wild = st.one_of(st.sampled_from(["usd", "US", "USDD", "XXX", "ZZZ", "US\x00"]), wild)
    tame = st.sampled_from(plausible) if plausible else _TAME_TEXT
    # Almost valid: a plausible value with one flaw, the cheapest way past the first check.
    wild = _weighted(0.5, st.builds(lambda v, f: f(v), tame, st.sampled_from(_FLAWS)), wild)
    return _weighted(hints.plausible_probability, tame, wild)


_FLAWS = (
    lambda v: v + "\x00",
    lambda v: "\x00" + v,
    lambda v: v[:1] + "\x00" + v[1:],
    lambda v: v + "\n",
    lambda v: " " + v,
    lambda v: v.upper(),
    lambda v: v + "\U0001f600",
    lambda v: (v or "x") * (LONG_STRING_MAX // max(len(v), 1)),
    lambda v: v[:-1],
)


# -------------------------------------------------------------------------------------------- numbers


def _ints(
    lo: int, hi: int, hints: Hints, plausible: Sequence[int] = (0, 1, 10, 100)
) -> st.SearchStrategy[int]:
    edges = sorted({lo, lo + 1, -1 if lo < 0 else lo, 0, 1, hi - 1, hi})
    tame = st.sampled_from([v for v in plausible if lo <= v <= hi])
    return _weighted(
        hints.plausible_probability, tame, st.one_of(st.sampled_from(edges), st.integers(lo, hi))
    )


def _floats(width: int, hints: Hints) -> st.SearchStrategy[float]:
    wild = st.one_of(
        st.sampled_from([-0.0, 2.0, -1.0, 1e308, float("inf"), float("-inf"), float("nan")]),
        st.floats(width=width, allow_nan=True, allow_infinity=True),
    )
    return _weighted(hints.plausible_probability, st.sampled_from([0.0, 0.5, 1.0]), wild)


_INT_RANGES = {
    FD.TYPE_INT32: INT32,
    FD.TYPE_SINT32: INT32,
    FD.TYPE_SFIXED32: INT32,
    FD.TYPE_INT64: INT64,
    FD.TYPE_SINT64: INT64,
    FD.TYPE_SFIXED64: INT64,
    FD.TYPE_UINT32: UINT32,
    FD.TYPE_FIXED32: UINT32,
    FD.TYPE_UINT64: UINT64,
    FD.TYPE_FIXED64: UINT64,
}


def enum_strategy(fd: FD, hints: Hints) -> st.SearchStrategy[int]:
    known = [v.number for v in fd.enum_type.values]
    tame = st.sampled_from([n for n in known if n] or known)
    # proto3 enums are open: an unknown number travels on the wire and reaches the handler.
    wild = st.one_of(st.sampled_from(known), st.sampled_from([99, -1, *INT32]), st.integers(*INT32))
    return _weighted(hints.plausible_probability, tame, wild)


# --------------------------------------------------------------------------------- well-known messages


@st.composite
def timestamps(draw, hints: Hints) -> tuple[int, int]:
    now = int(hints.now.timestamp())
    month_starts = []
    y, m = hints.now.year, hints.now.month
    for _ in range(4):
        month_starts.append(int(datetime(y, m, 1, tzinfo=UTC).timestamp()))
        y, m = (y, m - 1) if m > 1 else (y - 1, 12)
    plausible = st.tuples(
        st.one_of(
            st.sampled_from(month_starts),
            st.integers(now - 90 * 86400, now + 60),
            st.sampled_from([now, now - 3600, now - 86400]),
        ),
        st.sampled_from([0, 0, 500_000_000]),
    )
    wild = st.tuples(
        st.one_of(
            st.sampled_from(
                [
                    TIMESTAMP_MIN_SECONDS,
                    TIMESTAMP_MIN_SECONDS - 1,
                    TIMESTAMP_MAX_SECONDS,
                    TIMESTAMP_MAX_SECONDS + 1,
                    0,
                    -1,
                    2**31,
                    now + 10 * 365 * 86400,
                    now - 30 * 365 * 86400,
                ]
            ),
            st.integers(*INT64),
        ),
        st.one_of(st.sampled_from([0, 999_999_999, 1_000_000_000, -1]), st.integers(*INT32)),
    )
    return draw(_weighted(hints.plausible_probability, plausible, wild))


@st.composite
def durations(draw) -> tuple[int, int]:
    seconds = draw(
        st.one_of(
            st.sampled_from(
                [0, 1, -1, DURATION_MAX_SECONDS, -DURATION_MAX_SECONDS, DURATION_MAX_SECONDS + 1]
            ),
            st.integers(*INT64),
        )
    )
    nanos = draw(st.one_of(st.sampled_from([0, 999_999_999, -999_999_999, 10**9]), st.integers(*INT32)))
    return seconds, nanos


@st.composite
def money(draw, hints: Hints) -> tuple[str, int, int]:
    plausible = st.tuples(
        st.sampled_from(["USD", "USD", "EUR"]),
        # Mostly small: a payment or credit must fit what an invoice still asks for.
        st.one_of(st.sampled_from([1, 2, 5]), st.integers(0, 500)),
        st.sampled_from([0, 10_000_000, 500_000_000, 990_000_000]),
    )
    wild = st.tuples(
        st.one_of(st.sampled_from(["USD", "", "usd", "JPY", "XXX", "US\x00"]), wild_strings()),
        st.one_of(
            st.sampled_from([INT64[0], INT64[1], INT64[1] // 2 + 1, -1, 0, 10**15, 10**18]),
            st.integers(*INT64),
        ),
        st.one_of(
            st.sampled_from([0, 1, -1, 999_999_999, -999_999_999, 10**9, INT32[0], INT32[1], 5_000_000]),
            st.integers(*INT32),
        ),
    )
    return draw(_weighted(hints.plausible_probability, plausible, wild))


# ----------------------------------------------------------------------------------------- messages


def _is_map(fd: FD) -> bool:
    return fd.type == FD.TYPE_MESSAGE and fd.message_type.GetOptions().map_entry


def _synthetic_oneof(oneof) -> bool:
    # proto3 `optional` fields sit alone in a synthetic oneof named "_<field>".
    return len(oneof.fields) == 1 and oneof.name == "_" + oneof.fields[0].name


def scalar_strategy(fd: FD, hints: Hints) -> st.SearchStrategy:
    t = fd.type
    if t == FD.TYPE_STRING:
        return string_strategy(fd, hints)
    if t == FD.TYPE_BYTES:
        return st.one_of(st.binary(max_size=64), long_strings(4096).map(lambda s: s.encode()))
    if t == FD.TYPE_BOOL:
        return st.booleans()
    if t == FD.TYPE_ENUM:
        return enum_strategy(fd, hints)
    if t == FD.TYPE_DOUBLE:
        return _floats(64, hints)
    if t == FD.TYPE_FLOAT:
        return _floats(32, hints)
    if t in _INT_RANGES:
        return _ints(*_INT_RANGES[t], hints)
    raise TypeError(f"no strategy for field {fd.full_name} of type {t}")


def _value_strategy(fd: FD, hints: Hints, depth: int) -> st.SearchStrategy:
    if fd.type == FD.TYPE_MESSAGE:
        return messages(fd.message_type, hints, depth + 1)
    return scalar_strategy(fd, hints)


@st.composite
def _repeated(draw, element: st.SearchStrategy, hints: Hints) -> list:
    if draw(st.floats(0, 1, exclude_max=True)) < hints.plausible_probability:
        return draw(st.lists(element, min_size=1, max_size=3))
    kind = draw(st.sampled_from(["small", "small", "empty", "large"]))
    if kind == "empty":
        return []
    if kind == "small":
        return draw(st.lists(element, min_size=1, max_size=5))
    # Large: a few drawn elements repeated to the drawn length (cheap for Hypothesis to hold).
    pool = draw(st.lists(element, min_size=1, max_size=3))
    size = draw(
        st.one_of(st.sampled_from([33, 101, 1_001, LARGE_REPEATED_MAX]), st.integers(6, LARGE_REPEATED_MAX))
    )
    return [pool[i % len(pool)] for i in range(size)]


@st.composite
def _map_value(draw, fd: FD, hints: Hints, depth: int) -> dict:
    entry = fd.message_type
    key_fd, value_fd = entry.fields_by_name["key"], entry.fields_by_name["value"]
    plausible = hints.maps.get(fd.name)
    keys = _value_strategy(key_fd, hints, depth)
    values = _value_strategy(value_fd, hints, depth)
    if draw(st.floats(0, 1, exclude_max=True)) < hints.plausible_probability:
        if plausible:
            return dict(draw(st.sampled_from(list(plausible))))
        return draw(st.dictionaries(keys, values, max_size=2))
    kind = draw(st.sampled_from(["small", "small", "empty", "large"]))
    if kind == "empty":
        return {}
    if kind == "small":
        return draw(st.dictionaries(keys, values, max_size=5))
    # Large: many distinct keys (a drawn stem and a counter), one drawn value.
    stem = draw(st.text(max_size=4)) if key_fd.type == FD.TYPE_STRING else 0
    value = draw(values)
    size = draw(st.sampled_from([33, 100, 1_000]))
    if key_fd.type == FD.TYPE_STRING:
        return {f"{stem}{i}": value for i in range(size)}
    return {i: value for i in range(size)}


@st.composite
def messages(draw, descriptor: _descriptor.Descriptor, hints: Hints | None = None, depth: int = 0) -> Message:
    """An instance of the message `descriptor` describes, every field drawn by its type."""
    hints = hints or Hints()
    cls = message_factory.GetMessageClass(descriptor)
    msg = cls()
    full = descriptor.full_name
    if full == "google.protobuf.Timestamp":
        msg.seconds, msg.nanos = draw(timestamps(hints))
        return msg
    if full == "google.protobuf.Duration":
        msg.seconds, msg.nanos = draw(durations())
        return msg
    if full == "tollgate.type.v1.Money":
        msg.currency_code, msg.units, msg.nanos = draw(money(hints))
        return msg
    if depth > hints.max_depth:
        return msg

    # Plausible throughout (p = 1) sets every field, so required ones are there.
    unset_probability = 0.3 * (1 - hints.plausible_probability)
    # One member of each real oneof (or none); the synthetic ones of proto3 `optional` are plain fields.
    chosen_oneof_members: set[str] = set()
    skipped_oneof_members: set[str] = set()
    for oneof in descriptor.oneofs:
        names = [f.name for f in oneof.fields]
        if _synthetic_oneof(oneof):
            continue
        pick = draw(st.sampled_from(names if unset_probability == 0 else [None, *names]))
        chosen_oneof_members.update([pick] if pick else [])
        skipped_oneof_members.update(n for n in names if n != pick)

    for fd in descriptor.fields:
        if fd.name in skipped_oneof_members:
            continue
        in_oneof = fd.name in chosen_oneof_members
        # Leaving a field unset is itself a case (the missing-required-field path); oneof picks are set.
        unset = unset_probability
        if fd.name in hints.optional or f"{descriptor.name}.{fd.name}" in hints.optional:
            unset = max(unset, 0.7)
        if not in_oneof and draw(st.floats(0, 1, exclude_max=True)) < unset:
            continue
        if _is_map(fd):
            value_fd = fd.message_type.fields_by_name["value"]
            target = getattr(msg, fd.name)
            for k, v in draw(_map_value(fd, hints, depth)).items():
                if value_fd.type == FD.TYPE_MESSAGE:
                    target[k].CopyFrom(v)
                else:
                    target[k] = v
        elif fd.is_repeated:
            getattr(msg, fd.name).extend(draw(_repeated(_value_strategy(fd, hints, depth), hints)))
        elif fd.type == FD.TYPE_MESSAGE:
            getattr(msg, fd.name).CopyFrom(draw(messages(fd.message_type, hints, depth + 1)))
        else:
            setattr(msg, fd.name, draw(scalar_strategy(fd, hints)))
    return msg


def fresh_request_ids(msg: Message) -> Message:
    """Replaces every FRESH string (at any depth) with a new uuid4 hex, in place; returns msg."""
    for fd, value in msg.ListFields():
        if fd.type == FD.TYPE_STRING and not fd.is_repeated and value == FRESH:
            setattr(msg, fd.name, uuid.uuid4().hex)
        elif fd.type == FD.TYPE_MESSAGE and not _is_map(fd):
            for sub in value if fd.is_repeated else [value]:
                fresh_request_ids(sub)
    return msg


# ------------------------------------------------------------------------------------------ the wire

# Byte strings that are not UTF-8: a lone continuation byte, an overlong form, a UTF-16 surrogate, a
# code point past U+10FFFF, a truncated sequence. protobuf refuses them in a proto3 string field.
NOT_UTF8 = (b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82", b"ok\x80")


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


@st.composite
def wire_bytes(draw, descriptor: _descriptor.Descriptor, hints: Hints | None = None) -> bytes:
    """A request body as bytes that may not decode as `descriptor`'s message: random bytes, a valid
    message cut short or with a byte flipped, or a valid message with a string field that is not UTF-8
    (spliced in at the wire level, where protobuf's own API cannot put it)."""
    hints = hints or Hints()
    kind = draw(st.sampled_from(["random", "truncated", "flipped", "not-utf8", "not-utf8"]))
    if kind == "random":
        return draw(st.binary(min_size=1, max_size=256))
    valid = draw(messages(descriptor, hints)).SerializeToString()
    if kind == "truncated" and len(valid) > 1:
        return valid[: draw(st.integers(1, len(valid) - 1))]
    if kind == "flipped" and valid:
        i = draw(st.integers(0, len(valid) - 1))
        return valid[:i] + bytes([valid[i] ^ draw(st.integers(1, 255))]) + valid[i + 1 :]
    strings = [f for f in descriptor.fields if f.type == FD.TYPE_STRING]
    if not strings:
        return valid + draw(st.binary(min_size=1, max_size=16))
    fd = draw(st.sampled_from(strings))
    bad = draw(st.sampled_from(NOT_UTF8))
    field = _varint(fd.number << 3 | 2) + _varint(len(bad)) + bad
    return valid + field if draw(st.booleans()) else field + valid
