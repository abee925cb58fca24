"""The catalog cannot be turned against the gateway: no credential variable outside TOLLGATE_PROVIDER_,
no host outside the upstream allow-list, no credentials inside a URL, over the admin API and in the
catalog file read at start-up."""

from __future__ import annotations

import uuid

import grpc
import pytest
import yaml

from common.settings import SettingsError
from tests.gateway.conftest import PROVIDER_NAMES
from tollgate.gateway.v1 import admin_pb2


@pytest.fixture(scope="module")
async def stack(make_stack):
    # Only loopback on the stand-ins' ports (and a named host) is allowed.
    return await make_stack(upstream_allowed_hosts=("127.0.0.1", "api.example.com:443"))


async def upsert_provider(stack, **fields) -> grpc.aio.AioRpcError | admin_pb2.UpsertProviderResponse:
    try:
        return await stack.admin.UpsertProvider(
            admin_pb2.UpsertProviderRequest(
                request_id=uuid.uuid4().hex, provider=admin_pb2.Provider(**fields)
            ),
            metadata=stack.admin_metadata,
            timeout=5,
        )
    except grpc.aio.AioRpcError as exc:
        return exc


@pytest.mark.parametrize("variable", ["GATEWAY_DATABASE_URL", "PATH", "TOLLGATE_AUTH_SIGNING_KEY"])
async def test_a_provider_naming_a_variable_outside_the_prefix_is_invalid_argument(stack, variable):
    err = await upsert_provider(
        stack, name="sneaky", base_url=stack.providers["provider_a"].base_url, credential_env=variable
    )
    assert isinstance(err, grpc.aio.AioRpcError)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "provider.credential_env" in err.details() and "TOLLGATE_PROVIDER_" in err.details()


async def test_a_model_offering_naming_a_variable_outside_the_prefix_is_invalid_argument(stack):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stack.admin.UpsertModel(
            admin_pb2.UpsertModelRequest(
                request_id=uuid.uuid4().hex,
                model=admin_pb2.Model(
                    name="m-sneaky",
                    offerings=[
                        admin_pb2.Offering(
                            provider="provider_a",
                            upstream_model="x",
                            credential_env="GATEWAY_DATABASE_URL",
                            input_price_per_mtok={"value": "1"},
                            output_price_per_mtok={"value": "1"},
                        )
                    ],
                ),
            ),
            metadata=stack.admin_metadata,
            timeout=5,
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "model.offerings[0].credential_env" in err.value.details()


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data",  # outside the allow-list
        "https://api.example.com:8443/v1",  # allowed host, other port
        "http://user:secret@127.0.0.1:9/v1",  # credentials in the URL
        "file:///etc/passwd",
    ],
)
async def test_a_base_url_outside_the_allow_list_or_carrying_credentials_is_invalid_argument(stack, url):
    err = await upsert_provider(
        stack, name="elsewhere", base_url=url, credential_env="TOLLGATE_PROVIDER_X_KEY"
    )
    assert isinstance(err, grpc.aio.AioRpcError)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "provider.base_url" in err.details()
    assert "secret" not in err.details()


async def test_an_allowed_host_with_a_prefixed_variable_is_accepted(stack):
    reply = await upsert_provider(
        stack,
        name="example",
        base_url="https://api.example.com/v1/",
        credential_env="TOLLGATE_PROVIDER_EX_KEY",
    )
    assert not isinstance(reply, grpc.aio.AioRpcError), reply
    assert reply.provider.base_url == "https://api.example.com/v1"


async def test_a_catalog_file_naming_a_variable_outside_the_prefix_stops_start_up(make_stack, tmp_path):
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(
        yaml.safe_dump(
            {
                "providers": [
                    {"name": n, "base_url": "http://127.0.0.1:9/v1", "credential_env": "GATEWAY_DATABASE_URL"}
                    for n in PROVIDER_NAMES
                ]
            }
        )
    )
    with pytest.raises(SettingsError) as err:
        await make_stack(catalog_file=str(catalog))
    assert str(catalog) in str(err.value)
    assert "providers[0].credential_env" in str(err.value)


async def test_a_catalog_file_with_a_host_outside_the_allow_list_stops_start_up(make_stack):
    # The stack's own catalog points at 127.0.0.1: an allow-list without it refuses the file.
    with pytest.raises(SettingsError) as err:
        await make_stack(upstream_allowed_hosts=("api.openai.com",))
    assert "providers[0].base_url" in str(err.value) and "allow-list" in str(err.value)
