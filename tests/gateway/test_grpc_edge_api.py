"""Strange input at the gRPC edge (NUL characters, strings longer than their columns, page tokens the
gateway did not issue, extreme numbers) is INVALID_ARGUMENT naming the field, never INTERNAL, and
changes nothing."""

from __future__ import annotations

import base64
import json
import uuid

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from tests.gateway.conftest import bearer, chat_request
from tests.gateway.test_keys_api import rows_as_text
from tollgate.gateway.v1 import admin_pb2, inference_pb2
from tollgate.type.v1 import decimal_pb2


@pytest.fixture(scope="module")
async def stack(make_stack):
    return await make_stack()


@pytest.fixture(scope="module")
async def secret(stack):
    return (await stack.create_key())[0]


def token(cursor) -> str:
    return base64.urlsafe_b64encode(json.dumps(cursor).encode()).decode().rstrip("=")


FOREIGN_TOKENS = [
    "not base64 !",
    token(["a list"]),
    token({"t": "2026-01-01T00:00:00+00:00", "id": "key_\x00"}),
    token({"t": "yesterday", "id": "key_" + "0" * 24}),
    token({"t": "2026-01-01T00:00:00", "id": "key_" + "0" * 24}),  # no time zone
    token({"t": 5, "id": 7}),
    token({"name": "x", "extra": 1}),
    token({"id": "\x00" * 300}),
    "A" * 5000,
]


def named_field(err: grpc.aio.AioRpcError) -> str:
    """The field of the BadRequest detail the gateway attaches to INVALID_ARGUMENT."""
    status = rpc_status.from_call(err)
    assert status is not None and status.details, "no BadRequest detail"
    bad = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad)
    return bad.field_violations[0].field


def rid() -> str:
    return uuid.uuid4().hex


def key_request(**changes) -> admin_pb2.CreateApiKeyRequest:
    fields = {"request_id": rid(), "builder_id": "b1", "app_id": "app1", "customer_id": "c1"}
    fields.update(changes)
    return admin_pb2.CreateApiKeyRequest(**fields)


ADMIN_CASES = [
    ("CreateApiKey", key_request(request_id="r\x00"), "request_id"),
    ("CreateApiKey", key_request(request_id="r" * 129), "request_id"),
    ("CreateApiKey", key_request(builder_id="b\x001"), "builder_id"),
    ("CreateApiKey", key_request(customer_id="c" * 129), "customer_id"),
    ("CreateApiKey", key_request(app_id="\x00"), "app_id"),
    ("CreateApiKey", key_request(display_name="d\x00"), "display_name"),
    ("CreateApiKey", key_request(default_tags={"workspace": "w\x00"}), "default_tags.workspace"),
    ("CreateApiKey", key_request(default_tags={"k" * 5000: "v"}), "default_tags." + "k" * 64),
    (
        "CreateApiKey",
        key_request(rate_limits=admin_pb2.RateLimits(requests_per_minute=2**63 - 1)),
        "rate_limits.requests_per_minute",
    ),
    (
        "CreateApiKey",
        key_request(rate_limits=admin_pb2.RateLimits(tokens_per_minute=-(2**63))),
        "rate_limits.tokens_per_minute",
    ),
    (
        "RevokeApiKey",
        admin_pb2.RevokeApiKeyRequest(request_id="r\x00", api_key_id="key_" + "0" * 24),
        "request_id",
    ),
    ("ListApiKeys", admin_pb2.ListApiKeysRequest(builder_id="b\x00"), "builder_id"),
    ("ListApiKeys", admin_pb2.ListApiKeysRequest(customer_id="c" * 200), "customer_id"),
    ("ListApiKeys", admin_pb2.ListApiKeysRequest(page_size=-1), "page_size"),
    ("ListApiKeys", admin_pb2.ListApiKeysRequest(page_size=2**31 - 1), "page_size"),
    *[("ListApiKeys", admin_pb2.ListApiKeysRequest(page_token=t), "page_token") for t in FOREIGN_TOKENS],
    *[
        ("ListModels", admin_pb2.GatewayAdminServiceListModelsRequest(page_token=t), "page_token")
        for t in FOREIGN_TOKENS
    ],
    ("GetRouteHealth", admin_pb2.GetRouteHealthRequest(model="m\x00"), "model"),
    ("GetRouteHealth", admin_pb2.GetRouteHealthRequest(model="m" * 10_000), "model"),
    (
        "UpsertProvider",
        admin_pb2.UpsertProviderRequest(
            request_id=rid(), provider=admin_pb2.Provider(name="p", base_url="http://h/" + "x" * 5000)
        ),
        "provider.base_url",
    ),
    (
        "UpsertProvider",
        admin_pb2.UpsertProviderRequest(
            request_id=rid(), provider=admin_pb2.Provider(name="p\x00", base_url="http://h")
        ),
        "provider.name",
    ),
    *[
        (
            "UpsertModel",
            admin_pb2.UpsertModelRequest(
                request_id=rid(),
                model=admin_pb2.Model(
                    name="m-edge",
                    offerings=[
                        admin_pb2.Offering(
                            provider="provider_a",
                            upstream_model="u",
                            input_price_per_mtok=decimal_pb2.Decimal(value=price),
                            output_price_per_mtok=decimal_pb2.Decimal(value="1"),
                        )
                    ],
                ),
            ),
            "model.offerings[0].input_price_per_mtok",
        )
        for price in ("NaN", "1e999", "-1", "9" * 40, "0.0000000001", "1" * 5000)
    ],
    (
        "UpsertModel",
        admin_pb2.UpsertModelRequest(
            request_id=rid(),
            model=admin_pb2.Model(
                name="m-edge",
                offerings=[
                    admin_pb2.Offering(
                        provider="provider_a",
                        upstream_model="u\x00",
                        input_price_per_mtok=decimal_pb2.Decimal(value="1"),
                        output_price_per_mtok=decimal_pb2.Decimal(value="1"),
                    )
                ],
            ),
        ),
        "model.offerings[0].upstream_model",
    ),
]


@pytest.mark.parametrize(("rpc", "request_", "field"), ADMIN_CASES)
async def test_strange_admin_input_is_invalid_argument_naming_the_field_and_changes_nothing(
    stack, rpc, request_, field
):
    before = sorted(await rows_as_text(stack.database_url))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await getattr(stack.admin, rpc)(request_, metadata=stack.admin_metadata, timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    assert named_field(err.value) == field
    assert len(err.value.details()) < 400  # the caller's text is quoted truncated, if at all
    assert sorted(await rows_as_text(stack.database_url)) == before


async def test_a_malformed_api_key_id_is_not_found_and_never_reaches_the_database(stack):
    for bad in ("key_\x00", "k" * 10_000, "key_" + "g" * 24):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stack.admin.RevokeApiKey(
                admin_pb2.RevokeApiKeyRequest(request_id=rid(), api_key_id=bad),
                metadata=stack.admin_metadata,
                timeout=5,
            )
        assert err.value.code() == grpc.StatusCode.NOT_FOUND


def chat(**changes) -> inference_pb2.CreateChatCompletionRequest:
    req = chat_request("chat-small")
    for k, v in changes.items():
        if isinstance(v, dict):
            getattr(req, k).update(v)
        elif k == "business_units":
            req.business_units.CopyFrom(v)
        elif k == "provider_preferences":
            req.provider_preferences.CopyFrom(v)
        elif k == "models":
            req.models.extend(v)
        elif k == "stop":
            req.stop.extend(v)
        else:
            setattr(req, k, v)
    return req


CHAT_CASES = [
    (chat(request_id="r\x00"), "request_id"),
    (chat(model="m\x00"), "model"),
    (chat(model="m" * 10_000), "model"),
    (chat(models=["n\x00"]), "models[0]"),
    (chat(tags={"workspace": "w\x00"}), "tags.workspace"),
    (chat(tags={"w" * 70: "x"}), "tags." + "w" * 64),
    (chat(business_units=inference_pb2.BusinessUnits(run_id="r\x00")), "business_units.run_id"),
    (chat(business_units=inference_pb2.BusinessUnits(run_id="r" * 129)), "business_units.run_id"),
    (chat(business_units=inference_pb2.BusinessUnits(document_id="d\x00")), "business_units.document_id"),
    (chat(business_units=inference_pb2.BusinessUnits(ticket_id="t" * 257)), "business_units.ticket_id"),
    (chat(business_units=inference_pb2.BusinessUnits(outcome="\x00")), "business_units.outcome"),
    (chat(business_units=inference_pb2.BusinessUnits(page_count=2**63 - 1)), "business_units.page_count"),
    (chat(business_units=inference_pb2.BusinessUnits(page_count=-1)), "business_units.page_count"),
    (chat(metadata={"tollgate_page_count": "9" * 5000}), "business_units.page_count"),
    (chat(metadata={"tollgate_tag_workspace": "w\x00"}), "tags.workspace"),
    (chat(metadata={f"k{i}": "v" for i in range(65)}), "metadata"),
    (
        chat(provider_preferences=inference_pb2.ProviderPreferences(only=["p"] * 33)),
        "provider_preferences.only",
    ),
    (
        chat(provider_preferences=inference_pb2.ProviderPreferences(order=["p" * 65])),
        "provider_preferences.order[0]",
    ),
    (chat(stop=["s" * 257]), "stop"),
    (chat(user="u" * 257), "user"),
    (chat(routing_strategy=99), "routing_strategy"),
    (chat(max_tokens=-5), "max_tokens"),
    (chat(temperature=float("nan")), "temperature"),
    (chat(top_p=float("inf")), "top_p"),
]


@pytest.mark.parametrize(("request_", "field"), CHAT_CASES)
async def test_strange_chat_input_is_invalid_argument_before_any_provider_is_called(
    stack, secret, request_, field
):
    calls = {n: p.stats()["requests"] for n, p in stack.providers.items()}
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stack.inference.CreateChatCompletion(request_, metadata=bearer(secret), timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    assert named_field(err.value) == field
    assert len(err.value.details()) < 400
    assert {n: p.stats()["requests"] for n, p in stack.providers.items()} == calls


@pytest.mark.parametrize("page_token", FOREIGN_TOKENS)
async def test_a_page_token_the_gateway_did_not_issue_is_invalid_argument(stack, secret, page_token):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stack.inference.ListModels(
            inference_pb2.ListModelsRequest(page_token=page_token), metadata=bearer(secret), timeout=5
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "page_token" in err.value.details()


async def test_a_database_error_never_quotes_the_statements_parameters(stack):
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    marker = "PARAM-" + uuid.uuid4().hex
    with pytest.raises(DBAPIError) as err:
        async with stack.running.store.engine.connect() as conn:
            await conn.execute(text("SELECT CAST(:v AS text), 1 / 0"), {"v": marker})
    assert "division by zero" in str(err.value)
    assert marker not in str(err.value)  # what a log line or an INTERNAL detail would carry
