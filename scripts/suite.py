"""Start the tollgate suite locally and, with `demo`, drive it end to end.

    python scripts/suite.py run   # start every service until Ctrl-C
    python scripts/suite.py demo  # start, run each context's demo story, stop
    python scripts/suite.py run --port metering=60051 --state-dir /tmp/tg   # elsewhere

Each service runs as its own process (`python -m <service>`). With no *_DATABASE_URL set they share
one embedded PostgreSQL (pgserver), a database per service, as compose shares one PostgreSQL container.
Stand-in model providers play the upstream APIs (there is no internet).

- `run` uses the fixed default ports and keeps its data under .tollgate/ (pgdata/, logs/); it refuses to
  start when one of its ports is taken, and stops everything, saying which, when a service dies.
- `demo` picks free ports and keeps its data under .tollgate/demo/, apart from `run`'s, so it never
  collides with a running suite nor leaves models or customers in `run`'s database.
- Both use the credentials in .tollgate/credentials/ (made once) and say where their logs are: one JSON
  log per service, and the embedded PostgreSQL's output in its own file (logs/embedded-postgres.log, with
  the server's own log in pgdata/log).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import importlib.util
import json
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
STATE_DIR = REPO / ".tollgate"
CATALOG = REPO / "deploy" / "catalog.yaml"
PROVIDER_KEY = "sk-demo-provider"

# What each port is, for the message when one is taken.
DEFAULT_PORTS = {
    "metering": 50051,
    "metering_metrics": 9101,
    "gateway": 50052,
    "gateway_http": 8080,
    "gateway_metrics": 9102,
    "billing": 50053,
    "billing_metrics": 9103,
    "payouts": 50054,
    "payouts_metrics": 9104,
    "provider_a": 8091,
    "provider_b": 8092,
}
# The ports each process listens on.
PROCESS_PORTS = {
    "provider_a": ("provider_a",),
    "provider_b": ("provider_b",),
    "metering": ("metering", "metering_metrics"),
    "billing": ("billing", "billing_metrics"),
    "gateway": ("gateway", "gateway_http", "gateway_metrics"),
    "payouts": ("payouts", "payouts_metrics"),
}


class SuiteError(Exception):
    """Start-up failed; the message says why on its own (printed without a traceback)."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _present(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(REPO))
    except ValueError:
        return str(path)


def taken_ports(ports: dict[str, int], names: list[str]) -> list[tuple[str, int]]:
    """The (name, port) pairs of `names` that something on this machine already listens on."""
    taken = []
    for name in names:
        with socket.socket() as s:
            # As the services bind: SO_REUSEADDR, so a port in TIME_WAIT after the last run is free.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", ports[name]))
            except OSError:
                taken.append((name, ports[name]))
    return taken


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _tail(path: Path | None, lines: int = 15) -> str:
    if path is None or not path.exists():
        return ""
    return "\n".join("    " + line for line in path.read_text(errors="replace").splitlines()[-lines:])


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
    state_dir: Path = STATE_DIR
    procs: list[Proc] = field(default_factory=list)

    @property
    def data_root(self) -> Path:
        """Where this mode keeps its database and logs: the demo's apart from run's."""
        return self.state_dir / "demo" if self.demo else self.state_dir

    @property
    def data_dir(self) -> Path:
        return self.data_root / "pgdata"

    @property
    def logs_dir(self) -> Path:
        return self.data_root / "logs"

    @property
    def credentials_dir(self) -> Path:
        # Signing key, trust file and the operator's and services' tokens, made once (common/security.py).
        return self.state_dir / "credentials"

    def endpoints(self) -> dict[str, str]:
        p = self.ports
        return {
            "metering": f"127.0.0.1:{p['metering']}",
            "gateway": f"127.0.0.1:{p['gateway']}",
            "gateway_http": f"http://127.0.0.1:{p['gateway_http']}",
            "billing": f"127.0.0.1:{p['billing']}",
            "payouts": f"127.0.0.1:{p['payouts']}",
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
                        "METERING_DATA_DIR": str(self.data_dir),
                        "METERING_CREDENTIALS_DIR": str(self.credentials_dir),
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
                        "BILLING_DATA_DIR": str(self.data_dir),
                        "BILLING_CREDENTIALS_DIR": str(self.credentials_dir),
                        "BILLING_GRPC_ADDRESS": f"127.0.0.1:{p['billing']}",
                        "BILLING_METRICS_PORT": str(p["billing_metrics"]),
                        "BILLING_METERING_ADDRESS": f"127.0.0.1:{p['metering']}",
                    },
                    ("grpc", f"127.0.0.1:{p['billing']}"),
                )
            )
        if "payouts" in want and _present("payouts"):
            self.procs.append(
                Proc(
                    "payouts",
                    [py, "-m", "payouts"],
                    {
                        **common,
                        "PAYOUTS_DATA_DIR": str(self.data_dir),
                        "PAYOUTS_CREDENTIALS_DIR": str(self.credentials_dir),
                        "PAYOUTS_GRPC_ADDRESS": f"127.0.0.1:{p['payouts']}",
                        "PAYOUTS_METRICS_PORT": str(p["payouts_metrics"]),
                        "PAYOUTS_BILLING_ADDRESS": f"127.0.0.1:{p['billing']}",
                        "PAYOUTS_METERING_ADDRESS": f"127.0.0.1:{p['metering']}",
                        # The demo pays out minutes after the payment: no hold. Set from the start,
                        # since earnings keep the hold they were posted with.
                        **({"PAYOUTS_DEFAULT_HOLD_DAYS": "0"} if self.demo else {}),
                    },
                    ("grpc", f"127.0.0.1:{p['payouts']}"),
                )
            )
        if "gateway" in want and _present("gateway"):
            self.procs.append(
                Proc(
                    "gateway",
                    [py, "-m", "gateway"],
                    {
                        **common,
                        "GATEWAY_DATA_DIR": str(self.data_dir),
                        "GATEWAY_CREDENTIALS_DIR": str(self.credentials_dir),
                        "GATEWAY_GRPC_ADDRESS": f"127.0.0.1:{p['gateway']}",
                        "GATEWAY_HTTP_ADDRESS": f"127.0.0.1:{p['gateway_http']}",
                        "GATEWAY_METRICS_PORT": str(p["gateway_metrics"]),
                        "GATEWAY_METERING_ADDRESS": f"127.0.0.1:{p['metering']}",
                        "GATEWAY_CATALOG_FILE": str(CATALOG),
                        # Spend caps in the request path need billing (services/gateway/README.md).
                        "GATEWAY_SPEND_CONTROLS": "on" if "billing" in want else "off",
                        "GATEWAY_BILLING_ADDRESS": f"127.0.0.1:{p['billing']}",
                        "DEMO_PROVIDER_A_BASE_URL": f"http://127.0.0.1:{p['provider_a']}/v1",
                        "DEMO_PROVIDER_B_BASE_URL": f"http://127.0.0.1:{p['provider_b']}/v1",
                        "TOLLGATE_PROVIDER_DEMO_KEY": PROVIDER_KEY,
                    },
                    ("grpc", f"127.0.0.1:{p['gateway']}"),
                )
            )

    def check_ports(self) -> None:
        names = [port for proc in self.procs for port in PROCESS_PORTS.get(proc.name, ())]
        taken = taken_ports(self.ports, names)
        if taken:
            listed = ", ".join(f"{port} ({name})" for name, port in taken)
            raise SuiteError(
                f"port {listed} {'is' if len(taken) == 1 else 'are'} already in use: another `make run` "
                "may be running (`tollgate status` shows it), or another program. Stop it, or choose "
                "other ports with --port NAME=PORT."
            )

    async def start(self) -> None:
        self.check_ports()
        if not any(os.environ.get(f"{s.upper()}_DATABASE_URL") for s in self.services):
            # Initialise the shared embedded server once, before the services race to join it.
            from common.db import embedded_server_url

            print(f"suite: embedded PostgreSQL under {_rel(self.data_dir)}", flush=True)
            await asyncio.to_thread(embedded_server_url, self.data_dir)
        from common.security import ensure_local_credentials

        creds = ensure_local_credentials(self.credentials_dir)
        print(
            f"suite: credentials in {_rel(self.credentials_dir)} "
            f"(operator token: {_rel(creds.token_file('operator'))})",
            flush=True,
        )
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        print(f"suite: logs in {_rel(self.logs_dir)}/ (the previous run's are kept as *.log.1)", flush=True)
        for proc in self.procs:
            proc.log_path = self.logs_dir / f"{proc.name}.log"
            if proc.log_path.exists():
                proc.log_path.replace(proc.log_path.with_name(proc.log_path.name + ".1"))
            out = proc.log_path.open("wb")
            proc.popen = subprocess.Popen(  # noqa: ASYNC220 - start-up only, returns at once
                proc.argv, env=proc.env, cwd=REPO, stdout=out, stderr=out
            )
            out.close()  # the child has its own copy
            await self._wait_ready(proc)
            print(
                f"suite: {proc.name:<10} ready at {proc.ready[1]}  "
                f"(pid {proc.popen.pid}, log {_rel(proc.log_path)})",
                flush=True,
            )

    def dead(self) -> Proc | None:
        """The first started process that has exited, if any."""
        for proc in self.procs:
            if proc.popen is not None and proc.popen.poll() is not None:
                return proc
        return None

    def death_message(self, proc: Proc) -> str:
        code = proc.popen.returncode if proc.popen else None
        return (
            f"{proc.name} exited with code {code}; the end of {_rel(proc.log_path)}:\n{_tail(proc.log_path)}"
        )

    async def _wait_ready(self, proc: Proc, limit_s: float = 120.0) -> None:
        deadline = time.monotonic() + limit_s
        kind, target = proc.ready
        while time.monotonic() < deadline:
            # Any child, not only this one: a service that dies while the next one starts is reported now.
            dead = self.dead()
            if dead is not None:
                raise SuiteError(self.death_message(dead))
            if await _probe(kind, target):
                # Whatever answered, it is ours only if our child still lives (ports were checked free).
                if proc.popen is not None and proc.popen.poll() is not None:
                    raise SuiteError(self.death_message(proc))
                return
            await asyncio.sleep(0.2)
        raise SuiteError(f"{proc.name} was not ready within {limit_s:.0f} s (see {_rel(proc.log_path)})")

    async def watch(self, stop: asyncio.Event) -> Proc | None:
        """Until `stop` is set or a child exits; returns the dead child, if that is what happened."""
        while not stop.is_set():
            dead = self.dead()
            if dead is not None:
                return dead
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)
        return None

    def forget_dead_database_users(self) -> None:
        """pgserver stops the embedded server when its last user exits, counting users in a pid list; a
        service killed (SIGKILL) never takes itself off it, and the server would outlive the suite. Once
        every child is stopped, drop the dead pids so this process, the last user, stops it on exit."""
        handles = self.data_dir / ".handle_pids.json"  # pgserver 0.1.4's list (pinned)
        try:
            pids = json.loads(handles.read_text())
        except (OSError, ValueError):
            return
        alive = [pid for pid in pids if isinstance(pid, int) and _alive(pid)]
        if alive != pids:
            handles.write_text(json.dumps(alive))

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


def _port_overrides(values: list[str], ports: dict[str, int]) -> dict[str, int]:
    out = dict(ports)
    for value in values:
        name, _, port = value.partition("=")
        if name not in ports or not port.isdigit() or not 0 < int(port) < 65536:
            raise SuiteError(f"--port takes NAME=PORT with NAME one of {', '.join(ports)}, got {value!r}")
        out[name] = int(port)
    return out


async def _play_demo(endpoints: dict[str, str], services: list[str]) -> None:
    for name in ("metering", "gateway", "billing", "payouts"):
        if name in services and _present(f"scripts.demo.{name}"):
            print(f"\n=== demo: {name} ===", flush=True)
            module = importlib.import_module(f"scripts.demo.{name}")
            await module.run(endpoints)


def _absolute(text: str | Path) -> Path:
    return Path(text).resolve()


def ready_banner(suite: Suite) -> str:
    """What `make run` prints once everything answers: where things are and the next command to type."""
    p = suite.ports
    token = suite.credentials_dir / "operator.token"
    lines = ["suite: running; Ctrl-C stops every service"]
    if "gateway" in suite.services:
        url = f"http://127.0.0.1:{p['gateway_http']}/v1"
        flags = []
        if suite.credentials_dir != STATE_DIR / "credentials":
            flags.append(f"--credentials-dir {suite.credentials_dir}")
        if p["gateway"] != DEFAULT_PORTS["gateway"]:
            flags.append(f"--gateway-address 127.0.0.1:{p['gateway']}")
        if p["gateway_http"] != DEFAULT_PORTS["gateway_http"]:
            flags.append(f"--gateway-url {url}")
        command = " ".join([".venv/bin/tollgate", *flags, "keys create"])
        lines += [
            f"suite: OpenAI-compatible door at {url}",
            f"suite: operator token in {_rel(token)} (the `tollgate` command uses it)",
            "suite: create an API key, then use it with any OpenAI client (README, quick start):",
            f"    {command} --builder my-agency --app my-app --customer my-client",
        ]
    lines.append(f"suite: logs in {_rel(suite.logs_dir)}/")
    return "\n".join(lines)


async def main(argv: list[str]) -> int:
    # pgserver's platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI): harmless here.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    # SIGTERM during start-up stops the children as Ctrl-C does (then `run` installs its own handler).
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("mode", choices=["run", "demo"])
    parser.add_argument("--services", default="metering gateway billing payouts")
    parser.add_argument(
        "--state-dir", default=STATE_DIR, type=_absolute, help="where data, logs and credentials live"
    )
    parser.add_argument(
        "--port",
        action="append",
        default=[],
        metavar="NAME=PORT",
        help=f"listen elsewhere; NAME is one of {', '.join(DEFAULT_PORTS)}",
    )
    args = parser.parse_args(argv)
    services = args.services.split()
    try:
        ports = _port_overrides(args.port, DEFAULT_PORTS)
    except SuiteError as exc:
        parser.error(str(exc))
    if args.mode == "demo":
        ports = {name: _free_port() for name in ports}
    suite = Suite(
        ports=ports,
        services=services,
        demo=args.mode == "demo",
        state_dir=args.state_dir,
    )
    suite.plan()
    if not suite.procs:
        print("suite: no services to start", file=sys.stderr)
        return 1
    code = 0
    try:
        await suite.start()
        if args.mode == "run":
            print(ready_banner(suite), flush=True)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            dead = await suite.watch(stop)
            if dead is not None:
                print(f"suite: {suite.death_message(dead)}\nsuite: stopping the others", file=sys.stderr)
                code = 1
        else:
            # The stories run while every child is watched: a service that dies stops the demo at once,
            # named, instead of surfacing later as a confusing UNAVAILABLE inside a story.
            story = asyncio.create_task(_play_demo(suite.endpoints(), services))
            watcher = asyncio.create_task(suite.watch(asyncio.Event()))
            await asyncio.wait({story, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if story.done():
                watcher.cancel()
                story.result()
                print("\ndemo: done; stopping the suite", flush=True)
            else:
                story.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await story
                dead = watcher.result()
                raise SuiteError(suite.death_message(dead) if dead else "the demo stopped")
    except SuiteError as exc:
        print(f"suite: {exc}", file=sys.stderr, flush=True)
        code = 1
    finally:
        suite.stop()
        suite.forget_dead_database_users()
        if suite.logs_dir.exists():
            print(f"suite: logs of this run are in {_rel(suite.logs_dir)}/", flush=True)
    return code


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(asyncio.run(main(sys.argv[1:])))
