"""grpc.aio server start-up shared by every service.

- Health: the standard grpc.health.v1 service; NOT_SERVING until the service says it is ready (after
  migrations), NOT_SERVING again as soon as shutdown starts.
- Reflection for every registered service.
- Interceptor: authenticates the caller and applies the RPC's access rule (common.auth) before the
  handler runs, every RPC but the health check; binds the request id (x-request-id metadata, else the
  request's request_id field, else a fresh one), the method and the caller to structlog's context; maps
  common.errors to status codes with rich details; turns any other exception into INTERNAL with an error
  id, never a traceback; records Prometheus metrics (calls by method and code, latency histogram).
- TLS (and mutual TLS) when the service's security settings give a certificate.
- Graceful shutdown on SIGTERM/SIGINT: health goes NOT_SERVING, in-flight calls get a grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import sys
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import grpc
import structlog
import uvloop
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection
from grpc_status import rpc_status
from prometheus_client import Counter, Histogram, start_http_server
from sqlalchemy import exc as sqlalchemy_exc

from common import auth, errors
from common.logging import configure_logging
from common.security import ServerTLS
from common.settings import SettingsError

log = structlog.get_logger("common.server")

_CODES: dict[type[errors.ServiceError], grpc.StatusCode] = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
}


def status_code_for(error: errors.ServiceError) -> grpc.StatusCode:
    for cls in type(error).__mro__:
        if cls in _CODES:
            return _CODES[cls]
    return grpc.StatusCode.UNKNOWN


def _rich_status(code: grpc.StatusCode, error: errors.ServiceError) -> status_pb2.Status:
    """A google.rpc.Status with BadRequest field violations or RetryInfo, for clients that read them."""
    message = error.message
    status = status_pb2.Status(code=getattr(code_pb2, code.name), message=message)
    if isinstance(error, errors.InvalidArgument) and error.field:
        detail = any_pb2.Any()
        detail.Pack(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=error.field, description=message)
                ]
            )
        )
        status.details.append(detail)
    if isinstance(error, errors.ResourceExhausted) and error.retry_after_seconds is not None:
        delay = duration_pb2.Duration()
        delay.FromMilliseconds(int(error.retry_after_seconds * 1000))
        detail = any_pb2.Any()
        detail.Pack(error_details_pb2.RetryInfo(retry_delay=delay))
        status.details.append(detail)
    if error.error_info is not None:
        domain, reason, metadata = error.error_info
        detail = any_pb2.Any()
        detail.Pack(error_details_pb2.ErrorInfo(domain=domain, reason=reason, metadata=metadata))
        status.details.append(detail)
    return status


@lru_cache(maxsize=1)
def _metrics() -> tuple[Counter, Histogram]:
    handled = Counter(
        "tollgate_grpc_server_handled_total",
        "gRPC calls completed, by service, method and status code.",
        ["grpc_service", "grpc_method", "grpc_code"],
    )
    latency = Histogram(
        "tollgate_grpc_server_handling_seconds",
        "gRPC call latency in seconds, by service and method.",
        ["grpc_service", "grpc_method"],
        buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    )
    return handled, latency


# Request ids from metadata are logged: keep them short and printable whatever the caller sends.
_MAX_LOGGED_ID = 128


def _request_id(request: Any, metadata: Iterable[tuple[str, Any]] | None) -> str:
    for key, value in metadata or ():
        if key == "x-request-id" and value:
            return str(value)[:_MAX_LOGGED_ID]
    rid = getattr(request, "request_id", "") if request is not None else ""
    return (rid if isinstance(rid, str) else "")[:_MAX_LOGGED_ID] or uuid.uuid4().hex


def _is_database_error(exc: BaseException) -> bool:
    return isinstance(exc, sqlalchemy_exc.DBAPIError) or type(exc).__module__.startswith("asyncpg")


def loggable_error(exc: BaseException) -> dict[str, Any]:
    """What an unexpected error logs. A database error's text can quote the values a caller sent (asyncpg
    names the offending argument's value), so for those only the type, the SQLSTATE and the stack are
    logged, never the message; anything else is logged with its traceback."""
    if not _is_database_error(exc):
        return {"exc_info": exc}
    orig = getattr(exc, "orig", None) or exc
    cause = getattr(orig, "__cause__", None)
    sqlstate = getattr(orig, "sqlstate", None) or getattr(cause, "sqlstate", None)
    return {
        "error_type": f"{type(exc).__module__}.{type(exc).__name__}",
        "sqlstate": sqlstate,
        "stack": "".join(traceback.format_tb(exc.__traceback__)),
    }


class _CallScope:
    """Everything the interceptor does around one call, shared by unary and streaming handlers."""

    def __init__(self, method: str, guard: _Guard, rule: auth.Access | None) -> None:
        _, _, tail = method.rpartition("/")
        self.service = method.strip("/").split("/")[0]
        self.method = tail
        self.start = time.perf_counter()
        self._guard = guard
        self._rule = rule
        self._principal_token: Any = None

    def bind(self, request: Any, context: grpc.aio.ServicerContext) -> None:
        structlog.contextvars.bind_contextvars(
            request_id=_request_id(request, context.invocation_metadata()),
            method=f"{self.service}/{self.method}",
        )

    def admit(self, request: Any, context: grpc.aio.ServicerContext) -> None:
        """Authenticate and authorize the call (raises common.errors); a no-op for API-key RPCs."""
        principal = self._guard.admit(self._rule, request, context)
        if principal is not None:
            self._principal_token = auth.set_current_principal(principal)
            structlog.contextvars.bind_contextvars(caller=principal.subject)

    async def fail(self, exc: BaseException, context: grpc.aio.ServicerContext) -> None:
        if isinstance(exc, errors.ServiceError):
            code = status_code_for(exc)
            status = _rich_status(code, exc)
            log.info("rpc.rejected", code=code.name, reason=exc.message, field=exc.field)
            await context.abort(code, exc.message, rpc_status.to_status(status).trailing_metadata)
        error_id = uuid.uuid4().hex[:16]
        log.error("rpc.internal_error", error_id=error_id, **loggable_error(exc))
        await context.abort(grpc.StatusCode.INTERNAL, f"internal error (error id {error_id})")

    def finish(self, context: grpc.aio.ServicerContext) -> None:
        handled, latency = _metrics()
        code = context.code()
        name = "OK" if code is None else getattr(code, "name", str(code))
        handled.labels(self.service, self.method, name).inc()
        latency.labels(self.service, self.method).observe(time.perf_counter() - self.start)
        if self._principal_token is not None:
            auth.reset_current_principal(self._principal_token)
        structlog.contextvars.unbind_contextvars("request_id", "method", "caller")


class _Guard:
    """The access rules of every RPC a server serves, and the verifier of credentials."""

    def __init__(
        self,
        verifier: auth.Verifier,
        rules: dict[str, auth.Access],
        api_key_check: Callable[[Iterable[tuple[str, Any]]], None] | None = None,
    ) -> None:
        self.verifier = verifier
        self.rules = rules
        # For API-key RPCs the servicer checks the key; a body that does not decode never reaches it,
        # so the key is checked here first (a caller without a good key learns nothing more).
        self.api_key_check = api_key_check

    def admit(
        self, rule: auth.Access | None, request: Any, context: grpc.aio.ServicerContext
    ) -> auth.Principal | None:
        if rule is not None and rule.api_key:
            if isinstance(request, _Undecodable) and self.api_key_check is not None:
                self.api_key_check(context.invocation_metadata())
            _refuse_undecodable(request)
            return None
        principal = self.verifier.verify(auth.bearer(context.invocation_metadata()))
        _refuse_undecodable(request)  # after the credential: a stranger learns nothing, not even this
        if rule is not None:  # None: reflection, open to any authenticated caller
            auth.authorize(principal, rule, request)
        return principal


class _Undecodable:
    """A request body that is not the RPC's message (not protobuf, or a string field that is not UTF-8)."""

    request_id = ""

    def __init__(self, error: Exception) -> None:
        self.error = error


def _tolerant(deserialize: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    """grpc answers UNKNOWN when a deserializer raises, before any interceptor runs; this one hands the
    failure to the handler wrapper instead, which answers INVALID_ARGUMENT like any other bad input."""
    if deserialize is None:
        return None

    def tolerant(data: bytes) -> Any:
        try:
            return deserialize(data)
        except Exception as exc:
            return _Undecodable(exc)

    return tolerant


def _refuse_undecodable(request: Any) -> None:
    if isinstance(request, _Undecodable):
        raise errors.InvalidArgument(
            "the request body is not a valid message of this method (protobuf, strings in UTF-8)"
        )


_HEALTH_PREFIX = "/grpc.health."


class ServiceInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, guard: _Guard) -> None:
        self._guard = guard

    async def intercept_service(self, continuation, handler_call_details):  # type: ignore[override]
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method.startswith(_HEALTH_PREFIX):
            return handler
        if method.startswith("/grpc."):
            return self._guard_stream(handler, method)
        rule = self._guard.rules.get(method)
        if rule is None:  # check_access_table makes this unreachable; refuse rather than serve
            rule = auth.Access.operator_only()
        guard = self._guard
        if handler.unary_unary:
            inner_uu = handler.unary_unary

            async def unary_unary(request, context):
                scope = _CallScope(method, guard, rule)
                scope.bind(request, context)
                try:
                    scope.admit(request, context)
                    return await inner_uu(request, context)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    if isinstance(exc, grpc.aio.AbortError):
                        raise
                    await scope.fail(exc, context)
                finally:
                    scope.finish(context)

            return grpc.unary_unary_rpc_method_handler(
                unary_unary, _tolerant(handler.request_deserializer), handler.response_serializer
            )
        if handler.unary_stream:
            inner_us = handler.unary_stream

            async def unary_stream(request, context):
                scope = _CallScope(method, guard, rule)
                scope.bind(request, context)
                try:
                    scope.admit(request, context)
                    async for item in inner_us(request, context):
                        yield item
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    if isinstance(exc, grpc.aio.AbortError):
                        raise
                    await scope.fail(exc, context)
                finally:
                    scope.finish(context)

            return grpc.unary_stream_rpc_method_handler(
                unary_stream, _tolerant(handler.request_deserializer), handler.response_serializer
            )
        return handler

    def _guard_stream(self, handler: Any, method: str) -> Any:
        """Reflection (a bidirectional stream): any authenticated caller, checked before it starts."""
        if not handler.stream_stream:
            return handler
        inner = handler.stream_stream
        guard = self._guard

        async def stream_stream(request_iterator, context):
            scope = _CallScope(method, guard, None)
            scope.bind(None, context)
            try:
                scope.admit(None, context)
                async for item in inner(request_iterator, context):
                    yield item
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if isinstance(exc, grpc.aio.AbortError):
                    raise
                await scope.fail(exc, context)
            finally:
                scope.finish(context)

        return grpc.stream_stream_rpc_method_handler(
            stream_stream, handler.request_deserializer, handler.response_serializer
        )


@dataclass
class RunningServer:
    """A started server; `port` is the bound port (useful when asked for port 0)."""

    server: grpc.aio.Server
    port: int
    health: health_aio.HealthServicer
    service_names: list[str]
    metrics_port: int | None = None
    _metrics_server: Any = None
    _on_stop: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    async def set_serving(self) -> None:
        for name in ["", *self.service_names]:
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)

    def on_stop(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Run callback after in-flight calls have finished (close pools, flush outboxes)."""
        self._on_stop.append(callback)

    async def stop(self, grace: float = 5.0) -> None:
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
        for callback in reversed(self._on_stop):
            try:
                await callback()
            except Exception:
                log.exception("server.stop_callback_failed")
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
            self._metrics_server.server_close()


async def start_server(
    *,
    address: str,
    register: Callable[[grpc.aio.Server], list[str]],
    verifier: auth.Verifier,
    access: Mapping[str, auth.AccessTable],
    tls: ServerTLS | None = None,
    api_key_check: Callable[[Iterable[tuple[str, Any]]], None] | None = None,
    metrics_port: int | None = None,
    metrics_host: str = "127.0.0.1",
    max_message_mb: int = 64,
) -> RunningServer:
    """Build, bind and start a server. `register` adds the servicers and returns their full names;
    `access` gives, per full service name, the access rule of each of its RPCs (every RPC must have
    one). Callers are verified with `verifier`; `tls` serves TLS (mutual when it names a client CA).

    Health starts NOT_SERVING; call `set_serving()` once the service is ready (migrations done).
    """
    options = [
        ("grpc.max_receive_message_length", max_message_mb * 1024 * 1024),
        ("grpc.max_send_message_length", max_message_mb * 1024 * 1024),
        ("grpc.so_reuseport", 0),
    ]
    rules: dict[str, auth.Access] = {}
    for service_name, table in access.items():
        auth.check_access_table(service_name, table)
        rules.update({f"/{service_name}/{method}": rule for method, rule in table.items()})
    guard = _Guard(verifier, rules, api_key_check)
    server = grpc.aio.server(interceptors=[ServiceInterceptor(guard)], options=options)
    service_names = register(server)
    unguarded = sorted(set(service_names) - set(access))
    if unguarded:
        raise RuntimeError(f"no access table for {unguarded}")
    health = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    for name in ["", *service_names]:
        await health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    reflection.enable_server_reflection(
        [*service_names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME],
        server,
    )
    if tls is not None:
        port = server.add_secure_port(address, tls.server_credentials())
    else:
        port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"could not bind gRPC address {address}")
    await server.start()
    running = RunningServer(server=server, port=port, health=health, service_names=service_names)
    if metrics_port is not None:
        httpd, _thread = start_http_server(metrics_port, addr=metrics_host)
        running._metrics_server = httpd
        running.metrics_port = httpd.server_port
    return running


async def serve_until_signal(running: RunningServer, grace: float) -> None:
    """Block until SIGTERM or SIGINT, then shut down gracefully."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("server.stopping", grace_seconds=grace)
    await running.stop(grace)
    log.info("server.stopped")


def quiet_gc(young_threshold: int) -> None:
    """After start-up: freeze what start-up built (it lives as long as the process) and run the cyclic
    collector's young generation every `young_threshold` allocations instead of every 700. Request
    paths allocate many short-lived objects and no cycles that must be freed promptly; reference
    counting frees them, and a collection every few requests cost 15 to 25% of a request's CPU."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(young_threshold, 50, 100)


def run(service: str, log_level: str, main: Callable[[], Awaitable[None]]) -> None:
    """The body of `python -m <service>`: structured logs, then `main()` on uvloop."""
    configure_logging(service, log_level)
    try:
        uvloop.run(main())
    except SettingsError as exc:  # a setting that cannot work: one line, not a traceback
        print(f"{service}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
