"""What the gateway records must pass metering's event rules, checked before a provider is paid.

Every answered request becomes usage events that metering validates on ingest; an event metering
refuses is parked, and the answer it paid for is never billed. So the gateway states metering's rules
here (from tollgate.metering.v1.UsageEvent's contract; no metering code is imported) and applies them
to what a request will put in its events before routing it: bad input is INVALID_ARGUMENT / 400
naming the field, never an unbilled answer.

Metering's rules for the fields a request controls, in the order they are checked:

1. builder, app, customer and run ids: at most 128 characters;
2. tags: at most 32 in all; keys 1 to 64 characters; values at most 256 characters;
3. quantities: decimal strings, finite, not negative, at most 29 digits before the point and 9 after;
4. no NUL character anywhere (PostgreSQL text cannot hold one), and text that is valid UTF-8 (a
   protobuf string must be; an HTTP header or JSON escape can smuggle in a lone surrogate).

The gateway adds its own tags to each event (ROUTE_TAG_KEYS, and UNIT_TAG_KEYS for declared business
units), so the 32 are counted over the request's tags and those together. The values the gateway adds
come from the catalog, whose rules keep them inside these bounds. Page counts are whole numbers from 0
to MAX_PAGE_COUNT (far inside rule 3).

Kept lean: it runs on every request, so the common case is a handful of length and `in` tests.
"""

from __future__ import annotations

from collections.abc import Mapping

MAX_REF_LENGTH = 128
MAX_TAGS = 32
MAX_TAG_KEY_LENGTH = 64
MAX_TAG_VALUE_LENGTH = 256
MAX_PAGE_COUNT = 1_000_000_000
# Tags every event gets from its route and attempt (error and tokens_estimated only on some,
# attempt_status only on a test key's events: counted for every request so the room a request's tags
# have does not depend on the key's mode).
ROUTE_TAG_KEYS = frozenset(
    {
        "model",
        "provider",
        "offering",
        "upstream_model",
        "attempt",
        "tokens_estimated",
        "error",
        "attempt_status",
    }
)
# Tags an event gets from the request's business units, when declared.
UNIT_TAG_KEYS = ("document_id", "ticket_id", "outcome")


def _text_problem(value: str) -> str:
    """ "" when value can be stored as metering text; else why not."""
    if "\x00" in value:
        return "contains a NUL character"
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "is not valid UTF-8 text"
    return ""


def ref_problem(value: str) -> str:
    """Rule 1 and 4 for an id (builder, app, customer, run)."""
    if len(value) > MAX_REF_LENGTH:
        return f"is longer than {MAX_REF_LENGTH} characters"
    return _text_problem(value)


def tag_problem(key: str, value: str) -> tuple[str, str]:
    """Rules 2 and 4 for one tag: (reason, "key" or "value"), or ("", "")."""
    if not key:
        return "tag key is empty", "key"
    if len(key) > MAX_TAG_KEY_LENGTH:
        return f"tag key is longer than {MAX_TAG_KEY_LENGTH} characters", "key"
    problem = _text_problem(key)
    if problem:
        return f"tag key {problem}", "key"
    if len(value) > MAX_TAG_VALUE_LENGTH:
        return f"is longer than {MAX_TAG_VALUE_LENGTH} characters", "value"
    problem = _text_problem(value)
    if problem:
        return problem, "value"
    return "", ""


def event_problem(
    builder_id: str, app_id: str, customer_id: str, run_id: str, tags: Mapping[str, str]
) -> tuple[str, str] | None:
    """The first of metering's rules an event with these fields breaks, as (reason, field), else None.
    Fields are named as in the event: builder_id, app_id, customer_id, run_id, tags, tags.<key>."""
    for value, name in (
        (builder_id, "builder_id"),
        (app_id, "app_id"),
        (customer_id, "customer_id"),
        (run_id, "run_id"),
    ):
        problem = ref_problem(value)
        if problem:
            return f"{name} {problem}", name
    if len(tags) > MAX_TAGS:
        return f"has {len(tags)} tags, more than {MAX_TAGS}", "tags"
    for key, value in tags.items():
        reason, part = tag_problem(key, value)
        if reason:
            shown = key[:MAX_TAG_KEY_LENGTH].replace("\x00", "")
            return (reason if part == "key" else f"tag {shown} {reason}"), (
                "tags" if part == "key" else f"tags.{shown}"
            )
    return None


def event_tag_keys(tags: Mapping[str, str], unit_tags: Mapping[str, str]) -> int:
    """How many tags the events of a request can carry at most: its own, its units', the route's."""
    n = len(ROUTE_TAG_KEYS)
    for k in tags:
        if k not in ROUTE_TAG_KEYS and k not in unit_tags:
            n += 1
    return n + len(unit_tags)
