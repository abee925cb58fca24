"""Calls to providers' OpenAI-compatible HTTP APIs through one shared keep-alive aiohttp session.

Failures are classified once, here: connect errors, timeouts, 429 and 5xx are retryable (the router
fails over); other 4xx answers are the request's fault and are returned to the caller.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from gateway.domain.catalog import Route


class UpstreamError(Exception):
    def __init__(self, reason: str, *, retryable: bool, status: int = 0, message: str = "") -> None:
        super().__init__(reason)
        self.reason = reason  # short, for tags and health: "http 503", "timeout", "connect"
        self.retryable = retryable
        self.status = status
        self.message = message  # the provider's error message, for non-retryable answers


def _error_message(raw: bytes) -> str:
    try:
        doc = json.loads(raw)
        msg = doc.get("error", {}).get("message") if isinstance(doc.get("error"), dict) else doc.get("error")
        return str(msg or "")[:500]
    except (ValueError, AttributeError):
        return raw[:200].decode("utf-8", "replace")


def _http_error(status: int, raw: bytes) -> UpstreamError:
    retryable = status == 429 or status >= 500
    return UpstreamError(f"http {status}", retryable=retryable, status=status, message=_error_message(raw))


class UpstreamStream:
    """An open streaming response whose first batch of events has already arrived."""

    def __init__(
        self,
        resp: aiohttp.ClientResponse,
        first: list[dict[str, Any]],
        batches: AsyncIterator[list[dict[str, Any]]],
    ) -> None:
        self._resp = resp
        self.first = first
        self._batches = batches

    def rest(self) -> AsyncIterator[list[dict[str, Any]]]:
        """The following batches until [DONE]; raises UpstreamError if the stream breaks."""
        return self._batches

    def close(self) -> None:
        self._resp.close()


def _salvage(content: aiohttp.StreamReader) -> list[bytes]:
    """Complete lines that arrived before the connection broke.

    aiohttp's StreamReader raises a connection error before handing out data it already buffered;
    content the provider sent before crashing is still output the caller should get (and that we
    count), so read it from the buffer (pinned aiohttp; absent attributes just mean nothing salvaged).
    """
    buf = getattr(content, "_buffer", None)
    if not buf:
        return []
    off = getattr(content, "_buffer_offset", 0)
    data = bytes(buf[0][off:]) + b"".join(bytes(b) for b in list(buf)[1:])
    return [data[: data.rfind(b"\n") + 1]] if b"\n" in data else []


_DONE: dict[str, Any] = {}


def _parse(line: bytes) -> dict[str, Any] | None:
    """One SSE line: an event, None to skip, or the _DONE sentinel for [DONE]."""
    if not line.startswith(b"data:"):
        return None
    data = line[5:].strip()
    if data == b"[DONE]":
        return _DONE
    event = json.loads(data)
    if "error" in event and not event.get("choices"):
        raise UpstreamError("stream error", retryable=True, message=_error_message(data))
    return event


async def _batches(
    resp: aiohttp.ClientResponse, first_timeout: float, idle: float
) -> AsyncIterator[list[dict[str, Any]]]:
    """SSE events in batches: everything that arrived together is parsed and handed on together, so
    a burst of chunks costs one hop through the service and one write to the caller."""
    content = resp.content
    pending = b""
    timeout = first_timeout
    try:
        while True:
            broken: BaseException | None = None
            try:
                async with asyncio.timeout(timeout):
                    data = await content.readany()
            except (aiohttp.ClientError, ConnectionError) as exc:
                data, broken = b"".join(_salvage(content)), exc
            if not data and broken is None:
                raise UpstreamError(
                    "stream interrupted", retryable=True, message="the provider closed the stream early"
                )
            lines = (pending + data).split(b"\n")
            pending = lines.pop()
            events: list[dict[str, Any]] = []
            for line in lines:
                event = _parse(line)
                if event is _DONE:
                    if events:
                        yield events
                    return
                if event is not None:
                    events.append(event)
            if events:
                yield events
                timeout = idle
            if broken is not None:
                raise UpstreamError(
                    "stream interrupted", retryable=True, message=type(broken).__name__
                ) from None
    except TimeoutError:
        raise UpstreamError("stream idle timeout", retryable=True) from None
    except ValueError as exc:
        raise UpstreamError("stream interrupted", retryable=True, message=type(exc).__name__) from None


class Upstream:
    def __init__(
        self,
        *,
        connect_timeout: float,
        attempt_timeout: float,
        stream_idle_timeout: float,
        connection_limit: int,
    ) -> None:
        self._connect_timeout = connect_timeout
        self._attempt_timeout = attempt_timeout
        self._idle = stream_idle_timeout
        self._limit = connection_limit
        self._session: aiohttp.ClientSession | None = None
        self._unary_timeout = aiohttp.ClientTimeout(total=attempt_timeout, sock_connect=connect_timeout)
        self._stream_timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout)

    async def open(self) -> None:
        connector = aiohttp.TCPConnector(
            limit=self._limit, limit_per_host=0, ttl_dns_cache=300, keepalive_timeout=60
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            json_serialize=json.dumps,
            skip_auto_headers=("User-Agent",),
            auto_decompress=False,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _headers(self, route: Route) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if route.credential_env:
            secret = os.environ.get(route.credential_env)
            if not secret:
                raise UpstreamError(
                    "credential missing",
                    retryable=True,
                    message=f"environment variable {route.credential_env} is not set",
                )
            headers["Authorization"] = "Bearer " + secret
        return headers

    async def complete(self, route: Route, body: bytes) -> dict[str, Any]:
        assert self._session is not None
        headers = self._headers(route)
        try:
            async with self._session.post(
                route.url, data=body, headers=headers, timeout=self._unary_timeout
            ) as resp:
                raw = await resp.read()
                status = resp.status
        except TimeoutError:
            raise UpstreamError("timeout", retryable=True) from None
        except (aiohttp.ClientError, ConnectionError) as exc:
            raise UpstreamError("connect", retryable=True, message=type(exc).__name__) from None
        if status >= 400:
            raise _http_error(status, raw)
        try:
            doc = json.loads(raw)
        except ValueError:
            raise UpstreamError(
                "bad response", retryable=True, message="the provider answered non-JSON"
            ) from None
        if not isinstance(doc, dict) or not isinstance(doc.get("choices"), list):
            raise UpstreamError(
                "bad response", retryable=True, message="the provider's answer has no choices"
            )
        return doc

    async def open_stream(self, route: Route, body: bytes) -> UpstreamStream:
        """POST and wait for the first event (bounded by the attempt timeout); failover-safe until here."""
        assert self._session is not None
        headers = self._headers(route)
        resp: aiohttp.ClientResponse | None = None
        try:
            async with asyncio.timeout(self._attempt_timeout):
                resp = await self._session.post(
                    route.url, data=body, headers=headers, timeout=self._stream_timeout
                )
                if resp.status >= 400:
                    raw = await resp.read()
                    resp.release()
                    raise _http_error(resp.status, raw)
                batches = _batches(resp, self._attempt_timeout, self._idle)
                first = await anext(batches)
        except StopAsyncIteration:
            resp.close()  # type: ignore[union-attr]
            raise UpstreamError("empty stream", retryable=True) from None
        except TimeoutError:
            if resp is not None:
                resp.close()
            raise UpstreamError("timeout", retryable=True) from None
        except UpstreamError:
            if resp is not None:
                resp.close()
            raise
        except (aiohttp.ClientError, ConnectionError) as exc:
            if resp is not None:
                resp.close()
            raise UpstreamError("connect", retryable=True, message=type(exc).__name__) from None
        except BaseException:
            if resp is not None:
                resp.close()
            raise
        return UpstreamStream(resp, first, batches)
