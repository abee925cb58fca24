"""Errors of the chat path, each with the HTTP status and code the front door answers with (gRPC maps
them through their common.errors base class)."""

from __future__ import annotations

from common import errors
from gateway.domain.catalog import Route
from gateway.spend import DOMAIN, SpendCapReached, SpendCheckUnavailable
from gateway.upstream import UpstreamError

__all__ = ["SpendCapReached", "SpendCheckUnavailable"]


class ProviderRejected(errors.InvalidArgument):
    """The provider refused the request itself (4xx other than 429): not retried, returned to the caller."""

    def __init__(self, message: str, http_status: int) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.code = "upstream_rejected"


class ProviderNotFound(errors.NotFound):
    http_status = 404
    code = "upstream_not_found"


class ProviderMisconfigured(errors.FailedPrecondition):
    http_status = 502
    code = "upstream_credentials"


class AllAttemptsFailed(errors.Unavailable):
    http_status = 502
    code = "upstream_error"


class NoRouteAvailable(errors.Unavailable):
    http_status = 503
    code = "no_route"


class StreamInterrupted(errors.Unavailable):
    http_status = 502
    code = "upstream_stream_interrupted"


class RequestIdReused(errors.AlreadyExists):
    http_status = 409
    code = "request_id_reused"

    def __init__(self) -> None:
        super().__init__(
            "request_id was already used for a different request; use a new request_id",
            field="request_id",
        )


class RequestIdUnchecked(errors.Unavailable):
    http_status = 503
    code = "request_id_unchecked"


class UsageNotRecorded(errors.Unavailable):
    def __init__(self) -> None:
        super().__init__(
            "usage could not be recorded; the request was not answered, retry with the same request_id"
        )
        self.http_status = 503
        self.code = "usage_not_recorded"


def _rejection(e: UpstreamError, route: Route) -> errors.ServiceError:
    detail = f": {e.message}" if e.message else ""
    if e.status in (401, 403):
        return ProviderMisconfigured(f"provider {route.provider} rejected the gateway's credentials")
    if e.status == 404:
        return ProviderNotFound(f"provider {route.provider} answered 404{detail}")
    return ProviderRejected(
        f"provider {route.provider} rejected the request (http {e.status}){detail}",
        http_status=e.status if 400 <= e.status < 500 else 400,
    )


class RateLimited(errors.ResourceExhausted):
    """A key's rate limit (HTTP 429); ErrorInfo reason RATE_LIMITED tells it from a spend cap."""

    def __init__(self, message: str, retry_after_seconds: float) -> None:
        super().__init__(message, retry_after_seconds=retry_after_seconds)
        self.error_info = (DOMAIN, "RATE_LIMITED", {})
