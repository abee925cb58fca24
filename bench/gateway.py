"""Gateway benchmark: the latency the gateway adds over calling the stand-in provider directly, and
requests/s through the HTTP front door, with one and with two HTTP workers (GATEWAY_HTTP_WORKERS).

Three kinds of processes, so the numbers are not one event loop measuring itself:
- a stand-in provider (`python -m fakeprovider`, zero latency, 8 completion tokens): the baseline;
- the gateway (`python -m gateway`, its own database) relaying usage to metering (`python -m metering`,
  its own database) when metering is installed;
- load generators: child processes (`python -m bench.gateway lat|load ...`) running a minimal HTTP/1.1
  keep-alive client on uvloop, one request at a time per connection; one process for the latency
  figures, several for requests/s so the client is not the bottleneck.

Added latency = (through the gateway) - (straight to the stand-in), same run, same client, p50 and p99.
Targets on the 2-core machine: added p50 <= 1.0 ms and p99 <= 3 ms at c=1; >= 2,500 req/s at c=64,
0 errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from bench._db import credentials_env, operator_channel

REPO = Path(__file__).resolve().parent.parent
MODEL = "bench-model"
BODY = json.dumps(
    {"model": MODEL, "messages": [{"role": "user", "content": "say hello in a few words"}]}
).encode()
STREAM_BODY = json.dumps(
    {
        "model": MODEL,
        "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": "say hello in a few words"}],
    }
).encode()
UPSTREAM_KEY = "sk-bench-upstream"

C1_REQUESTS = int(os.environ.get("BENCH_GATEWAY_C1_REQUESTS", "1500"))
C64_REQUESTS = int(os.environ.get("BENCH_GATEWAY_C64_REQUESTS", "6000"))
RPS_SECONDS = float(os.environ.get("BENCH_GATEWAY_RPS_SECONDS", "6"))
LOAD_PROCS = int(os.environ.get("BENCH_GATEWAY_LOAD_PROCS", "2"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _present(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # the parent package is not there either
        return False


def _pct(sorted_ms: list[float], q: float) -> float:
    if not sorted_ms:
        return float("nan")
    return sorted_ms[min(len(sorted_ms) - 1, int(q * len(sorted_ms)))]


class Proc:
    """A child process with its stderr kept in a temp file (shown if it dies)."""

    def __init__(self, name: str, args: list[str], env: dict[str, str]) -> None:
        self.name, self.args, self.env = name, args, env
        self.log = tempfile.NamedTemporaryFile(prefix=f"bench-{name}-", suffix=".log", delete=False)
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, *self.args, env=self.env, stdout=asyncio.subprocess.DEVNULL, stderr=self.log
        )

    def check(self) -> None:
        if self.proc is not None and self.proc.returncode is not None:
            tail = Path(self.log.name).read_text()[-3000:]
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{tail}")

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        self.proc.terminate()
        try:
            await asyncio.wait_for(self.proc.wait(), 10)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


async def _wait_http(url: str, proc: Proc, headers: dict[str, str] | None = None) -> None:
    async with aiohttp.ClientSession() as s:
        for _ in range(600):
            proc.check()
            with contextlib.suppress(aiohttp.ClientError):
                async with s.get(url, headers=headers) as r:
                    if r.status < 500:
                        return
            await asyncio.sleep(0.05)
    raise RuntimeError(f"{proc.name} did not answer {url}")


async def _wait_grpc(address: str, proc: Proc) -> None:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    async with grpc.aio.insecure_channel(address) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        for _ in range(600):
            proc.check()
            with contextlib.suppress(grpc.aio.AioRpcError):
                r = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if r.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{proc.name} never became SERVING")


# --- measurement ---
#
# The load generator is a minimal HTTP/1.1 keep-alive client on asyncio protocols under uvloop, run in
# child processes (`python -m bench.gateway lat|load ...`): an aiohttp client tops out near the rate it
# is asked to measure on 2 cores, so it would report its own cost as the gateway's.


class _Conn(asyncio.Protocol):
    """One keep-alive connection; one request in flight at a time; reads Content-Length or chunked bodies."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.waiter: asyncio.Future[int] | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.waiter is None or self.waiter.done():
            return
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buf[:end]).lower()
        at = head.find(b"content-length:")
        if at >= 0:
            n = int(head[at + 15 : head.find(b"\r\n", at) if head.find(b"\r\n", at) > 0 else None])
            total = end + 4 + n
            if len(self.buf) < total:
                return
        elif self.buf.endswith(b"\r\n0\r\n\r\n"):
            total = len(self.buf)
        else:
            return
        status = int(self.buf[9:12])
        del self.buf[:total]
        self.waiter.set_result(status)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection closed"))

    async def request(self, data: bytes) -> int:
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)  # type: ignore[union-attr]
        return await self.waiter


def _request_bytes(url: str, secret: str, body: bytes) -> tuple[str, int, bytes]:
    rest = url.removeprefix("http://")
    hostport, _, path = rest.partition("/")
    host, _, port = hostport.partition(":")
    head = (
        f"POST /{path} HTTP/1.1\r\nHost: {hostport}\r\nAuthorization: Bearer {secret}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return host, int(port), head.encode() + body


async def _connect(host: str, port: int) -> _Conn:
    _, conn = await asyncio.get_running_loop().create_connection(_Conn, host, port)
    return conn


async def _timed(clients: list[Any], total: int, one: Callable[[Any], Awaitable[bool]]) -> dict[str, Any]:
    """Warm each client up, then time `total` calls of `one(client)` (True = success) spread over the
    clients, each sending back to back."""
    for c in clients:
        for _ in range(max(1, 100 // len(clients))):
            await one(c)
    samples: list[float] = []
    errors = 0
    remaining = iter(range(total))
    clock = time.perf_counter

    async def worker(c: Any) -> None:
        nonlocal errors
        for _ in remaining:
            t0 = clock()
            if await one(c):
                samples.append((clock() - t0) * 1000)
            else:
                errors += 1

    await asyncio.gather(*(worker(c) for c in clients))
    return {"samples": samples, "errors": errors}


async def _lat_worker(url: str, secret: str, kind: str, concurrency: int, total: int) -> dict[str, Any]:
    """Latency of `total` requests over `concurrency` keep-alive connections."""
    host, port, data = _request_bytes(url, secret, STREAM_BODY if kind == "stream" else BODY)
    conns = [await _connect(host, port) for _ in range(concurrency)]

    async def one(c: _Conn) -> bool:
        return await c.request(data) == 200

    result = await _timed(conns, total, one)
    for c in conns:
        c.transport.close()  # type: ignore[union-attr]
    return result


async def _grpc_lat_worker(
    address: str, secret: str, kind: str, concurrency: int, total: int
) -> dict[str, Any]:
    """The same measurement through the generated gRPC stubs (grpc.aio), one channel per client."""
    import grpc

    from tollgate.gateway.v1 import inference_pb2 as pb
    from tollgate.gateway.v1 import inference_pb2_grpc

    fields = {"model": MODEL, "messages": [pb.ChatMessage(role="user", content="say hello in a few words")]}
    metadata = (("authorization", f"Bearer {secret}"),)
    channels = [grpc.aio.insecure_channel(address) for _ in range(concurrency)]
    stubs = [inference_pb2_grpc.InferenceServiceStub(ch) for ch in channels]

    async def one(stub: Any) -> bool:
        try:
            if kind == "stream":
                async for _ in stub.StreamChatCompletion(
                    pb.StreamChatCompletionRequest(**fields), metadata=metadata
                ):
                    pass
            else:
                await stub.CreateChatCompletion(pb.CreateChatCompletionRequest(**fields), metadata=metadata)
        except grpc.aio.AioRpcError:
            return False
        return True

    result = await _timed(stubs, total, one)
    for ch in channels:
        await ch.close()
    return result


async def _load_worker(url: str, secret: str, concurrency: int, seconds: float) -> dict[str, int]:
    """Requests/s: `concurrency` connections, each sending requests back to back for `seconds`."""
    host, port, data = _request_bytes(url, secret, BODY)
    conns = [await _connect(host, port) for _ in range(concurrency)]
    ok = errors = 0
    end = time.perf_counter() + seconds

    async def worker(c: _Conn) -> None:
        nonlocal ok, errors
        while time.perf_counter() < end:
            try:
                status = await c.request(data)
            except ConnectionError:
                errors += 1
                return
            if status == 200:
                ok += 1
            else:
                errors += 1

    await asyncio.gather(*(worker(c) for c in conns))
    for c in conns:
        c.transport.close()  # type: ignore[union-attr]
    return {"ok": ok, "errors": errors}


async def _child(*args: str) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.gateway", *args, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"load generator {args[0]} failed with {proc.returncode}")
    return json.loads(out.decode().strip().splitlines()[-1])


async def _paired(
    label: str, kind: str, concurrency: int, total: int, direct: tuple[str, str], gateway: tuple[str, str]
) -> dict[str, float]:
    # Alternating direct / gateway rounds so both see the same machine conditions (other engineers' jobs).
    d_all: list[float] = []
    g_all: list[float] = []
    errors = 0
    rounds = 3
    for _ in range(rounds):
        for target, acc in ((direct, d_all), (gateway, g_all)):
            r = await _child("lat", target[0], target[1], kind, str(concurrency), str(total // rounds))
            acc += r["samples"]
            errors += r["errors"]
    d_all.sort()
    g_all.sort()
    r = {
        "direct_p50_ms": _pct(d_all, 0.50),
        "gateway_p50_ms": _pct(g_all, 0.50),
        "added_p50_ms": _pct(g_all, 0.50) - _pct(d_all, 0.50),
        "direct_p99_ms": _pct(d_all, 0.99),
        "gateway_p99_ms": _pct(g_all, 0.99),
        "added_p99_ms": _pct(g_all, 0.99) - _pct(d_all, 0.99),
    }
    print(
        f"{label} c={concurrency} n={len(g_all)} "
        + " ".join(f"{k}={v:.2f}" for k, v in r.items())
        + f" errors={errors}",
        flush=True,
    )
    return r


async def _throughput(
    label: str, url: str, secret: str, concurrency: int, seconds: float, procs: int
) -> None:
    per = max(1, concurrency // procs)
    results = await asyncio.gather(
        *(_child("load", url, secret, str(per), str(seconds)) for _ in range(procs))
    )
    ok = sum(r["ok"] for r in results)
    errors = sum(r["errors"] for r in results)
    print(
        f"{label} c={per * procs} seconds={seconds:g} requests_per_s={ok / seconds:.0f}"
        f" ok={ok} errors={errors} load_generator={procs}x(raw asyncio HTTP/1.1 client on uvloop,"
        f" {per} keep-alive connections each)",
        flush=True,
    )


# --- the stack ---


async def _create_key(grpc_address: str) -> str:

    from tollgate.gateway.v1 import admin_pb2, admin_pb2_grpc

    async with operator_channel(grpc_address) as ch:
        stub = admin_pb2_grpc.GatewayAdminServiceStub(ch)
        resp = await stub.CreateApiKey(
            admin_pb2.CreateApiKeyRequest(
                request_id=uuid.uuid4().hex,
                builder_id="bench-builder",
                app_id="bench-app",
                customer_id="bench-customer",
                display_name="bench",
                default_tags={"workspace": "bench", "workflow": "bench"},
            ),
            timeout=10,
        )
    return resp.secret


def _auth_timing(rounds: int = 200_000) -> None:
    """KeyCache.authenticate per kind of caller, in-process: the rejection paths should cost what an
    accepted key costs (no timing oracle). Interleaved so drift hits every kind alike."""
    from common import errors
    from gateway.domain.keys import ApiKey, hash_secret, new_key_id, new_secret
    from gateway.service import KeyCache

    cache = KeyCache()
    secrets_ = [new_secret() for _ in range(10_000)]
    rows = [(hash_secret(s), ApiKey(new_key_id(), "b", "a", "c", "")) for s in secrets_]
    cache.replace(rows)
    revoked = new_secret()
    cache.put(hash_secret(revoked), ApiKey(new_key_id(), "b", "a", "c", "", revoke_time=datetime.now(UTC)))
    kinds = {
        "valid": f"Bearer {secrets_[1234]}",
        "unknown": f"Bearer {new_secret()}",
        "revoked": f"Bearer {revoked}",
        "malformed": "Bearer x",
        "missing": None,
    }
    totals = dict.fromkeys(kinds, 0.0)
    clock = time.perf_counter_ns
    for _ in range(rounds // 1000):
        for name, header in kinds.items():
            t0 = clock()
            for _ in range(1000):
                try:
                    cache.authenticate(header)
                except errors.Unauthenticated:
                    pass
            totals[name] += clock() - t0
    per = {k: v / rounds for k, v in totals.items()}
    print(
        "gateway.auth " + " ".join(f"{k}_ns={v:.0f}" for k, v in per.items()) + f" keys=10000 rounds={rounds}"
        " (every kind hashes once and compares once; a rejection also raises and catches one exception)",
        flush=True,
    )


async def main() -> None:
    if not _present("gateway.app"):
        print("gateway.skipped reason=services/gateway/app.py not present", flush=True)
        return
    from bench._db import fresh_database

    base_env = {
        k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "METERING_", "FAKEPROVIDER_"))
    }
    procs: list[Proc] = []
    workdir = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    try:
        provider_port = _free_port()
        provider = Proc(
            "fakeprovider",
            [
                "-m",
                "fakeprovider",
                "--port",
                str(provider_port),
                "--name",
                "bench_provider",
                "--api-key",
                UPSTREAM_KEY,
                "--completion-tokens",
                "8",
            ],
            {**base_env, "FAKEPROVIDER_LOG_LEVEL": "WARNING"},
        )
        procs.append(provider)
        await provider.start()
        provider_url = f"http://127.0.0.1:{provider_port}"

        metering_address = f"127.0.0.1:{_free_port()}"
        with_metering = _present("metering.app")
        if with_metering:
            _, metering_db = await fresh_database("metering")
            metering = Proc(
                "metering",
                ["-m", "metering"],
                {
                    **base_env,
                    "METERING_DATABASE_URL": metering_db,
                    "METERING_GRPC_ADDRESS": metering_address,
                    "METERING_METRICS_PORT": "0",
                    "METERING_LOG_LEVEL": "WARNING",
                    **credentials_env("metering"),
                },
            )
            procs.append(metering)
            await metering.start()

        catalog = workdir / "catalog.yaml"
        catalog.write_text(
            "providers:\n"
            f"  - name: bench_provider\n    base_url: {provider_url}/v1\n"
            "    credential_env: TOLLGATE_PROVIDER_BENCH_KEY\n"
            "models:\n"
            f"  - name: {MODEL}\n    offerings:\n"
            "      - provider: bench_provider\n        upstream_model: fake-chat\n"
            '        input_price_per_mtok: "0.15"\n        output_price_per_mtok: "0.60"\n'
        )
        _, gateway_db = await fresh_database("gateway")
        grpc_address = f"127.0.0.1:{_free_port()}"
        http_url = f"http://127.0.0.1:{_free_port()}"
        gateway = Proc(
            "gateway",
            ["-m", "gateway"],
            {
                **base_env,
                "TOLLGATE_PROVIDER_BENCH_KEY": UPSTREAM_KEY,
                "GATEWAY_DATABASE_URL": gateway_db,
                "GATEWAY_GRPC_ADDRESS": grpc_address,
                "GATEWAY_HTTP_ADDRESS": http_url.removeprefix("http://"),
                "GATEWAY_METRICS_PORT": "0",
                "GATEWAY_LOG_LEVEL": "WARNING",
                "GATEWAY_CATALOG_FILE": str(catalog),
                **credentials_env("gateway"),
                "GATEWAY_METERING_ADDRESS": metering_address,
                "GATEWAY_RELAY_ENABLED": "true" if with_metering else "false",
            },
        )
        procs.append(gateway)
        await gateway.start()
        await _wait_http(f"{provider_url}/_stats", provider)
        if with_metering:
            await _wait_grpc(metering_address, metering)
        await _wait_grpc(grpc_address, gateway)
        secret = await _create_key(grpc_address)
        await _wait_http(f"{http_url}/v1/models", gateway, {"Authorization": f"Bearer {secret}"})

        print(
            "gateway.setup provider=python -m fakeprovider (0 ms latency, 8 tokens) gateway=python -m gateway"
            f" metering={'python -m metering' if with_metering else 'absent (relay off)'}"
            " load_generator=child processes (raw asyncio HTTP/1.1 keep-alive client on uvloop)"
            f" cpus={os.cpu_count()}",
            flush=True,
        )
        direct_url = f"{provider_url}/v1/chat/completions"
        gw_url = f"{http_url}/v1/chat/completions"
        for concurrency, total in ((1, C1_REQUESTS), (64, C64_REQUESTS)):
            for kind in ("unary", "stream"):
                await _paired(
                    f"gateway.http.{kind}",
                    kind,
                    concurrency,
                    total,
                    (direct_url, UPSTREAM_KEY),
                    (gw_url, secret),
                )
        # The gRPC door at c=1, against the same direct HTTP baseline (the provider speaks HTTP only).
        for kind in ("unary", "stream"):
            await _paired(
                f"gateway.grpc.{kind}",
                kind,
                1,
                C1_REQUESTS,
                (direct_url, UPSTREAM_KEY),
                (f"grpc://{grpc_address}", secret),
            )
        _auth_timing()
        await _throughput("gateway.http.direct_rps", direct_url, UPSTREAM_KEY, 64, RPS_SECONDS, LOAD_PROCS)
        await _throughput("gateway.http.rps http_workers=1", gw_url, secret, 64, RPS_SECONDS, LOAD_PROCS)
        # The same gateway configuration with GATEWAY_HTTP_WORKERS=2 (one more process serving the HTTP
        # door on the same port), on the same database and key, after the one-worker gateway stops.
        for p in procs:
            p.check()
        await gateway.stop()
        two_url = f"http://127.0.0.1:{_free_port()}"
        two_grpc = f"127.0.0.1:{_free_port()}"
        two = Proc(
            "gateway-2-workers",
            ["-m", "gateway"],
            {
                **gateway.env,
                "GATEWAY_GRPC_ADDRESS": two_grpc,
                "GATEWAY_HTTP_ADDRESS": two_url.removeprefix("http://"),
                "GATEWAY_HTTP_WORKERS": "2",
            },
        )
        procs.append(two)
        await two.start()
        await _wait_grpc(two_grpc, two)
        await _wait_http(f"{two_url}/v1/models", two, {"Authorization": f"Bearer {secret}"})
        await asyncio.sleep(2.0)  # the second worker binds the shared port a moment after the first
        await _throughput(
            "gateway.http.rps http_workers=2",
            f"{two_url}/v1/chat/completions",
            secret,
            64,
            RPS_SECONDS,
            LOAD_PROCS,
        )
        for p in procs:
            if p is not gateway:
                p.check()
    finally:
        for p in reversed(procs):
            await p.stop()


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] in ("lat", "load"):
    import uvloop

    a = sys.argv
    if a[1] == "lat" and a[2].startswith("grpc://"):
        result: dict[str, Any] = uvloop.run(
            _grpc_lat_worker(a[2].removeprefix("grpc://"), a[3], a[4], int(a[5]), int(a[6]))
        )
    elif a[1] == "lat":
        result = uvloop.run(_lat_worker(a[2], a[3], a[4], int(a[5]), int(a[6])))
    else:
        result = uvloop.run(_load_worker(a[2], a[3], int(a[4]), float(a[5])))
    print(json.dumps(result), flush=True)
