"""`tollgate credentials ...`: the operator's side of the suite's credentials (common/security.py).

These work on the local credentials folder (the signing key and trust.json), not over gRPC: whoever holds
the signing key issues credentials, and services re-read trust.json, so none of this needs a restart.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import jwt
import typer

from common.auth import KINDS
from common.security import LocalCredentials, retire_old_keys, revoke_token, rotate_signing_key
from tollgatecli.base import JsonOpt, handled, session
from tollgatecli.client import CliError, Exit, find_credentials_dir

credentials = typer.Typer(
    help="Mint, rotate, retire and revoke the suite's credentials (in the local credentials folder).",
    no_args_is_help=True,
)


def _folder(ctx: typer.Context) -> LocalCredentials:
    state = ctx.find_root().obj
    folder = find_credentials_dir(state.client.credentials_dir)
    if folder is None or not (folder / "signing-key.pem").is_file():
        raise CliError(
            f"no signing key in {folder or '.tollgate/credentials'}: `make run` creates it, or pass "
            "--credentials-dir / TOLLGATE_CREDENTIALS_DIR",
            Exit.USAGE,
        )
    return LocalCredentials(Path(folder).resolve())


@credentials.command("mint")
@handled
def mint(
    ctx: typer.Context,
    kind: Annotated[str, typer.Argument(help=f"One of {', '.join(KINDS)}.")],
    name: Annotated[str, typer.Argument(help="The builder id, service name or operator name.")],
    days: Annotated[float, typer.Option("--days", help="Expire after this many days; 0 = never.")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Print a new credential (shown once; not stored)."""
    _, out = session(ctx, as_json)
    if kind not in KINDS:
        raise CliError(f"kind is one of {', '.join(KINDS)}, got {kind!r}", Exit.USAGE)
    if days < 0:
        raise CliError("--days must not be negative", Exit.USAGE)
    local = _folder(ctx)
    try:
        token = local.issuer().mint(kind, name, ttl_seconds=days * 86400 if days else None)  # type: ignore[arg-type]
    except ValueError as exc:
        raise CliError(str(exc), Exit.USAGE) from None
    token_id = jwt.decode(token, options={"verify_signature": False})["jti"]
    expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + days * 86400)) if days else None
    if out.as_json:
        out.json({"kind": kind, "name": name, "token_id": token_id, "expires": expires, "token": token})
        return
    typer.echo(token)
    out.note(
        f"{kind} {name}: token id {token_id} (revoke with `tollgate credentials revoke {token_id}`)"
        + (f", expires {expires}" if expires else ", never expires")
    )


@credentials.command("rotate")
@handled
def rotate(ctx: typer.Context) -> None:
    """Trust a new signing key beside the old one and re-issue the local tokens with it."""
    local = _folder(ctx)
    rotate_signing_key(local.directory)
    typer.echo(
        "a new signing key is trusted beside the old one; local tokens re-issued with it. "
        "Re-issue other credentials, then `tollgate credentials retire`."
    )


@credentials.command("retire")
@handled
def retire(ctx: typer.Context) -> None:
    """Trust only the newest signing key (credentials signed by older keys stop working)."""
    local = _folder(ctx)
    retire_old_keys(local.directory)
    typer.echo("only the newest signing key is trusted now")


@credentials.command("revoke")
@handled
def revoke(
    ctx: typer.Context,
    token_id: Annotated[str, typer.Argument(help="The credential's token id (its jti claim).")],
) -> None:
    """Refuse one credential from now on (services pick it up within a second)."""
    local = _folder(ctx)
    revoke_token(local.directory, token_id)
    typer.echo(f"credential {token_id} is refused from now on")
