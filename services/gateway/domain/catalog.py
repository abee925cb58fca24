"""The model catalog: providers, models and their offerings, and the rules that keep them valid.

The catalog is operator input, but it decides where the gateway sends requests and which of its
environment variables it sends as a bearer token, so it is held to rules that keep it from being
turned against the gateway itself:

1. A credential is named, never given, and only a variable named TOLLGATE_PROVIDER_<NAME> can be
   named (the database URL, signing keys and anything else in the environment cannot).
2. A base URL is http or https, has a host, carries no user name or password and no fragment.
3. With an upstream allow-list (GATEWAY_UPSTREAM_ALLOWED_HOSTS), the URL's host must match one of its
   patterns: `host` (any port), `host:port`, or `*.domain` (any subdomain, any port).
"""

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
CREDENTIAL_ENV_PREFIX = "TOLLGATE_PROVIDER_"
_ENV = re.compile(r"TOLLGATE_PROVIDER_[A-Z0-9_]{1,110}")
_HOST_PATTERN = re.compile(
    r"(\*\.)?[a-z0-9]([a-z0-9.-]{0,252})?(:[0-9]{1,5})?"  # name or IPv4, optional port
    r"|\[[0-9a-f:.]{2,45}\](:[0-9]{1,5})?"  # [IPv6], optional port
)
MAX_URL_LENGTH = 2048
MAX_OFFERINGS = 32
MILLION = Decimal(1_000_000)
MAX_PRICE = Decimal(10) ** 29  # NUMERIC(38, 9): 29 digits before the point


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


def parse_allowed_hosts(text: str) -> tuple[str, ...]:
    """GATEWAY_UPSTREAM_ALLOWED_HOSTS: comma-separated patterns; raises ValueError naming a bad one."""
    out = []
    for raw in text.split(","):
        pattern = raw.strip().lower()
        if not pattern:
            continue
        if not _HOST_PATTERN.fullmatch(pattern):
            raise ValueError(f"{raw.strip()[:100]!r} is not a host, host:port or *.domain pattern")
        out.append(pattern)
    return tuple(out)


def _split_pattern(pattern: str) -> tuple[str, int | None]:
    if pattern.startswith("["):  # an IPv6 literal, port optional after the bracket
        name, _, rest = pattern.partition("]")
        return name + "]", int(rest[1:]) if rest else None
    name, sep, port = pattern.partition(":")
    return name, int(port) if sep else None


def host_allowed(host: str, port: int, allowed: tuple[str, ...]) -> bool:
    """Whether host:port matches one of the allow-list patterns; an empty list allows every host."""
    if not allowed:
        return True
    host = host.lower()
    shown = f"[{host}]" if ":" in host else host  # urlparse gives an IPv6 literal without brackets
    for pattern in allowed:
        name, want_port = _split_pattern(pattern)
        if want_port is not None and want_port != port:
            continue
        if name.startswith("*.") and shown.endswith(name[1:]) and len(shown) > len(name) - 1:
            return True
        if shown == name:
            return True
    return False


def check_url(url: str, field: str, allowed_hosts: tuple[str, ...] = ()) -> str:
    """The rules 2 and 3 above; returns the URL without a trailing slash."""
    if len(url) > MAX_URL_LENGTH or "\x00" in url or not url.isprintable():
        raise InvalidArgument(
            f"{field} must be a printable URL of at most {MAX_URL_LENGTH} characters", field=field
        )
    try:
        parsed = urlparse(url)
        port = parsed.port
    except ValueError:
        raise InvalidArgument(f"{field} is not a valid URL", field=field) from None
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise InvalidArgument(f"{field} must be an http or https URL with a host", field=field)
    if parsed.username is not None or parsed.password is not None:
        raise InvalidArgument(
            f"{field} must not carry a user name or password; name the credential in credential_env",
            field=field,
        )
    if parsed.fragment:
        raise InvalidArgument(f"{field} must not have a fragment", field=field)
    effective_port = port or (443 if parsed.scheme == "https" else 80)
    if not host_allowed(parsed.hostname, effective_port, allowed_hosts):
        raise InvalidArgument(
            f"{field} host {parsed.hostname}:{effective_port} is not in the gateway's upstream allow-list "
            "(GATEWAY_UPSTREAM_ALLOWED_HOSTS)",
            field=field,
        )
    return url.rstrip("/")


def check_credential_env(name: str, field: str) -> None:
    """Rule 1: only TOLLGATE_PROVIDER_* variables (upper case, digits, underscores) can be named."""
    if name and not _ENV.fullmatch(name):
        raise InvalidArgument(
            f"{field} must name an environment variable {CREDENTIAL_ENV_PREFIX}<NAME> "
            "(upper-case letters, digits and underscores, at most 128 characters)",
            field=field,
        )


def validate_provider(p: Provider, allowed_hosts: tuple[str, ...] = (), prefix: str = "provider") -> Provider:
    if not _NAME.fullmatch(p.name):
        raise InvalidArgument(
            f"{prefix}.name must be 1 to 64 characters of [a-z0-9_.-]", field=f"{prefix}.name"
        )
    base_url = check_url(p.base_url, f"{prefix}.base_url", allowed_hosts)
    check_credential_env(p.credential_env, f"{prefix}.credential_env")
    return Provider(name=p.name, base_url=base_url, credential_env=p.credential_env)


def parse_price(text: str, field: str) -> Decimal:
    if text is None or str(text).strip() == "":
        raise InvalidArgument(f"{field} is required", field=field)
    if len(str(text)) > 64:
        raise InvalidArgument(f"{field} is longer than 64 characters", field=field)
    try:
        return parse_decimal(str(text), allow_negative=False, max_places=9)
    except DecimalFormatError as exc:
        raise InvalidArgument(f"{field} {exc}", field=field) from None


def validate_model(
    m: Model, known_providers: set[str], allowed_hosts: tuple[str, ...] = (), prefix: str = "model"
) -> Model:
    if not _MODEL.fullmatch(m.name):
        raise InvalidArgument(
            f"{prefix}.name must be 1 to 128 characters of [A-Za-z0-9_.:/-]", field=f"{prefix}.name"
        )
    if not m.offerings:
        raise InvalidArgument(
            f"{prefix}.offerings must have at least one offering", field=f"{prefix}.offerings"
        )
    if len(m.offerings) > MAX_OFFERINGS:
        raise InvalidArgument(
            f"{prefix}.offerings has more than {MAX_OFFERINGS}", field=f"{prefix}.offerings"
        )
    seen: set[str] = set()
    out = []
    for i, o in enumerate(m.offerings):
        f = f"{prefix}.offerings[{i}]"
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
        if not o.upstream_model or len(o.upstream_model) > 256 or not o.upstream_model.isprintable():
            raise InvalidArgument(
                f"{f}.upstream_model is required (at most 256 printable characters)",
                field=f"{f}.upstream_model",
            )
        base_url = check_url(o.base_url, f"{f}.base_url", allowed_hosts) if o.base_url else ""
        check_credential_env(o.credential_env, f"{f}.credential_env")
        for name, price in (
            ("input_price_per_mtok", o.input_price_per_mtok),
            ("output_price_per_mtok", o.output_price_per_mtok),
        ):
            if (
                not price.is_finite() or price < 0 or price >= MAX_PRICE or -price.as_tuple().exponent > 9  # type: ignore[operator]
            ):
                raise InvalidArgument(
                    f"{f}.{name} must be at least 0 and below 10^29 with at most 9 decimal places",
                    field=f"{f}.{name}",
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


def parse_catalog(doc: Any, allowed_hosts: tuple[str, ...] = ()) -> tuple[list[Provider], list[Model]]:
    """Read the catalog YAML document (already parsed): {providers: [...], models: [...]}; every rule
    is checked here, so a bad file stops start-up with the field named."""
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
                ),
                allowed_hosts,
                prefix=f"providers[{i}]",
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
            try:
                weight = int(o.get("weight") or 1)
            except (TypeError, ValueError):
                raise InvalidArgument(f"{f}.weight must be a whole number", field=f"{f}.weight") from None
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
                    weight=weight,
                    enabled=bool(o.get("enabled", True)),
                )
            )
        model = Model(name=str(m.get("name", "")), offerings=tuple(offerings))
        # Models may also name providers already in the database: the provider check waits for the
        # service (validate_model again, with the known names), every other rule is checked now.
        names = {o.provider for o in model.offerings} | {p.name for p in providers}
        validate_model(model, names, allowed_hosts, prefix=f"models[{i}]")
        models.append(model)
    return providers, models
