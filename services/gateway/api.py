"""gRPC handlers: decode, call the service, encode. Errors are common.errors, mapped by the interceptor."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc

from common import errors
from common.auth import Access
from common.money import to_timestamp
from common.server import status_code_for
from gateway import metrics
from gateway.domain import chat as chat_rules
from gateway.domain import limits
from gateway.domain.catalog import Model, Offering, Provider, parse_price
from gateway.domain.chat import BusinessUnits, ChatInput
from gateway.domain.health import CLOSED, HALF_OPEN, OPEN
from gateway.domain.keys import ApiKey, RateLimits
from gateway.domain.routing import CHEAPEST, FIXED, LATENCY, ProviderPreferences
from gateway.service import (
    AdminService,
    ChatService,
    Completion,
    StreamChunk,
    StreamEnd,
    StreamStart,
    Usage,
)
from tollgate.gateway.v1 import admin_pb2, admin_pb2_grpc, inference_pb2, inference_pb2_grpc
from tollgate.type.v1 import decimal_pb2

_STRATEGY = {
    inference_pb2.ROUTING_STRATEGY_UNSPECIFIED: "",
    inference_pb2.ROUTING_STRATEGY_CHEAPEST: CHEAPEST,
    inference_pb2.ROUTING_STRATEGY_LATENCY: LATENCY,
    inference_pb2.ROUTING_STRATEGY_FIXED: FIXED,
}
# A key's mode: UNSPECIFIED is live (the proto's default); any other number is INVALID_ARGUMENT.
_MODE_IS_TEST = {
    admin_pb2.API_KEY_MODE_UNSPECIFIED: False,
    admin_pb2.API_KEY_MODE_LIVE: False,
    admin_pb2.API_KEY_MODE_TEST: True,
}
_BREAKER = {
    CLOSED: admin_pb2.BREAKER_STATE_CLOSED,
    OPEN: admin_pb2.BREAKER_STATE_OPEN,
    HALF_OPEN: admin_pb2.BREAKER_STATE_HALF_OPEN,
}


def _authorization(context: grpc.aio.ServicerContext) -> tuple[str | None, list[tuple[str, Any]]]:
    auth = None
    pairs = []
    for k, v in context.invocation_metadata() or ():
        if k == "authorization":
            auth = v
        elif k.startswith("x-tollgate-"):
            pairs.append((k, v))
    return auth, pairs


def decode_chat(req: Any, metadata_pairs: list[tuple[str, Any]]) -> ChatInput:
    if req.routing_strategy not in _STRATEGY:
        raise errors.InvalidArgument("routing_strategy is not a known strategy", field="routing_strategy")
    if len(req.metadata) > limits.MAX_METADATA_ENTRIES:
        raise errors.InvalidArgument(
            f"metadata has more than {limits.MAX_METADATA_ENTRIES} entries", field="metadata"
        )
    for i, m in enumerate(req.messages):
        limits.check_text(m.name, f"messages[{i}].name", limits.MAX_USER_LENGTH)
    models = ([req.model] if req.model else []) + list(req.models)
    messages = []
    for m in req.messages:
        msg: dict[str, Any] = {"role": m.role, "content": m.content}
        if m.name:
            msg["name"] = m.name
        messages.append(msg)
    params: dict[str, Any] = {}
    if req.HasField("max_tokens"):
        params["max_tokens"] = req.max_tokens
    if req.HasField("temperature"):
        params["temperature"] = req.temperature
    if req.HasField("top_p"):
        params["top_p"] = req.top_p
    if req.stop:
        params["stop"] = list(req.stop)
    if req.user:
        params["user"] = req.user
    u = req.business_units
    p = req.provider_preferences
    chat = ChatInput(
        request_id=req.request_id,
        models=tuple(models),
        messages=messages,
        params=params,
        tags=dict(req.tags),
        strategy=_STRATEGY[req.routing_strategy],
        prefs=ProviderPreferences(tuple(p.order), tuple(p.only), tuple(p.ignore)),
        units=BusinessUnits(u.run_id, u.document_id, u.page_count, u.ticket_id, u.outcome),
    )
    extras = chat_rules.extras_from_metadata(dict(req.metadata))
    extras.update(chat_rules.extras_from_headers(metadata_pairs))
    return chat_rules.apply_extras(chat, extras)


def _usage(u: Usage) -> inference_pb2.Usage:
    return inference_pb2.Usage(
        input_tokens=u.input_tokens,
        output_tokens=u.output_tokens,
        total_tokens=u.input_tokens + u.output_tokens,
        estimated=u.estimated,
    )


def _route(served: Any) -> inference_pb2.Route:
    r = served.route
    return inference_pb2.Route(
        model=r.model,
        provider=r.provider,
        offering_id=r.offering_id,
        upstream_model=r.upstream_model,
        attempt=served.attempt,
    )


def _completion(c: Completion) -> inference_pb2.CreateChatCompletionResponse:
    choices = []
    for i, ch in enumerate(c.choices):
        m = ch.get("message") or {}
        choices.append(
            inference_pb2.Choice(
                index=int(ch.get("index", i)),
                message=inference_pb2.ChatMessage(
                    role=m.get("role") or "assistant", content=m.get("content") or ""
                ),
                finish_reason=ch.get("finish_reason") or "",
            )
        )
    return inference_pb2.CreateChatCompletionResponse(
        id=c.id,
        request_id=c.request_id,
        choices=choices,
        usage=_usage(c.usage),
        route=_route(c.served),
        create_time=to_timestamp(c.create_time),
    )


def _merged_deltas(frames: list[list[dict[str, Any]]]) -> list[inference_pb2.ChatDelta]:
    """Provider chunks that arrived together, as one delta per choice: the pieces of content joined
    in order, the role of the first, the finish reason of the last. A gRPC message costs far more
    than the bytes it carries, and the caller gets the same text at the same moment."""
    out: list[inference_pb2.ChatDelta] = []
    open_: dict[int, inference_pb2.ChatDelta] = {}  # choice index -> its delta still taking content
    for choices in frames:
        for ch in choices:
            index = int(ch.get("index", 0))
            d = ch.get("delta") or {}
            delta = open_.get(index)
            if delta is None:
                delta = open_[index] = inference_pb2.ChatDelta(index=index, role=d.get("role") or "")
                out.append(delta)
            if not delta.role and d.get("role"):
                delta.role = d["role"]
            delta.content += d.get("content") or ""
            if ch.get("finish_reason"):
                delta.finish_reason = ch["finish_reason"]
                del open_[index]
    return out


def _code_name(exc: BaseException) -> str:
    """The status the shared interceptor will send for this exception (for the request counter)."""
    if isinstance(exc, errors.ServiceError):
        return status_code_for(exc).name
    if isinstance(exc, asyncio.CancelledError | GeneratorExit):
        return "CANCELLED"
    return "INTERNAL"


class InferenceServicer(inference_pb2_grpc.InferenceServiceServicer):
    def __init__(self, chat: ChatService) -> None:
        self.chat = chat

    async def CreateChatCompletion(self, request, context):
        served, code = None, "OK"
        try:
            auth, pairs = _authorization(context)
            key = self.chat.authenticate(auth)
            result = await self.chat.complete(key, decode_chat(request, pairs))
            served = result.served
            return _completion(result)
        except BaseException as exc:
            code = _code_name(exc)
            raise
        finally:
            self._count(request.model, served, code)

    async def StreamChatCompletion(self, request, context) -> AsyncIterator[Any]:
        served, code = None, "OK"
        try:
            auth, pairs = _authorization(context)
            key = self.chat.authenticate(auth)
            cid = rid = ""
            async for item in self.chat.stream(key, decode_chat(request, pairs)):
                if isinstance(item, StreamChunk):
                    for delta in _merged_deltas(item.frames):
                        yield inference_pb2.StreamChatCompletionResponse(id=cid, request_id=rid, delta=delta)
                elif isinstance(item, StreamStart):
                    cid, rid, served = item.id, item.request_id, item.served
                elif isinstance(item, StreamEnd):
                    yield inference_pb2.StreamChatCompletionResponse(
                        id=cid,
                        request_id=rid,
                        summary=inference_pb2.StreamSummary(
                            usage=_usage(item.usage), route=_route(item.served)
                        ),
                    )
        except BaseException as exc:
            code = _code_name(exc)
            raise
        finally:
            self._count(request.model, served, code)

    def _count(self, model: str, served: Any, code: str) -> None:
        if served is not None:
            model, provider = served.route.model, served.route.provider
        else:
            provider = metrics.NONE
        metrics.request_done(
            metrics.DOOR_GRPC, metrics.model_label(self.chat.catalog.routes, model), provider, code
        )

    async def ListModels(self, request, context):
        auth, _ = _authorization(context)
        self.chat.authenticate(auth)
        from common.paging import encode_token, page_size

        n = page_size(request.page_size)
        after = limits.name_cursor(request.page_token, "id")
        models = [m for m in self.chat.public_models() if m[0] > after]
        page = models[:n]
        nxt = encode_token({"id": page[-1][0]}) if len(models) > n else ""
        return inference_pb2.ListModelsResponse(
            models=[inference_pb2.PublicModel(id=name, providers=providers) for name, providers in page],
            next_page_token=nxt,
        )


# ---- admin ----


def _api_key(k: ApiKey) -> admin_pb2.ApiKey:
    msg = admin_pb2.ApiKey(
        id=k.id,
        builder_id=k.builder_id,
        app_id=k.app_id,
        customer_id=k.customer_id,
        display_name=k.display_name,
        default_tags=k.default_tags,
        rate_limits=admin_pb2.RateLimits(
            requests_per_minute=k.rate_limits.requests_per_minute,
            tokens_per_minute=k.rate_limits.tokens_per_minute,
        ),
        secret_prefix=k.secret_prefix,
        state=admin_pb2.API_KEY_STATE_REVOKED if k.revoked else admin_pb2.API_KEY_STATE_ACTIVE,
        mode=admin_pb2.API_KEY_MODE_TEST if k.test else admin_pb2.API_KEY_MODE_LIVE,
    )
    if k.create_time is not None:
        msg.create_time.CopyFrom(to_timestamp(k.create_time))
    if k.revoke_time is not None:
        msg.revoke_time.CopyFrom(to_timestamp(k.revoke_time))
    return msg


def _provider(p: Provider, t: Any) -> admin_pb2.Provider:
    msg = admin_pb2.Provider(name=p.name, base_url=p.base_url, credential_env=p.credential_env)
    if t is not None:
        msg.update_time.CopyFrom(to_timestamp(t))
    return msg


def _model(m: Model, t: Any) -> admin_pb2.Model:
    msg = admin_pb2.Model(
        name=m.name,
        offerings=[
            admin_pb2.Offering(
                id=o.id,
                provider=o.provider,
                upstream_model=o.upstream_model,
                base_url=o.base_url,
                credential_env=o.credential_env,
                input_price_per_mtok=decimal_pb2.Decimal(value=_dec(o.input_price_per_mtok)),
                output_price_per_mtok=decimal_pb2.Decimal(value=_dec(o.output_price_per_mtok)),
                weight=o.weight,
                enabled=o.enabled,
            )
            for o in m.offerings
        ],
    )
    if t is not None:
        msg.update_time.CopyFrom(to_timestamp(t))
    return msg


def _dec(v: Any) -> str:
    from common.money import format_decimal

    return format_decimal(v)


# Who may call what (common/auth.py). The inference door takes gateway API keys, checked by the servicer;
# admin calls take principal credentials: a builder manages its own keys and reads the catalog, only an
# operator changes the catalog (it decides where requests go and with which provider credential).
INFERENCE_ACCESS = {
    "CreateChatCompletion": Access.gateway_api_key(),
    "StreamChatCompletion": Access.gateway_api_key(),
    "ListModels": Access.gateway_api_key(),
}
ADMIN_ACCESS = {
    "CreateApiKey": Access.for_builder("builder_id"),
    "RevokeApiKey": Access.for_builder("builder_id"),
    "ListApiKeys": Access.for_builder("builder_id"),
    "UpsertProvider": Access.operator_only(),
    "UpsertModel": Access.operator_only(),
    "ListModels": Access(builder_open=True),
    "GetRouteHealth": Access.operator_only(),
}


class AdminServicer(admin_pb2_grpc.GatewayAdminServiceServicer):
    def __init__(self, admin: AdminService) -> None:
        self.admin = admin

    async def CreateApiKey(self, request, context):
        lim = request.rate_limits
        test = _MODE_IS_TEST.get(request.mode)
        if test is None:
            raise errors.InvalidArgument(f"mode {request.mode} is not an ApiKeyMode", field="mode")
        key, secret = await self.admin.create_api_key(
            request.request_id,
            request.builder_id,
            request.app_id,
            request.customer_id,
            request.display_name,
            dict(request.default_tags),
            RateLimits(lim.requests_per_minute, lim.tokens_per_minute),
            test=test,
        )
        return admin_pb2.CreateApiKeyResponse(api_key=_api_key(key), secret=secret)

    async def RevokeApiKey(self, request, context):
        limits.check_request_id(request.request_id)
        limits.check_api_key_id(request.api_key_id)
        limits.check_text(request.builder_id, "builder_id", limits.MAX_ID_LENGTH)
        key = await self.admin.revoke_api_key(request.request_id, request.api_key_id, request.builder_id)
        return admin_pb2.RevokeApiKeyResponse(api_key=_api_key(key))

    async def ListApiKeys(self, request, context):
        limits.check_text(request.builder_id, "builder_id", limits.MAX_ID_LENGTH)
        limits.check_text(request.customer_id, "customer_id", limits.MAX_ID_LENGTH)
        keys, nxt = await self.admin.list_api_keys(
            request.builder_id,
            request.customer_id,
            request.include_revoked,
            request.page_size,
            request.page_token,
        )
        return admin_pb2.ListApiKeysResponse(api_keys=[_api_key(k) for k in keys], next_page_token=nxt)

    async def UpsertProvider(self, request, context):
        p = request.provider
        stored, t = await self.admin.upsert_provider(
            request.request_id, Provider(p.name, p.base_url, p.credential_env)
        )
        return admin_pb2.UpsertProviderResponse(provider=_provider(stored, t))

    async def UpsertModel(self, request, context):
        m = request.model
        offerings = []
        for i, o in enumerate(m.offerings):
            f = f"model.offerings[{i}]"
            offerings.append(
                Offering(
                    id=o.id,
                    provider=o.provider,
                    upstream_model=o.upstream_model,
                    input_price_per_mtok=parse_price(
                        o.input_price_per_mtok.value, f"{f}.input_price_per_mtok"
                    ),
                    output_price_per_mtok=parse_price(
                        o.output_price_per_mtok.value, f"{f}.output_price_per_mtok"
                    ),
                    base_url=o.base_url,
                    credential_env=o.credential_env,
                    weight=o.weight,
                    enabled=o.enabled,
                )
            )
        stored, t = await self.admin.upsert_model(request.request_id, Model(m.name, tuple(offerings)))
        return admin_pb2.UpsertModelResponse(model=_model(stored, t))

    async def ListModels(self, request, context):
        page, nxt = self.admin.list_models(request.page_size, request.page_token)
        return admin_pb2.GatewayAdminServiceListModelsResponse(
            models=[_model(m, t) for m, t in page], next_page_token=nxt
        )

    async def GetRouteHealth(self, request, context):
        limits.check_text(request.model, "model", limits.MAX_MODEL_NAME_LENGTH)
        routes = []
        for v in self.admin.route_health(request.model):
            r = admin_pb2.RouteHealth(
                model=v.model,
                offering_id=v.offering_id,
                provider=v.provider,
                state=_BREAKER[v.state],
                consecutive_failures=v.consecutive_failures,
                ewma_latency_ms=v.ewma_latency_ms,
                success_count=v.success_count,
                failure_count=v.failure_count,
                last_error=v.last_error,
            )
            if v.open_time is not None:
                r.open_time.CopyFrom(to_timestamp(v.open_time))
            routes.append(r)
        return admin_pb2.GetRouteHealthResponse(routes=routes)
