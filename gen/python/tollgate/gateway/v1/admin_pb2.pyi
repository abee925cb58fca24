import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from tollgate.type.v1 import decimal_pb2 as _decimal_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ApiKeyState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    API_KEY_STATE_UNSPECIFIED: _ClassVar[ApiKeyState]
    API_KEY_STATE_ACTIVE: _ClassVar[ApiKeyState]
    API_KEY_STATE_REVOKED: _ClassVar[ApiKeyState]

class ApiKeyMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    API_KEY_MODE_UNSPECIFIED: _ClassVar[ApiKeyMode]
    API_KEY_MODE_LIVE: _ClassVar[ApiKeyMode]
    API_KEY_MODE_TEST: _ClassVar[ApiKeyMode]

class BreakerState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BREAKER_STATE_UNSPECIFIED: _ClassVar[BreakerState]
    BREAKER_STATE_CLOSED: _ClassVar[BreakerState]
    BREAKER_STATE_OPEN: _ClassVar[BreakerState]
    BREAKER_STATE_HALF_OPEN: _ClassVar[BreakerState]
API_KEY_STATE_UNSPECIFIED: ApiKeyState
API_KEY_STATE_ACTIVE: ApiKeyState
API_KEY_STATE_REVOKED: ApiKeyState
API_KEY_MODE_UNSPECIFIED: ApiKeyMode
API_KEY_MODE_LIVE: ApiKeyMode
API_KEY_MODE_TEST: ApiKeyMode
BREAKER_STATE_UNSPECIFIED: BreakerState
BREAKER_STATE_CLOSED: BreakerState
BREAKER_STATE_OPEN: BreakerState
BREAKER_STATE_HALF_OPEN: BreakerState

class RateLimits(_message.Message):
    __slots__ = ("requests_per_minute", "tokens_per_minute")
    REQUESTS_PER_MINUTE_FIELD_NUMBER: _ClassVar[int]
    TOKENS_PER_MINUTE_FIELD_NUMBER: _ClassVar[int]
    requests_per_minute: int
    tokens_per_minute: int
    def __init__(self, requests_per_minute: _Optional[int] = ..., tokens_per_minute: _Optional[int] = ...) -> None: ...

class ApiKey(_message.Message):
    __slots__ = ("id", "builder_id", "app_id", "customer_id", "display_name", "default_tags", "rate_limits", "secret_prefix", "state", "create_time", "revoke_time", "mode")
    class DefaultTagsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    BUILDER_ID_FIELD_NUMBER: _ClassVar[int]
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_TAGS_FIELD_NUMBER: _ClassVar[int]
    RATE_LIMITS_FIELD_NUMBER: _ClassVar[int]
    SECRET_PREFIX_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    REVOKE_TIME_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    id: str
    builder_id: str
    app_id: str
    customer_id: str
    display_name: str
    default_tags: _containers.ScalarMap[str, str]
    rate_limits: RateLimits
    secret_prefix: str
    state: ApiKeyState
    create_time: _timestamp_pb2.Timestamp
    revoke_time: _timestamp_pb2.Timestamp
    mode: ApiKeyMode
    def __init__(self, id: _Optional[str] = ..., builder_id: _Optional[str] = ..., app_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., display_name: _Optional[str] = ..., default_tags: _Optional[_Mapping[str, str]] = ..., rate_limits: _Optional[_Union[RateLimits, _Mapping]] = ..., secret_prefix: _Optional[str] = ..., state: _Optional[_Union[ApiKeyState, str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., revoke_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., mode: _Optional[_Union[ApiKeyMode, str]] = ...) -> None: ...

class CreateApiKeyRequest(_message.Message):
    __slots__ = ("request_id", "builder_id", "app_id", "customer_id", "display_name", "default_tags", "rate_limits", "mode")
    class DefaultTagsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    BUILDER_ID_FIELD_NUMBER: _ClassVar[int]
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_TAGS_FIELD_NUMBER: _ClassVar[int]
    RATE_LIMITS_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    builder_id: str
    app_id: str
    customer_id: str
    display_name: str
    default_tags: _containers.ScalarMap[str, str]
    rate_limits: RateLimits
    mode: ApiKeyMode
    def __init__(self, request_id: _Optional[str] = ..., builder_id: _Optional[str] = ..., app_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., display_name: _Optional[str] = ..., default_tags: _Optional[_Mapping[str, str]] = ..., rate_limits: _Optional[_Union[RateLimits, _Mapping]] = ..., mode: _Optional[_Union[ApiKeyMode, str]] = ...) -> None: ...

class CreateApiKeyResponse(_message.Message):
    __slots__ = ("api_key", "secret")
    API_KEY_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    api_key: ApiKey
    secret: str
    def __init__(self, api_key: _Optional[_Union[ApiKey, _Mapping]] = ..., secret: _Optional[str] = ...) -> None: ...

class RevokeApiKeyRequest(_message.Message):
    __slots__ = ("request_id", "api_key_id", "builder_id")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    API_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    BUILDER_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    api_key_id: str
    builder_id: str
    def __init__(self, request_id: _Optional[str] = ..., api_key_id: _Optional[str] = ..., builder_id: _Optional[str] = ...) -> None: ...

class RevokeApiKeyResponse(_message.Message):
    __slots__ = ("api_key",)
    API_KEY_FIELD_NUMBER: _ClassVar[int]
    api_key: ApiKey
    def __init__(self, api_key: _Optional[_Union[ApiKey, _Mapping]] = ...) -> None: ...

class ListApiKeysRequest(_message.Message):
    __slots__ = ("builder_id", "customer_id", "include_revoked", "page_size", "page_token")
    BUILDER_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_REVOKED_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    builder_id: str
    customer_id: str
    include_revoked: bool
    page_size: int
    page_token: str
    def __init__(self, builder_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., include_revoked: _Optional[bool] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListApiKeysResponse(_message.Message):
    __slots__ = ("api_keys", "next_page_token")
    API_KEYS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    api_keys: _containers.RepeatedCompositeFieldContainer[ApiKey]
    next_page_token: str
    def __init__(self, api_keys: _Optional[_Iterable[_Union[ApiKey, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class Provider(_message.Message):
    __slots__ = ("name", "base_url", "credential_env", "update_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    BASE_URL_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_ENV_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    base_url: str
    credential_env: str
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., base_url: _Optional[str] = ..., credential_env: _Optional[str] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class UpsertProviderRequest(_message.Message):
    __slots__ = ("request_id", "provider")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    provider: Provider
    def __init__(self, request_id: _Optional[str] = ..., provider: _Optional[_Union[Provider, _Mapping]] = ...) -> None: ...

class UpsertProviderResponse(_message.Message):
    __slots__ = ("provider",)
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    provider: Provider
    def __init__(self, provider: _Optional[_Union[Provider, _Mapping]] = ...) -> None: ...

class Offering(_message.Message):
    __slots__ = ("id", "provider", "upstream_model", "base_url", "credential_env", "input_price_per_mtok", "output_price_per_mtok", "weight", "enabled")
    ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    UPSTREAM_MODEL_FIELD_NUMBER: _ClassVar[int]
    BASE_URL_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_ENV_FIELD_NUMBER: _ClassVar[int]
    INPUT_PRICE_PER_MTOK_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_PRICE_PER_MTOK_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    id: str
    provider: str
    upstream_model: str
    base_url: str
    credential_env: str
    input_price_per_mtok: _decimal_pb2.Decimal
    output_price_per_mtok: _decimal_pb2.Decimal
    weight: int
    enabled: bool
    def __init__(self, id: _Optional[str] = ..., provider: _Optional[str] = ..., upstream_model: _Optional[str] = ..., base_url: _Optional[str] = ..., credential_env: _Optional[str] = ..., input_price_per_mtok: _Optional[_Union[_decimal_pb2.Decimal, _Mapping]] = ..., output_price_per_mtok: _Optional[_Union[_decimal_pb2.Decimal, _Mapping]] = ..., weight: _Optional[int] = ..., enabled: _Optional[bool] = ...) -> None: ...

class Model(_message.Message):
    __slots__ = ("name", "offerings", "update_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    OFFERINGS_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    offerings: _containers.RepeatedCompositeFieldContainer[Offering]
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., offerings: _Optional[_Iterable[_Union[Offering, _Mapping]]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class UpsertModelRequest(_message.Message):
    __slots__ = ("request_id", "model")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    model: Model
    def __init__(self, request_id: _Optional[str] = ..., model: _Optional[_Union[Model, _Mapping]] = ...) -> None: ...

class UpsertModelResponse(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: Model
    def __init__(self, model: _Optional[_Union[Model, _Mapping]] = ...) -> None: ...

class GatewayAdminServiceListModelsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class GatewayAdminServiceListModelsResponse(_message.Message):
    __slots__ = ("models", "next_page_token")
    MODELS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[Model]
    next_page_token: str
    def __init__(self, models: _Optional[_Iterable[_Union[Model, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetRouteHealthRequest(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: str
    def __init__(self, model: _Optional[str] = ...) -> None: ...

class RouteHealth(_message.Message):
    __slots__ = ("model", "offering_id", "provider", "state", "consecutive_failures", "ewma_latency_ms", "success_count", "failure_count", "open_time", "last_error")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    OFFERING_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CONSECUTIVE_FAILURES_FIELD_NUMBER: _ClassVar[int]
    EWMA_LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_COUNT_FIELD_NUMBER: _ClassVar[int]
    FAILURE_COUNT_FIELD_NUMBER: _ClassVar[int]
    OPEN_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    model: str
    offering_id: str
    provider: str
    state: BreakerState
    consecutive_failures: int
    ewma_latency_ms: float
    success_count: int
    failure_count: int
    open_time: _timestamp_pb2.Timestamp
    last_error: str
    def __init__(self, model: _Optional[str] = ..., offering_id: _Optional[str] = ..., provider: _Optional[str] = ..., state: _Optional[_Union[BreakerState, str]] = ..., consecutive_failures: _Optional[int] = ..., ewma_latency_ms: _Optional[float] = ..., success_count: _Optional[int] = ..., failure_count: _Optional[int] = ..., open_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_error: _Optional[str] = ...) -> None: ...

class GetRouteHealthResponse(_message.Message):
    __slots__ = ("routes",)
    ROUTES_FIELD_NUMBER: _ClassVar[int]
    routes: _containers.RepeatedCompositeFieldContainer[RouteHealth]
    def __init__(self, routes: _Optional[_Iterable[_Union[RouteHealth, _Mapping]]] = ...) -> None: ...
