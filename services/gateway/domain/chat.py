"""A chat completion request as the gateway understands it, whichever door it came in by."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from common.errors import InvalidArgument
from gateway.domain import limits, recording
from gateway.domain.keys import validate_tags
from gateway.domain.routing import CHEAPEST, FIXED, LATENCY, NO_PREFERENCES, ProviderPreferences

ROLES = frozenset({"system", "user", "assistant", "tool", "developer"})
STRATEGIES = frozenset({CHEAPEST, LATENCY, FIXED})
_REQUEST_ID = re.compile(r"^[A-Za-z0-9_.:@/-]{1,100}$")


@dataclass(frozen=True, slots=True)
class BusinessUnits:
    run_id: str = ""
    document_id: str = ""
    page_count: int = 0
    ticket_id: str = ""
    outcome: str = ""


NO_UNITS = BusinessUnits()


@dataclass(frozen=True, slots=True)
class ChatInput:
    """Validated request. `messages` and `params` are forwarded to the provider as given."""

    request_id: str  # empty: the service generates one
    models: tuple[str, ...]  # primary first, then fallbacks
    messages: list[dict[str, Any]]
    params: dict[str, Any]  # max_tokens, temperature, top_p, stop, user
    tags: dict[str, str] = field(default_factory=dict)
    strategy: str = ""  # empty: the configured default
    prefs: ProviderPreferences = NO_PREFERENCES
    units: BusinessUnits = NO_UNITS
    stream: bool = False
    include_usage: bool = False  # SSE only: add the final usage chunk


# Extras read from x-tollgate-* headers / metadata and tollgate_* OpenAI metadata keys, by suffix.
EXTRA_FIELDS = (
    "request-id",
    "run-id",
    "document-id",
    "page-count",
    "ticket-id",
    "outcome",
    "strategy",
    "provider-order",
    "provider-only",
    "provider-ignore",
)


def extras_from_headers(pairs: Any, prefix: str = "x-tollgate-") -> dict[str, str]:
    """Collect x-tollgate-* pairs (header names are case-insensitive) into {suffix: value}."""
    out: dict[str, str] = {}
    for k, v in pairs:
        kl = k.lower()
        if kl.startswith(prefix):
            out[kl[len(prefix) :]] = v if isinstance(v, str) else str(v)
    return out


def extras_from_metadata(metadata: dict[str, Any]) -> dict[str, str]:
    """OpenAI `metadata` keys tollgate_run_id, tollgate_tag_<k>, ... as the same {suffix: value}."""
    out: dict[str, str] = {}
    for k, v in metadata.items():
        if k.startswith("tollgate_"):
            out[k[9:].replace("_", "-") if not k.startswith("tollgate_tag_") else "tag-" + k[13:]] = str(v)
    return out


def _split(v: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in v.split(",") if s.strip())


def apply_extras(base: ChatInput, extras: dict[str, str]) -> ChatInput:
    """Fill what the request body left empty from extras; body fields win. Tags merge, body wins."""
    if not extras:
        return base
    tags = {k[4:]: v for k, v in extras.items() if k.startswith("tag-")}
    tags.update(base.tags)
    u = base.units
    try:
        page_count = u.page_count or int(extras.get("page-count") or 0)
    except ValueError:
        raise InvalidArgument(
            "page count must be a whole number", field="business_units.page_count"
        ) from None
    units = BusinessUnits(
        run_id=u.run_id or extras.get("run-id", ""),
        document_id=u.document_id or extras.get("document-id", ""),
        page_count=page_count,
        ticket_id=u.ticket_id or extras.get("ticket-id", ""),
        outcome=u.outcome or extras.get("outcome", ""),
    )
    p = base.prefs
    prefs = ProviderPreferences(
        order=p.order or _split(extras.get("provider-order", "")),
        only=p.only or _split(extras.get("provider-only", "")),
        ignore=p.ignore or _split(extras.get("provider-ignore", "")),
    )
    return ChatInput(
        request_id=base.request_id or extras.get("request-id", ""),
        models=base.models,
        messages=base.messages,
        params=base.params,
        tags=tags,
        strategy=base.strategy or extras.get("strategy", "").lower(),
        prefs=prefs,
        units=units,
        stream=base.stream,
        include_usage=base.include_usage,
    )


def validate(c: ChatInput, key_tags: dict[str, str]) -> dict[str, str]:
    """Check the request; return the merged usage tags (key defaults, request tags win)."""
    if c.request_id and not _REQUEST_ID.fullmatch(c.request_id):
        raise InvalidArgument(
            "request_id must be 1 to 100 characters of [A-Za-z0-9_.:@/-]", field="request_id"
        )
    if not c.models or not all(isinstance(m, str) and m for m in c.models):
        raise InvalidArgument("model is required", field="model")
    if len(c.models) > 8:
        raise InvalidArgument("at most 7 fallback models", field="models")
    for i, name in enumerate(c.models):
        if len(name) > limits.MAX_MODEL_NAME_LENGTH or "\x00" in name:
            limits.check_text(name, "model" if i == 0 else f"models[{i - 1}]", limits.MAX_MODEL_NAME_LENGTH)
    prefs = c.prefs
    for name, values in (
        ()
        if not (prefs.order or prefs.only or prefs.ignore)
        else (
            ("order", prefs.order),
            ("only", prefs.only),
            ("ignore", prefs.ignore),
        )
    ):
        limits.check_names(
            values,
            f"provider_preferences.{name}",
            limits.MAX_PREFERENCE_ITEMS,
            limits.MAX_PROVIDER_NAME_LENGTH,
        )
    if not isinstance(c.messages, list) or not c.messages:
        raise InvalidArgument("messages must have at least one message", field="messages")
    for i, m in enumerate(c.messages):
        if not isinstance(m, dict):
            raise InvalidArgument(f"messages[{i}] must be an object", field=f"messages[{i}]")
        if m.get("role") not in ROLES:
            raise InvalidArgument(
                f"messages[{i}].role must be one of {', '.join(sorted(ROLES))}", field=f"messages[{i}].role"
            )
        content = m.get("content")
        if content is not None and not isinstance(content, str | list):
            raise InvalidArgument(f"messages[{i}].content must be a string", field=f"messages[{i}].content")
    p = c.params
    mt = p.get("max_tokens")
    if mt is not None and (not isinstance(mt, int) or isinstance(mt, bool) or mt < 1):
        raise InvalidArgument("max_tokens must be a positive integer", field="max_tokens")
    t = p.get("temperature")
    if t is not None and (not isinstance(t, int | float) or isinstance(t, bool) or not 0 <= t <= 2):
        raise InvalidArgument("temperature must be between 0 and 2", field="temperature")
    tp = p.get("top_p")
    if tp is not None and (not isinstance(tp, int | float) or isinstance(tp, bool) or not 0 <= tp <= 1):
        raise InvalidArgument("top_p must be between 0 and 1", field="top_p")
    stop = p.get("stop")
    if stop is not None and not (
        isinstance(stop, str)
        or (isinstance(stop, list) and len(stop) <= 4 and all(isinstance(s, str) for s in stop))
    ):
        raise InvalidArgument("stop must be a string or up to 4 strings", field="stop")
    if stop is not None:
        for s in [stop] if isinstance(stop, str) else stop:
            if len(s) > limits.MAX_STOP_LENGTH:
                raise InvalidArgument(
                    f"a stop sequence is longer than {limits.MAX_STOP_LENGTH} characters", field="stop"
                )
    user = p.get("user")
    if user is not None and (not isinstance(user, str) or len(user) > limits.MAX_USER_LENGTH):
        raise InvalidArgument(
            f"user must be a string of at most {limits.MAX_USER_LENGTH} characters", field="user"
        )
    if c.strategy and c.strategy not in STRATEGIES:
        raise InvalidArgument("routing strategy must be cheapest, latency or fixed", field="routing_strategy")
    u = c.units
    unit_tags: dict[str, str] = {}
    if u != NO_UNITS:  # most requests declare none: skip the checks
        problem = recording.ref_problem(u.run_id)
        if problem:
            raise InvalidArgument(f"run_id {problem}", field="business_units.run_id")
        for name in recording.UNIT_TAG_KEYS:
            value = getattr(u, name)
            if value:
                reason, _ = recording.tag_problem(name, value)
                if reason:
                    raise InvalidArgument(f"{name} {reason}", field=f"business_units.{name}")
                unit_tags[name] = value
        if not 0 <= u.page_count <= recording.MAX_PAGE_COUNT:
            raise InvalidArgument(
                f"page_count must be between 0 and {recording.MAX_PAGE_COUNT}",
                field="business_units.page_count",
            )
    validate_tags(c.tags, "tags")
    merged = {**key_tags, **c.tags} if c.tags else key_tags
    if recording.event_tag_keys(merged, unit_tags) > recording.MAX_TAGS:
        raise InvalidArgument(
            f"the key's and the request's tags, the business units and the gateway's "
            f"{len(recording.ROUTE_TAG_KEYS)} route tags together exceed metering's {recording.MAX_TAGS}",
            field="tags",
        )
    return merged


def prompt_chars(messages: list[dict[str, Any]]) -> int:
    n = 0
    for m in messages:
        content = m.get("content")
        if isinstance(content, str):
            n += len(content)
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    n += len(part["text"])
    return n
