"""The worker process (``python -m dspex_bridge.worker``) against a real session store: it
serves ModuleService, runs real DSPy modules bound to session variables, reports the LM
settings each call really used, refuses callers without the token, and exits when asked, on
SIGTERM, or when its stdin closes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import grpc.aio
import pytest

from dspex_bridge import SessionContext
from dspex_bridge._proto.dspex.v1 import bridge_pb2 as pb
from dspex_bridge._proto.dspex.v1 import bridge_pb2_grpc as pb_grpc
from dspex_bridge.worker import READY_PREFIX

HERE = Path(__file__).parent


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    port: int
    stub: pb_grpc.ModuleServiceStub
    channel: grpc.aio.Channel
    token: str

    def metadata(self, token: str | None = None) -> tuple[tuple[str, str], ...]:
        return (("x-dspex-token", self.token if token is None else token),)


def start_worker(session: SessionContext, address: str, lm: dict | None = None) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DSPEX_STORE_ADDR": address,
        "DSPEX_SESSION_ID": session.session_id,
        "DSPEX_SESSION_TOKEN": session.token,
        "DSPEX_LM": json.dumps(lm or {"kind": "scripted", "model": "gpt-4o-mini"}),
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        # Lets the worker import the custom modules of this test directory by dotted path.
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "dspex_bridge.worker"],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def read_ready(process: subprocess.Popen[bytes]) -> dict:
    assert process.stdout is not None
    line = process.stdout.readline().decode()
    if not line.startswith(READY_PREFIX):
        stderr = process.stderr.read().decode() if process.stderr else ""
        raise AssertionError(f"worker not ready: {line!r}\n{stderr}")
    return json.loads(line[len(READY_PREFIX) :])


@pytest.fixture
async def worker(session: SessionContext, server) -> AsyncIterator[Worker]:
    process = start_worker(session, server.address)
    try:
        ready = read_ready(process)
        assert ready["pid"] == process.pid
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{ready['port']}")
        yield Worker(process, ready["port"], pb_grpc.ModuleServiceStub(channel), channel, session.token)
        await channel.close()
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


async def create(worker: Worker, session: SessionContext, module_id: str, cls: str, signature: str, **kw):
    request = pb.CreateModuleRequest(
        session_id=session.session_id,
        module_id=module_id,
        module_class=cls,
        signature=signature,
        bindings=kw.pop("bindings", {}),
        config=kw.pop("config", {}),
    )
    return await worker.stub.CreateModule(request, metadata=worker.metadata())


async def execute(worker: Worker, module_id: str, **inputs: str) -> pb.ExecuteModuleResponse:
    request = pb.ExecuteModuleRequest(module_id=module_id, inputs=inputs)
    return await worker.stub.ExecuteModule(request, metadata=worker.metadata())


async def test_runs_bound_modules_and_reports_the_settings_really_used(worker, session):
    health = await worker.stub.Health(pb.HealthRequest(), metadata=worker.metadata())
    assert health.ready and health.pid == worker.process.pid and health.dspy_version
    await session.register_variable("temperature", "float", 0.7, constraints={"min": 0.0, "max": 2.0})
    await session.register_variable("max_tokens", "integer", 256, constraints={"min": 1, "max": 4096})
    await session.register_variable(
        "model", "choice", "gpt-4o-mini", constraints={"choices": ["gpt-4o-mini", "claude-3-haiku"]}
    )
    created = await create(
        worker, session, "answer", "ChainOfThought", "question -> answer",
        bindings={"temperature": "temperature", "max_tokens": "max_tokens", "model": "model"},
    )
    assert created.resolved_class == "VariableAwareChainOfThought"

    reply = await execute(worker, "answer", question="What is DSPy?")
    assert reply.outputs["answer"] == "[scripted answer] What is DSPy?"
    assert reply.outputs["reasoning"].startswith("[scripted reasoning]")
    (call,) = reply.lm_calls
    assert (call.model, call.temperature, call.max_tokens) == ("gpt-4o-mini", 0.7, 256)

    await session.set_variable("temperature", 1.5)
    await session.set_variable("model", "claude-3-haiku")
    (call,) = (await execute(worker, "answer", question="again")).lm_calls
    assert (call.model, call.temperature, call.max_tokens) == ("claude-3-haiku", 1.5, 256)


async def test_every_known_module_runs_offline(worker, session):
    await create(worker, session, "p", "Predict", "question -> answer")
    await create(worker, session, "r", "ReAct", "question -> answer")
    await create(
        worker, session, "pot", "ProgramOfThought", "question -> answer",
        config={"interpreter": pb.Value(string_value="local")},
    )
    await create(worker, session, "custom", "sample_modules.Shouter", "text -> loud")
    for module_id in ("p", "r", "pot"):
        reply = await execute(worker, module_id, question="What is 2 + 2?")
        assert reply.outputs["answer"], module_id
        assert reply.lm_calls, module_id
    assert (await execute(worker, "custom", text="hi")).outputs["loud"] == "HI"


async def test_bad_requests_get_clear_errors(worker, session):
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await create(worker, session, "x", "ChainOfThougt", "question -> answer")
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "unknown DSPy module class 'ChainOfThougt'" in e.value.details()

    await create(worker, session, "boom", "sample_modules.Exploding", "question -> answer")
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await execute(worker, "boom", question="q")
    assert e.value.code() == grpc.StatusCode.UNKNOWN
    assert e.value.details() == "RuntimeError: the module exploded on 'q'"

    with pytest.raises(grpc.aio.AioRpcError) as e:
        await execute(worker, "never-created", question="q")
    assert e.value.code() == grpc.StatusCode.NOT_FOUND

    await create(worker, session, "unbound", "Predict", "question -> answer", bindings={"temperature": "missing"})
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await execute(worker, "unbound", question="q")
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "'missing' not found" in e.value.details()


async def test_callers_without_the_token_are_refused(worker, session):
    for token in ("", "0" * 64):
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await worker.stub.Health(pb.HealthRequest(), metadata=worker.metadata(token))
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await worker.stub.CreateModule(
            pb.CreateModuleRequest(session_id="another-session", module_id="m", module_class="Predict", signature="a -> b"),
            metadata=worker.metadata(),
        )
    assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_shutdown_stops_the_worker(worker):
    await worker.stub.Shutdown(pb.ShutdownRequest(), metadata=worker.metadata())
    assert worker.process.wait(timeout=15) == 0


def test_sigterm_and_closed_stdin_stop_the_worker(session, server):
    for stop in ("sigterm", "stdin"):
        process = start_worker(session, server.address)
        try:
            read_ready(process)
            if stop == "sigterm":
                process.send_signal(signal.SIGTERM)
            else:
                assert process.stdin is not None
                process.stdin.close()
            assert process.wait(timeout=15) == 0, stop
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


def test_a_missing_dependency_is_one_clear_line(session, server, tmp_path):
    # An interpreter that can import dspex_bridge but nothing else of the environment.
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(Path(__file__).parents[1]),
        "DSPEX_STORE_ADDR": server.address,
        "DSPEX_SESSION_ID": session.session_id,
        "DSPEX_SESSION_TOKEN": session.token,
    }
    result = subprocess.run(
        [sys.executable, "-S", "-m", "dspex_bridge.worker"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 3, result.stderr
    (line,) = result.stderr.strip().splitlines()
    interpreter = os.path.normpath(sys.executable)
    assert line == f"dspex worker: {interpreter} could not import dspy: No module named 'dspy'"
