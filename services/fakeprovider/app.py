"""The stand-in provider: an aiohttp server speaking OpenAI's chat-completions API.

Behaviour (latency, token counts, errors) is a mutable `Behaviour` that the command line sets at start
and `POST /_control` (or `FakeProvider.control()` in-process) changes at run time, so a test can make a
running provider fail, slow down or recover without restarting it. `GET /_stats` counts requests by
outcome; `POST /_reset` restores the start-up behaviour and zeroes the counters.

It is the baseline of the gateway benchmark, so the hot path does no logging and builds response
bodies from precomputed JSON fragments instead of serialising dictionaries.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
import socket
import struct
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from aiohttp import web

# Error kinds a provider can be told to produce. Status kinds answer with OpenAI's error JSON;
# `timeout` hangs (past any sane client timeout), `reset` drops the connection before any byte,
# `midstream` sends the status line and part of the answer and then drops the connection.
STATUS_KINDS = {"400": 400, "401": 401, "404": 404, "429": 429, "500": 500, "502": 502, "503": 503}
# Answers with status 200 whose body is not a chat completion: not JSON at all, JSON without choices,
# and choices of the wrong types (a unary body; streams send one such chunk first).
MALFORMED_KINDS = {
    "not_json": "<html><body>upstream proxy error</body></html>",
    "no_choices": '{"id":"chatcmpl-x","object":"chat.completion","created":0,"model":"m"}',
    "bad_types": '{"id":"chatcmpl-x","object":"chat.completion","created":0,"model":"m",'
    '"choices":[{"index":"zero","message":{"role":"assistant","content":42},"finish_reason":7}]}',
}
ERROR_KINDS = frozenset({*STATUS_KINDS, *MALFORMED_KINDS, "timeout", "reset", "midstream"})

_ERROR_TYPES = {
    400: ("invalid_request_error", "bad_request"),
    401: ("invalid_request_error", "invalid_api_key"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
    500: ("server_error", "internal_error"),
    502: ("server_error", "bad_gateway"),
    503: ("server_error", "overloaded"),
}

_FILLER = ("says", "hello", "from", "the", "stand-in", "provider", "with", "deterministic", "tokens")


@dataclass
class Behaviour:
    """What the provider does with the next request. Times in milliseconds; rates in [0, 1]."""

    # Wait before the status line (unary: before the whole answer; stream: before the headers).
    latency_ms: float = 0.0
    # Streams only: wait between the headers and the first content chunk, then between chunks.
    ttft_ms: float = 0.0
    inter_token_ms: float = 0.0
    # Tokens in each answer (one word per token), capped by the request's max_tokens.
    completion_tokens: int = 8
    # Probability that a request fails, with a kind drawn (seeded) from error_kinds.
    error_rate: float = 0.0
    error_kinds: tuple[str, ...] = ("500",)
    # The next N requests fail regardless of error_rate (deterministic failures for tests).
    fail_next: int = 0
    seed: int = 0
    # The provider does not report usage (no `usage` in answers, no usage chunk in streams).
    omit_usage: bool = False
    # The provider reports usage with 0 tokens (prompt and completion) whatever it answered.
    zero_usage: bool = False
    # A request arriving on a keep-alive connection that already carried one is not answered: the
    # connection is closed (FIN), as a server does whose idle timer fired as the request arrived.
    drop_reused: bool = False
    # `midstream` failures send this many content chunks before dropping the connection.
    midstream_after: int = 2
    # How long a `timeout` failure hangs before finally answering 504.
    hang_seconds: float = 300.0
    # Retry-After (seconds) sent with 429 answers.
    retry_after_seconds: int = 1
    # Models listed by GET /v1/models; with strict_models, any other model gets 404.
    models: tuple[str, ...] = ("fake-chat",)
    strict_models: bool = False
    # When set, requests must carry `Authorization: Bearer <api_key>` (else 401).
    api_key: str | None = None

    def changed(self, changes: dict[str, Any]) -> Behaviour:
        """A copy with `changes` applied; raises ValueError naming an unknown or invalid field."""
        known = {f.name: f for f in fields(self)}
        coerced: dict[str, Any] = {}
        for key, value in changes.items():
            if key not in known:
                raise ValueError(f"unknown control field {key!r}")
            coerced[key] = _coerce(key, value)
        new = replace(self, **coerced)
        new.validate()
        return new

    def validate(self) -> None:
        for name in ("latency_ms", "ttft_ms", "inter_token_ms", "hang_seconds"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if not 0.0 <= self.error_rate <= 1.0:
            raise ValueError("error_rate must be between 0 and 1")
        if not self.error_kinds:
            raise ValueError("error_kinds must name at least one kind")
        unknown = [k for k in self.error_kinds if k not in ERROR_KINDS]
        if unknown:
            raise ValueError(f"unknown error kind(s) {unknown}; known: {sorted(ERROR_KINDS)}")
        if self.completion_tokens < 0 or self.fail_next < 0 or self.midstream_after < 0:
            raise ValueError("completion_tokens, fail_next and midstream_after must be >= 0")


def _coerce(key: str, value: Any) -> Any:
    if key in ("error_kinds", "models"):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        return tuple(str(v) for v in value)
    if key in ("omit_usage", "strict_models", "zero_usage", "drop_reused"):
        if isinstance(value, str):
            return value.lower() in ("1", "true", "yes", "on")
        return bool(value)
    if key == "api_key":
        return None if value in (None, "") else str(value)
    if key in ("completion_tokens", "fail_next", "seed", "midstream_after", "retry_after_seconds"):
        return int(value)
    return float(value)


@dataclass
class _Texts:
    """Precomputed JSON fragments for an answer of n tokens."""

    content_json: str  # the whole answer as a JSON string literal
    delta_jsons: list[str]  # one JSON string literal per streamed token


class ProviderState:
    """Behaviour, counters and caches of one provider instance (one event loop, no locking)."""

    def __init__(self, name: str, behaviour: Behaviour) -> None:
        behaviour.validate()
        self.name = name
        self.initial = behaviour
        self.behaviour = behaviour
        self.rng = random.Random(behaviour.seed)
        self.outcomes: Counter[str] = Counter()
        self.by_model: Counter[str] = Counter()
        self.requests = 0
        self.streams = 0
        self.in_flight = 0
        self.last_request: dict[str, Any] | None = None
        self._ids = itertools.count(1)
        self._texts: dict[int, _Texts] = {}
        self._model_json: dict[str, str] = {}
        self._auth = self._expected_auth(behaviour)

    @staticmethod
    def _expected_auth(behaviour: Behaviour) -> str | None:
        return None if behaviour.api_key is None else f"Bearer {behaviour.api_key}"

    def control(self, changes: dict[str, Any]) -> Behaviour:
        new = self.behaviour.changed(changes)
        if "seed" in changes:
            self.rng = random.Random(new.seed)
        self.behaviour = new
        self._auth = self._expected_auth(new)
        return new

    def reset(self) -> None:
        self.behaviour = self.initial
        self._auth = self._expected_auth(self.initial)
        self.rng = random.Random(self.initial.seed)
        self.outcomes.clear()
        self.by_model.clear()
        self.requests = self.streams = 0
        self.last_request = None

    def stats(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "requests": self.requests,
            "streams": self.streams,
            "in_flight": self.in_flight,
            "by_outcome": dict(self.outcomes),
            "by_model": dict(self.by_model),
            "last_request": self.last_request,
        }

    def texts(self, n: int) -> _Texts:
        cached = self._texts.get(n)
        if cached is None:
            words = [self.name, *(_FILLER[i % len(_FILLER)] for i in range(max(n - 1, 0)))][:n]
            deltas = [w if i == 0 else " " + w for i, w in enumerate(words)]
            cached = _Texts(json.dumps("".join(deltas)), [json.dumps(d) for d in deltas])
            self._texts[n] = cached
        return cached

    def model_json(self, model: str) -> str:
        cached = self._model_json.get(model)
        if cached is None:
            cached = self._model_json[model] = json.dumps(model)
        return cached

    def next_id(self) -> str:
        return f"chatcmpl-{self.name}-{next(self._ids)}"

    def pick_failure(self) -> str | None:
        b = self.behaviour
        if b.fail_next > 0:
            self.behaviour = replace(b, fail_next=b.fail_next - 1)
        elif not (b.error_rate and self.rng.random() < b.error_rate):
            return None
        kinds = b.error_kinds
        return kinds[0] if len(kinds) == 1 else self.rng.choice(kinds)


def count_prompt_tokens(messages: list[Any]) -> int:
    """Deterministic prompt tokens: whitespace-separated words in every message's text content."""
    n = 0
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            n += len(content.split())
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    n += len(part["text"].split())
    return n


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    kind, code = _ERROR_TYPES.get(status, ("server_error", "error"))
    body = json.dumps({"error": {"message": message, "type": kind, "param": None, "code": code}})
    return web.Response(status=status, text=body, content_type="application/json", headers=headers)


def _drop_connection(request: web.Request) -> None:
    """Close the connection abruptly (RST where the platform allows), as a crashing upstream would."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError, AttributeError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


async def _die_after_sending(request: web.Request) -> None:
    """End a half-sent answer: the bytes already written reach the client, then the connection closes.

    An RST here would make the client's kernel discard data it has not read yet, so the client would
    never see the partial output; a provider that crashes after flushing sends FIN, and so do we.
    """
    await asyncio.sleep(0.02)
    transport = request.transport
    if transport is not None:
        transport.close()


class _Handlers:
    def __init__(self, state: ProviderState) -> None:
        self.s = state

    # --- OpenAI API ---

    def _unauthorized(self, request: web.Request) -> web.Response | None:
        expected = self.s._auth
        if expected is not None and request.headers.get("Authorization") != expected:
            self.s.outcomes["unauthorized"] += 1
            return _error(401, "Incorrect API key provided.")
        return None

    async def models(self, request: web.Request) -> web.Response:
        denied = self._unauthorized(request)
        if denied is not None:
            return denied
        data = [
            {"id": m, "object": "model", "created": 0, "owned_by": self.s.name}
            for m in self.s.behaviour.models
        ]
        return web.json_response({"object": "list", "data": data})

    async def chat(self, request: web.Request) -> web.StreamResponse:
        s = self.s
        denied = self._unauthorized(request)
        if denied is not None:
            return denied
        raw = await request.read()
        if s.behaviour.drop_reused and getattr(request.protocol, "_request_count", 1) > 1:
            s.outcomes["dropped_reused"] += 1
            transport = request.transport
            if transport is not None:
                transport.close()
            return web.Response(status=500)  # never reaches the client: the connection is gone
        try:
            body = json.loads(raw)
            model = body["model"]
            messages = body["messages"]
            if not isinstance(model, str) or not model or not isinstance(messages, list) or not messages:
                raise ValueError
        except (ValueError, KeyError, TypeError):
            s.outcomes["bad_request"] += 1
            return _error(400, "Request body must be JSON with a non-empty `model` and `messages`.")
        b = s.behaviour
        if b.strict_models and model not in b.models:
            s.outcomes["unknown_model"] += 1
            return _error(404, f"The model `{model}` does not exist or you do not have access to it.")
        stream = body.get("stream") is True
        s.requests += 1
        s.by_model[model] += 1
        s.last_request = {
            "model": model,
            "stream": stream,
            "max_tokens": body.get("max_completion_tokens") or body.get("max_tokens"),
            "x_request_id": request.headers.get("x-request-id"),
            "fields": sorted(body),
        }
        failure = s.pick_failure()
        s.in_flight += 1
        try:
            if b.latency_ms:
                await asyncio.sleep(b.latency_ms / 1000)
            if failure is not None and failure != "midstream":
                return await self._fail(request, failure, b)
            n = b.completion_tokens
            cap = body.get("max_completion_tokens") or body.get("max_tokens")
            if isinstance(cap, int) and cap > 0:
                n = min(n, cap)
            prompt = count_prompt_tokens(messages)
            if stream:
                s.streams += 1
                opts = body.get("stream_options")
                include_usage = isinstance(opts, dict) and opts.get("include_usage") is True
                return await self._stream(request, model, prompt, n, include_usage, b, failure is not None)
            return await self._unary(request, model, prompt, n, b, failure is not None)
        finally:
            s.in_flight -= 1

    async def _fail(self, request: web.Request, kind: str, b: Behaviour) -> web.StreamResponse:
        s = self.s
        if kind == "timeout":
            s.outcomes["timeout"] += 1
            await asyncio.sleep(b.hang_seconds)
            return _error(504, "The stand-in provider hung on purpose.")
        if kind == "reset":
            s.outcomes["reset"] += 1
            _drop_connection(request)
            return web.Response(status=500)  # never reaches the client: the connection is gone
        if kind in MALFORMED_KINDS:
            s.outcomes[f"malformed_{kind}"] += 1
            return web.Response(
                status=200,
                text=MALFORMED_KINDS[kind],
                content_type="text/html" if kind == "not_json" else "application/json",
            )
        status = STATUS_KINDS[kind]
        s.outcomes[f"error_{status}"] += 1
        headers = {"Retry-After": str(b.retry_after_seconds)} if status == 429 else None
        return _error(status, f"The stand-in provider failed on purpose with {status}.", headers)

    async def _unary(
        self, request: web.Request, model: str, prompt: int, n: int, b: Behaviour, midstream: bool
    ) -> web.StreamResponse:
        s = self.s
        up, un = (0, 0) if b.zero_usage else (prompt, n)
        usage = (
            ""
            if b.omit_usage
            else f',"usage":{{"prompt_tokens":{up},"completion_tokens":{un},"total_tokens":{up + un}}}'
        )
        text = (
            f'{{"id":"{s.next_id()}","object":"chat.completion","created":{int(time.time())},'
            f'"model":{s.model_json(model)},"choices":[{{"index":0,"message":{{"role":"assistant",'
            f'"content":{s.texts(n).content_json}}},"finish_reason":"stop"}}]{usage}}}'
        )
        data = text.encode()
        if midstream:
            s.outcomes["midstream"] += 1
            resp = web.StreamResponse(headers={"Content-Type": "application/json"})
            resp.content_length = len(data)
            await resp.prepare(request)
            await resp.write(data[: len(data) // 2])
            await _die_after_sending(request)
            return resp
        s.outcomes["ok"] += 1
        return web.Response(body=data, content_type="application/json", headers={"x-fake-provider": s.name})

    async def _stream(
        self,
        request: web.Request,
        model: str,
        prompt: int,
        n: int,
        include_usage: bool,
        b: Behaviour,
        midstream: bool,
    ) -> web.StreamResponse:
        s = self.s
        head = (
            f'data: {{"id":"{s.next_id()}","object":"chat.completion.chunk","created":{int(time.time())},'
            f'"model":{s.model_json(model)},"choices":[{{"index":0,'
        )
        tail = ',"usage":null}\n\n' if include_usage else "}\n\n"
        chunks = [f'{head}"delta":{{"role":"assistant","content":""}},"finish_reason":null}}]{tail}']
        chunks += [
            f'{head}"delta":{{"content":{d}}},"finish_reason":null}}]{tail}' for d in s.texts(n).delta_jsons
        ]
        resp = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "x-fake-provider": s.name,
            }
        )
        await resp.prepare(request)
        if midstream:
            s.outcomes["midstream"] += 1
            if b.ttft_ms:
                await asyncio.sleep(b.ttft_ms / 1000)
            for chunk in chunks[: 1 + b.midstream_after]:
                await resp.write(chunk.encode())
                if b.inter_token_ms:
                    await asyncio.sleep(b.inter_token_ms / 1000)
            await _die_after_sending(request)
            return resp
        chunks.append(f'{head}"delta":{{}},"finish_reason":"stop"}}]{tail}')
        if include_usage and not b.omit_usage:
            up, un = (0, 0) if b.zero_usage else (prompt, n)
            usage = f'"usage":{{"prompt_tokens":{up},"completion_tokens":{un},"total_tokens":{up + un}}}'
            chunks.append(f"{head[:-12]}[],{usage}}}\n\n")
        chunks.append("data: [DONE]\n\n")
        if not b.ttft_ms and not b.inter_token_ms:
            await resp.write("".join(chunks).encode())
        else:
            if b.ttft_ms:
                await asyncio.sleep(b.ttft_ms / 1000)
            for i, chunk in enumerate(chunks):
                await resp.write(chunk.encode())
                # Pauses fall between content tokens only, not around the closing frames.
                if b.inter_token_ms and 0 < i < n:
                    await asyncio.sleep(b.inter_token_ms / 1000)
        await resp.write_eof()
        s.outcomes["ok"] += 1
        return resp

    # --- control plane (tests, demo) ---

    async def get_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.s.stats())

    async def get_control(self, request: web.Request) -> web.Response:
        return web.json_response(asdict(self.s.behaviour))

    async def post_control(self, request: web.Request) -> web.Response:
        try:
            changes = await request.json()
            if not isinstance(changes, dict):
                raise ValueError("control body must be a JSON object")
            behaviour = self.s.control(changes)
        except (ValueError, TypeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(asdict(behaviour))

    async def post_reset(self, request: web.Request) -> web.Response:
        self.s.reset()
        return web.json_response(asdict(self.s.behaviour))


def build_app(state: ProviderState) -> web.Application:
    h = _Handlers(state)
    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.router.add_post("/v1/chat/completions", h.chat)
    app.router.add_get("/v1/models", h.models)
    app.router.add_get("/_stats", h.get_stats)
    app.router.add_get("/_control", h.get_control)
    app.router.add_post("/_control", h.post_control)
    app.router.add_post("/_reset", h.post_reset)
    return app


@dataclass
class FakeProvider:
    """A running stand-in provider. `base_url` is what an OpenAI client or a catalog entry points at."""

    name: str
    host: str
    port: int
    state: ProviderState
    _runner: web.AppRunner = field(repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def control(self, **changes: Any) -> Behaviour:
        """In-process equivalent of POST /_control."""
        return self.state.control(changes)

    def stats(self) -> dict[str, Any]:
        """In-process equivalent of GET /_stats."""
        return self.state.stats()

    def reset(self) -> None:
        self.state.reset()

    async def stop(self) -> None:
        await self._runner.cleanup()


async def start(
    host: str = "127.0.0.1", port: int = 0, *, name: str = "fakeprovider", **options: Any
) -> FakeProvider:
    """Start a provider on host:port (0 = a free port) in the running event loop.

    `options` are Behaviour fields (latency_ms=..., error_kinds=["429"], api_key=..., ...).
    """
    behaviour = Behaviour().changed(options)
    state = ProviderState(name, behaviour)
    # handler_cancellation: when a client gives up on a hanging request, stop the hang with it.
    runner = web.AppRunner(build_app(state), access_log=None, handler_cancellation=True)
    await runner.setup()
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    site = web.SockSite(runner, sock)
    await site.start()
    return FakeProvider(name=name, host=host, port=sock.getsockname()[1], state=state, _runner=runner)
