"""python -m fakeprovider: run one stand-in provider until SIGTERM/SIGINT.

Every flag has a FAKEPROVIDER_<FLAG> environment default (e.g. FAKEPROVIDER_LATENCY_MS=20).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys

import structlog
import uvloop

from common.logging import configure_logging


def _env(name: str, default: str) -> str:
    return os.environ.get(f"FAKEPROVIDER_{name.upper()}") or default


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m fakeprovider", description=__doc__)
    p.add_argument("--host", default=_env("host", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(_env("port", "8091")))
    p.add_argument(
        "--name", default=_env("name", "provider_a"), help="provider name shown in answers and stats"
    )
    p.add_argument("--api-key", default=_env("api_key", ""), help="require Authorization: Bearer <key>")
    p.add_argument("--models", default=_env("models", "fake-chat"), help="comma-separated model ids")
    p.add_argument(
        "--strict-models",
        action="store_true",
        default=_env("strict_models", "") == "true",
        help="answer 404 for models not in --models",
    )
    p.add_argument("--latency-ms", type=float, default=float(_env("latency_ms", "0")))
    p.add_argument("--ttft-ms", type=float, default=float(_env("ttft_ms", "0")))
    p.add_argument("--inter-token-ms", type=float, default=float(_env("inter_token_ms", "0")))
    p.add_argument("--completion-tokens", type=int, default=int(_env("completion_tokens", "8")))
    p.add_argument("--error-rate", type=float, default=float(_env("error_rate", "0")))
    p.add_argument(
        "--error-kinds",
        default=_env("error_kinds", "500"),
        help="comma-separated: 400,401,404,429,500,502,503,timeout,reset,midstream",
    )
    p.add_argument("--seed", type=int, default=int(_env("seed", "0")))
    p.add_argument("--omit-usage", action="store_true", default=_env("omit_usage", "") == "true")
    p.add_argument("--log-level", default=_env("log_level", "INFO"))
    return p.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    from fakeprovider.app import start

    provider = await start(
        args.host,
        args.port,
        name=args.name,
        api_key=args.api_key,
        models=args.models,
        strict_models=args.strict_models,
        latency_ms=args.latency_ms,
        ttft_ms=args.ttft_ms,
        inter_token_ms=args.inter_token_ms,
        completion_tokens=args.completion_tokens,
        error_rate=args.error_rate,
        error_kinds=args.error_kinds,
        seed=args.seed,
        omit_usage=args.omit_usage,
    )
    log = structlog.get_logger("fakeprovider")
    log.info("fakeprovider.started", name=provider.name, url=provider.url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await provider.stop()
    log.info("fakeprovider.stopped", name=provider.name)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    configure_logging("fakeprovider", args.log_level)
    uvloop.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
