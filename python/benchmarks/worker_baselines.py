"""The Python baselines of the worker benchmark (``cargo bench -p dspex --bench worker`` starts
this script and measures against it in the same run):

- the floor: a bare ``grpc.aio`` server whose ``ModuleService.Health`` handler does nothing and
  answers an empty message, for a tonic -> grpc.aio unary round trip;
- the same module as the benchmark's python step (``Predict("question -> answer")`` with the
  worker's scripted LM, ``temperature`` and ``max_tokens`` set per call) called directly in this
  process, one call at a time;
- the same module called from many Python threads at once in this process, for throughput.

Protocol: it prints ``{"port": PORT}`` once the server listens, then answers one JSON line per
command read from stdin (one JSON object per line):

- ``{"op": "direct", "calls": N}`` -> ``{"samples_us": [...]}``: N calls one after the other;
- ``{"op": "threads", "threads": T, "calls": N}`` -> ``{"seconds": S, "calls": N}``: N calls
  spread over T threads, wall time.

It exits at the end of stdin.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
warnings.filterwarnings("ignore", category=DeprecationWarning)

import dspy  # noqa: E402
import grpc.aio  # noqa: E402

from dspex_bridge._proto.dspex.v1 import bridge_pb2 as pb  # noqa: E402
from dspex_bridge._proto.dspex.v1 import bridge_pb2_grpc as pb_grpc  # noqa: E402
from dspex_bridge.worker.lm import LmConfig, LmFactory  # noqa: E402

SETTINGS = {"temperature": 0.7, "max_tokens": 256}


class EmptyModuleService(pb_grpc.ModuleServiceServicer):
    """Health answers an empty message at once: nothing but the gRPC round trip."""

    async def Health(self, request: pb.HealthRequest, context: Any) -> pb.HealthResponse:
        return pb.HealthResponse()


def serve_in_background() -> int:
    ready: dict[str, int] = {}
    started = threading.Event()

    async def main() -> None:
        server = grpc.aio.server()
        pb_grpc.add_ModuleServiceServicer_to_server(EmptyModuleService(), server)
        ready["port"] = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        started.set()
        await server.wait_for_termination()

    threading.Thread(target=asyncio.run, args=(main(),), daemon=True).start()
    started.wait()
    return ready["port"]


class Module:
    """The benchmark's module and the worker's scripted LM, used as a DSPy user would: the LM
    configured once (with the settings), the module called directly."""

    def __init__(self) -> None:
        lm = LmFactory(LmConfig(model="gpt-4o-mini", settings=SETTINGS)).build()
        dspy.configure(lm=lm)
        self.module = dspy.Predict("question -> answer")

    def __call__(self, question: str) -> Any:
        return self.module(question=question)


def direct(module: Module, calls: int) -> dict[str, Any]:
    samples = []
    for i in range(calls):
        started = time.perf_counter()
        module(f"What is DSPy? ({i})")
        samples.append((time.perf_counter() - started) * 1e6)
    return {"samples_us": samples}


def threads(module: Module, count: int, calls: int) -> dict[str, Any]:
    with ThreadPoolExecutor(max_workers=count) as pool:
        list(pool.map(lambda i: module(f"q{i}"), range(count)))  # every thread started
        started = time.perf_counter()
        list(pool.map(lambda i: module(f"What is DSPy? ({i})"), range(calls)))
        return {"seconds": time.perf_counter() - started, "calls": calls}


def main() -> None:
    port = serve_in_background()
    module = Module()
    direct(module, 30)
    print(json.dumps({"port": port}), flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        if command["op"] == "direct":
            reply = direct(module, command["calls"])
        elif command["op"] == "threads":
            reply = threads(module, command["threads"], command["calls"])
        else:
            reply = {"error": f"unknown op {command['op']!r}"}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
