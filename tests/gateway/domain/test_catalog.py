"""Catalog names: whole-string rules, so a trailing newline or space can never slip into a name that
ends up in headers, tags and metering events."""

from __future__ import annotations

from decimal import Decimal

import pytest

from common.errors import InvalidArgument
from gateway.domain.catalog import (
    Model,
    Offering,
    Provider,
    host_allowed,
    parse_allowed_hosts,
    parse_catalog,
    validate_model,
    validate_provider,
)

URL = "http://127.0.0.1:9/v1"


def _offering(**kw) -> Offering:
    base = {
        "id": "a",
        "provider": "openai",
        "upstream_model": "gpt",
        "input_price_per_mtok": Decimal("0.15"),
        "output_price_per_mtok": Decimal("0.60"),
    }
    return Offering(**{**base, **kw})


def test_valid_provider_and_model_pass_with_the_url_normalised():
    p = validate_provider(Provider("openai", URL + "/", "TOLLGATE_PROVIDER_OPENAI_KEY"))
    assert p.base_url == URL
    m = validate_model(Model("gpt-4o-mini", (_offering(),)), {"openai"})
    assert m.name == "gpt-4o-mini"


@pytest.mark.parametrize(
    ("provider", "field"),
    [
        (Provider("openai\n", URL), "provider.name"),
        (Provider("OpenAI", URL), "provider.name"),
        (Provider("openai", URL, "TOLLGATE_PROVIDER_OPENAI_KEY\n"), "provider.credential_env"),
        (Provider("openai", "ftp://host/v1"), "provider.base_url"),
    ],
)
def test_bad_provider_fields_are_named(provider, field):
    with pytest.raises(InvalidArgument) as err:
        validate_provider(provider)
    assert err.value.field == field


@pytest.mark.parametrize(
    ("model", "field"),
    [
        (Model("gpt\n", (_offering(),)), "model.name"),
        (Model("gpt", (_offering(id="a\n"),)), "model.offerings[0].id"),
        (Model("gpt", (_offering(credential_env="KEY\n"),)), "model.offerings[0].credential_env"),
        (Model("gpt", (_offering(provider="nobody"),)), "model.offerings[0].provider"),
        (Model("gpt", ()), "model.offerings"),
    ],
)
def test_bad_model_fields_are_named(model, field):
    with pytest.raises(InvalidArgument) as err:
        validate_model(model, {"openai"})
    assert err.value.field == field


@pytest.mark.parametrize(
    "name",
    ["GATEWAY_DATABASE_URL", "HOME", "OPENAI_API_KEY", "TOLLGATE_PROVIDER_", "tollgate_provider_x", "X\x00"],
)
def test_a_credential_variable_outside_the_provider_prefix_is_refused_naming_the_field(name):
    with pytest.raises(InvalidArgument) as err:
        validate_provider(Provider("openai", URL, name))
    assert err.value.field == "provider.credential_env"
    assert "TOLLGATE_PROVIDER_" in err.value.message
    with pytest.raises(InvalidArgument) as err:
        validate_model(Model("gpt", (_offering(credential_env=name),)), {"openai"})
    assert err.value.field == "model.offerings[0].credential_env"


@pytest.mark.parametrize(
    "url",
    [
        "http://user:pw@127.0.0.1:9/v1",
        "https://token@api.example.com/v1",
        "file:///etc/passwd",
        "gopher://127.0.0.1/",
        "http:///v1",
        "http://127.0.0.1:99999/v1",
        "http://127.0.0.1:9/v1#frag",
        "http://127.0.0.1:9/v1\x00",
    ],
)
def test_base_urls_with_credentials_other_schemes_or_junk_are_refused(url):
    with pytest.raises(InvalidArgument) as err:
        validate_provider(Provider("openai", url))
    assert err.value.field == "provider.base_url"


def test_the_allow_list_admits_matching_hosts_and_ports_only():
    allowed = parse_allowed_hosts(" api.openai.com , 127.0.0.1:9 ,*.example.com,[::1]")
    assert allowed == ("api.openai.com", "127.0.0.1:9", "*.example.com", "[::1]")
    assert host_allowed("API.OpenAI.com", 443, allowed)
    assert host_allowed("127.0.0.1", 9, allowed)
    assert not host_allowed("127.0.0.1", 10, allowed)
    assert host_allowed("eu.example.com", 8443, allowed)
    assert not host_allowed("example.com.evil.net", 443, allowed)
    assert not host_allowed("evilexample.com", 443, allowed)
    assert host_allowed("::1", 80, allowed)
    assert not host_allowed("169.254.169.254", 80, allowed)
    assert host_allowed("169.254.169.254", 80, ())  # no list: any host
    with pytest.raises(InvalidArgument) as err:
        validate_provider(Provider("openai", "http://169.254.169.254/latest"), allowed)
    assert err.value.field == "provider.base_url" and "allow-list" in err.value.message
    assert validate_provider(Provider("openai", "https://api.openai.com/v1/"), allowed).base_url == (
        "https://api.openai.com/v1"
    )


@pytest.mark.parametrize("pattern", ["http://x", "a b", "*", "host:port", "x/y"])
def test_a_bad_allow_list_pattern_is_refused(pattern):
    with pytest.raises(ValueError):
        parse_allowed_hosts(pattern)


def test_a_catalog_file_naming_a_variable_outside_the_prefix_names_the_entry():
    doc = {
        "providers": [{"name": "openai", "base_url": URL, "credential_env": "TOLLGATE_PROVIDER_OPENAI_KEY"}],
        "models": [
            {
                "name": "gpt",
                "offerings": [
                    {
                        "provider": "openai",
                        "upstream_model": "gpt",
                        "input_price_per_mtok": "1",
                        "output_price_per_mtok": "2",
                        "credential_env": "GATEWAY_DATABASE_URL",
                    }
                ],
            }
        ],
    }
    with pytest.raises(InvalidArgument) as err:
        parse_catalog(doc)
    assert err.value.field == "models[0].offerings[0].credential_env"
    doc["models"][0]["offerings"][0]["credential_env"] = ""
    doc["providers"][0]["credential_env"] = "PATH"
    with pytest.raises(InvalidArgument) as err:
        parse_catalog(doc)
    assert err.value.field == "providers[0].credential_env"
