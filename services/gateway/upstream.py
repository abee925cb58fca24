"""Calls to providers' OpenAI-compatible HTTP APIs over a lean keep-alive HTTP/1.1 connection pool.

Deliberately not aiohttp's ClientSession (see README "Performance notes"): a provider call through
ClientSession cost about a quarter of the gateway's CPU per request (request/response objects, header
multidicts, timers, tracing hooks), more than the gateway's own logic. The pool here speaks only what
the gateway needs: POST with a Content-Length body, responses framed by Content-Length, chunked
transfer encoding or connection close, keep-alive reuse, connect/attempt/idle timeouts, TLS for https.

Failures are classified once, here: connect errors, timeouts, 429 and 5xx are retryable (the router
fails over); other 4xx answers are the request's fault and are returned to the caller.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

from gateway.domain.catalog import CREDENTIAL_ENV_PREFIX, Route, host_allowed


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


class ProtocolError(ConnectionError):
    """The provider's bytes are not an HTTP/1.1 response we can frame."""


# Response parser states.
_HEAD, _LENGTH, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_CRLF, _TRAILER, _UNTIL_EOF, _DONE = range(8)
_MAX_HEAD = 64 * 1024


class _Conn(asyncio.Protocol):
    """One keep-alive connection carrying one request at a time. The parser turns the response into
    a status, a keep-alive verdict and body bytes (de-chunked); readers wait on one future."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._buf = bytearray()
        self._body = bytearray()
        self._state = _DONE
        self._remaining = 0
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self.status = 0
        self.keep_alive = False
        self.got_any = False
        self.uses = 0  # requests sent on this connection

    # --- protocol callbacks ---

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self._state == _DONE:
            # Bytes outside a response (the server misbehaving): never reuse this connection.
            self.keep_alive = False
            return
        self.got_any = True
        self._buf += data
        try:
            self._parse()
        except (ValueError, ProtocolError) as exc:
            self._fail(exc if isinstance(exc, ProtocolError) else ProtocolError(str(exc)))
            if self.transport is not None:
                self.transport.close()
            return
        self._wake()

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost settles the response

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._state == _UNTIL_EOF:
            self._state = _DONE
        elif self._state != _DONE:
            self._fail(
                exc
                if isinstance(exc, ConnectionError)
                else ConnectionResetError("the provider closed the connection")
            )
        self._wake()

    # --- parsing ---

    def _fail(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc
        self._state = _DONE
        self.keep_alive = False

    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def _parse(self) -> None:
        buf = self._buf
        while buf:
            state = self._state
            if state == _HEAD:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(buf) > _MAX_HEAD:
                        raise ProtocolError("response head too large")
                    return
                self._head(bytes(buf[:end]))
                del buf[: end + 4]
            elif state == _LENGTH:
                n = min(self._remaining, len(buf))
                self._body += buf[:n]
                del buf[:n]
                self._remaining -= n
                if not self._remaining:
                    self._state = _DONE
            elif state == _CHUNK_SIZE:
                end = buf.find(b"\r\n")
                if end < 0:
                    if len(buf) > 1024:
                        raise ProtocolError("bad chunk size line")
                    return
                size = int(bytes(buf[:end]).split(b";", 1)[0].strip(), 16)
                del buf[: end + 2]
                if size:
                    self._remaining, self._state = size, _CHUNK_DATA
                else:
                    self._state = _TRAILER
            elif state == _CHUNK_DATA:
                n = min(self._remaining, len(buf))
                self._body += buf[:n]
                del buf[:n]
                self._remaining -= n
                if not self._remaining:
                    self._state = _CHUNK_CRLF
            elif state == _CHUNK_CRLF:
                if len(buf) < 2:
                    return
                if buf[:2] != b"\r\n":
                    raise ProtocolError("chunk not followed by CRLF")
                del buf[:2]
                self._state = _CHUNK_SIZE
            elif state == _TRAILER:
                end = buf.find(b"\r\n")
                if end < 0:
                    return
                del buf[: end + 2]
                if end == 0:
                    self._state = _DONE
            elif state == _UNTIL_EOF:
                self._body += buf
                buf.clear()
            else:  # _DONE with bytes left over: the server sent more than one response
                self.keep_alive = False
                buf.clear()
                return

    def _head(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        parts = lines[0].split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
            raise ProtocolError("not an HTTP/1.x response")
        status = int(parts[1])
        if 100 <= status < 200:
            return  # interim response (100 Continue): the real one follows
        length = -1
        chunked = False
        keep_alive = parts[0] == b"HTTP/1.1"
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
                if length < 0:
                    raise ProtocolError("negative Content-Length")
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"connection":
                v = value.strip().lower()
                if v == b"close":
                    keep_alive = False
                elif v == b"keep-alive":
                    keep_alive = True
        self.status = status
        self.keep_alive = keep_alive
        if status in (204, 304):
            self._state = _DONE
        elif chunked:
            self._state = _CHUNK_SIZE
        elif length >= 0:
            self._remaining = length
            self._state = _LENGTH if length else _DONE
        else:
            self.keep_alive = False
            self._state = _UNTIL_EOF

    # --- the caller's side ---

    def send(self, data: bytes) -> None:
        self._buf.clear()
        self._body.clear()
        self._error = None
        self.status = 0
        self.got_any = False
        self._state = _HEAD
        self.uses += 1
        self.transport.write(data)  # type: ignore[union-attr]

    async def _wait(self) -> None:
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    async def read_head(self) -> int:
        while self.status == 0:
            if self._error is not None:
                raise self._error
            if self.closed:
                raise ConnectionResetError("the provider closed the connection")
            await self._wait()
        return self.status

    async def readany(self) -> bytes:
        """Body bytes that arrived so far (waiting for some), b"" at the end of the body; data that
        arrived before a broken connection is handed out before the error is raised."""
        while True:
            if self._body:
                data = bytes(self._body)
                self._body.clear()
                return data
            if self._error is not None:
                raise self._error
            if self._state == _DONE:
                return b""
            if self.closed:
                raise ConnectionResetError("the provider closed the connection")
            await self._wait()

    async def read_all(self) -> bytes:
        chunks = []
        while data := await self.readany():
            chunks.append(data)
        return b"".join(chunks)

    @property
    def reusable(self) -> bool:
        return self._state == _DONE and self._error is None and self.keep_alive and not self.closed

    def close(self) -> None:
        self.keep_alive = False
        if self.transport is not None:
            self.transport.close()


class _Pool:
    """Idle keep-alive connections per (scheme, host, port), newest first out."""

    def __init__(self, *, connect_timeout: float, limit: int, keepalive: float) -> None:
        self._connect_timeout = connect_timeout
        self._keepalive = keepalive
        self._idle: dict[tuple[str, str, int], list[_Conn]] = {}
        self._slots = asyncio.Semaphore(limit)
        self._ssl: ssl.SSLContext | None = None
        self._open: set[_Conn] = set()

    async def acquire(self, origin: tuple[str, str, int], *, fresh: bool = False) -> _Conn:
        await self._slots.acquire()
        try:
            idle = None if fresh else self._idle.get(origin)
            now = time.monotonic()
            while idle:
                conn = idle.pop()
                if not conn.closed and now - conn.idle_since < self._keepalive:
                    return conn
                conn.close()
                self._open.discard(conn)
            return await self._connect(origin)
        except BaseException:
            self._slots.release()
            raise

    async def _connect(self, origin: tuple[str, str, int]) -> _Conn:
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        ctx = None
        if scheme == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            ctx = self._ssl
        async with asyncio.timeout(self._connect_timeout):
            _, conn = await loop.create_connection(
                _Conn, host, port, ssl=ctx, server_hostname=host if ctx else None
            )
        self._open.add(conn)
        return conn

    def release(self, origin: tuple[str, str, int], conn: _Conn) -> None:
        """Back to the idle list when the response was read whole and the server keeps it alive."""
        self._slots.release()
        if conn.reusable:
            conn.idle_since = time.monotonic()
            self._idle.setdefault(origin, []).append(conn)
        else:
            conn.close()
            self._open.discard(conn)

    def close(self) -> None:
        for conns in self._idle.values():
            for c in conns:
                c.close()
        for c in self._open:
            c.close()
        self._idle.clear()
        self._open.clear()


class UpstreamStream:
    """An open streaming response whose first batch of events has already arrived."""

    def __init__(
        self,
        pool: _Pool,
        origin: tuple[str, str, int],
        conn: _Conn,
        first: list[dict[str, Any]],
        batches: AsyncIterator[list[dict[str, Any]]],
    ) -> None:
        self._pool = pool
        self._origin = origin
        self._conn: _Conn | None = conn
        self.first = first
        self._batches = batches

    def rest(self) -> AsyncIterator[list[dict[str, Any]]]:
        """The following batches until [DONE]; raises UpstreamError if the stream breaks."""
        return self._batches

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            if not conn.reusable:
                conn.close()  # unread rest of the stream: the connection cannot carry another request
            self._pool.release(self._origin, conn)


def completion_problem(doc: Any) -> str:
    """Why a 200 answer is not a chat completion we can pass on and bill ("" when it is one): an
    object whose choices are a non-empty list of objects, each with a message object whose content
    is text (or null, with tool calls), and usage, when present, an object."""
    if not isinstance(doc, dict):
        return "the provider's answer is not a JSON object"
    choices = doc.get("choices")
    if not isinstance(choices, list) or not choices:
        return "the provider's answer has no choices"
    for c in choices:
        if not isinstance(c, dict):
            return "a choice of the provider's answer is not an object"
        m = c.get("message")
        if not isinstance(m, dict):
            return "a choice of the provider's answer has no message object"
        content = m.get("content")
        if content is not None and not isinstance(content, str):
            return "a message of the provider's answer has non-text content"
        role = m.get("role")
        if role is not None and not isinstance(role, str):
            return "a message of the provider's answer has a role that is not text"
        finish = c.get("finish_reason")
        if finish is not None and not isinstance(finish, str):
            return "a choice of the provider's answer has a finish_reason that is not text"
        index = c.get("index")
        if index is not None and (not isinstance(index, int) or isinstance(index, bool) or index < 0):
            return "a choice of the provider's answer has an index that is not a whole number"
    usage = doc.get("usage")
    if usage is not None and not isinstance(usage, dict):
        return "the provider's usage is not an object"
    return ""


def _chunk_ok(event: Any) -> bool:
    """A streamed chunk the gateway can pass on: an object whose choices (when present) are objects
    with a delta object whose content is text or null."""
    if not isinstance(event, dict):
        return False
    choices = event.get("choices")
    if choices is None:
        return True
    if not isinstance(choices, list):
        return False
    for c in choices:
        if not isinstance(c, dict):
            return False
        d = c.get("delta", {})
        if not isinstance(d, dict):
            return False
        content = d.get("content")
        if content is not None and not isinstance(content, str):
            return False
        index = c.get("index", 0)
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            return False
    return True


_DONE_EVENT: dict[str, Any] = {}


def _parse(line: bytes) -> dict[str, Any] | None:
    """One SSE line: an event, None to skip, or the _DONE_EVENT sentinel for [DONE]."""
    if not line.startswith(b"data:"):
        return None
    data = line[5:].strip()
    if data == b"[DONE]":
        return _DONE_EVENT
    event = json.loads(data)
    if not _chunk_ok(event):
        raise ValueError("not a chat completion chunk")
    if "error" in event and not event.get("choices"):
        raise UpstreamError("stream error", retryable=True, message=_error_message(data))
    return event


async def _batches(conn: _Conn, first_timeout: float, idle: float) -> AsyncIterator[list[dict[str, Any]]]:
    """SSE events in batches: everything that arrived together is parsed and handed on together, so
    a burst of chunks costs one hop through the service and one write to the caller."""
    pending = b""
    timeout = first_timeout
    try:
        while True:
            broken: BaseException | None = None
            try:
                async with asyncio.timeout(timeout):
                    data = await conn.readany()
            except ConnectionError as exc:
                data, broken = b"", exc
            if not data and broken is None:
                raise UpstreamError(
                    "stream interrupted", retryable=True, message="the provider closed the stream early"
                )
            lines = (pending + data).split(b"\n")
            pending = lines.pop()
            events: list[dict[str, Any]] = []
            for line in lines:
                event = _parse(line)
                if event is _DONE_EVENT:
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


class _Target:
    """A provider URL split once: the origin for the pool and the request head's fixed part."""

    __slots__ = ("origin", "prefix")

    def __init__(self, url: str, authorization: str | None) -> None:
        u = urlsplit(url)
        scheme = u.scheme.lower()
        port = u.port or (443 if scheme == "https" else 80)
        host = u.hostname or ""
        path = (u.path or "/") + (f"?{u.query}" if u.query else "")
        self.origin = (scheme, host, port)
        auth = f"Authorization: {authorization}\r\n" if authorization else ""
        self.prefix = (
            f"POST {path} HTTP/1.1\r\nHost: {u.netloc.rpartition('@')[2]}\r\n"
            f"Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"
            f"{auth}Content-Length: "
        ).encode("latin-1")


class Upstream:
    def __init__(
        self,
        *,
        connect_timeout: float,
        attempt_timeout: float,
        stream_idle_timeout: float,
        connection_limit: int,
        keepalive_seconds: float = 30.0,
        allowed_hosts: tuple[str, ...] = (),
    ) -> None:
        self._allowed_hosts = allowed_hosts
        self._connect_timeout = connect_timeout
        self._attempt_timeout = attempt_timeout
        self._idle = stream_idle_timeout
        self._limit = connection_limit
        self._keepalive = keepalive_seconds
        self._pool: _Pool | None = None
        self._targets: dict[tuple[str, str | None], _Target] = {}

    async def open(self) -> None:
        self._pool = _Pool(
            connect_timeout=self._connect_timeout, limit=self._limit, keepalive=self._keepalive
        )

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.close()

    def _target(self, route: Route) -> _Target:
        """The request head for a route, cached. The catalog rules were checked when it was written;
        they are checked again here (once per target) for rows written before the rules existed."""
        secret = None
        if route.credential_env:
            if not route.credential_env.startswith(CREDENTIAL_ENV_PREFIX):
                raise UpstreamError(
                    "credential refused",
                    retryable=True,
                    message=f"credential_env must name a {CREDENTIAL_ENV_PREFIX}* variable",
                )
            secret = os.environ.get(route.credential_env)
            if not secret:
                raise UpstreamError(
                    "credential missing",
                    retryable=True,
                    message=f"environment variable {route.credential_env} is not set",
                )
        t = self._targets.get((route.url, secret))
        if t is None:
            t = _Target(route.url, "Bearer " + secret if secret else None)
            scheme, host, port = t.origin
            if scheme not in ("http", "https") or not host_allowed(host, port, self._allowed_hosts):
                raise UpstreamError(
                    "host refused", retryable=True, message="the base URL is outside the upstream allow-list"
                )
            if len(self._targets) > 1000:  # rotated credentials: do not grow without bound
                self._targets.clear()
            self._targets[(route.url, secret)] = t
        return t

    async def _exchange(self, target: _Target, body: bytes, held: list[_Conn]) -> int:
        """Send the request and read the status line. A pooled connection the provider had already
        closed (its keep-alive timer fired as we reused it) answers nothing at all: the request is sent
        again once on a fresh connection, and the provider is not blamed for it. `held` gets the
        connection in use, for the caller to release."""
        pool = self._pool
        assert pool is not None
        request = target.prefix + b"%d\r\n\r\n" % len(body) + body
        fresh = False
        while True:
            conn = await pool.acquire(target.origin, fresh=fresh)
            held.append(conn)
            reused = conn.uses > 0
            conn.send(request)
            try:
                return await conn.read_head()
            except ConnectionError:
                if fresh or not reused or conn.got_any:
                    raise
            held.pop()
            pool.release(target.origin, conn)  # not reusable: closed and dropped
            fresh = True

    async def complete(self, route: Route, body: bytes) -> dict[str, Any]:
        assert self._pool is not None
        target = self._target(route)
        pool = self._pool
        held: list[_Conn] = []
        try:
            async with asyncio.timeout(self._attempt_timeout):
                status = await self._exchange(target, body, held)
                raw = await held[0].read_all()
        except TimeoutError:
            raise UpstreamError("timeout", retryable=True) from None
        except (OSError, ssl.SSLError) as exc:
            raise UpstreamError("connect", retryable=True, message=type(exc).__name__) from None
        finally:
            if held:
                pool.release(target.origin, held[0])
        if status >= 400:
            raise _http_error(status, raw)
        try:
            doc = json.loads(raw)
        except ValueError:
            raise UpstreamError(
                "bad response", retryable=True, message="the provider answered non-JSON"
            ) from None
        problem = completion_problem(doc)
        if problem:
            raise UpstreamError("bad response", retryable=True, message=problem)
        return doc

    async def open_stream(self, route: Route, body: bytes) -> UpstreamStream:
        """POST and wait for the first event (bounded by the attempt timeout); failover-safe until here."""
        assert self._pool is not None
        target = self._target(route)
        pool = self._pool
        conn: _Conn | None = None
        held: list[_Conn] = []
        try:
            async with asyncio.timeout(self._attempt_timeout):
                status = await self._exchange(target, body, held)
                conn = held[0]
                if status >= 400:
                    raw = await conn.read_all()
                    raise _http_error(status, raw)
                batches = _batches(conn, self._attempt_timeout, self._idle)
                first = await anext(batches)
        except BaseException as exc:
            conn = held[0] if held else None
            if conn is not None:
                if not isinstance(exc, UpstreamError) or not conn.reusable:
                    conn.close()
                pool.release(target.origin, conn)
            if isinstance(exc, StopAsyncIteration):
                raise UpstreamError("empty stream", retryable=True) from None
            if isinstance(exc, TimeoutError):
                raise UpstreamError("timeout", retryable=True) from None
            if isinstance(exc, (OSError, ssl.SSLError)):
                raise UpstreamError("connect", retryable=True, message=type(exc).__name__) from None
            raise
        return UpstreamStream(pool, target.origin, conn, first, batches)
