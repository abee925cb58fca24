"""The model catalog: providers, models and their offerings, and the rules that keep them valid."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlparse

from common.errors import InvalidArgument
from common.money import DecimalFormatError, parse_decimal

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_MODEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}$")
_ENV = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
MAX_OFFERINGS = 32
MILLION = Decimal(1_000_000)


@dataclass(frozen=True, slots=True)
class Provider:
    name: str
    base_url: str
    credential_env: str = ""


@dataclass(frozen=True, slots=True)
class Offering:
    """One way to serve a model. Prices are USD per million tokens, exact, at most 9 places."""

    id: str
    provider: str
    upstream_model: str
    input_price_per_mtok: Decimal
    output_price_per_mtok: Decimal
    base_url: str = ""
    credential_env: str = ""
    weight: int = 1
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class Model:
    name: str
    offerings: tuple[Offering, ...]


@dataclass(frozen=True, slots=True)
class Route:
    """A routable offering with everything resolved from its provider (what the hot path reads)."""

    model: str
    offering_id: str
    provider: str
    upstream_model: str
    url: str  # <base_url>/chat/completions
    credential_env: str
    input_price_per_mtok: Decimal
    output_price_per_mtok: Decimal
    weight: int
    position: int  # catalog order within the model

    @property
    def key(self) -> tuple[str, str]:
        return (self.model, self.offering_id)


def _check_url(url: str, field: str) -> str:
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise InvalidArgument(f"{field} must be an http or https URL", field=field)
    return url.rstrip("/")


def validate_provider(p: Provider) -> Provider:
    if not _NAME.fullmatch(p.name):
        raise InvalidArgument(
            "provider.name must be 1 to 64 characters of [a-z0-9_.-]", field="provider.name"
        )
    base_url = _check_url(p.base_url, "provider.base_url")
    if p.credential_env and not _ENV.fullmatch(p.credential_env):
        raise InvalidArgument(
            "provider.credential_env must be an environment variable name", field="provider.credential_env"
        )
    return Provider(name=p.name, base_url=base_url, credential_env=p.credential_env)


def parse_price(text: str, field: str) -> Decimal:
    if text is None or str(text).strip() == "":
        raise InvalidArgument(f"{field} is required", field=field)
    try:
        return parse_decimal(str(text), allow_negative=False, max_places=9)
    except DecimalFormatError as exc:
        raise InvalidArgument(f"{field} {exc}", field=field) from None


def validate_model(m: Model, known_providers: set[str]) -> Model:
    if not _MODEL.fullmatch(m.name):
        raise InvalidArgument(
            "model.name must be 1 to 128 characters of [A-Za-z0-9_.:/-]", field="model.name"
        )
    if not m.offerings:
        raise InvalidArgument("model.offerings must have at least one offering", field="model.offerings")
    if len(m.offerings) > MAX_OFFERINGS:
        raise InvalidArgument(f"model.offerings has more than {MAX_OFFERINGS}", field="model.offerings")
    seen: set[str] = set()
    out = []
    for i, o in enumerate(m.offerings):
        f = f"model.offerings[{i}]"
        oid = o.id or o.provider
        if not _NAME.fullmatch(oid):
            raise InvalidArgument(f"{f}.id must be 1 to 64 characters of [a-z0-9_.-]", field=f"{f}.id")
        if oid in seen:
            raise InvalidArgument(f"{f}.id {oid!r} is used twice in this model", field=f"{f}.id")
        seen.add(oid)
        if o.provider not in known_providers:
            raise InvalidArgument(
                f"{f}.provider {o.provider!r} is not a known provider", field=f"{f}.provider"
            )
        if not o.upstream_model or len(o.upstream_model) > 256:
            raise InvalidArgument(
                f"{f}.upstream_model is required (at most 256 characters)", field=f"{f}.upstream_model"
            )
        base_url = _check_url(o.base_url, f"{f}.base_url") if o.base_url else ""
        if o.credential_env and not _ENV.fullmatch(o.credential_env):
            raise InvalidArgument(
                f"{f}.credential_env must be an environment variable name", field=f"{f}.credential_env"
            )
        for name, price in (
            ("input_price_per_mtok", o.input_price_per_mtok),
            ("output_price_per_mtok", o.output_price_per_mtok),
        ):
            if price < 0 or -price.as_tuple().exponent > 9:  # type: ignore[operator]
                raise InvalidArgument(
                    f"{f}.{name} must be at least 0 with at most 9 decimal places", field=f"{f}.{name}"
                )
        if not 0 <= o.weight <= 1000:
            raise InvalidArgument(f"{f}.weight must be between 0 and 1000", field=f"{f}.weight")
        out.append(
            Offering(
                id=oid,
                provider=o.provider,
                upstream_model=o.upstream_model,
                input_price_per_mtok=o.input_price_per_mtok,
                output_price_per_mtok=o.output_price_per_mtok,
                base_url=base_url,
                credential_env=o.credential_env,
                weight=o.weight or 1,
                enabled=o.enabled,
            )
        )
    return Model(name=m.name, offerings=tuple(out))


def resolve_routes(model: Model, providers: dict[str, Provider]) -> tuple[Route, ...]:
    """The model's enabled offerings with provider defaults filled in, in catalog order."""
    routes = []
    for position, o in enumerate(model.offerings):
        p = providers.get(o.provider)
        if p is None or not o.enabled:
            continue
        base = o.base_url or p.base_url
        routes.append(
            Route(
                model=model.name,
                offering_id=o.id,
                provider=o.provider,
                upstream_model=o.upstream_model,
                url=f"{base}/chat/completions",
                credential_env=o.credential_env or p.credential_env,
                input_price_per_mtok=o.input_price_per_mtok,
                output_price_per_mtok=o.output_price_per_mtok,
                weight=o.weight,
                position=position,
            )
        )
    return tuple(routes)


def parse_catalog(doc: Any) -> tuple[list[Provider], list[Model]]:
    """Read the catalog YAML document (already parsed): {providers: [...], models: [...]}."""
    if not isinstance(doc, dict):
        raise InvalidArgument("catalog must be a mapping with providers and models", field="catalog")
    providers = []
    for i, p in enumerate(doc.get("providers") or []):
        if not isinstance(p, dict):
            raise InvalidArgument(f"providers[{i}] must be a mapping", field=f"providers[{i}]")
        providers.append(
            validate_provider(
                Provider(
                    name=str(p.get("name", "")),
                    base_url=str(p.get("base_url", "")),
                    credential_env=str(p.get("credential_env") or ""),
                )
            )
        )
    models = []
    for i, m in enumerate(doc.get("models") or []):
        if not isinstance(m, dict):
            raise InvalidArgument(f"models[{i}] must be a mapping", field=f"models[{i}]")
        offerings = []
        for j, o in enumerate(m.get("offerings") or []):
            f = f"models[{i}].offerings[{j}]"
            if not isinstance(o, dict):
                raise InvalidArgument(f"{f} must be a mapping", field=f)
            offerings.append(
                Offering(
                    id=str(o.get("id") or ""),
                    provider=str(o.get("provider", "")),
                    upstream_model=str(o.get("upstream_model", "")),
                    input_price_per_mtok=parse_price(
                        o.get("input_price_per_mtok"), f"{f}.input_price_per_mtok"
                    ),
                    output_price_per_mtok=parse_price(
                        o.get("output_price_per_mtok"), f"{f}.output_price_per_mtok"
                    ),
                    base_url=str(o.get("base_url") or ""),
                    credential_env=str(o.get("credential_env") or ""),
                    weight=int(o.get("weight") or 1),
                    enabled=bool(o.get("enabled", True)),
                )
            )
        models.append(Model(name=str(m.get("name", "")), offerings=tuple(offerings)))
    # Models may also name providers already in the database; the service re-validates against them.
    return providers, models
