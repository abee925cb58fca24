"""Every command explains itself, the defaults point at `make run`, and `tollgate credentials` issues
and revokes credentials the services' verifier accepts and refuses. No server needed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer

from common.auth import TrustStore, Verifier
from common.errors import Unauthenticated
from common.security import ensure_local_credentials
from scripts.suite import DEFAULT_PORTS
from tollgatecli.app import app
from tollgatecli.client import DEFAULT_ADDRESSES


def _paths(command, path=()) -> list[tuple[str, ...]]:
    out = [path]
    for name, sub in getattr(command, "commands", {}).items():
        out += _paths(sub, (*path, name))
    return out


COMMANDS = _paths(typer.main.get_command(app))


def test_the_tree_has_the_commands_the_readme_lists():
    names = {" ".join(p) for p in COMMANDS}
    for expected in (
        "status",
        "keys create",
        "keys list",
        "keys revoke",
        "catalog show",
        "catalog apply",
        "customers list",
        "customers create",
        "plans apply",
        "plans show",
        "usage query",
        "invoices close",
        "invoices show",
        "invoices list",
        "invoices pay",
        "earnings",
        "credentials mint",
        "credentials rotate",
        "credentials retire",
        "credentials revoke",
        "payouts run",
        "payouts list",
        "payouts statement",
        "payouts export",
        "reconcile",
    ):
        assert expected in names


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "tollgate")
def test_every_command_has_help(cli, path):
    result = cli.sync(*path, "--help")
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.stdout


def test_the_root_help_states_the_exit_codes(cli):
    text = " ".join(cli.sync("--help").stdout.split())
    assert "3 unauthenticated or not allowed" in text and "5 service unavailable" in text
    assert "6 reconcile not clean" in text


def test_default_addresses_are_make_runs_ports():
    for service, address in DEFAULT_ADDRESSES.items():
        assert address == f"127.0.0.1:{DEFAULT_PORTS[service]}"


def test_an_unknown_option_is_a_usage_error(cli):
    assert cli.sync("keys", "list", "--no-such-option").exit_code == 2


def test_no_credential_anywhere_exits_3_saying_where_to_get_one(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = cli.sync("--credentials-dir", str(tmp_path / "none"), "keys", "list")
    assert result.exit_code == 3
    assert "make run" in result.stderr and result.stderr.count("\n") == 1


def test_minted_credentials_verify_and_a_revoked_one_is_refused(cli, tmp_path: Path):
    local = ensure_local_credentials(tmp_path / "creds")
    minted = cli.sync(
        "--credentials-dir",
        str(local.directory),
        "--json",
        "credentials",
        "mint",
        "builder",
        "acme",
        "--days",
        "1",
    )
    assert minted.exit_code == 0, minted.stderr
    data = json.loads(minted.stdout)
    verifier = Verifier(TrustStore(local.trust_file, check_interval=0))
    principal = verifier.verify(data["token"])
    assert (principal.kind, principal.builder_id, principal.token_id) == ("builder", "acme", data["token_id"])
    assert data["expires"] is not None

    revoked = cli.sync("--credentials-dir", str(local.directory), "credentials", "revoke", data["token_id"])
    assert revoked.exit_code == 0, revoked.stderr
    fresh = Verifier(TrustStore(local.trust_file, check_interval=0))
    with pytest.raises(Unauthenticated):
        fresh.verify(data["token"])


def test_rotate_then_retire_keeps_only_credentials_of_the_new_key(cli, tmp_path: Path):
    local = ensure_local_credentials(tmp_path / "creds")
    old = local.issuer().mint("operator", "ops")
    args = ["--credentials-dir", str(local.directory), "credentials"]
    assert cli.sync(*args, "rotate").exit_code == 0
    new = local.issuer().mint("operator", "ops")
    both = Verifier(TrustStore(local.trust_file, check_interval=0))
    assert both.verify(old).kind == both.verify(new).kind == "operator"
    assert cli.sync(*args, "retire").exit_code == 0
    after = Verifier(TrustStore(local.trust_file, check_interval=0))
    assert after.verify(new).kind == "operator"
    with pytest.raises(Unauthenticated):
        after.verify(old)


def test_mint_without_a_signing_key_is_a_usage_error(cli, tmp_path: Path):
    result = cli.sync("--credentials-dir", str(tmp_path), "credentials", "mint", "builder", "acme")
    assert result.exit_code == 2 and "signing key" in result.stderr


@pytest.mark.parametrize("name", ["catalog.yaml", "catalog.compose.yaml"])
def test_catalog_files_read_the_same_as_the_gateway_reads_them(name, monkeypatch):
    """The command parses catalog YAML itself (it imports no gateway code); it must agree with the gateway."""
    import yaml

    from gateway.app import expand_env
    from gateway.domain.catalog import parse_catalog as gateway_parse
    from tollgatecli.gateway import parse_catalog

    for variable in ("DEMO_PROVIDER_A_BASE_URL", "DEMO_PROVIDER_B_BASE_URL"):
        monkeypatch.delenv(variable, raising=False)
    path = Path(__file__).resolve().parents[2] / "deploy" / name
    if not path.exists():
        pytest.skip(f"no {name}")
    text = path.read_text()
    try:
        doc = yaml.safe_load(expand_env(text, {}))
    except Exception:
        pytest.skip(f"{name} needs variables set by compose")
    providers, models = gateway_parse(doc)
    ours_providers, ours_models = parse_catalog(text)
    assert [(p.name, p.base_url, p.credential_env) for p in providers] == [
        (p.name, p.base_url, p.credential_env) for p in ours_providers
    ]
    assert [
        (
            m.name,
            [
                (o.provider, o.upstream_model, str(o.input_price_per_mtok), str(o.output_price_per_mtok))
                for o in m.offerings
            ],
        )
        for m in models
    ] == [
        (
            m.name,
            [
                (o.provider, o.upstream_model, o.input_price_per_mtok.value, o.output_price_per_mtok.value)
                for o in m.offerings
            ],
        )
        for m in ours_models
    ]


def test_the_command_imports_no_contexts_code():
    import ast

    package = Path(__file__).resolve().parents[2] / "services" / "tollgatecli"
    for source in package.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            for name in names:
                assert name.split(".")[0] not in {"gateway", "metering", "billing", "payouts"}, (source, name)


@pytest.mark.parametrize("command", [["catalog", "apply"], ["plans", "apply"]])
def test_a_file_that_cannot_be_read_is_a_usage_error_naming_it(cli, tmp_path, command):
    missing = tmp_path / "missing.yaml"
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00not text")
    for path, reason in ((missing, "No such file"), (binary, "not UTF-8")):
        result = cli.sync("--token", "t", *command, str(path))
        assert result.exit_code == 2
        assert str(path) in result.stderr and reason in result.stderr
