"""Gateway use cases, one module per use case: chat (authenticate, route with failover, record usage)
and admin (keys, catalog, route health); `state` holds the in-memory caches both read, `results` what
the chat path returns, `failures` its errors. This module re-exports the names other modules import."""

from gateway.service.admin import AdminService, RouteHealthView, model_from_reply, provider_from_reply
from gateway.service.chat import ChatService
from gateway.service.failures import (
    AllAttemptsFailed,
    NoRouteAvailable,
    ProviderMisconfigured,
    ProviderNotFound,
    ProviderRejected,
    RequestIdReused,
    RequestIdUnchecked,
    StreamInterrupted,
    UsageNotRecorded,
)
from gateway.service.results import Completion, Served, StreamChunk, StreamEnd, StreamStart, Usage
from gateway.service.state import UNAUTHENTICATED_MESSAGE, Catalog, HealthBoard, KeyCache, Limiter

__all__ = [
    "UNAUTHENTICATED_MESSAGE",
    "AdminService",
    "AllAttemptsFailed",
    "Catalog",
    "ChatService",
    "Completion",
    "HealthBoard",
    "KeyCache",
    "Limiter",
    "NoRouteAvailable",
    "ProviderMisconfigured",
    "ProviderNotFound",
    "ProviderRejected",
    "RequestIdReused",
    "RequestIdUnchecked",
    "RouteHealthView",
    "Served",
    "StreamChunk",
    "StreamEnd",
    "StreamInterrupted",
    "StreamStart",
    "Usage",
    "UsageNotRecorded",
    "model_from_reply",
    "provider_from_reply",
]
