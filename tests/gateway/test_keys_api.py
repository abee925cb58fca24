"""API keys: shown once, stored only as a hash, revocable, rejected alike whatever is wrong with them,
and never written to a log line or an error body."""

from __future__ import annotations

import hashlib
import uuid

import asyncpg
import grpc
import pytest
import structlog
from grpc_status import rpc_status

from tests.conftest import auth_metadata
from tests.gateway.conftest import bearer, chat_request
from tollgate.gateway.v1 import admin_pb2, admin_pb2_grpc


@pytest.fixture(scope="module")
async def stack(make_stack):
    return await make_stack()


@pytest.fixture(scope="module")
async def model(stack):
    return await stack.upsert_model([{"provider": "provider_a"}])


def asyncpg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def rows_as_text(database_url: str) -> list[str]:
    """Every row of every table in the gateway's database, as text."""
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        tables = await conn.fetch(
            "SELECT quote_ident(table_schema) || '.' || quote_ident(table_name) AS t"
            " FROM information_schema.tables WHERE table_type = 'BASE TABLE'"
            " AND table_schema NOT IN ('pg_catalog', 'information_schema')"
        )
        out = []
        for t in tables:
            out += [r[0] for r in await conn.fetch(f"SELECT x::text FROM {t['t']} x")]
        return out
    finally:
        await conn.close()


async def grpc_rejection(stack, metadata) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stack.inference.CreateChatCompletion(chat_request("chat-small"), metadata=metadata, timeout=5)
    return err.value


async def test_secret_is_returned_once_and_a_retry_returns_the_key_without_it(stack):
    rid = uuid.uuid4().hex
    secret, key = await stack.create_key(request_id=rid)
    assert secret.startswith("tg_") and len(secret) >= 40
    assert key.secret_prefix == secret[:8]
    assert key.state == admin_pb2.API_KEY_STATE_ACTIVE
    again_secret, again = await stack.create_key(request_id=rid)
    assert again.id == key.id
    assert again_secret == ""


async def test_same_request_id_with_a_different_body_is_already_exists(stack):
    rid = uuid.uuid4().hex
    await stack.create_key(request_id=rid)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stack.create_key(request_id=rid, customer_id="someone-else")
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS


async def test_list_never_shows_the_secret_and_the_database_holds_only_its_hash(stack):
    secret, key = await stack.create_key(builder_id="b-list")
    listed = await stack.admin.ListApiKeys(
        admin_pb2.ListApiKeysRequest(builder_id="b-list"), metadata=stack.admin_metadata, timeout=5
    )
    assert [k.id for k in listed.api_keys] == [key.id]
    assert secret not in str(listed) and secret not in listed.SerializeToString().decode("latin-1")

    rows = await rows_as_text(stack.database_url)
    assert not [r for r in rows if secret in r], "the secret is stored in clear"
    assert not [r for r in rows if secret[3:] in r], "the secret's random part is stored in clear"
    digest = hashlib.sha256(secret.encode()).hexdigest()
    assert [r for r in rows if digest in r or f"\\x{digest}" in r], "no SHA-256 of the secret stored"


async def test_missing_fields_are_invalid_argument_naming_the_field(stack):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stack.create_key(customer_id="")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(err.value)
    assert "customer_id" in err.value.details()
    assert status is not None and status.details, "no BadRequest detail"


async def test_admin_calls_need_an_operator_or_builder_credential(stack):
    async with grpc.aio.insecure_channel(stack.grpc_address) as bare:
        admin = admin_pb2_grpc.GatewayAdminServiceStub(bare)
        for metadata in [(), (("authorization", "Bearer nope"),), (("authorization", "Basic x"),)]:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await admin.ListApiKeys(admin_pb2.ListApiKeysRequest(), metadata=metadata, timeout=5)
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_only_an_operator_changes_the_catalog(stack):
    provider = admin_pb2.Provider(name="provider_a", base_url="http://127.0.0.1:1", credential_env="X")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stack.admin.UpsertProvider(
            admin_pb2.UpsertProviderRequest(request_id=uuid.uuid4().hex, provider=provider),
            metadata=auth_metadata("builder", "b1"),
            timeout=5,
        )
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    models = await stack.admin.ListModels(
        admin_pb2.GatewayAdminServiceListModelsRequest(), metadata=auth_metadata("builder", "b1"), timeout=5
    )
    assert models.models, "a builder reads the catalog"


async def test_a_builder_manages_only_its_own_keys(stack):
    _, theirs = await stack.create_key(builder_id="b-other")
    mine = auth_metadata("builder", "b-mine")
    created = await stack.admin.CreateApiKey(
        admin_pb2.CreateApiKeyRequest(
            request_id=uuid.uuid4().hex, app_id="app1", customer_id="c1", display_name="mine"
        ),
        metadata=mine,
        timeout=5,
    )
    assert created.api_key.builder_id == "b-mine" and created.secret.startswith("tg_")
    listed = await stack.admin.ListApiKeys(admin_pb2.ListApiKeysRequest(), metadata=mine, timeout=5)
    assert [k.id for k in listed.api_keys] == [created.api_key.id]
    with pytest.raises(grpc.aio.AioRpcError) as other_list:
        await stack.admin.ListApiKeys(
            admin_pb2.ListApiKeysRequest(builder_id="b-other"), metadata=mine, timeout=5
        )
    assert other_list.value.code() == grpc.StatusCode.PERMISSION_DENIED
    revokes = {}
    for name, key_id in [("theirs", theirs.id), ("missing", "key_does_not_exist")]:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stack.admin.RevokeApiKey(
                admin_pb2.RevokeApiKeyRequest(request_id=uuid.uuid4().hex, api_key_id=key_id),
                metadata=mine,
                timeout=5,
            )
        revokes[name] = (err.value.code(), err.value.details())
    assert revokes["theirs"] == revokes["missing"]  # another builder's key looks like no key at all
    assert revokes["theirs"][0] == grpc.StatusCode.NOT_FOUND
    still = await stack.admin.ListApiKeys(admin_pb2.ListApiKeysRequest(builder_id="b-other"), timeout=5)
    assert [k.revoke_time.seconds for k in still.api_keys] == [0]


async def test_revoked_unknown_and_malformed_keys_are_rejected_identically(stack, model):
    secret, key = await stack.create_key()
    ok = await stack.inference.CreateChatCompletion(chat_request(model), metadata=bearer(secret), timeout=5)
    assert ok.route.provider == "provider_a"
    await stack.admin.RevokeApiKey(
        admin_pb2.RevokeApiKeyRequest(request_id=uuid.uuid4().hex, api_key_id=key.id),
        metadata=stack.admin_metadata,
        timeout=5,
    )
    unknown = "tg_" + "A" * 43
    cases = {
        "revoked": bearer(secret),
        "unknown": bearer(unknown),
        "malformed": (("authorization", "Bearer x"),),
        "not bearer": (("authorization", f"Basic {secret}"),),
        "missing": (),
    }
    grpc_errors = {name: await grpc_rejection(stack, md) for name, md in cases.items()}
    assert {e.code() for e in grpc_errors.values()} == {grpc.StatusCode.UNAUTHENTICATED}
    assert len({e.details() for e in grpc_errors.values()}) == 1, {
        n: e.details() for n, e in grpc_errors.items()
    }
    for e in grpc_errors.values():
        assert secret not in e.details() and secret[:8] not in e.details()

    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    http = {
        "revoked": await stack.post_chat(secret, body),
        "unknown": await stack.post_chat(unknown, body),
        "malformed": await stack.post_chat("x", body),
        "missing": await stack.post_chat(None, body),
    }
    assert {s for s, _, _ in http.values()} == {401}
    assert len({str(b) for _, _, b in http.values()}) == 1, http
    _, _, err_body = http["revoked"]
    assert err_body["error"]["message"]
    assert secret not in str(err_body)


async def test_revoke_is_idempotent_and_listed_as_revoked(stack):
    _, key = await stack.create_key(builder_id="b-revoke")
    for _ in range(2):
        resp = await stack.admin.RevokeApiKey(
            admin_pb2.RevokeApiKeyRequest(request_id=uuid.uuid4().hex, api_key_id=key.id),
            metadata=stack.admin_metadata,
            timeout=5,
        )
        assert resp.api_key.state == admin_pb2.API_KEY_STATE_REVOKED
    listed = await stack.admin.ListApiKeys(
        admin_pb2.ListApiKeysRequest(builder_id="b-revoke", include_revoked=True),
        metadata=stack.admin_metadata,
        timeout=5,
    )
    assert [k.state for k in listed.api_keys] == [admin_pb2.API_KEY_STATE_REVOKED]


async def test_revoking_an_unknown_key_is_not_found(stack):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stack.admin.RevokeApiKey(
            admin_pb2.RevokeApiKeyRequest(request_id=uuid.uuid4().hex, api_key_id="key_" + "0" * 24),
            metadata=stack.admin_metadata,
            timeout=5,
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_the_key_never_appears_in_log_output(stack, model, capfd):
    secret, key = await stack.create_key()
    with structlog.testing.capture_logs() as events:
        await stack.inference.CreateChatCompletion(chat_request(model), metadata=bearer(secret), timeout=5)
        body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
        assert (await stack.post_chat(secret, body))[0] == 200
        assert (await stack.post_chat(secret, {"model": "nope", "messages": []}))[0] in (400, 404)
        stack.providers["provider_a"].control(fail_next=1, error_kinds=["500"])
        await stack.post_chat(secret, body)
        await stack.admin.RevokeApiKey(
            admin_pb2.RevokeApiKeyRequest(request_id=uuid.uuid4().hex, api_key_id=key.id),
            metadata=stack.admin_metadata,
            timeout=5,
        )
        assert (await stack.post_chat(secret, body))[0] == 401
        await grpc_rejection(stack, bearer(secret))
    stack.reset_providers()
    out, err = capfd.readouterr()
    logged = repr(events) + out + err
    assert secret not in logged
    assert secret[3:] not in logged
    assert "sk-upstream-" not in logged  # nor the providers' credentials
