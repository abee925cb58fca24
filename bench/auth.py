"""What checking a caller costs (common/auth.py), in-process and over a real gRPC round trip.

- auth.verify: turning a bearer token into a principal, for a token seen before (the cache: a SHA-256
  of the token and a dictionary lookup) and for a new one (an Ed25519 signature check through PyJWT).
- auth.authorize: a builder's request scoped to its own builder (the builder field filled in).
- auth.grpc: the same unary call on one loopback server, once through an RPC whose rule skips the
  principal check (as the gateway's API-key door does) and once through an RPC that verifies an operator
  credential and applies its rule: the difference is what authentication adds to a call, at p50.
"""

from __future__ import annotations

import statistics
import tempfile
import time

import grpc

from common.auth import Access, Principal, TrustStore, Verifier, authorize
from common.security import TokenSource, ensure_local_credentials, open_channel
from common.server import start_server
from tollgate.metering.v1 import metering_pb2 as pb
from tollgate.metering.v1 import metering_pb2_grpc

METERING = "tollgate.metering.v1.MeteringService"
ROUNDS = 20_000
CALLS = 3_000


def _per_call_us(fn, rounds: int) -> float:
    start = time.perf_counter()
    for _ in range(rounds):
        fn()
    return (time.perf_counter() - start) / rounds * 1e6


class _Echo(metering_pb2_grpc.MeteringServiceServicer):
    async def GetMeter(self, request, context):
        return pb.GetMeterResponse()

    async def ListMeters(self, request, context):
        return pb.ListMetersResponse()


async def main() -> None:
    creds = ensure_local_credentials(tempfile.mkdtemp(prefix="bench-auth-"))
    verifier = Verifier(TrustStore(creds.trust_file))
    issuer = creds.issuer()
    operator = creds.token("operator")
    verifier.verify(operator)
    cached = _per_call_us(lambda: verifier.verify(operator), ROUNDS)
    fresh_tokens = [issuer.mint("builder", f"b{i}") for i in range(2_000)]
    it = iter(fresh_tokens)
    uncached = _per_call_us(lambda: verifier.verify(next(it)), len(fresh_tokens))
    print(f"auth.verify cached_us={cached:.2f} uncached_us={uncached:.1f} rounds={ROUNDS}", flush=True)

    acme = Principal("builder", "acme", "t", builder_id="acme")
    rule = Access.for_builder("builder_id")
    scoped = _per_call_us(lambda: authorize(acme, rule, pb.ListMetersRequest()), ROUNDS)
    print(f"auth.authorize builder_scoped_us={scoped:.2f} rounds={ROUNDS}", flush=True)

    access = {
        METERING: {
            **{
                m: Access.operator_only() for m in ("CreateMeter", "ArchiveMeter", "QueryUsage", "ListEvents")
            },
            "IngestEvents": Access.operator_only(),
            "GetMeter": Access.gateway_api_key(),  # no principal check: the baseline
            "ListMeters": Access.operator_only(),  # verify the operator and apply the rule
        }
    }

    def register(server: grpc.aio.Server) -> list[str]:
        metering_pb2_grpc.add_MeteringServiceServicer_to_server(_Echo(), server)
        return [METERING]

    running = await start_server(address="127.0.0.1:0", register=register, verifier=verifier, access=access)
    await running.set_serving()
    try:
        async with open_channel(f"127.0.0.1:{running.port}", token=TokenSource(value=operator)) as ch:
            stub = metering_pb2_grpc.MeteringServiceStub(ch)

            async def p50(call, request) -> float:
                for _ in range(200):
                    await call(request, timeout=5)
                samples = []
                for _ in range(CALLS):
                    t0 = time.perf_counter()
                    await call(request, timeout=5)
                    samples.append(time.perf_counter() - t0)
                return statistics.median(samples) * 1e3

            # Interleave the two so machine noise lands on both alike.
            base, authed = [], []
            for _ in range(3):
                base.append(await p50(stub.GetMeter, pb.GetMeterRequest()))
                authed.append(await p50(stub.ListMeters, pb.ListMetersRequest()))
        b, a = statistics.median(base), statistics.median(authed)
        print(
            f"auth.grpc unary_p50_ms_without={b:.3f} unary_p50_ms_with={a:.3f} added_p50_ms={a - b:.3f} "
            f"calls={CALLS}x3 (target: added < 0.1 ms)",
            flush=True,
        )
    finally:
        await running.stop(0)
