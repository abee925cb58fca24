"""Run the benchmarks of every context that has one, in order, or those named on the command line.

Each bench/<context>.py has `async def main() -> None` that prints its figures. They use
TEST_DATABASE_URL's server when set, else the embedded PostgreSQL under .tollgate/bench-pg.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import sys

ORDER = ["auth", "metering", "gateway", "gateway_spend", "billing", "payouts"]


def main(argv: list[str]) -> int:
    names = argv or [n for n in ORDER if importlib.util.find_spec(f"bench.{n}") is not None]
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        print(f"== bench: {name} ==", flush=True)
        asyncio.run(module.main())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
