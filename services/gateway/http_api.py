"""The OpenAI-compatible HTTP front door (aiohttp): decode, call the chat service, encode.

POST /v1/chat/completions (JSON or SSE), GET /v1/models, GET /healthz. Errors are OpenAI's error JSON with the
matching status. An SSE response starts only once the first upstream chunk arrived, so every
error before that still gets a proper status code.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import structlog
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong
from aiohttp.web_protocol import RequestHandler

from common import errors
from gateway import metrics
from gateway.domain import chat as chat_rules
from gateway.domain import limits
from gateway.domain.chat import BusinessUnits, ChatInput
from gateway.domain.routing import ProviderPreferences
from gateway.service import (
    UNAUTHENTICATED_MESSAGE,
    ChatService,
    Completion,
    StreamChunk,
    StreamEnd,
    StreamStart,
)

log = structlog.get_logger("gateway.http")

# The largest request body, in bytes; a larger one is 413 before it is read.
MAX_BODY_BYTES = 16 * 1024 * 1024
# aiohttp's limits on one header line and on the request line, in bytes (its defaults, stated here).
MAX_HEADER_BYTES = 8190
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
# OpenAI request fields forwarded to the provider as given (the first five are also validated).
# Anything else (model, stream, metadata, tollgate extras) is the gateway's and never forwarded as-is.
_PARAMS = (
    "temperature",
    "top_p",
    "stop",
    "user",
    "max_tokens",
    "n",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "response_format",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
)

_STATUS: list[tuple[type[errors.ServiceError], int, str, str]] = [
    (errors.Unauthenticated, 401, "authentication_error", "invalid_api_key"),
    (errors.PermissionDenied, 403, "permission_error", "permission_denied"),
    (errors.NotFound, 404, "not_found_error", "not_found"),
    (errors.AlreadyExists, 409, "invalid_request_error", "conflict"),
    (errors.ResourceExhausted, 429, "rate_limit_error", "rate_limit_exceeded"),
    (errors.InvalidArgument, 400, "invalid_request_error", "invalid_value"),
    (errors.FailedPrecondition, 400, "invalid_request_error", "failed_precondition"),
    (errors.Unavailable, 503, "api_error", "unavailable"),
]


def _error_body(message: str, etype: str, param: str | None, code: str | None) -> bytes:
    return _dumps({"error": {"message": message, "type": etype, "param": param, "code": code}}).encode()


def _unauthenticated_body() -> bytes:
    return _error_body(UNAUTHENTICATED_MESSAGE, "authentication_error", None, "invalid_api_key")


def _too_large() -> web.Response:
    resp = web.Response(
        status=413,
        body=_error_body(
            f"the request body is larger than {MAX_BODY_BYTES} bytes",
            "invalid_request_error",
            "body",
            "request_too_large",
        ),
        content_type="application/json",
    )
    resp.force_close()  # the rest of the body is not read
    return resp


class _Protocol(RequestHandler):
    """aiohttp's connection handler with the gateway's own answer to requests it cannot parse.

    aiohttp answers those itself, in text, quoting the first 100 bytes of an oversized header line and
    logging the same with a traceback; that header may be the Authorization header. Here: an
    oversized header or request line gets exactly the 401 JSON of a bad key (a caller cannot tell a
    long key from a wrong one), any other unparseable request a 400 JSON, and the log line names the
    error's kind only. Nothing of what the caller sent is echoed or logged."""

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:
            raise ConnectionError("response already started; cannot send an error")
        if isinstance(exc, LineTooLong):
            status, body = 401, _unauthenticated_body()
        elif isinstance(exc, HttpProcessingError):
            status = 400
            body = _error_body(
                "the request is not valid HTTP/1.1", "invalid_request_error", None, "bad_request"
            )
        else:
            status = 500
            body = _error_body("internal error", "api_error", None, "internal_error")
        log.info("gateway.http.unparseable_request", status=status, error=type(exc).__name__)
        resp = web.Response(status=status, body=body, content_type="application/json")
        resp.force_close()
        return resp


class _Server(web.Server):
    def __call__(self) -> RequestHandler:
        return _Protocol(self, loop=self._loop, **self._kwargs)


def error_response(exc: errors.ServiceError) -> web.Response:
    status, etype, code = 500, "api_error", "internal_error"
    for cls, st, et, cd in _STATUS:
        if isinstance(exc, cls):
            status, etype, code = st, et, cd
            break
    status = getattr(exc, "http_status", status)
    code = getattr(exc, "code", code)
    if status >= 500:
        etype = "api_error"
    if isinstance(exc, errors.NotFound) and exc.field in ("model", "models"):
        code = "model_not_found"
    headers = {}
    if isinstance(exc, errors.ResourceExhausted) and exc.retry_after_seconds is not None:
        from gateway.domain.ratelimit import retry_after_seconds

        headers["Retry-After"] = str(retry_after_seconds(exc.retry_after_seconds))
    limit = getattr(exc, "limit", None)
    if limit is not None:
        # A spend cap (402), told apart from a rate limit (429) by its type and code; `limit` says which
        # control refused, its scope, its cap and when it resets.
        body = _dumps(
            {
                "error": {
                    "message": exc.message,
                    "type": code,
                    "code": code,
                    "param": None,
                    "limit": limit,
                }
            }
        ).encode()
    else:
        body = _error_body(exc.message, etype, exc.field, code)
    return web.Response(status=status, body=body, content_type="application/json", headers=headers)


def _str_list(v: Any, field: str) -> tuple[str, ...]:
    if v is None:
        return ()
    if isinstance(v, str):
        return (v,)
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise errors.InvalidArgument(f"{field} must be a list of strings", field=field)
    return tuple(v)


def decode_chat(body: Any, headers: Any) -> ChatInput:
    if not isinstance(body, dict):
        raise errors.InvalidArgument("the request body must be a JSON object", field="body")
    model = body.get("model") or ""
    if not isinstance(model, str):
        raise errors.InvalidArgument("model must be a string", field="model")
    models = ([model] if model else []) + list(_str_list(body.get("models"), "models"))
    params = {k: body[k] for k in _PARAMS if body.get(k) is not None}
    if "max_tokens" not in params and body.get("max_completion_tokens") is not None:
        params["max_tokens"] = body["max_completion_tokens"]
    prov = body.get("provider") or {}
    if not isinstance(prov, dict):
        raise errors.InvalidArgument("provider must be an object with order, only, ignore", field="provider")
    tags = body.get("tags") or {}
    if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
        raise errors.InvalidArgument("tags must be an object of strings", field="tags")
    metadata = body.get("metadata") or {}
    if not isinstance(metadata, dict) or len(metadata) > limits.MAX_METADATA_ENTRIES:
        raise errors.InvalidArgument(
            f"metadata must be an object of at most {limits.MAX_METADATA_ENTRIES} entries", field="metadata"
        )
    stream_options = body.get("stream_options") or {}
    route = body.get("route") or ""
    chat = ChatInput(
        request_id="",
        models=tuple(models),
        messages=body.get("messages"),
        params=params,
        tags=dict(tags),
        strategy=route.lower() if isinstance(route, str) else "",
        prefs=ProviderPreferences(
            _str_list(prov.get("order"), "provider.order"),
            _str_list(prov.get("only"), "provider.only"),
            _str_list(prov.get("ignore"), "provider.ignore"),
        ),
        units=BusinessUnits(),
        stream=bool(body.get("stream")),
        include_usage=bool(isinstance(stream_options, dict) and stream_options.get("include_usage")),
    )
    extras = chat_rules.extras_from_metadata(metadata) if metadata else {}
    extras.update(chat_rules.extras_from_headers(headers.items()))
    return chat_rules.apply_extras(chat, extras)


def _served_headers(request_id: str, served: Any) -> dict[str, str]:
    r = served.route
    return {
        "x-tollgate-request-id": request_id,
        "x-tollgate-provider": r.provider,
        "x-tollgate-offering": r.offering_id,
        "x-tollgate-model": r.model,
        "x-tollgate-attempt": str(served.attempt),
    }


def _completion_body(c: Completion) -> bytes:
    r = c.served.route
    return _dumps(
        {
            "id": c.id,
            "object": "chat.completion",
            "created": c.created,
            "model": r.model,
            "choices": c.choices,
            "usage": {
                "prompt_tokens": c.usage.input_tokens,
                "completion_tokens": c.usage.output_tokens,
                "total_tokens": c.usage.input_tokens + c.usage.output_tokens,
            },
            "tollgate": {
                "request_id": c.request_id,
                "provider": r.provider,
                "offering": r.offering_id,
                "model": r.model,
                "attempt": c.served.attempt,
                "tokens_estimated": c.usage.estimated,
            },
        }
    ).encode()


class FrontDoor:
    def __init__(self, chat: ChatService) -> None:
        self.chat = chat

    def server(self) -> web.Server:
        """aiohttp's low-level server with one handler: two routes do not need the router, the
        middleware chain and the per-request match info of web.Application (about 5% of the CPU a
        request costs)."""

        def request_factory(message, payload, protocol, writer, task) -> web.BaseRequest:
            return web.BaseRequest(
                message, payload, protocol, writer, task, loop, client_max_size=MAX_BODY_BYTES
            )

        loop = asyncio.get_running_loop()
        return _Server(
            self.handle,
            request_factory=request_factory,
            access_log=None,
            max_line_size=MAX_HEADER_BYTES,
            max_field_size=MAX_HEADER_BYTES,
        )

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        path, method = request.path, request.method
        if path == "/v1/chat/completions" and method == "POST":
            return await self.chat_completions(request)
        if path == "/v1/models" and method in ("GET", "HEAD"):
            return await self.models(request)
        if path == "/healthz" and method in ("GET", "HEAD"):
            # Liveness for load balancers and compose: no key needed, nothing behind it is called.
            return web.Response(body=b'{"status":"ok"}', content_type="application/json")
        return await self.unknown(request)

    async def chat_completions(self, request: web.BaseRequest) -> web.StreamResponse:
        asked: list[str] = []
        resp = await self._chat_completions(request, asked)
        headers = resp.headers
        metrics.request_done(
            metrics.DOOR_HTTP,
            metrics.model_label(self.chat.catalog.routes, headers.get("x-tollgate-model") or asked[0]),
            headers.get("x-tollgate-provider", metrics.NONE),
            resp.status,
        )
        return resp

    async def _chat_completions(self, request: web.BaseRequest, asked: list[str]) -> web.StreamResponse:
        """The answer; `asked` gets the model the caller named once the body is decoded (for metrics)."""
        asked.append("")
        try:
            key = self.chat.authenticate(request.headers.get("Authorization"))
            length = request.content_length
            if length is not None and length > MAX_BODY_BYTES:
                return _too_large()
            try:
                raw = await request.read()
            except web.HTTPRequestEntityTooLarge:  # a chunked body that grew past the limit
                return _too_large()
            try:
                body = json.loads(raw)
            except ValueError:
                raise errors.InvalidArgument("the request body is not valid JSON", field="body") from None
            chat = decode_chat(body, request.headers)
            asked[0] = chat.models[0] if chat.models else ""
            if chat.stream:
                return await self._stream(request, key, chat)
            result = await self.chat.complete(key, chat)
            return web.Response(
                body=_completion_body(result),
                content_type="application/json",
                headers=_served_headers(result.request_id, result.served),
            )
        except errors.ServiceError as exc:
            return error_response(exc)
        except Exception:
            error_id = uuid.uuid4().hex[:16]
            log.exception("gateway.http.internal_error", error_id=error_id)
            return web.Response(
                status=500,
                content_type="application/json",
                body=_error_body(
                    f"internal error (error id {error_id})", "api_error", None, "internal_error"
                ),
            )

    async def _stream(self, request: web.BaseRequest, key: Any, chat: ChatInput) -> web.StreamResponse:
        gen = self.chat.stream(key, chat)
        start = await anext(gen)  # errors before any output propagate as ordinary statuses
        assert isinstance(start, StreamStart)
        resp = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                **_served_headers(start.request_id, start.served),
            }
        )
        await resp.prepare(request)
        model = start.served.route.model
        head = (
            f'{{"id":"{start.id}","object":"chat.completion.chunk","created":{start.created},'
            f'"model":{_dumps(model)},"choices":'
        )
        tail = b""
        try:
            async for item in gen:
                if isinstance(item, StreamChunk):
                    await resp.write(
                        "".join([f"data: {head}{_dumps(choices)}}}\n\n" for choices in item.frames]).encode()
                    )
                elif isinstance(item, StreamEnd):
                    tail = b"data: [DONE]\n\n"
                    if chat.include_usage:
                        u = item.usage
                        usage = {
                            "prompt_tokens": u.input_tokens,
                            "completion_tokens": u.output_tokens,
                            "total_tokens": u.input_tokens + u.output_tokens,
                        }
                        tail = f'data: {head}[],"usage":{_dumps(usage)}}}\n\n'.encode() + tail
        except errors.ServiceError as exc:
            code = getattr(exc, "code", "upstream_error")
            tail = b"data: " + _error_body(exc.message, "api_error", None, code) + b"\n\n"
        except ConnectionError:
            return resp  # the caller went away; the service records the partial attempt
        finally:
            await gen.aclose()
        # The usage frame, [DONE] (or the error frame) and the end of the body go out in one send.
        await resp.write_eof(tail)
        return resp

    async def unknown(self, request: web.BaseRequest) -> web.Response:
        return web.Response(
            status=404,
            content_type="application/json",
            body=_error_body(
                f"no route {request.method} {request.path}; this gateway serves "
                "POST /v1/chat/completions, GET /v1/models and GET /healthz",
                "invalid_request_error",
                None,
                "unknown_url",
            ),
        )

    async def models(self, request: web.BaseRequest) -> web.Response:
        try:
            self.chat.authenticate(request.headers.get("Authorization"))
        except errors.ServiceError as exc:
            return error_response(exc)
        data = [
            {"id": name, "object": "model", "created": 0, "owned_by": "tollgate", "providers": providers}
            for name, providers in self.chat.public_models()
        ]
        return web.Response(
            body=_dumps({"object": "list", "data": data}).encode(), content_type="application/json"
        )
