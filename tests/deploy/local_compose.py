"""docker-compose.yml's topology as local processes (there is no Docker engine here).

Each compose service's `command` runs with its compose `environment`, translated for this machine the way
the compose network would resolve it: a compose hostname becomes 127.0.0.1 and each container port a free
local port (the same port wherever that container's port is named), the postgres URL points at fresh
databases on the test server (one per compose database name), `${POSTGRES_PASSWORD}` is expanded,
`/run/secrets/<name>` is the file the compose `secrets:` section names (made here by
ensure_local_credentials), and /app/... is this repository (the image's WORKDIR). Health checks run as
compose would run them, with the same translation. With replicas=N every service runs N processes; an
address naming another service points at one of its replicas (as compose DNS would pick one).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import yaml
from sqlalchemy.engine import make_url

from common.security import LocalCredentials, ensure_local_credentials

REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES: dict[str, dict] = COMPOSE["services"]
APP_SERVICES = [n for n in SERVICES if n != "postgres"]
_HOST_PORT = re.compile(r"\b([a-z0-9][a-z0-9_.-]*):(\d{2,5})\b")
_PROVIDER_DEFAULT = re.compile(r"\$\{(\w+):-([^}]*)\}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Process:
    service: str
    replica: int
    env: dict[str, str]
    argv: list[str]
    ports: dict[int, int]  # container port -> local port
    proc: asyncio.subprocess.Process | None = None

    @property
    def name(self) -> str:
        return f"{self.service}-{self.replica}"

    def local(self, container_port: int | str) -> str:
        return f"127.0.0.1:{self.ports[int(container_port)]}"

    @property
    def grpc(self) -> str:
        """Its gRPC address, as a client on this machine dials it."""
        return self.env[f"{self.service.upper()}_GRPC_ADDRESS"].replace("0.0.0.0", "127.0.0.1")


@dataclass
class LocalCompose:
    """The translated topology; `start()` launches every process at the same moment."""

    server_url: str
    databases: dict[str, str]  # compose database name -> URL of a fresh database on the test server
    credentials: LocalCredentials
    logs: Path
    replicas: int = 1
    # Settings a test adds on top of the compose environment (timings, holds), by service.
    overrides: dict[str, dict[str, str]] = field(default_factory=dict)
    processes: dict[str, list[Process]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        server = make_url(self.server_url)
        self.password = server.password or "local-compose-password"
        self._server = server
        for name in APP_SERVICES:
            self.processes[name] = [
                Process(name, i, {}, [], {p: free_port() for p in _container_ports(name)})
                for i in range(self.replicas)
            ]
        for name in APP_SERVICES:
            for proc in self.processes[name]:
                proc.env = self._environment(name, proc)
                command = [str(a) for a in SERVICES[name]["command"]]
                proc.argv = [
                    str(proc.ports[int(a)]) if i and command[i - 1] == "--port" else self._value(a, proc)
                    for i, a in enumerate(command)
                ]
                proc.argv[0] = sys.executable if proc.argv[0] == "python" else proc.argv[0]

    # ---- translation ----------------------------------------------------------------------------------

    def _peer(self, service: str, me: Process) -> Process:
        """The replica of `service` that `me` reaches: another one than its own number, when there are
        several, so replicas cooperate across processes rather than in pairs."""
        return self.processes[service][(me.replica + 1) % self.replicas]

    def _value(self, value: str, me: Process) -> str:
        value = str(value).replace("${POSTGRES_PASSWORD}", self.password)
        if value.startswith("postgresql"):
            url = make_url(value)
            assert url.host == "postgres", value
            # The fresh database of the same name on the test server, reached however that server is
            # (host and port, or the embedded server's socket): compose's host and password stop here.
            return make_url(self.databases[url.database]).render_as_string(hide_password=False)
        if value.startswith("/run/secrets/"):
            name = value.removeprefix("/run/secrets/")
            path = self.credentials.directory / Path(COMPOSE["secrets"][name]["file"]).name
            assert path.is_file(), f"secret {name} -> {path} was not made by ensure_local_credentials"
            return str(path)
        if value.startswith("/app/"):
            return str(REPO / value.removeprefix("/app/"))

        def host_port(m: re.Match[str]) -> str:
            host, port = m.group(1), int(m.group(2))
            if host in SERVICES:  # another container on the compose network
                return self._peer(host, me).local(port)
            if host in ("0.0.0.0", "127.0.0.1") and port in me.ports:  # its own port
                return f"{host}:{me.ports[port]}"
            return m.group(0)

        return _HOST_PORT.sub(host_port, value)

    def _environment(self, name: str, me: Process) -> dict[str, str]:
        own = {k: str(v) for k, v in (SERVICES[name].get("environment") or {}).items()}
        env = {}
        for key, value in own.items():
            if key.endswith("_METRICS_PORT"):
                env[key] = str(me.ports[int(value)])
            else:
                env[key] = self._value(value, me)
        catalog = own.get("GATEWAY_CATALOG_FILE")
        if catalog:
            # The catalog names provider hosts of the compose network through ${VAR:-default}: the same
            # translation gives each default its local address.
            text = Path(env["GATEWAY_CATALOG_FILE"]).read_text()
            for var, default in _PROVIDER_DEFAULT.findall(text):
                env[var] = self._value(default, me)
        base = {
            k: v for k, v in os.environ.items() if not k.startswith(tuple(s.upper() + "_" for s in SERVICES))
        }
        return {**base, **env, **self.overrides.get(name, {})}

    # ---- running --------------------------------------------------------------------------------------

    def all(self) -> list[Process]:
        return [p for ps in self.processes.values() for p in ps]

    async def start(self) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)

        async def spawn(p: Process) -> None:
            with (self.logs / f"{p.name}.log").open("ab") as log:
                p.proc = await asyncio.create_subprocess_exec(
                    *p.argv, cwd=REPO, env=p.env, stdout=log, stderr=log, start_new_session=True
                )

        await asyncio.gather(*(spawn(p) for p in self.all()))

    def log(self, p: Process) -> str:
        return (self.logs / f"{p.name}.log").read_text(errors="replace")[-3000:]

    async def healthcheck(self, p: Process) -> bool:
        """The compose healthcheck's command, run once in the service's environment."""
        check = SERVICES[p.service].get("healthcheck")
        assert check and check["test"][0] == "CMD", p.service
        argv = [self._value(a, p) for a in check["test"][1:]]
        argv[0] = sys.executable if argv[0] == "python" else argv[0]
        proc = await asyncio.create_subprocess_exec(
            *argv, cwd=REPO, env=p.env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
        )
        return await proc.wait() == 0

    async def wait_healthy(self, p: Process, seconds: float = 40) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while loop.time() < deadline:
            assert p.proc is not None
            if p.proc.returncode is not None:
                raise AssertionError(f"{p.name} exited with {p.proc.returncode}:\n{self.log(p)}")
            if await self.healthcheck(p):
                return
            await asyncio.sleep(0.3)
        raise AssertionError(f"{p.name} never passed its compose health check:\n{self.log(p)}")

    async def stop(self) -> None:
        for p in self.all():
            if p.proc is not None and p.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    p.proc.send_signal(signal.SIGTERM)
        for p in self.all():
            if p.proc is None:
                continue
            try:
                await asyncio.wait_for(p.proc.wait(), 15)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    p.proc.kill()
                await p.proc.wait()


def _container_ports(name: str) -> set[int]:
    """Every port the container listens on, as its compose definition states it."""
    svc = SERVICES[name]
    ports: set[int] = set()
    for key, value in (svc.get("environment") or {}).items():
        value = str(value)
        if key.endswith("_METRICS_PORT"):
            ports.add(int(value))
        m = re.fullmatch(r"0\.0\.0\.0:(\d+)", value)
        if m:
            ports.add(int(m.group(1)))
    command = svc.get("command") or []
    if "--port" in command:
        ports.add(int(command[command.index("--port") + 1]))
    for mapping in svc.get("ports", []):
        ports.add(int(str(mapping).rpartition(":")[2]))
    return ports


def compose_databases() -> set[str]:
    """The database names the services' URLs use on the compose postgres."""
    names = set()
    for name in APP_SERVICES:
        for value in (SERVICES[name].get("environment") or {}).values():
            if str(value).startswith("postgresql"):
                names.add(urlparse(str(value).replace("${POSTGRES_PASSWORD}", "x")).path.lstrip("/"))
    return names


async def local_compose(
    make_database,
    server_url: str,
    tmp: Path,
    replicas: int = 1,
    overrides: dict[str, dict[str, str]] | None = None,
) -> LocalCompose:
    databases = {name: await make_database(name) for name in sorted(compose_databases())}
    credentials = ensure_local_credentials(tmp / "credentials")
    return LocalCompose(server_url, databases, credentials, tmp / "logs", replicas, overrides or {})
