"""Credentials for an operator, from the command line (the `tollgate` command will wrap the same calls).

    python -m common.credentials init DIR               signing key, trust file, operator and service tokens
    python -m common.credentials mint DIR builder acme  a credential for builder acme (printed once)
    python -m common.credentials mint DIR operator bob  another operator (or: service payouts)
    python -m common.credentials rotate DIR             trust a new signing key beside the old one and
                                                        re-issue the local tokens with it
    python -m common.credentials retire DIR             trust only the newest signing key
    python -m common.credentials revoke DIR TOKEN_ID    refuse one credential from now on

DIR holds the signing key (keep it private: it mints credentials), trust.json (public keys and revoked ids:
what every service is given) and <service>.token files (what each calling service is given). Services
re-read trust.json when it changes, so rotation and revocation need no restart.
"""

from __future__ import annotations

import argparse
import sys
import time

from common.auth import KINDS
from common.security import ensure_local_credentials, retire_old_keys, revoke_token, rotate_signing_key


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m common.credentials",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("init", "rotate", "retire"):
        sub.add_parser(name).add_argument("directory")
    mint = sub.add_parser("mint")
    mint.add_argument("directory")
    mint.add_argument("kind", choices=KINDS)
    mint.add_argument("name", help="the builder id, service name or operator name")
    mint.add_argument("--days", type=float, default=None, help="expire after this many days")
    revoke = sub.add_parser("revoke")
    revoke.add_argument("directory")
    revoke.add_argument("token_id", help="the jti claim of the credential")
    args = parser.parse_args(argv)

    if args.command == "init":
        local = ensure_local_credentials(args.directory)
        print(f"credentials in {local.directory}: give every service {local.trust_file.name}")
    elif args.command == "rotate":
        rotate_signing_key(args.directory)
        print("a new signing key is trusted beside the old one; local tokens re-issued with it")
    elif args.command == "retire":
        retire_old_keys(args.directory)
        print("only the newest signing key is trusted now")
    elif args.command == "revoke":
        revoke_token(args.directory, args.token_id)
        print(f"credential {args.token_id} is refused from now on")
    else:
        local = ensure_local_credentials(args.directory)
        ttl = None if args.days is None else args.days * 86400
        if ttl is not None and ttl <= 0:
            parser.error("--days must be positive")
        token = local.issuer().mint(args.kind, args.name, ttl_seconds=ttl)
        print(token)
        if ttl is not None:
            print(
                f"expires {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(time.time() + ttl))}",
                file=sys.stderr,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
