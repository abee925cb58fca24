"""python -m billing: serve until SIGTERM or SIGINT, then shut down gracefully."""

from __future__ import annotations

from billing import app
from billing.config import Settings
from common.server import run, serve_until_signal


def main() -> None:
    settings = Settings.from_env()

    async def serve() -> None:
        running = await app.start(settings)
        await serve_until_signal(running, settings.shutdown_grace_seconds)

    run("billing", settings.log_level, serve)


if __name__ == "__main__":
    main()
