"""python -m gateway: serve until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import signal

import uvloop

from common.logging import configure_logging
from gateway.app import start
from gateway.config import Settings


async def _main(settings: Settings) -> None:
    gw = await start(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await gw.stop(settings.shutdown_grace_seconds)


def main() -> None:
    settings = Settings.from_env()
    configure_logging("gateway", settings.log_level)
    uvloop.run(_main(settings))


if __name__ == "__main__":
    main()
