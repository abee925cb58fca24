"""python -m billing: serve until SIGTERM or SIGINT, then shut down gracefully."""

from __future__ import annotations

import asyncio

from billing import app
from billing.config import Settings
from common.logging import configure_logging
from common.server import serve_until_signal


async def _main(settings: Settings) -> None:
    running = await app.start(settings)
    await serve_until_signal(running, settings.shutdown_grace_seconds)


def main() -> None:
    settings = Settings.from_env()
    configure_logging("billing", settings.log_level)
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is pinned, but the service runs without it
        pass
    asyncio.run(_main(settings))


if __name__ == "__main__":
    main()
