"""python -m metering: serve until SIGTERM or SIGINT, then shut down gracefully."""

from __future__ import annotations

from common.server import quiet_gc, run, serve_until_signal
from common.settings import parse_service_args
from metering import app
from metering.config import Settings


def main() -> None:
    parse_service_args("metering", __doc__, Settings)
    settings = Settings.from_env()

    async def serve() -> None:
        running = await app.start(settings)
        # IngestEvents allocates a few container objects per event (10,000 per batch at most), none
        # of them cyclic: collect young objects rarely, reference counting frees the batch anyway.
        quiet_gc(100_000)
        await serve_until_signal(running, settings.shutdown_grace_seconds)

    run("metering", settings.log_level, serve)


if __name__ == "__main__":
    main()
