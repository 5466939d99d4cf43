"""Timing of ``SessionContext.get_variable`` against the real Rust bridge server (the targets
are those of the README's performance table):

- uncached ``get_variable`` (``bypass_cache=True``) beside a bare ``Ping`` to the same server,
  interleaved in the same run: target ratio <= 1.2;
- cached ``get_variable``: target <= 2 us.

Usage: ``.venv/bin/python python/benchmarks/session_timing.py [--rounds N]``. The server is the
optimized ``bridge_server`` of the tests crate (built with ``cargo build --release`` unless
``DSPEX_BRIDGE_SERVER`` names one).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from rust_server import RustServer  # noqa: E402

from dspex_bridge import SessionContext, connect  # noqa: E402
from dspex_bridge._proto.dspex.v1 import bridge_pb2 as pb  # noqa: E402


async def measure(server: RustServer, rounds: int, block: int) -> dict[str, float]:
    ctx = SessionContext(
        server.session_id, connect(server.address), server.token, cache_ttl=3600, close_channel=True
    )
    stub = ctx._stub
    ping_request = pb.PingRequest()
    try:
        # Warm up the channel, the server and both code paths.
        for _ in range(500):
            await stub.Ping(ping_request)
            await ctx.get_variable("temperature", bypass_cache=True)

        ping: list[float] = []
        uncached: list[float] = []
        clock = time.perf_counter_ns
        for _ in range(rounds):
            # Interleaved blocks, so that both see the same machine state.
            for _ in range(block):
                t0 = clock()
                await stub.Ping(ping_request)
                ping.append(clock() - t0)
            for _ in range(block):
                t0 = clock()
                await ctx.get_variable("temperature", bypass_cache=True)
                uncached.append(clock() - t0)

        # Cached: the per-call cost is far below the clock's resolution, so time batches.
        await ctx.get_variable("temperature")
        assert ctx.cached("temperature") is not None
        batch = 1000
        cached: list[float] = []
        for _ in range(200):
            t0 = clock()
            for _ in range(batch):
                await ctx.get_variable("temperature")
            cached.append((clock() - t0) / batch)
    finally:
        await ctx.close()
    return {
        "ping": statistics.median(ping) / 1000,
        "uncached": statistics.median(uncached) / 1000,
        "cached": statistics.median(cached) / 1000,
        "samples": len(ping),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=40, help="interleaved rounds (default 40)")
    parser.add_argument("--block", type=int, default=100, help="calls per block (default 100)")
    args = parser.parse_args()
    server = RustServer.start(release=True)
    try:
        r = asyncio.run(measure(server, args.rounds, args.block))
    finally:
        server.stop()
    ratio = r["uncached"] / r["ping"]
    print(f"machine: {platform.machine()} {platform.processor() or ''}".rstrip())
    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs")
    print(f"samples per uncached series: {int(r['samples'])}")
    print(f"Ping (bare round trip)         median {r['ping']:8.1f} us")
    print(
        f"get_variable uncached          median {r['uncached']:8.1f} us   "
        f"ratio to Ping {ratio:.3f} (target <= 1.2)"
    )
    print(f"get_variable cached            median {r['cached']:8.3f} us   (target <= 2 us)")


if __name__ == "__main__":
    main()
