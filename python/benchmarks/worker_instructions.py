"""Instructions per call of a real worker process, counted by valgrind's callgrind: unlike CPU
time, the count does not change with the machine's load, so two versions of the worker can be
compared on a busy machine.

The worker (``python -m dspex_bridge.worker`` with the scripted LM) runs under callgrind and
serves the benchmark's python step (``Predict("question -> answer")`` bound to
``temperature`` and ``max_tokens``) to this process, with ``--concurrency`` calls in flight at
once; after a warm-up, callgrind's counters are dumped after each block of ``--calls`` calls,
and each block's count divided by its calls is printed (user-space instructions of every thread
of the worker: Python, gRPC's core, the libraries; not the kernel's).

Usage: ``.venv/bin/python python/benchmarks/worker_instructions.py [--python PATH] [--calls N]``
(``--python`` is the interpreter the worker runs with, e.g. another checkout's ``.venv``).
It takes minutes: the worker runs about 50 times slower under callgrind.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc.aio

from dspex_bridge._proto.dspex.v1 import bridge_pb2 as pb
from dspex_bridge._proto.dspex.v1 import bridge_pb2_grpc as pb_grpc
from dspex_bridge.contract import ENV_SESSION_ID, ENV_SESSION_TOKEN, READY_PREFIX, TOKEN_METADATA
from dspex_bridge.worker.lm import LmConfig
from dspex_bridge.worker.server import encode_config
from worker_profile import create_request, request  # the benchmark's module and calls

TOKEN = "instructions-token"
METADATA = ((TOKEN_METADATA, TOKEN),)
#: Seconds to let callgrind act on a dump request before the next block starts.
DUMP_PAUSE = 3.0


async def calls(stub: pb_grpc.ModuleServiceStub, concurrency: int, count: int) -> None:
    async def one_lane(lane: int) -> None:
        for i in range(lane, count, concurrency):
            await stub.ExecuteModule(request(i), metadata=METADATA)

    await asyncio.gather(*(one_lane(lane) for lane in range(concurrency)))


def dumped_instructions(out: Path, label: str) -> int:
    """The instruction count of the dump callgrind wrote for `label` (waits for it)."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        for path in out.parent.glob(out.name + ".*"):
            text = path.read_text(errors="replace")
            if f"Trigger: dump {label}\n" in text:
                match = re.search(r"^(?:summary|totals): (\d+)", text, re.M)
                if match:
                    return int(match[1])
        time.sleep(1)
    raise TimeoutError(f"callgrind wrote no dump {label!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--python", default=sys.executable, help="the worker's interpreter (default: this one)")
    parser.add_argument("--calls", type=int, default=300, help="calls per block (default 300)")
    parser.add_argument("--blocks", type=int, default=3, help="blocks (default 3)")
    parser.add_argument("--concurrency", type=int, default=64, help="calls in flight (default 64)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        env = {
            **os.environ,
            ENV_SESSION_ID: "session",
            ENV_SESSION_TOKEN: TOKEN,
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "DSPEX_WORKER_LOG": "WARNING",
        }
        worker = subprocess.Popen(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}.%p", args.python, "-m", "dspex_bridge.worker"],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        try:
            assert worker.stdin is not None and worker.stdout is not None
            config = pb.WorkerConfig(lm=LmConfig().to_proto(), max_concurrent_calls=args.concurrency)
            worker.stdin.write(encode_config(config))
            worker.stdin.flush()
            line = worker.stdout.readline().decode()
            if not line.startswith(READY_PREFIX):
                raise RuntimeError(f"the worker did not start: {line!r}")
            ready = pb.WorkerReady.FromString(bytes.fromhex(line[len(READY_PREFIX) :].strip()))

            def dump(label: str) -> int:
                subprocess.run(["callgrind_control", "-d", label, str(worker.pid)], check=True, capture_output=True)
                return dumped_instructions(out, label)

            async def measure() -> list[float]:
                async with grpc.aio.insecure_channel(f"127.0.0.1:{ready.port}") as channel:
                    stub = pb_grpc.ModuleServiceStub(channel)
                    await stub.CreateModule(create_request(), metadata=METADATA)
                    await calls(stub, args.concurrency, 200)
                    dump("warm-up")
                    per_call = []
                    for block in range(args.blocks):
                        await asyncio.sleep(DUMP_PAUSE)
                        await calls(stub, args.concurrency, args.calls)
                        await asyncio.sleep(DUMP_PAUSE)
                        per_call.append(dump(f"block-{block}") / args.calls)
                    return per_call

            per_call = asyncio.run(measure())
        finally:
            worker.kill()
            worker.wait()
    print(f"worker ({args.python}), {args.concurrency} calls in flight: instructions per call by block")
    print("  ".join(f"{count / 1e6:.3f} M" for count in per_call))
    print(f"median {sorted(per_call)[len(per_call) // 2] / 1e6:.3f} M")


if __name__ == "__main__":
    main()
