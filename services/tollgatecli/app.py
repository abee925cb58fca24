"""The `tollgate` command tree: global options, `status`, and the groups of each context."""

from __future__ import annotations

from importlib import metadata
from typing import Annotated

import typer

from tollgatecli import billing, credentials, explain, gateway, metering, payouts, refunds
from tollgatecli.base import JsonOpt, State, handled, session
from tollgatecli.client import (
    DEFAULT_ADDRESSES,
    DEFAULT_GATEWAY_URL,
    DEFAULT_TIMEOUT_SECONDS,
    EXIT_CODES_HELP,
    SERVICES,
    Client,
    CliError,
    Exit,
)

HELP = (
    "Operate a tollgate suite through its gRPC APIs.\n\n"
    "By default it talks to `make run` on this machine with the operator's credential from "
    ".tollgate/credentials/operator.token (the folder `make run` creates). Readable tables, or --json for "
    "scripts.\n\n"
    f"{EXIT_CODES_HELP}"
)

app = typer.Typer(
    name="tollgate",
    help=HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(gateway.keys, name="keys")
app.add_typer(gateway.catalog, name="catalog")
app.add_typer(billing.customers, name="customers")
app.add_typer(billing.plans, name="plans")
app.add_typer(metering.usage, name="usage")
app.add_typer(billing.invoices, name="invoices")  # with explain.py's `invoices explain`
assert explain.invoices_explain
app.command("earnings")(handled(billing.earnings))
app.add_typer(refunds.refunds, name="refunds")
app.add_typer(payouts.payouts, name="payouts")
app.command("reconcile")(handled(payouts.reconcile))
app.add_typer(credentials.credentials, name="credentials")


def version() -> str:
    try:
        return metadata.version("tollgate")
    except metadata.PackageNotFoundError:
        return "unknown (not installed: run `make setup`)"


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"tollgate {version()}")
        raise typer.Exit()


def _address_option(service: str) -> object:
    return typer.Option(
        f"--{service}-address",
        envvar=f"TOLLGATE_{service.upper()}_ADDRESS",
        help=f"{service}'s gRPC address (host:port).",
    )


@app.callback()
def root(
    ctx: typer.Context,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON document instead of tables.")
    ] = False,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar="TOLLGATE_TOKEN",
            show_default=False,
            help="The credential to call with (default: the operator token of --credentials-dir).",
        ),
    ] = None,
    credentials_dir: Annotated[
        str | None,
        typer.Option(
            "--credentials-dir",
            envvar="TOLLGATE_CREDENTIALS_DIR",
            show_default=False,
            help="The local credentials folder (default: .tollgate/credentials, searched upwards).",
        ),
    ] = None,
    metering_address: Annotated[str, _address_option("metering")] = DEFAULT_ADDRESSES["metering"],
    gateway_address: Annotated[str, _address_option("gateway")] = DEFAULT_ADDRESSES["gateway"],
    billing_address: Annotated[str, _address_option("billing")] = DEFAULT_ADDRESSES["billing"],
    payouts_address: Annotated[str, _address_option("payouts")] = DEFAULT_ADDRESSES["payouts"],
    gateway_url: Annotated[
        str,
        typer.Option(
            "--gateway-url",
            envvar="TOLLGATE_GATEWAY_URL",
            help="The gateway's OpenAI-compatible base URL (shown with new keys).",
        ),
    ] = DEFAULT_GATEWAY_URL,
    timeout: Annotated[
        float, typer.Option("--timeout", envvar="TOLLGATE_TIMEOUT", help="Deadline of each call, in seconds.")
    ] = DEFAULT_TIMEOUT_SECONDS,
    tls_ca_file: Annotated[
        str | None,
        typer.Option(
            "--tls-ca-file",
            envvar="TOLLGATE_TLS_CA_FILE",
            show_default=False,
            help="Speak TLS, verifying the services against this CA.",
        ),
    ] = None,
    show_version: Annotated[
        bool, typer.Option("--version", callback=_show_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    client = Client(
        addresses={
            "metering": metering_address,
            "gateway": gateway_address,
            "billing": billing_address,
            "payouts": payouts_address,
        },
        token=token,
        credentials_dir=credentials_dir,
        timeout=timeout,
        tls_ca_file=tls_ca_file,
        gateway_url=gateway_url,
    )
    ctx.obj = State(client=client, as_json=as_json)
    ctx.call_on_close(client.close)


@app.command("status")
@handled
def status(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Every service's health (the gRPC health check) and address; exits 5 when one is not serving."""
    client, out = session(ctx, as_json)
    rows = [(name, client.addresses[name], client.health(name)) for name in SERVICES]
    if out.as_json:
        out.json(
            {
                "version": version(),
                "services": [{"service": n, "address": a, "health": h} for n, a, h in rows],
            }
        )
    else:
        out.table(f"tollgate {version()}", ["service", "address", "health"], rows)
    down = [n for n, _, h in rows if h != "SERVING"]
    if down:
        raise CliError(f"not serving: {', '.join(down)}", Exit.UNAVAILABLE)


def main() -> None:
    app(prog_name="tollgate")
