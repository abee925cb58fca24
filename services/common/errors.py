"""Errors a service raises for the caller's mistakes; each context's api.py maps them to gRPC codes.

They carry no domain meaning of their own: a context subclasses or raises them with its own message.
"""

from __future__ import annotations


class ServiceError(Exception):
    """A failure the caller can act on. `field` names the offending request field, when there is one.

    `error_info` (domain, reason, metadata), when set, is sent as a google.rpc.ErrorInfo detail so a
    client can tell two failures of one status code apart (a rate limit from a spend cap)."""

    error_info: tuple[str, str, dict[str, str]] | None = None

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidArgument(ServiceError):
    pass


class NotFound(ServiceError):
    pass


class AlreadyExists(ServiceError):
    pass


class FailedPrecondition(ServiceError):
    pass


class PermissionDenied(ServiceError):
    pass


class Unauthenticated(ServiceError):
    pass


class ResourceExhausted(ServiceError):
    def __init__(self, message: str, *, field: str | None = None, retry_after_seconds: float | None = None):
        super().__init__(message, field=field)
        self.retry_after_seconds = retry_after_seconds


class Unavailable(ServiceError):
    pass
