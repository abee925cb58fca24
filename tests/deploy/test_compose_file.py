"""docker-compose.yml cannot be started here (no Docker engine), so its wiring is checked against the
code it runs: each service's command is a module that exists, every variable it sets is one that
service reads, every database it names is created by the init script, the gateway's catalog loads and
names only credentials the gateway container has, and the stand-in providers' arguments parse."""

from __future__ import annotations

import importlib
import importlib.util
import re
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml
from fakeprovider.__main__ import parse_args

from gateway.app import expand_env
from gateway.domain.catalog import parse_catalog

REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
CONTEXTS = {"metering": "metering.config", "billing": "billing.config", "gateway": "gateway.config"}


class _Recorder(dict):
    """An environment that remembers every variable a Settings.from_env asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: set[str] = set()

    def get(self, key, default=None):
        self.asked.add(key)
        return super().get(key, default)


def _variables_read(context: str) -> set[str]:
    env = _Recorder()
    importlib.import_module(CONTEXTS[context]).Settings.from_env(env)
    return env.asked


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_command_runs_a_module_of_this_repository(name):
    command = SERVICES[name].get("command")
    if name == "postgres":
        assert command is None
        return
    assert command[:2] == ["python", "-m"], command
    assert importlib.util.find_spec(command[2]) is not None, command[2]


@pytest.mark.parametrize("context", sorted(CONTEXTS))
def test_every_variable_a_service_is_given_is_one_it_reads(context):
    given = {k for k in SERVICES[context]["environment"] if k.startswith(context.upper() + "_")}
    assert given, context
    assert given <= _variables_read(context), given - _variables_read(context)


@pytest.mark.parametrize("context", sorted(CONTEXTS))
def test_every_database_url_names_a_database_the_init_script_creates_on_the_compose_postgres(context):
    created = set(re.findall(r"CREATE DATABASE (\w+);", (REPO / "deploy/postgres-init.sql").read_text()))
    url = urlparse(SERVICES[context]["environment"][f"{context.upper()}_DATABASE_URL"])
    assert url.hostname == "postgres"
    assert url.password == SERVICES["postgres"]["environment"]["POSTGRES_PASSWORD"]
    assert url.path.lstrip("/") == context and context in created


def test_addresses_between_services_point_at_published_grpc_ports():
    metering_port = SERVICES["metering"]["environment"]["METERING_GRPC_ADDRESS"].rpartition(":")[2]
    assert f"{metering_port}:{metering_port}" in SERVICES["metering"]["ports"]
    for context in ("billing", "gateway"):
        assert SERVICES[context]["environment"][f"{context.upper()}_METERING_ADDRESS"] == (
            f"metering:{metering_port}"
        )


def test_the_gateway_catalog_loads_and_its_credentials_are_in_the_gateway_environment():
    env = SERVICES["gateway"]["environment"]
    path = env["GATEWAY_CATALOG_FILE"].removeprefix("/app/")  # the image copies deploy/ to /app/deploy
    doc = yaml.safe_load(expand_env((REPO / path).read_text(), {}))
    providers, models = parse_catalog(doc)
    assert models
    hosts = {urlparse(p.base_url).hostname for p in providers}
    assert hosts <= set(SERVICES), hosts
    for p in providers:
        assert p.credential_env in env, p.credential_env


@pytest.mark.parametrize("name", ["provider-a", "provider-b"])
def test_stand_in_provider_arguments_parse_and_match_the_catalog_urls(name):
    args = parse_args(SERVICES[name]["command"][3:])
    assert args.api_key == SERVICES["gateway"]["environment"]["TOLLGATE_PROVIDER_DEMO_KEY"]
    catalog = (REPO / "deploy/catalog.compose.yaml").read_text()
    assert f"http://{name}:{args.port}/v1" in catalog
