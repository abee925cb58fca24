"""python -m gateway: serve until SIGTERM/SIGINT.

With GATEWAY_HTTP_WORKERS=N > 1 this process starts N-1 more processes that serve only the HTTP front
door on the same port (SO_REUSEPORT; the kernel spreads connections over them). They share the database
(outbox, keys, catalog; admin changes reach them through LISTEN/NOTIFY) and exit when this process does.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys

import structlog

from common.server import quiet_gc, run
from common.settings import parse_service_args
from gateway.app import start
from gateway.config import Settings

log = structlog.get_logger("gateway.main")


async def _watch_parent(parent: int, stop: asyncio.Event) -> None:
    """An HTTP worker exits when the process that started it is gone (even after a SIGKILL)."""
    while os.getppid() == parent:  # noqa: ASYNC110 (no event exists for "my parent died")
        await asyncio.sleep(0.5)
    stop.set()


async def _spawn_workers(settings: Settings, http_port: int) -> list[asyncio.subprocess.Process]:
    host = settings.http_address.rpartition(":")[0] or "127.0.0.1"
    env = {
        **os.environ,
        "GATEWAY_HTTP_WORKER": "true",
        "GATEWAY_HTTP_WORKERS": "1",
        "GATEWAY_HTTP_ADDRESS": f"{host}:{http_port}",
        "GATEWAY_GRPC_ADDRESS": "127.0.0.1:0",
        "GATEWAY_METRICS_PORT": "0",
        "GATEWAY_PARENT_PID": str(os.getpid()),
    }
    procs = []
    for _ in range(settings.http_workers - 1):
        procs.append(await asyncio.create_subprocess_exec(sys.executable, "-m", "gateway", env=env))
    return procs


async def _main(settings: Settings) -> None:
    gw = await start(settings)
    # A request allocates a few hundred short-lived objects: collect young objects rarely.
    quiet_gc(20_000)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    watcher = None
    parent = os.environ.get("GATEWAY_PARENT_PID")
    if settings.http_worker and parent:
        watcher = asyncio.create_task(_watch_parent(int(parent), stop))
    workers = []
    if settings.http_workers > 1 and not settings.http_worker:
        workers = await _spawn_workers(settings, gw.http_port)
        log.info("gateway.http_workers.started", workers=len(workers) + 1, http_port=gw.http_port)
    await stop.wait()
    for p in workers:
        with contextlib.suppress(ProcessLookupError):
            p.send_signal(signal.SIGTERM)
    await gw.stop(settings.shutdown_grace_seconds)
    for p in workers:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(p.wait(), settings.shutdown_grace_seconds + 5)
    if watcher is not None:
        watcher.cancel()


def main() -> None:
    parse_service_args("gateway", __doc__, Settings)
    settings = Settings.from_env()
    run("gateway", settings.log_level, lambda: _main(settings))


if __name__ == "__main__":
    main()
