"""Catalog names: whole-string rules, so a trailing newline or space can never slip into a name that
ends up in headers, tags and metering events."""

from __future__ import annotations

from decimal import Decimal

import pytest

from common.errors import InvalidArgument
from gateway.domain.catalog import Model, Offering, Provider, validate_model, validate_provider

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
    p = validate_provider(Provider("openai", URL + "/", "OPENAI_API_KEY"))
    assert p.base_url == URL
    m = validate_model(Model("gpt-4o-mini", (_offering(),)), {"openai"})
    assert m.name == "gpt-4o-mini"


@pytest.mark.parametrize(
    ("provider", "field"),
    [
        (Provider("openai\n", URL), "provider.name"),
        (Provider("OpenAI", URL), "provider.name"),
        (Provider("openai", URL, "OPENAI_API_KEY\n"), "provider.credential_env"),
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
