"""What the chat use cases return, and one request's attempts (each becomes a usage event)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from common.idempotency import fingerprint
from gateway.domain import chat as chat_rules
from gateway.domain.catalog import Route
from gateway.domain.chat import ChatInput
from gateway.domain.keys import ApiKey
from gateway.domain.usage import UsageRecord, build_event, estimate_tokens, reported_usage
from gateway.upstream import UpstreamError


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int
    output_tokens: int
    estimated: bool


@dataclass(frozen=True, slots=True)
class Served:
    route: Route
    attempt: int


@dataclass(frozen=True, slots=True)
class Completion:
    id: str
    request_id: str
    created: int
    choices: list[dict[str, Any]]
    usage: Usage
    served: Served
    create_time: datetime


@dataclass(frozen=True, slots=True)
class StreamStart:
    """First item of a stream: who serves it (sent before any content)."""

    id: str
    request_id: str
    created: int
    served: Served


@dataclass(frozen=True, slots=True)
class StreamChunk:
    """Upstream chunks that arrived together: one list of choices (index, delta, finish_reason) each."""

    frames: list[list[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class StreamEnd:
    usage: Usage
    served: Served


class _Attempts:
    """One request's upstream attempts and the usage event each becomes (id `<request_id>:<n>`)."""

    __slots__ = (
        "_chat",
        "_key",
        "_occurred",
        "_prompt_chars",
        "_request_id",
        "_t0",
        "_tags",
        "base",
        "created",
        "events",
        "last_error",
        "n",
        "route",
        "skipped",
    )

    def __init__(self, key: ApiKey, chat: ChatInput, request_id: str, tags: dict[str, str]) -> None:
        self._key = key
        self._chat = chat
        self._request_id = request_id
        self._tags = tags
        self.created = datetime.now(UTC)
        self.events: list[UsageRecord] = []
        self.n = 0  # attempts started by this call
        self.base = 0  # attempt numbers earlier calls with the same request id reserved
        self.skipped = 0  # candidates passed over because their breaker was open
        self.last_error: UpstreamError | None = None
        self.route: Route
        self._occurred = self.created
        self._t0 = 0.0
        self._prompt_chars = -1

    def begin(self, route: Route) -> None:
        self.n += 1
        self.route = route
        self._occurred = datetime.now(UTC) if self.n > 1 else self.created
        self._t0 = time.perf_counter()

    def elapsed_ms(self) -> float:
        """Milliseconds since this attempt began."""
        return (time.perf_counter() - self._t0) * 1000

    def prompt_chars(self) -> int:
        if self._prompt_chars < 0:
            self._prompt_chars = chat_rules.prompt_chars(self._chat.messages)
        return self._prompt_chars

    def prompt_tokens_estimate(self) -> int:
        return estimate_tokens(self.prompt_chars())

    def usage(self, raw: object, output_chars: int) -> tuple[tuple[int, int], bool]:
        """The tokens to record and whether they are estimated (see usage.reported_usage)."""
        reported = reported_usage(raw, self.prompt_chars(), output_chars)
        if reported is not None:
            return reported, False
        return (self.prompt_tokens_estimate(), estimate_tokens(output_chars)), True

    def succeeded(self, tokens: tuple[int, int], estimated: bool, latency_ms: float | None = None) -> None:
        self._add(True, tokens, estimated, latency_ms, "")

    def failed(self, error: str, tokens: tuple[int, int] = (0, 0), *, estimated: bool = False) -> None:
        self._add(False, tokens, estimated, None, error)

    def _add(
        self, ok: bool, tokens: tuple[int, int], estimated: bool, latency_ms: float | None, error: str
    ) -> None:
        key = self._key
        self.events.append(
            build_event(
                request_id=self._request_id,
                attempt=self.base + self.n,
                occurred_time=self._occurred,
                builder_id=key.builder_id,
                app_id=key.app_id,
                customer_id=key.customer_id,
                route=self.route,
                succeeded=ok,
                input_tokens=tokens[0],
                output_tokens=tokens[1],
                estimated=estimated,
                latency_ms=int(self.elapsed_ms() if latency_ms is None else latency_ms),
                tags=self._tags,
                units=self._chat.units,
                error=error,
                test=key.test,
            )
        )


def _upstream_body(route: Route, chat: ChatInput, stream: bool) -> bytes:
    body: dict[str, Any] = {"model": route.upstream_model, "messages": chat.messages}
    body.update(chat.params)
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return json.dumps(body, separators=(",", ":")).encode()


def _fingerprint(key: ApiKey, chat: ChatInput) -> str:
    """What makes two calls with one request id the same request: the key's app and customer and
    everything the caller asked for, except streaming (a unary retry of a stream is the same work)."""
    p = chat.prefs
    u = chat.units
    return fingerprint(
        [
            key.app_id,
            key.customer_id,
            chat.models,
            chat.messages,
            chat.params,
            chat.tags,
            chat.strategy,
            [p.order, p.only, p.ignore],
            [u.run_id, u.document_id, u.page_count, u.ticket_id, u.outcome],
        ]
    )


def _completion_chars(choices: list[dict[str, Any]]) -> int:
    n = 0
    for c in choices:
        m = c.get("message") or c.get("delta") or {}
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, str):
            n += len(content)
    return n
