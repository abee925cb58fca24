"""The standard gRPC health check from the command line, for container health checks:

    python -m common.healthcheck SERVICE ADDRESS      exit 0 when SERVING, 1 otherwise

With the service's TLS settings in the environment (<SERVICE>_TLS_CA_FILE, and its certificate for mutual
TLS) the probe speaks TLS, expecting the certificate to name SERVICE. The health check needs no credential.
"""

from __future__ import annotations

import asyncio
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from common.security import SecuritySettings, open_channel
from common.settings import Env


async def probe(service: str, address: str, wait_seconds: float = 2.0) -> bool:
    tls = SecuritySettings.from_env(Env(service.upper()), service).client_tls()
    options = [("grpc.ssl_target_name_override", service)] if tls else []
    async with open_channel(address, tls=tls, options=options) as channel:
        try:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=wait_seconds
            )
        except grpc.aio.AioRpcError:
            return False
    return reply.status == health_pb2.HealthCheckResponse.SERVING


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    return 0 if asyncio.run(probe(argv[0], argv[1])) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
