"""Timing of a Rust tool called by a Python agent, against the real Rust bridge server (the
target is that of the README's performance table):

- the worker's ``dspy.Tool`` for the Rust tool ``echo`` called as a ``ReAct`` step calls it
  (``tool(text=...)``: DSPy's argument check, JSON, ``CallbackService.Call`` with the session's
  token, the tool run on the Rust side, the answer decoded), beside
- a bare ``Ping`` to the same server over the same kind of channel (sync gRPC, as the worker's),

interleaved in the same run: target ratio <= 1.5. Two more series: the ``CallbackService``
call alone (``CallbackClient.call``), and the path as it was before, for comparison: a plain
``dspy.Tool`` (DSPy's JSON-schema check of the arguments) calling ``pooled_echo``, the same
tool without ``inline`` (handed to the runtime's blocking threads).

Usage: ``.venv/bin/python python/benchmarks/tool_timing.py [--rounds N] [--block N]``. The server
is the optimized ``bridge_server`` of the tests crate (built with ``cargo build --release``
unless ``DSPEX_BRIDGE_SERVER`` names one).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import dspy  # noqa: E402
import grpc  # noqa: E402
from rust_server import RustServer  # noqa: E402

from dspex_bridge._proto.dspex.v1 import bridge_pb2 as pb  # noqa: E402
from dspex_bridge._proto.dspex.v1 import bridge_pb2_grpc as pb_grpc  # noqa: E402
from dspex_bridge.worker.tools import CallbackClient, rust_tool  # noqa: E402


def spec(name: str) -> pb.RustTool:
    return pb.RustTool(
        name=name,
        description="Returns text.",
        arguments=[pb.ToolArgument(name="text", type="str", json_schema=json.dumps({"type": "string"}), required=True)],
    )


def checked_tool(tool: dspy.Tool) -> dspy.Tool:
    """`tool` as a plain ``dspy.Tool``, which checks its arguments against their schema."""
    return dspy.Tool(tool.func, name=tool.name, desc=tool.desc, args=tool.args, arg_types={})


def measure(server: RustServer, rounds: int, block: int) -> dict[str, float]:
    client = CallbackClient(server.address, server.session_id, server.token)
    tool = rust_tool(spec("echo"), client, lambda: None)
    before = checked_tool(rust_tool(spec("pooled_echo"), client, lambda: None))
    channel = grpc.insecure_channel(server.address)
    ping = pb_grpc.SessionServiceStub(channel).Ping
    request = pb.PingRequest()
    for _ in range(500):
        ping(request)
        assert tool(text="hello") == "hello"
        assert before(text="hello") == "hello"
    pings: list[float] = []
    calls: list[float] = []
    rpcs: list[float] = []
    befores: list[float] = []
    clock = time.perf_counter_ns
    for _ in range(rounds):
        # Interleaved blocks, so that both see the same machine state.
        for _ in range(block):
            t0 = clock()
            ping(request)
            pings.append(clock() - t0)
        for _ in range(block):
            t0 = clock()
            tool(text="hello")
            calls.append(clock() - t0)
        for _ in range(block):
            t0 = clock()
            client.call("echo", {"text": "hello"}, "")
            rpcs.append(clock() - t0)
        for _ in range(block):
            t0 = clock()
            before(text="hello")
            befores.append(clock() - t0)
    channel.close()
    return {
        "ping": statistics.median(pings) / 1000,
        "tool": statistics.median(calls) / 1000,
        "rpc": statistics.median(rpcs) / 1000,
        "before": statistics.median(befores) / 1000,
        "samples": len(calls),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=40, help="interleaved rounds (default 40)")
    parser.add_argument("--block", type=int, default=100, help="calls per block (default 100)")
    args = parser.parse_args()
    server = RustServer.start(release=True)
    try:
        r = measure(server, args.rounds, args.block)
    finally:
        server.stop()
    print(f"machine: {platform.machine()} {platform.processor() or ''}".rstrip())
    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs")
    print(f"samples per series: {int(r['samples'])}")
    print(f"Ping (bare round trip)            median {r['ping']:8.1f} us")
    print(
        f"Rust tool call from a dspy.Tool   median {r['tool']:8.1f} us   "
        f"ratio to Ping {r['tool'] / r['ping']:.3f} (target <= 1.5)"
    )
    print(
        f"the CallbackService call alone   median {r['rpc']:8.1f} us   "
        f"ratio to Ping {r['rpc'] / r['ping']:.3f} (no dspy.Tool)"
    )
    print(
        f"before: checked dspy.Tool, pooled  median {r['before']:8.1f} us   "
        f"ratio to Ping {r['before'] / r['ping']:.3f} (DSPy's argument check, blocking threads)"
    )


if __name__ == "__main__":
    main()
