"""CPU per call of the worker's ``ExecuteModule`` handler, without gRPC: the benchmark's python
step (``Predict("question -> answer")`` bound to ``temperature`` and ``max_tokens``, scripted LM)
called through ``ModuleServicer.ExecuteModule`` in this process, one call at a time, beside the
same module called directly with a per-call LM, as a user would call it in process.

What it prints is what the worker spends on a call above the gRPC server's own share; with
``--profile`` it also prints a pyinstrument profile of the handler (pyinstrument is pinned in
``python/requirements.lock``).

Usage: ``.venv/bin/python python/benchmarks/worker_profile.py [--calls N] [--profile]``.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
import warnings
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
warnings.filterwarnings("ignore", category=DeprecationWarning)

import dspy  # noqa: E402

from dspex_bridge._proto.dspex.v1 import bridge_pb2 as pb  # noqa: E402
from dspex_bridge.worker.in_process import InProcessContext  # noqa: E402
from dspex_bridge.worker.lm import LmConfig, LmFactory  # noqa: E402
from dspex_bridge.worker.module_service import ModuleServicer  # noqa: E402

TOKEN = "profile-token"
SETTINGS = {"temperature": 0.7, "max_tokens": 256}


def create_request() -> pb.CreateModuleRequest:
    """The benchmark's module, as the Rust side creates it."""
    return pb.CreateModuleRequest(
        session_id="session",
        module_id="qa",
        module_class="Predict",
        signature="question -> answer",
        bindings={"temperature": "temperature", "max_tokens": "max_tokens"},
    )


def servicer() -> ModuleServicer:
    service = ModuleServicer("session", TOKEN, LmFactory(LmConfig()), 8, threading.Event())
    service.CreateModule(create_request(), InProcessContext(TOKEN))  # type: ignore[arg-type]
    return service


def request(i: int) -> pb.ExecuteModuleRequest:
    return pb.ExecuteModuleRequest(
        module_id="qa",
        call_id=f"call-{i}",
        inputs={"question": pb.FieldValue(text="What is the capital of France?")},
        bindings=[
            pb.BoundValue(param="temperature", variable="temperature", value=pb.Value(float_value=0.7)),
            pb.BoundValue(param="max_tokens", variable="max_tokens", value=pb.Value(integer_value=256)),
        ],
    )


def cpu_per_call(call: Any, calls: int) -> float:
    """Median over 5 blocks of the CPU time of one call, in microseconds."""
    for i in range(200):
        call(i)
    blocks = []
    for _ in range(5):
        start = time.process_time()
        for i in range(calls):
            call(i)
        blocks.append((time.process_time() - start) / calls * 1e6)
    return sorted(blocks)[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=1000, help="calls per block (default 1000)")
    parser.add_argument("--profile", action="store_true", help="print a pyinstrument profile of the handler")
    args = parser.parse_args()
    factory = LmFactory(LmConfig())
    module = dspy.Predict("question -> answer")

    def direct(i: int) -> None:
        with dspy.context(lm=factory.for_call(None, SETTINGS), trace=[]):
            module(question="What is the capital of France?")

    # The module as a user calls it, before the worker's service exists (which installs the
    # worker's formatting fast path in this process).
    alone = cpu_per_call(direct, args.calls)
    service = servicer()
    context = InProcessContext(TOKEN)
    requests = [request(i) for i in range(16)]

    def handler(i: int) -> None:
        service.ExecuteModule(requests[i % 16], context)  # type: ignore[arg-type]

    print(f"the module called alone CPU per call {alone:7.1f} us (a user's ChatAdapter)")
    print(f"ExecuteModule handler   CPU per call {cpu_per_call(handler, args.calls):7.1f} us")
    if args.profile:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0001)
        profiler.start()
        for i in range(args.calls):
            handler(i)
        profiler.stop()
        print(profiler.output_text(unicode=False, color=False, show_all=False))


if __name__ == "__main__":
    main()
