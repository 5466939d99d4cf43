"""CPU per call of the ways a Python gRPC server can serve a unary call, each answering
``ModuleService.Health`` with an empty message at once, so that only the server's own work is
measured: gRPC's threaded server (what the worker runs), ``grpc.aio`` with a coroutine handler,
``grpc.aio`` handing each call to a thread and back (``run_in_executor``), and ``grpc.aio``
running a synchronous handler on its thread pool.

Each server runs in a process of its own; this process calls it with ``--concurrency`` calls in
flight (a ``grpc.aio`` client) and reads the server's CPU time from ``/proc``. The servers are
measured in turn, ``--rounds`` times, so that each figure has the others' machine state.

Usage: ``.venv/bin/python python/benchmarks/grpc_servers.py [--calls N] [--rounds R]`` (Linux).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import grpc.aio

from dspex_bridge._proto.dspex.v1 import bridge_pb2 as pb
from dspex_bridge._proto.dspex.v1 import bridge_pb2_grpc as pb_grpc

#: The servers, by name.
SERVERS = ("threaded", "aio", "aio-to-thread", "aio-sync-handler")
#: Threads of the servers' pools (as a worker's for 64 calls).
POOL_THREADS = 132


class Threaded(pb_grpc.ModuleServiceServicer):  # type: ignore[misc]
    def Health(self, request: pb.HealthRequest, context: Any) -> pb.HealthResponse:
        return pb.HealthResponse()


class Coroutine(pb_grpc.ModuleServiceServicer):  # type: ignore[misc]
    async def Health(self, request: pb.HealthRequest, context: Any) -> pb.HealthResponse:
        return pb.HealthResponse()


class ToThread(pb_grpc.ModuleServiceServicer):  # type: ignore[misc]
    def __init__(self, pool: ThreadPoolExecutor) -> None:
        self.pool = pool

    async def Health(self, request: pb.HealthRequest, context: Any) -> pb.HealthResponse:
        await asyncio.get_running_loop().run_in_executor(self.pool, pb.HealthResponse)
        return pb.HealthResponse()


def serve(kind: str) -> None:
    """Serves `kind` and prints its port."""
    pool = ThreadPoolExecutor(POOL_THREADS)
    if kind == "threaded":
        server = grpc.server(pool)
        pb_grpc.add_ModuleServiceServicer_to_server(Threaded(), server)
        print(server.add_insecure_port("127.0.0.1:0"), flush=True)
        server.start()
        server.wait_for_termination()
        return

    async def main() -> None:
        servicer = {"aio": Coroutine(), "aio-to-thread": ToThread(pool), "aio-sync-handler": Threaded()}[kind]
        server = grpc.aio.server(migration_thread_pool=pool)
        pb_grpc.add_ModuleServiceServicer_to_server(servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        print(port, flush=True)
        await server.wait_for_termination()

    asyncio.run(main())


def cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def calls(port: int, concurrency: int, count: int) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.ModuleServiceStub(channel)

        async def lane(first: int) -> None:
            for _ in range(first, count, concurrency):
                await stub.Health(pb.HealthRequest())

        await asyncio.gather(*(lane(i) for i in range(concurrency)))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=3000, help="calls per measurement (default 3000)")
    parser.add_argument("--rounds", type=int, default=3, help="measurements of each server (default 3)")
    parser.add_argument("--concurrency", type=int, default=64, help="calls in flight (default 64)")
    parser.add_argument("--serve", choices=SERVERS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    servers = {}
    for kind in SERVERS:
        process = subprocess.Popen([sys.executable, __file__, "--serve", kind], stdout=subprocess.PIPE)
        assert process.stdout is not None
        servers[kind] = (process, int(process.stdout.readline()))
    try:
        figures: dict[str, list[float]] = {kind: [] for kind in SERVERS}
        for kind, (_, port) in servers.items():
            asyncio.run(calls(port, args.concurrency, 500))
        for _ in range(args.rounds):
            for kind, (process, port) in servers.items():
                before = cpu_seconds(process.pid)
                asyncio.run(calls(port, args.concurrency, args.calls))
                figures[kind].append((cpu_seconds(process.pid) - before) / args.calls * 1e6)
    finally:
        for process, _ in servers.values():
            process.kill()
            process.wait()
    print(f"server CPU per call answering an empty Health, {args.concurrency} calls in flight (us, by round)")
    for kind, values in figures.items():
        print(f"{kind:18} median {sorted(values)[len(values) // 2]:6.0f}   " + "  ".join(f"{v:.0f}" for v in values))


if __name__ == "__main__":
    main()
