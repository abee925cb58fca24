"""python -m metering: serve until SIGTERM or SIGINT, then shut down gracefully."""

from __future__ import annotations

import asyncio
import gc

from common.logging import configure_logging
from common.server import serve_until_signal
from metering import app
from metering.config import Settings


async def _main(settings: Settings) -> None:
    running = await app.start(settings)
    # IngestEvents allocates a few container objects per event (10,000 per batch at most), none of
    # them cyclic; with the default gen0 threshold of 700 the cyclic collector would run a dozen
    # times per batch and rescan everything imported at start-up. Freeze what start-up built and
    # collect young objects less often: reference counting frees the batch anyway.
    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 50, 50)
    await serve_until_signal(running, settings.shutdown_grace_seconds)


def main() -> None:
    settings = Settings.from_env()
    configure_logging("metering", settings.log_level)
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is pinned, but the service runs without it
        pass
    asyncio.run(_main(settings))


if __name__ == "__main__":
    main()
