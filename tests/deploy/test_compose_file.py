"""docker-compose.yml cannot be started here (no Docker engine), so its wiring is checked against the
code it runs: each service's command is a module that exists, every variable it sets is one that
service reads, every database it names is created by the init script, the gateway's catalog loads and
names only credentials the gateway container has, and the stand-in providers' arguments parse. The
`observability` profile: Prometheus scrapes exactly the services' metrics ports, Grafana's datasource and
dashboard are provisioned, and every metric the dashboard queries is one the code defines."""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml
from fakeprovider.__main__ import parse_args

from common.security import CALLING_SERVICES, LocalCredentials, is_loopback
from gateway.app import expand_env
from gateway.domain.catalog import parse_catalog

REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
OBSERVABILITY = {name for name, svc in SERVICES.items() if "observability" in svc.get("profiles", [])}
CONTEXTS = {
    "metering": "metering.config",
    "billing": "billing.config",
    "gateway": "gateway.config",
    "payouts": "payouts.config",
}


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


@pytest.mark.parametrize("name", sorted(set(SERVICES) - OBSERVABILITY))
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


PASSWORD = "${POSTGRES_PASSWORD}"


@pytest.mark.parametrize("context", sorted(CONTEXTS))
def test_every_database_url_names_a_database_the_init_script_creates_on_the_compose_postgres(context):
    created = set(re.findall(r"CREATE DATABASE (\w+);", (REPO / "deploy/postgres-init.sql").read_text()))
    raw = SERVICES[context]["environment"][f"{context.upper()}_DATABASE_URL"]
    assert PASSWORD in raw, "the database password comes from the environment"
    url = urlparse(raw.replace(PASSWORD, "from-the-environment"))
    assert url.hostname == "postgres"
    assert url.path.lstrip("/") == context and context in created


def test_the_database_password_comes_from_the_environment_and_is_required():
    assert SERVICES["postgres"]["environment"]["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")
    text = (REPO / "docker-compose.yml").read_text()
    assert "tollgate@postgres" not in text and "POSTGRES_PASSWORD: tollgate" not in text


def test_only_the_gateway_http_door_is_published_and_grafana_on_loopback_under_its_profile():
    published = {name: svc.get("ports", []) for name, svc in SERVICES.items() if svc.get("ports")}
    assert published == {"gateway": ["8080:8080"], "grafana": ["127.0.0.1:3000:3000"]}
    assert SERVICES["grafana"]["profiles"] == ["observability"]
    assert "profiles" not in SERVICES["gateway"]


def test_addresses_between_services_point_at_their_grpc_ports_on_the_compose_network():
    metering_port = SERVICES["metering"]["environment"]["METERING_GRPC_ADDRESS"].rpartition(":")[2]
    for context in ("billing", "gateway", "payouts"):
        assert SERVICES[context]["environment"][f"{context.upper()}_METERING_ADDRESS"] == (
            f"metering:{metering_port}"
        )
    billing_port = SERVICES["billing"]["environment"]["BILLING_GRPC_ADDRESS"].rpartition(":")[2]
    assert SERVICES["payouts"]["environment"]["PAYOUTS_BILLING_ADDRESS"] == f"billing:{billing_port}"


@pytest.mark.parametrize("context", sorted(CONTEXTS))
def test_every_service_bound_beyond_loopback_is_given_its_credentials_as_secrets(context):
    """A service bound to 0.0.0.0 refuses to start without a trust file (and a token when it calls
    others): compose gives each exactly the secrets the credentials command writes, and no more."""
    env, secrets = SERVICES[context]["environment"], SERVICES[context].get("secrets", [])
    prefix = context.upper()
    assert not is_loopback(env[f"{prefix}_GRPC_ADDRESS"])
    assert env[f"{prefix}_AUTH_TRUST_FILE"] == "/run/secrets/trust" and "trust" in secrets
    local = LocalCredentials(REPO / "deploy" / "credentials")
    assert COMPOSE["secrets"]["trust"]["file"] == "./deploy/credentials/" + local.trust_file.name
    if context in CALLING_SERVICES:
        name = f"{context}_token"
        assert env[f"{prefix}_AUTH_TOKEN_FILE"] == f"/run/secrets/{name}" and name in secrets
        assert COMPOSE["secrets"][name]["file"] == "./deploy/credentials/" + local.token_file(context).name
    assert set(secrets) <= {"trust", f"{context}_token"}, "a service gets only its own credential"
    assert not any("signing" in str(v) or "operator" in str(v) for v in COMPOSE["secrets"].values())


@pytest.mark.parametrize("context", sorted(CONTEXTS))
def test_the_tls_override_sets_only_variables_the_service_reads_and_names_its_secrets(context):
    override = yaml.safe_load((REPO / "docker-compose.tls.yml").read_text())
    env = override["services"][context]["environment"]
    assert set(env) <= _variables_read(context), set(env) - _variables_read(context)
    assert env[f"{context.upper()}_TLS_REQUIRE_CLIENT_CERT"] == "true"
    for value in env.values():
        if value.startswith("/run/secrets/"):
            name = value.removeprefix("/run/secrets/")
            assert name in override["services"][context]["secrets"] and name in override["secrets"]


@pytest.mark.parametrize("context", ["metering", "billing", "payouts"])
def test_grpc_health_checks_probe_the_service_on_its_own_port(context):
    test = SERVICES[context]["healthcheck"]["test"]
    assert test[1:4] == ["python", "-m", "common.healthcheck"]
    assert importlib.util.find_spec("common.healthcheck") is not None
    port = SERVICES[context]["environment"][f"{context.upper()}_GRPC_ADDRESS"].rpartition(":")[2]
    assert test[4:] == [context, f"127.0.0.1:{port}"]


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


# ---- the observability profile ----


def _mounts(name: str) -> dict[str, str]:
    """Container path -> host path (relative to the repository) of a service's bind mounts."""
    out = {}
    for volume in SERVICES[name].get("volumes", []):
        host, target = volume.split(":")[:2]
        if host.startswith("./"):
            out[target] = host.removeprefix("./")
    return out


def test_the_observability_profile_runs_prometheus_and_grafana_from_pinned_images():
    assert OBSERVABILITY == {"prometheus", "grafana"}
    for name in OBSERVABILITY:
        image = SERVICES[name]["image"]
        assert ":" in image and not image.endswith(":latest"), image
    assert _mounts("prometheus") == {"/etc/prometheus/prometheus.yml": "deploy/prometheus.yml"}
    assert "--config.file=/etc/prometheus/prometheus.yml" in SERVICES["prometheus"]["command"]


def test_prometheus_scrapes_exactly_every_service_metrics_port_on_the_compose_network():
    config = yaml.safe_load((REPO / "deploy/prometheus.yml").read_text())
    targets = {
        (job["job_name"], target)
        for job in config["scrape_configs"]
        for static in job["static_configs"]
        for target in static["targets"]
    }
    expected = {
        (context, f"{context}:{SERVICES[context]['environment'][f'{context.upper()}_METRICS_PORT']}")
        for context in CONTEXTS
    }
    assert targets == expected


@pytest.mark.parametrize("context", sorted(CONTEXTS))
def test_every_service_metrics_listener_is_reachable_on_the_compose_network(context):
    env = SERVICES[context]["environment"]
    assert env[f"{context.upper()}_METRICS_HOST"] == "0.0.0.0"
    settings = importlib.import_module(CONTEXTS[context]).Settings.from_env(
        {
            f"{context.upper()}_METRICS_PORT": env[f"{context.upper()}_METRICS_PORT"],
            f"{context.upper()}_METRICS_HOST": "0.0.0.0",
        }
    )
    assert (settings.metrics_host, settings.metrics_port) == (
        "0.0.0.0",
        int(env[f"{context.upper()}_METRICS_PORT"]),
    )


def test_grafana_is_provisioned_with_the_prometheus_datasource_and_the_dashboard_folder():
    mounts = _mounts("grafana")
    provisioning = REPO / mounts["/etc/grafana/provisioning"]
    datasource = yaml.safe_load((provisioning / "datasources/prometheus.yml").read_text())["datasources"][0]
    assert datasource["type"] == "prometheus"
    assert urlparse(datasource["url"]).hostname == "prometheus" and urlparse(datasource["url"]).port == 9090
    provider = yaml.safe_load((provisioning / "dashboards/tollgate.yml").read_text())["providers"][0]
    assert mounts[provider["options"]["path"]] == "deploy/grafana/dashboards"
    dashboard = json.loads((REPO / "deploy/grafana/dashboards/tollgate.json").read_text())
    uids = {t["datasource"]["uid"] for p in dashboard["panels"] for t in p.get("targets", [])} | {
        p["datasource"]["uid"] for p in dashboard["panels"] if "datasource" in p
    }
    assert uids == {datasource["uid"]}


def _defined_metric_names() -> set[str]:
    """Every sample name the code can export, from the prometheus_client registry after importing each
    context's metrics module (and the gRPC metrics every service shares)."""
    from prometheus_client import REGISTRY

    import billing.metrics  # noqa: F401
    import gateway.metrics  # noqa: F401
    import payouts.metrics  # noqa: F401
    from common.server import _metrics

    _metrics()
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}
    names = set()
    for family in REGISTRY.collect():
        for suffix in suffixes.get(family.type, ("",)):
            names.add(family.name + suffix)
    return names


def test_every_metric_the_dashboard_queries_is_one_the_code_defines():
    dashboard = json.loads((REPO / "deploy/grafana/dashboards/tollgate.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    used = {name for expr in exprs for name in re.findall(r"\b(tollgate_[a-z0-9_]+)", expr)}
    assert len(used) >= 12, used
    defined = _defined_metric_names()
    assert used <= defined, sorted(used - defined)
    # The figures the dashboard is for are all on it.
    for figure in (
        "tollgate_gateway_requests_total",
        "tollgate_gateway_upstream_latency_seconds_bucket",
        "tollgate_gateway_time_to_first_token_seconds_bucket",
        "tollgate_gateway_tokens_total",
        "tollgate_gateway_provider_cost_total",
        "tollgate_gateway_breaker_state",
        "tollgate_gateway_outbox_backlog",
        "tollgate_gateway_relay_lag_seconds",
        "tollgate_billing_period_closes_total",
        "tollgate_billing_period_close_seconds_bucket",
        "tollgate_payouts_runs_total",
        "tollgate_payouts_run_seconds_bucket",
    ):
        assert figure in used, figure
