"""python -m payouts: serve until SIGTERM or SIGINT, then shut down gracefully."""

from __future__ import annotations

from common.server import run, serve_until_signal
from common.settings import parse_service_args
from payouts import app
from payouts.config import Settings


def main() -> None:
    parse_service_args("payouts", __doc__, Settings)
    settings = Settings.from_env()

    async def serve() -> None:
        running = await app.start(settings)
        await serve_until_signal(running, settings.shutdown_grace_seconds)

    run("payouts", settings.log_level, serve)


if __name__ == "__main__":
    main()
