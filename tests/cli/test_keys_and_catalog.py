"""`tollgate keys` and `tollgate catalog` against a real gateway (its stand-in providers behind it), and
how the command fails: wrong credential, another builder's credential, a missing key, a service down."""

from __future__ import annotations

import json
import re

import pytest

from tests.cli.cli_kit import operator_args
from tests.conftest import free_port, token

SECRET = re.compile(r"tg_[A-Za-z0-9_-]{43}")


@pytest.fixture(scope="module")
async def gw(make_stack):
    return await make_stack()


def _gw(gw) -> list[str]:
    return operator_args(gateway=gw.grpc_address)


async def test_key_create_prints_the_secret_once_and_the_key_then_lists_and_works(cli, gw):
    made = await cli(
        *_gw(gw),
        "keys",
        "create",
        "--builder",
        "cli-b1",
        "--app",
        "app1",
        "--customer",
        "c1",
        "--name",
        "from the cli",
        "--tag",
        "workflow=triage",
    )
    assert made.exit_code == 0, made.stderr
    [secret] = SECRET.findall(made.stdout)  # printed once, never again
    assert f"secret (shown once, store it now): {secret}" in made.stdout
    key_id = re.search(r"key_[0-9a-f]{24}", made.stdout).group(0)

    listed = await cli(*_gw(gw), "keys", "list", "--builder", "cli-b1")
    assert listed.exit_code == 0, listed.stderr
    assert key_id in listed.stdout and "from the cli" in listed.stdout
    assert secret not in listed.stdout and secret[:8] in listed.stdout

    model = await gw.upsert_model([{"provider": "provider_a"}])
    status, _, body = await gw.post_chat(
        secret, {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    )
    assert status == 200, body


async def test_keys_list_json_carries_every_field_and_revoke_stops_the_key(cli, gw):
    made = await cli(
        *_gw(gw),
        "--json",
        "keys",
        "create",
        "--builder",
        "cli-b2",
        "--app",
        "app2",
        "--customer",
        "c9",
        "--rpm",
        "120",
    )
    created = json.loads(made.stdout)
    key_id, secret = created["api_key"]["id"], created["secret"]
    assert SECRET.fullmatch(secret)

    listed = json.loads((await cli(*_gw(gw), "keys", "list", "--builder", "cli-b2", "--json")).stdout)
    [key] = [k for k in listed["api_keys"] if k["id"] == key_id]
    assert key["customer_id"] == "c9" and key["app_id"] == "app2"
    assert key["rate_limits"]["requests_per_minute"] == 120
    assert key["state"] == "API_KEY_STATE_ACTIVE" and key["revoke_time"] is None
    assert "secret" not in key

    revoked = await cli(*_gw(gw), "--json", "keys", "revoke", key_id, "--builder", "cli-b2")
    assert revoked.exit_code == 0, revoked.stderr
    assert json.loads(revoked.stdout)["api_key"]["state"] == "API_KEY_STATE_REVOKED"
    model = await gw.upsert_model([{"provider": "provider_a"}])
    status, _, _ = await gw.post_chat(
        secret, {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    )
    assert status == 401


async def test_catalog_apply_upserts_the_models_of_a_yaml_file_with_exact_prices(
    cli, gw, tmp_path, monkeypatch
):
    monkeypatch.setenv("CLI_TEST_BASE", gw.providers["provider_b"].base_url)
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(
        """
providers:
  - name: provider_b
    base_url: ${CLI_TEST_BASE}
    credential_env: TOLLGATE_PROVIDER_PROVIDER_B_KEY
models:
  - name: cli-model
    offerings:
      - provider: provider_b
        upstream_model: up-1
        input_price_per_mtok: "0.123456789"
        output_price_per_mtok: "4"
        weight: 7
"""
    )
    applied = await cli(*_gw(gw), "catalog", "apply", str(catalog))
    assert applied.exit_code == 0, applied.stderr
    shown = json.loads((await cli(*_gw(gw), "catalog", "show", "--json")).stdout)
    [model] = [m for m in shown["models"] if m["name"] == "cli-model"]
    [offering] = model["offerings"]
    assert offering["input_price_per_mtok"] == "0.123456789"
    assert offering["output_price_per_mtok"] == "4"
    assert (offering["provider"], offering["upstream_model"], offering["weight"]) == ("provider_b", "up-1", 7)
    table = await cli(*_gw(gw), "catalog", "show")
    assert "cli-model" in table.stdout and "0.123456789" in table.stdout


async def test_catalog_apply_names_the_model_the_gateway_refused(cli, gw, tmp_path):
    catalog = tmp_path / "bad.yaml"
    catalog.write_text(
        "models:\n  - name: bad-one\n    offerings:\n      - provider: nobody\n"
        "        upstream_model: x\n        input_price_per_mtok: '1'\n"
        "        output_price_per_mtok: '1'\n"
    )
    result = await cli(*_gw(gw), "catalog", "apply", str(catalog))
    assert result.exit_code == 4
    assert "bad-one" in result.stderr and "INVALID_ARGUMENT" in result.stderr


async def test_a_wrong_token_exits_3_with_one_line(cli, gw):
    result = await cli("--token", "not-a-credential", "--gateway-address", gw.grpc_address, "keys", "list")
    assert result.exit_code == 3
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and "refused the credential" in result.stderr


async def test_another_builders_credential_exits_3_permission_denied(cli, gw):
    result = await cli(
        "--token",
        token("builder", "cli-other"),
        "--gateway-address",
        gw.grpc_address,
        "keys",
        "create",
        "--builder",
        "cli-b1",
        "--app",
        "a",
        "--customer",
        "c",
    )
    assert result.exit_code == 3
    assert "PERMISSION_DENIED" in result.stderr and result.stderr.count("\n") == 1


async def test_revoking_a_key_that_does_not_exist_exits_4(cli, gw):
    result = await cli(*_gw(gw), "keys", "revoke", "key_" + "0" * 24)
    assert result.exit_code == 4
    assert "NOT_FOUND" in result.stderr


async def test_a_service_down_exits_5_naming_its_address(cli):
    address = f"127.0.0.1:{free_port()}"
    result = await cli(*operator_args(gateway=address), "--timeout", "3", "keys", "list")
    assert result.exit_code == 5
    assert address in result.stderr and result.stderr.count("\n") == 1
    status = await cli(
        "--gateway-address",
        address,
        "--metering-address",
        address,
        "--billing-address",
        address,
        "status",
        "--json",
    )
    assert status.exit_code == 5
    assert {s["health"] for s in json.loads(status.stdout)["services"]} == {"UNREACHABLE"}


async def test_the_address_and_token_come_from_the_environment_too(cli, gw):
    env = {"TOLLGATE_GATEWAY_ADDRESS": gw.grpc_address, "TOLLGATE_TOKEN": token()}
    result = await cli("keys", "list", "--json", env=env)
    assert result.exit_code == 0, result.stderr
    assert "api_keys" in json.loads(result.stdout)
