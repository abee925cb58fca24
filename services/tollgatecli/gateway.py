"""`tollgate keys ...` and `tollgate catalog ...`: the gateway's admin API."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from tollgate.gateway.v1 import admin_pb2
from tollgate.type.v1 import decimal_pb2
from tollgatecli.base import (
    BuilderOpt,
    JsonOpt,
    RequestIdOpt,
    enum_name,
    handled,
    key_values,
    read_text,
    request_id,
    session,
    when,
)
from tollgatecli.client import CliError, Exit
from tollgatecli.output import to_data

keys = typer.Typer(
    help="API keys of the OpenAI-compatible door: create (secret shown once), list, revoke.",
    no_args_is_help=True,
)
catalog = typer.Typer(
    help="The gateway's model catalog: show it, or apply a catalog YAML file.", no_args_is_help=True
)


def _key_row(key: admin_pb2.ApiKey) -> list[Any]:
    return [
        key.id,
        key.builder_id,
        key.app_id,
        key.customer_id,
        key.display_name,
        f"{key.secret_prefix}...",
        enum_name(admin_pb2.ApiKeyState.Name(key.state), "API_KEY_STATE_"),
        when(key.create_time, key.HasField("create_time")),
    ]


KEY_COLUMNS = ["id", "builder", "app", "customer", "name", "secret", "state", "created"]


@keys.command("create")
@handled
def keys_create(
    ctx: typer.Context,
    app: Annotated[str, typer.Option("--app", help="The builder's app the key is for.")],
    customer: Annotated[
        str, typer.Option("--customer", help="The paying customer billed for the key's usage.")
    ],
    name: Annotated[str, typer.Option("--name", help="A label to recognise the key.")] = "",
    builder: BuilderOpt = "",
    tag: Annotated[
        list[str] | None,
        typer.Option("--tag", help="A default tag KEY=VALUE on every usage event (repeatable)."),
    ] = None,
    requests_per_minute: Annotated[
        int, typer.Option("--rpm", help="Requests per minute; 0 = unlimited.")
    ] = 0,
    tokens_per_minute: Annotated[int, typer.Option("--tpm", help="Tokens per minute; 0 = unlimited.")] = 0,
    rid: RequestIdOpt = "",
    as_json: JsonOpt = False,
) -> None:
    """Issue an API key. Its secret is printed this once and never stored: keep it now."""
    client, out = session(ctx, as_json)
    reply = client.call(
        "gateway",
        "CreateApiKey",
        admin_pb2.CreateApiKeyRequest(
            request_id=request_id(rid),
            builder_id=builder,
            app_id=app,
            customer_id=customer,
            display_name=name,
            default_tags=key_values(tag, "--tag"),
            rate_limits=admin_pb2.RateLimits(
                requests_per_minute=requests_per_minute, tokens_per_minute=tokens_per_minute
            ),
        ),
    )
    if out.as_json:
        out.json({"api_key": to_data(reply.api_key), "secret": reply.secret})
        return
    out.table("API key", KEY_COLUMNS, [_key_row(reply.api_key)])
    if not reply.secret:
        out.note(
            "No secret: this request id was used before and the secret is shown only once. "
            "Revoke the key and create another."
        )
        return
    out.note(f"secret (shown once, store it now): {reply.secret}")
    out.note(
        f'use it with any OpenAI client: OpenAI(base_url="{client.gateway_url}", api_key="<the secret>")'
    )


@keys.command("list")
@handled
def keys_list(
    ctx: typer.Context,
    builder: BuilderOpt = "",
    customer: Annotated[str, typer.Option("--customer", help="Only this customer's keys.")] = "",
    include_revoked: Annotated[bool, typer.Option("--all", help="Revoked keys too.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """List API keys, newest first (never their secrets)."""
    client, out = session(ctx, as_json)
    items = client.pages(
        "gateway",
        "ListApiKeys",
        admin_pb2.ListApiKeysRequest(
            builder_id=builder, customer_id=customer, include_revoked=include_revoked, page_size=1000
        ),
        "api_keys",
    )
    if out.as_json:
        out.json({"api_keys": [to_data(k) for k in items]})
        return
    out.table("API keys", KEY_COLUMNS, [_key_row(k) for k in items])


@keys.command("revoke")
@handled
def keys_revoke(
    ctx: typer.Context,
    key_id: Annotated[str, typer.Argument(help="The key's id (key_...).")],
    builder: BuilderOpt = "",
    rid: RequestIdOpt = "",
    as_json: JsonOpt = False,
) -> None:
    """Revoke an API key: it stops working at once."""
    client, out = session(ctx, as_json)
    reply = client.call(
        "gateway",
        "RevokeApiKey",
        admin_pb2.RevokeApiKeyRequest(request_id=request_id(rid), api_key_id=key_id, builder_id=builder),
    )
    if out.as_json:
        out.json({"api_key": to_data(reply.api_key)})
        return
    out.table("Revoked", KEY_COLUMNS, [_key_row(reply.api_key)])


# ---- catalog ----------------------------------------------------------------------------------------


@catalog.command("show")
@handled
def catalog_show(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Every model with its offerings and prices (USD per million tokens)."""
    client, out = session(ctx, as_json)
    models = client.pages(
        "gateway", "ListModels", admin_pb2.GatewayAdminServiceListModelsRequest(page_size=1000), "models"
    )
    if out.as_json:
        out.json({"models": [to_data(m) for m in models]})
        return
    rows = []
    for m in models:
        for o in m.offerings:
            rows.append(
                [
                    m.name,
                    o.id,
                    o.provider,
                    o.upstream_model,
                    o.input_price_per_mtok.value,
                    o.output_price_per_mtok.value,
                    o.weight,
                    "yes" if o.enabled else "no",
                ]
            )
    out.table(
        "Catalog",
        [
            "model",
            "offering",
            "provider",
            "upstream model",
            "input $/Mtok",
            "output $/Mtok",
            "weight",
            "enabled",
        ],
        rows,
    )


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand(text: str) -> str:
    """${NAME} / ${NAME:-default}, as the gateway expands its catalog file."""

    def sub(m: re.Match[str]) -> str:
        value = os.environ.get(m.group(1))
        if value:
            return value
        if m.group(2) is not None:
            return m.group(2)
        raise CliError(f"the catalog file uses ${{{m.group(1)}}}, which is not set", Exit.USAGE)

    return _VAR.sub(sub, text)


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise CliError(f"{where} must be a mapping", Exit.USAGE)
    return value


def parse_catalog(text: str) -> tuple[list[admin_pb2.Provider], list[admin_pb2.Model]]:
    """A catalog YAML (the shape of deploy/catalog.yaml) as the admin API's messages. Only the shape is
    checked here; the gateway validates names, URLs and prices and names the offending field."""
    try:
        doc = yaml.safe_load(_expand(text))
    except yaml.YAMLError as exc:
        raise CliError(f"the catalog file is not valid YAML: {exc}", Exit.USAGE) from None
    doc = _mapping(doc, "the catalog")
    providers = []
    for i, p in enumerate(doc.get("providers") or []):
        p = _mapping(p, f"providers[{i}]")
        providers.append(
            admin_pb2.Provider(
                name=str(p.get("name", "")),
                base_url=str(p.get("base_url", "")),
                credential_env=str(p.get("credential_env") or ""),
            )
        )
    models = []
    for i, m in enumerate(doc.get("models") or []):
        m = _mapping(m, f"models[{i}]")
        offerings = []
        for j, o in enumerate(m.get("offerings") or []):
            o = _mapping(o, f"models[{i}].offerings[{j}]")
            try:
                weight = int(o.get("weight") or 0)
            except (TypeError, ValueError):
                raise CliError(
                    f"models[{i}].offerings[{j}].weight must be a whole number", Exit.USAGE
                ) from None
            offerings.append(
                admin_pb2.Offering(
                    id=str(o.get("id") or ""),
                    provider=str(o.get("provider", "")),
                    upstream_model=str(o.get("upstream_model", "")),
                    base_url=str(o.get("base_url") or ""),
                    credential_env=str(o.get("credential_env") or ""),
                    input_price_per_mtok=decimal_pb2.Decimal(value=_price(o.get("input_price_per_mtok"))),
                    output_price_per_mtok=decimal_pb2.Decimal(value=_price(o.get("output_price_per_mtok"))),
                    weight=weight,
                    enabled=bool(o.get("enabled", True)),
                )
            )
        models.append(admin_pb2.Model(name=str(m.get("name", "")), offerings=offerings))
    return providers, models


def _price(value: Any) -> str:
    # Prices are quoted in the file ("0.15") so YAML never reads them as floats; an unquoted number is
    # taken as written (str of a YAML int is exact; of a float, its shortest repr).
    return "" if value is None else str(value)


@catalog.command("apply")
@handled
def catalog_apply(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="A catalog YAML, as deploy/catalog.yaml.")],
    as_json: JsonOpt = False,
) -> None:
    """Upsert every provider, then every model (its offerings replaced as a whole), from a catalog file."""
    client, out = session(ctx, as_json)
    text = read_text(file)
    providers, models = parse_catalog(text)
    done_providers, done_models = [], []
    for p in providers:
        reply = client.call(
            "gateway", "UpsertProvider", admin_pb2.UpsertProviderRequest(request_id=request_id(), provider=p)
        )
        done_providers.append(reply.provider)
    for m in models:
        try:
            reply = client.call(
                "gateway", "UpsertModel", admin_pb2.UpsertModelRequest(request_id=request_id(), model=m)
            )
        except CliError as exc:
            raise CliError(f"model {m.name!r}: {exc.message}", exc.code) from None
        done_models.append(reply.model)
    if out.as_json:
        out.json(
            {"providers": [to_data(p) for p in done_providers], "models": [to_data(m) for m in done_models]}
        )
        return
    out.table(
        "Providers applied",
        ["name", "base url", "credential env"],
        [[p.name, p.base_url, p.credential_env] for p in done_providers],
    )
    out.table(
        "Models applied",
        ["model", "offerings"],
        [[m.name, ", ".join(o.id for o in m.offerings)] for m in done_models],
    )
