"""Gateway benchmark: the latency the gateway adds over calling the stand-in provider directly, and
requests/s through the HTTP front door.

Three kinds of processes, so the numbers are not one event loop measuring itself:
- a stand-in provider (`python -m fakeprovider`, zero latency, 8 completion tokens): the baseline;
- the gateway (`python -m gateway`, its own database) relaying usage to metering (`python -m metering`,
  its own database) when metering is installed;
- load generators: this process (lean raw aiohttp client, one request at a time per connection) for
  the latency figures, and for requests/s several `python -m bench.gateway load ...` processes so the
  client is not the bottleneck.

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
from pathlib import Path
from typing import Any

import aiohttp

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


async def _one(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str]
) -> tuple[float, bool]:
    t0 = time.perf_counter()
    async with session.post(url, data=body, headers=headers) as r:
        await r.read()
        ok = r.status == 200
    return (time.perf_counter() - t0) * 1000, ok


async def _latencies(
    url: str, body: bytes, headers: dict[str, str], concurrency: int, total: int
) -> tuple[list[float], int]:
    conn = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    async with aiohttp.ClientSession(connector=conn, skip_auto_headers=("User-Agent",)) as session:
        for _ in range(min(200, total // 5)):  # warm-up: connections, caches, JIT-free but lazy paths
            await _one(session, url, body, headers)
        samples: list[float] = []
        errors = 0
        remaining = iter(range(total))

        async def worker() -> None:
            nonlocal errors
            for _ in remaining:
                try:
                    ms, ok = await _one(session, url, body, headers)
                except aiohttp.ClientError:
                    errors += 1
                    continue
                if ok:
                    samples.append(ms)
                else:
                    errors += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    samples.sort()
    return samples, errors


async def _paired(label: str, concurrency: int, total: int, direct: tuple, gateway: tuple) -> dict[str, Any]:
    # Alternating direct / gateway rounds so both see the same machine conditions (other engineers' jobs).
    d_all: list[float] = []
    g_all: list[float] = []
    errors = 0
    rounds = 3
    for _ in range(rounds):
        d, de = await _latencies(*direct, concurrency, total // rounds)
        g, ge = await _latencies(*gateway, concurrency, total // rounds)
        d_all += d
        g_all += g
        errors += de + ge
    d_all.sort()
    g_all.sort()
    r = {
        "direct_p50_ms": _pct(d_all, 0.50),
        "gateway_p50_ms": _pct(g_all, 0.50),
        "direct_p99_ms": _pct(d_all, 0.99),
        "gateway_p99_ms": _pct(g_all, 0.99),
    }
    r["added_p50_ms"] = r["gateway_p50_ms"] - r["direct_p50_ms"]
    r["added_p99_ms"] = r["gateway_p99_ms"] - r["direct_p99_ms"]
    print(
        f"{label} c={concurrency} n={len(g_all)} "
        + " ".join(f"{k}={v:.2f}" for k, v in r.items())
        + f" errors={errors}",
        flush=True,
    )
    return r


async def _load_worker(url: str, secret: str, concurrency: int, seconds: float) -> dict[str, int]:
    """One load process: `concurrency` connections, each sending requests back to back for `seconds`."""
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
    ok = errors = 0
    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=conn, skip_auto_headers=("User-Agent",)) as session:
        end = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal ok, errors
            while time.perf_counter() < end:
                try:
                    async with session.post(url, data=BODY, headers=headers) as r:
                        await r.read()
                        if r.status == 200:
                            ok += 1
                        else:
                            errors += 1
                except aiohttp.ClientError:
                    errors += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return {"ok": ok, "errors": errors}


async def _throughput(
    label: str, url: str, secret: str, concurrency: int, seconds: float, procs: int
) -> None:
    per = max(1, concurrency // procs)
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.gateway",
            "load",
            url,
            secret,
            str(per),
            str(seconds),
            stdout=asyncio.subprocess.PIPE,
        )
        for _ in range(procs)
    ]
    ok = errors = 0
    for child in children:
        out, _ = await child.communicate()
        r = json.loads(out.decode().strip().splitlines()[-1])
        ok += r["ok"]
        errors += r["errors"]
    print(
        f"{label} c={per * procs} seconds={seconds:g} requests_per_s={ok / seconds:.0f}"
        f" ok={ok} errors={errors} load_generator={procs}x(python aiohttp raw client, {per} connections)",
        flush=True,
    )


# --- the stack ---


async def _create_key(grpc_address: str, admin_token: str) -> str:
    import grpc

    from tollgate.gateway.v1 import admin_pb2, admin_pb2_grpc

    async with grpc.aio.insecure_channel(grpc_address) as ch:
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
            metadata=(("authorization", f"Bearer {admin_token}"),),
            timeout=10,
        )
    return resp.secret


async def main() -> None:
    if importlib.util.find_spec("gateway.app") is None:
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
        with_metering = importlib.util.find_spec("metering.app") is not None
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
                },
            )
            procs.append(metering)
            await metering.start()

        catalog = workdir / "catalog.yaml"
        catalog.write_text(
            "providers:\n"
            f"  - name: bench_provider\n    base_url: {provider_url}/v1\n"
            "    credential_env: BENCH_UPSTREAM_KEY\n"
            "models:\n"
            f"  - name: {MODEL}\n    offerings:\n"
            "      - provider: bench_provider\n        upstream_model: fake-chat\n"
            '        input_price_per_mtok: "0.15"\n        output_price_per_mtok: "0.60"\n'
        )
        _, gateway_db = await fresh_database("gateway")
        admin_token = uuid.uuid4().hex
        grpc_address = f"127.0.0.1:{_free_port()}"
        http_url = f"http://127.0.0.1:{_free_port()}"
        gateway = Proc(
            "gateway",
            ["-m", "gateway"],
            {
                **base_env,
                "BENCH_UPSTREAM_KEY": UPSTREAM_KEY,
                "GATEWAY_DATABASE_URL": gateway_db,
                "GATEWAY_GRPC_ADDRESS": grpc_address,
                "GATEWAY_HTTP_ADDRESS": http_url.removeprefix("http://"),
                "GATEWAY_METRICS_PORT": "0",
                "GATEWAY_LOG_LEVEL": "WARNING",
                "GATEWAY_CATALOG_FILE": str(catalog),
                "GATEWAY_ADMIN_TOKEN": admin_token,
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
        secret = await _create_key(grpc_address, admin_token)
        await _wait_http(f"{http_url}/v1/models", gateway, {"Authorization": f"Bearer {secret}"})

        print(
            "gateway.setup provider=python -m fakeprovider (0 ms latency, 8 tokens) gateway=python -m gateway"
            f" metering={'python -m metering' if with_metering else 'absent (relay off)'}"
            f" latency_client=this process (raw aiohttp, keep-alive) cpus={os.cpu_count()}",
            flush=True,
        )
        direct_h = {"Authorization": f"Bearer {UPSTREAM_KEY}", "Content-Type": "application/json"}
        gw_h = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
        direct_url = f"{provider_url}/v1/chat/completions"
        gw_url = f"{http_url}/v1/chat/completions"
        for concurrency, total in ((1, C1_REQUESTS), (64, C64_REQUESTS)):
            await _paired(
                "gateway.http.unary", concurrency, total, (direct_url, BODY, direct_h), (gw_url, BODY, gw_h)
            )
            await _paired(
                "gateway.http.stream",
                concurrency,
                total,
                (direct_url, STREAM_BODY, direct_h),
                (gw_url, STREAM_BODY, gw_h),
            )
        await _throughput("gateway.http.direct_rps", direct_url, UPSTREAM_KEY, 64, RPS_SECONDS, LOAD_PROCS)
        await _throughput("gateway.http.rps", gw_url, secret, 64, RPS_SECONDS, LOAD_PROCS)
        for p in procs:
            p.check()
    finally:
        for p in reversed(procs):
            await p.stop()


if __name__ == "__main__" and len(sys.argv) == 6 and sys.argv[1] == "load":
    import uvloop

    result = uvloop.run(_load_worker(sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])))
    print(json.dumps(result), flush=True)
