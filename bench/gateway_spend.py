"""Gateway added latency and throughput with spend controls off and on, side by side in one run.

One fake provider, metering and billing processes, and two gateways on their own databases: one with
GATEWAY_SPEND_CONTROLS=off, one with it on, for a customer on a cost-plus plan with a hard cap far from
reached (so every request places a hold and settles it, renewing leases as they run out). Rounds
alternate direct / off / on so all three see the same machine conditions; the load average is printed.
Run alone: `python -m bench gateway_spend`.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from decimal import Decimal
from pathlib import Path

from bench._db import credentials_env, fresh_database, operator_channel
from bench.gateway import (
    C1_REQUESTS,
    C64_REQUESTS,
    LOAD_PROCS,
    MODEL,
    RPS_SECONDS,
    UPSTREAM_KEY,
    Proc,
    _child,
    _free_port,
    _pct,
    _present,
    _throughput,
    _wait_grpc,
    _wait_http,
)

BUILDER = "bench-builder"
CUSTOMER = "bench-customer"
PLAN = """
currency: USD
charges:
  - key: tokens
    meter_key: llm_cost
    display_name: AI model usage
    cost_plus: {markup_percent: 25}
"""


async def _billing_setup(billing: str, metering: str) -> None:
    from common.money import to_money
    from tollgate.billing.v1 import billing_pb2 as bpb
    from tollgate.billing.v1 import billing_pb2_grpc, spend_pb2_grpc
    from tollgate.billing.v1 import spend_pb2 as spb
    from tollgate.metering.v1 import metering_pb2 as mpb
    from tollgate.metering.v1 import metering_pb2_grpc

    def rid() -> str:
        return uuid.uuid4().hex

    async with operator_channel(metering) as mch, operator_channel(billing) as bch:
        await metering_pb2_grpc.MeteringServiceStub(mch).CreateMeter(
            mpb.CreateMeterRequest(
                request_id=rid(),
                meter=mpb.Meter(
                    builder_id=BUILDER,
                    key="llm_cost",
                    display_name="Model cost",
                    event_types=["ai.request"],
                    aggregation=mpb.AGGREGATION_SUM,
                    quantity="provider_cost",
                ),
            ),
            timeout=10,
        )
        b = billing_pb2_grpc.BillingServiceStub(bch)
        await b.CreateCustomer(
            bpb.CreateCustomerRequest(
                request_id=rid(),
                customer=bpb.Customer(
                    id=CUSTOMER,
                    builder_id=BUILDER,
                    app_id="bench-app",
                    currency_code="USD",
                    display_name="Bench",
                    billing_email="billing@bench.example",
                ),
            ),
            timeout=10,
        )
        plan = await b.ApplyPlanYaml(
            bpb.ApplyPlanYamlRequest(
                request_id=rid(), builder_id=BUILDER, plan_key="bench", display_name="bench", yaml=PLAN
            ),
            timeout=10,
        )
        await b.Subscribe(
            bpb.SubscribeRequest(
                request_id=rid(),
                builder_id=BUILDER,
                customer_id=CUSTOMER,
                plan_id=plan.plan.id,
                plan_version=1,
            ),
            timeout=10,
        )
        await spend_pb2_grpc.SpendServiceStub(bch).SetSpendControl(
            spb.SetSpendControlRequest(
                request_id=rid(),
                control=spb.SpendControl(
                    builder_id=BUILDER,
                    customer_id=CUSTOMER,
                    scope=spb.SpendScope(kind=spb.SPEND_SCOPE_KIND_CUSTOMER),
                    hard_cap=to_money(Decimal("1000000"), "USD"),
                ),
            ),
            timeout=10,
        )


async def _key(grpc_address: str) -> str:
    from tollgate.gateway.v1 import admin_pb2, admin_pb2_grpc

    async with operator_channel(grpc_address) as ch:
        resp = await admin_pb2_grpc.GatewayAdminServiceStub(ch).CreateApiKey(
            admin_pb2.CreateApiKeyRequest(
                request_id=uuid.uuid4().hex,
                builder_id=BUILDER,
                app_id="bench-app",
                customer_id=CUSTOMER,
                display_name="bench",
            ),
            timeout=10,
        )
    return resp.secret


async def _side_by_side(kind: str, concurrency: int, total: int, targets: dict[str, tuple[str, str]]) -> None:
    samples: dict[str, list[float]] = {name: [] for name in targets}
    errors = 0
    for _ in range(3):
        for name, (url, secret) in targets.items():
            r = await _child("lat", url, secret, kind, str(concurrency), str(total // 3))
            samples[name] += r["samples"]
            errors += r["errors"]
    for s in samples.values():
        s.sort()
    d50, d99 = _pct(samples["direct"], 0.5), _pct(samples["direct"], 0.99)
    parts = []
    for name in ("off", "on"):
        parts.append(
            f"{name}_added_p50_ms={_pct(samples[name], 0.5) - d50:.3f}"
            f" {name}_added_p99_ms={_pct(samples[name], 0.99) - d99:.3f}"
        )
    hold_p50 = _pct(samples["on"], 0.5) - _pct(samples["off"], 0.5)
    print(
        f"gateway.spend.http.{kind} c={concurrency} n={len(samples['on'])} direct_p50_ms={d50:.3f} "
        + " ".join(parts)
        + f" holds_cost_p50_ms={hold_p50:.3f} errors={errors} loadavg={os.getloadavg()[0]:.2f}",
        flush=True,
    )


async def main() -> None:
    if not all(_present(m) for m in ("gateway.spend", "billing.spend_api", "metering.app")):
        print("gateway_spend.skipped reason=gateway spend guard, billing SpendService or metering absent")
        return
    base_env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GATEWAY_", "METERING_", "BILLING_", "FAKEPROVIDER_"))
    }
    procs: list[Proc] = []
    workdir = Path(tempfile.mkdtemp(prefix="bench-gateway-spend-"))
    try:
        provider_port = _free_port()
        provider = Proc(
            "fakeprovider",
            [
                *("-m", "fakeprovider", "--port", str(provider_port), "--name", "bench_provider"),
                *("--api-key", UPSTREAM_KEY, "--completion-tokens", "8"),
            ],
            {**base_env, "FAKEPROVIDER_LOG_LEVEL": "WARNING"},
        )
        procs.append(provider)
        await provider.start()
        provider_url = f"http://127.0.0.1:{provider_port}"
        metering_address = f"127.0.0.1:{_free_port()}"
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
        billing_address = f"127.0.0.1:{_free_port()}"
        _, billing_db = await fresh_database("billing")
        billing = Proc(
            "billing",
            ["-m", "billing"],
            {
                **base_env,
                "BILLING_DATABASE_URL": billing_db,
                "BILLING_GRPC_ADDRESS": billing_address,
                "BILLING_METRICS_PORT": "0",
                "BILLING_LOG_LEVEL": "WARNING",
                "BILLING_METERING_ADDRESS": metering_address,
                "BILLING_MARGIN_WATCH_SECONDS": "0",
                **credentials_env("billing"),
            },
        )
        procs.append(billing)
        await billing.start()
        await _wait_grpc(metering_address, metering)
        await _wait_grpc(billing_address, billing)
        await _billing_setup(billing_address, metering_address)

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
        targets: dict[str, tuple[str, str]] = {
            "direct": (f"{provider_url}/v1/chat/completions", UPSTREAM_KEY)
        }
        for mode in ("off", "on"):
            _, db = await fresh_database("gateway")
            grpc_address = f"127.0.0.1:{_free_port()}"
            http_url = f"http://127.0.0.1:{_free_port()}"
            gw = Proc(
                f"gateway-spend-{mode}",
                ["-m", "gateway"],
                {
                    **base_env,
                    "TOLLGATE_PROVIDER_BENCH_KEY": UPSTREAM_KEY,
                    "GATEWAY_DATABASE_URL": db,
                    "GATEWAY_GRPC_ADDRESS": grpc_address,
                    "GATEWAY_HTTP_ADDRESS": http_url.removeprefix("http://"),
                    "GATEWAY_METRICS_PORT": "0",
                    "GATEWAY_LOG_LEVEL": "WARNING",
                    "GATEWAY_CATALOG_FILE": str(catalog),
                    "GATEWAY_METERING_ADDRESS": metering_address,
                    "GATEWAY_BILLING_ADDRESS": billing_address,
                    "GATEWAY_SPEND_CONTROLS": mode,
                    **credentials_env("gateway"),
                },
            )
            procs.append(gw)
            await gw.start()
            await _wait_grpc(grpc_address, gw)
            secret = await _key(grpc_address)
            await _wait_http(f"{http_url}/v1/models", gw, {"Authorization": f"Bearer {secret}"})
            targets[mode] = (f"{http_url}/v1/chat/completions", secret)
        print(
            "gateway.spend.setup provider=python -m fakeprovider (0 ms, 8 tokens) billing+metering processes;"
            " gateways: GATEWAY_SPEND_CONTROLS=off and =on (cost-plus plan, cap 1,000,000 USD, leases of 50"
            f" holds) cpus={os.cpu_count()} loadavg={' '.join(f'{x:.2f}' for x in os.getloadavg())}",
            flush=True,
        )
        for concurrency, total in ((1, C1_REQUESTS), (64, C64_REQUESTS)):
            await _side_by_side("unary", concurrency, total, targets)
        for mode in ("off", "on"):
            url, secret = targets[mode]
            await _throughput(
                f"gateway.spend.http.rps spend_controls={mode}", url, secret, 64, RPS_SECONDS, LOAD_PROCS
            )
        print(f"gateway.spend.done loadavg={' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
        for p in procs:
            p.check()
    finally:
        for p in reversed(procs):
            await p.stop()
