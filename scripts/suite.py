"""Start the tollgate suite locally and, with `demo`, drive it end to end.

    python scripts/suite.py run   # start every service until Ctrl-C
    python scripts/suite.py demo  # start, run each context's demo story, stop

Each service runs as its own process (`python -m <service>`). With no *_DATABASE_URL set they share
one embedded PostgreSQL (pgserver) under .tollgate/pgdata, a database per service, as compose shares
one PostgreSQL container. Stand-in model providers play the upstream APIs (there is no internet).
`run` uses the fixed default ports; `demo` picks free ports so it never collides with a running suite.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

REPO = Path(__file__).resolve().parent.parent
DATA_DIR = REPO / ".tollgate" / "pgdata"
# Signing key, trust file and the operator's and services' tokens, made once (common/security.py).
CREDENTIALS_DIR = REPO / ".tollgate" / "credentials"
CATALOG = REPO / "deploy" / "catalog.yaml"
PROVIDER_KEY = "sk-demo-provider"

DEFAULT_PORTS = {
    "metering": 50051,
    "metering_metrics": 9101,
    "gateway": 50052,
    "gateway_http": 8080,
    "gateway_metrics": 9102,
    "billing": 50053,
    "billing_metrics": 9103,
    "provider_a": 8091,
    "provider_b": 8092,
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _present(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


@dataclass
class Proc:
    name: str
    argv: list[str]
    env: dict[str, str]
    ready: tuple[str, str]  # ("grpc", "host:port") or ("http", url)
    popen: subprocess.Popen | None = None
    log_path: Path | None = None


@dataclass
class Suite:
    ports: dict[str, int]
    services: list[str]
    demo: bool = False
    procs: list[Proc] = field(default_factory=list)

    def endpoints(self) -> dict[str, str]:
        p = self.ports
        return {
            "metering": f"127.0.0.1:{p['metering']}",
            "gateway": f"127.0.0.1:{p['gateway']}",
            "gateway_http": f"http://127.0.0.1:{p['gateway_http']}",
            "billing": f"127.0.0.1:{p['billing']}",
            "provider_a": f"http://127.0.0.1:{p['provider_a']}",
            "provider_b": f"http://127.0.0.1:{p['provider_b']}",
        }

    def plan(self) -> None:
        p, py = self.ports, sys.executable
        common = {**os.environ, "PYTHONUNBUFFERED": "1"}
        want = set(self.services)
        if "gateway" in want and _present("fakeprovider"):
            for name in ("provider_a", "provider_b"):
                self.procs.append(
                    Proc(
                        name,
                        [
                            py,
                            "-m",
                            "fakeprovider",
                            "--port",
                            str(p[name]),
                            "--name",
                            name,
                            "--api-key",
                            PROVIDER_KEY,
                        ],
                        common,
                        ("http", f"http://127.0.0.1:{p[name]}/v1/models"),
                    )
                )
        if "metering" in want and _present("metering"):
            self.procs.append(
                Proc(
                    "metering",
                    [py, "-m", "metering"],
                    {
                        **common,
                        "METERING_DATA_DIR": str(DATA_DIR),
                        "METERING_CREDENTIALS_DIR": str(CREDENTIALS_DIR),
                        "METERING_GRPC_ADDRESS": f"127.0.0.1:{p['metering']}",
                        "METERING_METRICS_PORT": str(p["metering_metrics"]),
                        # A demo closes a period seconds after its usage: a short settle window
                        # (which also bounds ingest transactions) keeps the close from waiting 30 s.
                        **({"METERING_SETTLE_SECONDS": "3"} if self.demo else {}),
                    },
                    ("grpc", f"127.0.0.1:{p['metering']}"),
                )
            )
        if "billing" in want and _present("billing"):
            self.procs.append(
                Proc(
                    "billing",
                    [py, "-m", "billing"],
                    {
                        **common,
                        "BILLING_DATA_DIR": str(DATA_DIR),
                        "BILLING_CREDENTIALS_DIR": str(CREDENTIALS_DIR),
                        "BILLING_GRPC_ADDRESS": f"127.0.0.1:{p['billing']}",
                        "BILLING_METRICS_PORT": str(p["billing_metrics"]),
                        "BILLING_METERING_ADDRESS": f"127.0.0.1:{p['metering']}",
                    },
                    ("grpc", f"127.0.0.1:{p['billing']}"),
                )
            )
        if "gateway" in want and _present("gateway"):
            self.procs.append(
                Proc(
                    "gateway",
                    [py, "-m", "gateway"],
                    {
                        **common,
                        "GATEWAY_DATA_DIR": str(DATA_DIR),
                        "GATEWAY_CREDENTIALS_DIR": str(CREDENTIALS_DIR),
                        "GATEWAY_GRPC_ADDRESS": f"127.0.0.1:{p['gateway']}",
                        "GATEWAY_HTTP_ADDRESS": f"127.0.0.1:{p['gateway_http']}",
                        "GATEWAY_METRICS_PORT": str(p["gateway_metrics"]),
                        "GATEWAY_METERING_ADDRESS": f"127.0.0.1:{p['metering']}",
                        "GATEWAY_CATALOG_FILE": str(CATALOG),
                        "DEMO_PROVIDER_A_BASE_URL": f"http://127.0.0.1:{p['provider_a']}/v1",
                        "DEMO_PROVIDER_B_BASE_URL": f"http://127.0.0.1:{p['provider_b']}/v1",
                        "TOLLGATE_PROVIDER_DEMO_KEY": PROVIDER_KEY,
                    },
                    ("grpc", f"127.0.0.1:{p['gateway']}"),
                )
            )

    async def start(self) -> None:
        if not any(os.environ.get(f"{s.upper()}_DATABASE_URL") for s in self.services):
            # Initialise the shared embedded server once, before the services race to join it.
            from common.db import embedded_server_url

            print(f"suite: embedded PostgreSQL under {DATA_DIR.relative_to(REPO)}", flush=True)
            await asyncio.to_thread(embedded_server_url, DATA_DIR)
        from common.security import ensure_local_credentials

        creds = ensure_local_credentials(CREDENTIALS_DIR)
        print(
            f"suite: credentials in {CREDENTIALS_DIR.relative_to(REPO)} "
            f"(operator token: {creds.token_file('operator').relative_to(REPO)})",
            flush=True,
        )
        logs = REPO / ".tollgate" / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        for proc in self.procs:
            proc.log_path = logs / f"{proc.name}.log"
            out = proc.log_path.open("ab")
            proc.popen = subprocess.Popen(  # noqa: ASYNC220 - start-up only, returns at once
                proc.argv, env=proc.env, cwd=REPO, stdout=out, stderr=out
            )
            await self._wait_ready(proc)
            print(
                f"suite: {proc.name:<10} ready at {proc.ready[1]}  (log {proc.log_path.relative_to(REPO)})",
                flush=True,
            )

    async def _wait_ready(self, proc: Proc, limit_s: float = 120.0) -> None:
        deadline = time.monotonic() + limit_s
        kind, target = proc.ready
        while time.monotonic() < deadline:
            if proc.popen is not None and proc.popen.poll() is not None:
                tail = proc.log_path.read_text()[-3000:] if proc.log_path else ""
                raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}:\n{tail}")
            if await _probe(kind, target):
                return
            await asyncio.sleep(0.2)
        raise RuntimeError(f"{proc.name} was not ready within {limit_s:.0f} s (see {proc.log_path})")

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.popen and proc.popen.poll() is None:
                proc.popen.send_signal(signal.SIGTERM)
        for proc in reversed(self.procs):
            if proc.popen:
                try:
                    proc.popen.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.popen.kill()


async def _probe(kind: str, target: str) -> bool:
    if kind == "grpc":
        async with grpc.aio.insecure_channel(target) as channel:
            try:
                reply = await health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=1.0
                )
                return reply.status == health_pb2.HealthCheckResponse.SERVING
            except grpc.aio.AioRpcError:
                return False
    import aiohttp

    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(
                target,
                headers={"authorization": f"Bearer {PROVIDER_KEY}"},
                timeout=aiohttp.ClientTimeout(total=1),
            ) as resp,
        ):
            return resp.status < 500
    except (aiohttp.ClientError, TimeoutError):
        return False


async def main(argv: list[str]) -> int:
    # pgserver's platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI): harmless here.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("mode", choices=["run", "demo"])
    parser.add_argument("--services", default="metering gateway billing")
    args = parser.parse_args(argv)
    services = args.services.split()
    ports = dict(DEFAULT_PORTS)
    if args.mode == "demo":
        ports = {name: _free_port() for name in ports}
    suite = Suite(ports=ports, services=services, demo=args.mode == "demo")
    suite.plan()
    if not suite.procs:
        print("suite: no services to start", file=sys.stderr)
        return 1
    try:
        await suite.start()
        if args.mode == "run":
            print("suite: running; Ctrl-C stops every service", flush=True)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await stop.wait()
        else:
            endpoints = suite.endpoints()
            for name in ("metering", "gateway", "billing"):
                if name in services and _present(f"scripts.demo.{name}"):
                    print(f"\n=== demo: {name} ===", flush=True)
                    module = importlib.import_module(f"scripts.demo.{name}")
                    await module.run(endpoints)
            print("\ndemo: done; stopping the suite", flush=True)
    finally:
        suite.stop()
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(asyncio.run(main(sys.argv[1:])))
