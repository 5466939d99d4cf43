"""The worker process (``python -m dspex_bridge.worker``), driven over gRPC as its Rust
supervisor drives it: configured on stdin, ready on a typed readiness line, running real DSPy
modules with the values each call carries (never reading them from the store), many calls at
once up to its limit, typed fields both ways, bounded error messages, flat histories; it refuses
callers without the token and exits when asked, on SIGTERM, or when its stdin closes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest

from dspex_bridge import SessionContext, contract
from dspex_bridge._proto.dspex.v1 import bridge_pb2 as pb
from dspex_bridge._proto.dspex.v1 import bridge_pb2_grpc as pb_grpc
from dspex_bridge.contract import LIMITS, READY_PREFIX
from dspex_bridge.worker.lm import LmConfig
from dspex_bridge.values import to_proto_value
from dspex_bridge.worker.server import encode_config

HERE = Path(__file__).parent

#: How long a test waits for a condition it polls (a liveness bound, not a timing assertion).
DEADLINE = 60.0


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    ready: pb.WorkerReady
    stub: pb_grpc.ModuleServiceStub
    channel: grpc.aio.Channel
    token: str
    session_id: str

    def metadata(self, token: str | None = None) -> tuple[tuple[str, str], ...]:
        return (("x-dspex-token", self.token if token is None else token),)


def worker_env(session: SessionContext, address: str) -> dict[str, str]:
    return {
        **os.environ,
        "DSPEX_STORE_ADDR": address,
        "DSPEX_SESSION_ID": session.session_id,
        "DSPEX_SESSION_TOKEN": session.token,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        # Lets the worker import the custom modules of this test directory by dotted path.
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    }


def start_worker(
    session: SessionContext,
    address: str,
    lm: LmConfig | None = None,
    max_concurrent_calls: int = 0,
    config: bytes | None = None,
) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "dspex_bridge.worker"],
        env=worker_env(session, address),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    if config is None:
        message = pb.WorkerConfig(
            lm=(lm or LmConfig(model="gpt-4o-mini")).to_proto(), max_concurrent_calls=max_concurrent_calls
        )
        config = encode_config(message)
    assert process.stdin is not None
    process.stdin.write(config)
    process.stdin.flush()
    return process


def read_ready(process: subprocess.Popen[bytes]) -> pb.WorkerReady:
    """The worker's readiness report; from then on its stderr is drained in the background (a
    full pipe would block its logging)."""
    assert process.stdout is not None
    line = process.stdout.readline().decode()
    if not line.startswith(READY_PREFIX):
        stderr = process.stderr.read().decode() if process.stderr else ""
        raise AssertionError(f"worker not ready: {line!r}\n{stderr}")
    if process.stderr is not None:
        threading.Thread(target=process.stderr.read, daemon=True).start()
    return pb.WorkerReady.FromString(bytes.fromhex(line[len(READY_PREFIX) :].strip()))


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
    process.wait(timeout=10)


@pytest.fixture
async def spawn(session: SessionContext, server: Any) -> AsyncIterator[Callable[..., Awaitable[Worker]]]:
    """Starts workers on the test's session (``await spawn(lm=..., max_concurrent_calls=...)``)
    and stops them after the test."""
    started: list[Worker] = []

    async def start(**kwargs: Any) -> Worker:
        process = start_worker(session, server.address, **kwargs)
        try:
            ready = read_ready(process)
        except BaseException:
            stop(process)
            raise
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{ready.port}")
        worker = Worker(process, ready, pb_grpc.ModuleServiceStub(channel), channel, session.token, session.session_id)
        started.append(worker)
        return worker

    try:
        yield start
    finally:
        for worker in started:
            await worker.channel.close()
            stop(worker.process)


@pytest.fixture
async def worker(spawn: Callable[..., Awaitable[Worker]]) -> Worker:
    return await spawn()


async def create(worker: Worker, module_id: str, cls: str, signature: str, **kw: Any) -> pb.CreateModuleResponse:
    config = {k: v if isinstance(v, pb.ConfigValue) else _config(v) for k, v in kw.pop("config", {}).items()}
    request = pb.CreateModuleRequest(
        session_id=worker.session_id,
        module_id=module_id,
        module_class=cls,
        signature=signature,
        bindings=kw.pop("bindings", {}),
        config=config,
    )
    response: pb.CreateModuleResponse = await worker.stub.CreateModule(request, metadata=worker.metadata())
    return response


def _config(value: Any) -> pb.ConfigValue:
    from dspex_bridge.values import to_config_value

    return to_config_value(value)


def text(value: str) -> pb.FieldValue:
    return pb.FieldValue(text=value)


def bound(**values: Any) -> list[pb.BoundValue]:
    """Bindings of parameters to same-named variables, at version 1."""
    return [pb.BoundValue(param=k, variable=k, version=1, value=to_proto_value(v)) for k, v in values.items()]


async def execute(
    worker: Worker,
    module_id: str,
    bindings: list[pb.BoundValue] | None = None,
    call_id: str = "call-1",
    **inputs: pb.FieldValue | str,
) -> pb.ExecuteModuleResponse:
    request = pb.ExecuteModuleRequest(
        module_id=module_id,
        inputs={k: text(v) if isinstance(v, str) else v for k, v in inputs.items()},
        bindings=bindings or [],
        call_id=call_id,
    )
    response: pb.ExecuteModuleResponse = await worker.stub.ExecuteModule(request, metadata=worker.metadata())
    return response


def kind(error: grpc.aio.AioRpcError) -> str:
    return dict(error.trailing_metadata() or ()).get("x-dspex-error", "")


async def health(worker: Worker) -> pb.HealthResponse:
    response: pb.HealthResponse = await worker.stub.Health(pb.HealthRequest(), metadata=worker.metadata())
    return response


async def wait_for_in_flight(worker: Worker, count: int, tasks: list[asyncio.Task[Any]]) -> int:
    """Polls the worker's health until `count` calls are in flight at once (or the tasks are all
    done); returns the most seen."""
    most = 0
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline and not all(t.done() for t in tasks):
        most = max(most, (await health(worker)).calls_in_flight)
        if most >= count:
            break
        await asyncio.sleep(0.01)
    return most


async def test_the_readiness_line_is_a_typed_report(worker: Worker) -> None:
    assert worker.ready.pid == worker.process.pid
    assert worker.ready.port > 0
    assert worker.ready.dspy_version and worker.ready.python_version
    assert worker.ready.max_concurrent_calls == LIMITS["DEFAULT_MAX_CONCURRENT_CALLS"]
    status = await health(worker)
    assert status.ready and status.pid == worker.process.pid and status.dspy_version == worker.ready.dspy_version


async def test_each_call_runs_with_the_values_it_carries(worker: Worker) -> None:
    created = await create(
        worker, "answer", "ChainOfThought", "question -> answer",
        bindings={"temperature": "temperature", "max_tokens": "max_tokens", "model": "model"},
    )
    assert created.resolved_class == "ChainOfThought"

    reply = await execute(
        worker, "answer", bound(temperature=0.7, max_tokens=256, model="gpt-4o-mini"), question="What is DSPy?"
    )
    assert reply.outputs["answer"].text == "[scripted answer] What is DSPy?"
    assert reply.outputs["reasoning"].text.startswith("[scripted reasoning]")
    (call,) = reply.lm_calls
    assert (call.model, call.temperature, call.max_tokens) == ("gpt-4o-mini", 0.7, 256)
    # The scripted LM reports token usage.
    assert call.prompt_tokens > 0 and call.completion_tokens > 0

    (call,) = (
        await execute(worker, "answer", bound(temperature=1.5, max_tokens=64, model="claude-3-haiku"), question="q")
    ).lm_calls
    assert (call.model, call.temperature, call.max_tokens) == ("claude-3-haiku", 1.5, 64)
    # Nothing sticks to the module: the next call has its own values.
    (call,) = (
        await execute(worker, "answer", bound(temperature=0.0, max_tokens=8, model="gpt-4o-mini"), question="q")
    ).lm_calls
    assert (call.model, call.temperature, call.max_tokens) == ("gpt-4o-mini", 0.0, 8)


async def test_each_lm_call_reports_when_it_went_out_and_when_its_reply_came(worker: Worker) -> None:
    await create(worker, "timed", "ChainOfThought", "question -> answer")
    before = time.time_ns()
    reply = await execute(worker, "timed", question="What is DSPy?")
    after = time.time_ns()
    (call,) = reply.lm_calls
    assert call.HasField("start_unix_nano") and call.HasField("end_unix_nano")
    assert before <= call.start_unix_nano <= call.end_unix_nano <= after


async def test_other_parameters_are_keyword_arguments_of_the_call(worker: Worker) -> None:
    await create(worker, "kw", "sample_modules.Kwargs", "text -> seen", bindings={"style": "style", "k": "k"})
    reply = await execute(worker, "kw", bound(style="terse", k=3), text="hi")
    assert json.loads(reply.outputs["seen"].text) == {"k": 3, "style": "terse"}
    # ReAct's forward takes `max_iters`: none at all leaves only the final extraction.
    await create(worker, "react", "ReAct", "question -> answer", bindings={"max_iters": "max_iters"})
    full = await execute(worker, "react", bound(max_iters=5), question="q")
    none = await execute(worker, "react", bound(max_iters=0), question="q")
    assert (len(full.lm_calls), len(none.lm_calls)) == (2, 1)


async def test_bindings_must_match_the_module(worker: Worker) -> None:
    await create(worker, "p", "Predict", "question -> answer", bindings={"temperature": "temperature"})
    cases = [
        ([], "no value for the bound parameter(s) temperature"),
        (bound(temperature=0.5, top_p=0.9), "binds parameter `top_p` to `top_p`, but the module has no such parameter"),
        (
            [pb.BoundValue(param="temperature", variable="other", version=1, value=to_proto_value(0.5))],
            "it is bound to `temperature`",
        ),
    ]
    for bindings, message in cases:
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await execute(worker, "p", bindings, question="q")
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert kind(e.value) == "ERROR_KIND_INVALID_REQUEST"
        assert message in (e.value.details() or ""), e.value.details()
    # A known module takes the parameters the contract's table lists, no other.
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await create(worker, "q", "Predict", "question -> answer", bindings={"style": "style"})
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert kind(e.value) == "ERROR_KIND_MODULE"
    assert "Predict takes no parameter `style`; it takes max_tokens, model, n, temperature, top_p" in (
        e.value.details() or ""
    )


async def test_concurrent_calls_of_one_module_never_see_each_others_values(spawn: Callable[..., Awaitable[Worker]]) -> None:
    worker = await spawn(lm=LmConfig(model="gpt-4o-mini", delay_ms=1500))
    await create(worker, "p", "Predict", "question -> answer", bindings={"temperature": "temperature"})
    temperatures = [round(0.05 * i, 2) for i in range(32)]
    tasks = [
        asyncio.create_task(execute(worker, "p", bound(temperature=t), call_id=f"c{i}", question=f"q{i}"))
        for i, t in enumerate(temperatures)
    ]
    # All 32 run at once: no module-wide lock.
    assert await wait_for_in_flight(worker, 32, tasks) == 32
    replies = await asyncio.gather(*tasks)
    for i, (t, reply) in enumerate(zip(temperatures, replies, strict=True)):
        (call,) = reply.lm_calls
        assert call.temperature == t
        assert reply.outputs["answer"].text == f"[scripted answer] q{i}"
    assert (await health(worker)).calls_served == 32


async def test_a_call_over_the_limit_is_refused_and_one_at_the_limit_runs(spawn: Callable[..., Awaitable[Worker]]) -> None:
    worker = await spawn(lm=LmConfig(model="m", delay_ms=3000), max_concurrent_calls=2)
    assert worker.ready.max_concurrent_calls == 2
    await create(worker, "p", "Predict", "question -> answer")
    tasks = [asyncio.create_task(execute(worker, "p", question=f"q{i}")) for i in range(2)]
    assert await wait_for_in_flight(worker, 2, tasks) == 2
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await execute(worker, "p", question="one too many")
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert kind(e.value) == "ERROR_KIND_LIMIT"
    assert "max_concurrent_calls = 2" in (e.value.details() or "")
    for reply in await asyncio.gather(*tasks):
        assert reply.outputs["answer"].text.startswith("[scripted answer] q")
    # The refused call was not run; once a place is free, calls run again.
    assert (await execute(worker, "p", question="again")).outputs["answer"].text == "[scripted answer] again"
    status = await health(worker)
    assert (status.calls_in_flight, status.calls_served) == (0, 3)


async def test_fields_travel_typed_both_ways(worker: Worker) -> None:
    signature = (
        "question: str, k: int, weights: list[float], opts: dict -> score: float, tags: list[str], "
        "label: Literal['a', 'b'], meta: dict, ok: bool, ids: list[int], xs: list[float], count: int"
    )
    await create(worker, "typed", "Predict", signature)
    inputs = {
        "question": text("How good?"),
        "k": text("3"),  # text is parsed by the declared type
        "weights": pb.FieldValue(integers=pb.IntegerList(values=[1, 2])),  # integers widen to floats
        "opts": pb.FieldValue(json_object='{"a": 1}'),
    }
    reply = await execute(worker, "typed", **inputs)
    kinds = {name: value.WhichOneof("kind") for name, value in reply.outputs.items()}
    assert kinds == {
        "score": "float", "tags": "strings", "label": "text", "meta": "json_object", "ok": "boolean",
        "ids": "integers", "xs": "floats", "count": "integer",
    }
    assert reply.outputs["label"].text == "a"
    assert list(reply.outputs["tags"].strings.values) == ["[scripted tags] How good?"]
    assert json.loads(reply.outputs["meta"].json_object) == {"field": "meta"}

    with pytest.raises(grpc.aio.AioRpcError) as e:
        await execute(worker, "typed", **{**inputs, "k": text("three")})
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert kind(e.value) == "ERROR_KIND_INPUT_TYPE"
    assert e.value.details() == "input `k` (int): 'three' is not an int"


async def test_an_output_that_does_not_fit_its_type_is_an_output_type_error(worker: Worker) -> None:
    await create(worker, "bad", "sample_modules.Fixed", "question -> score: float")
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await execute(worker, "bad", question="q")
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert kind(e.value) == "ERROR_KIND_OUTPUT_TYPE"
    assert e.value.details() == "output `score` (float): 'high' cannot be converted to float"
    # The trailers name the field, its type and the value (as JSON), for the caller's own words.
    trailers = dict(e.value.trailing_metadata() or ())
    assert trailers[contract.FIELD_METADATA] == "score"
    assert trailers[contract.FIELD_TYPE_METADATA] == "float"
    assert trailers[contract.FIELD_VALUE_METADATA] == b'"high"'
    # A huge raw value is quoted by its prefix only.
    await create(worker, "huge", "sample_modules.Fixed", "question -> count: int", config={"value": "9x" * 500_000})
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await execute(worker, "huge", question="q")
    details = e.value.details() or ""
    assert details.startswith("output `count` (int): '9x9x") and details.endswith("... (1000000 bytes) cannot be converted to int")
    assert len(details) < 200
    value = dict(e.value.trailing_metadata() or ())[contract.FIELD_VALUE_METADATA]
    limit = contract.LIMITS["MAX_ECHO_CHARS"]
    assert value.decode() == '"' + ("9x" * 500_000)[: limit - 1] + "... (1000002 chars)"
    # A type the wire does not carry is refused when the module is created.
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await create(worker, "set", "Predict", "question -> items: set[int]")
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert kind(e.value) == "ERROR_KIND_MODULE"
    assert "field `items`: type `set[int]` is not one of str, int, float" in (e.value.details() or "")


async def test_the_call_id_is_kept_for_the_whole_call(worker: Worker) -> None:
    await create(worker, "id", "sample_modules.CallId", "question -> call")
    replies = await asyncio.gather(*(execute(worker, "id", call_id=f"call-{i}", question="q") for i in range(8)))
    assert [r.outputs["call"].text for r in replies] == [f"call-{i}" for i in range(8)]


async def test_no_history_grows_with_the_calls_served(worker: Worker) -> None:
    await create(worker, "probe", "sample_modules.HistoryProbe", "question -> sizes")
    first = json.loads((await execute(worker, "probe", question="q")).outputs["sizes"].text)
    for i in range(60):
        reply = await execute(worker, "probe", question=f"q{i}")
    last = json.loads(reply.outputs["sizes"].text)
    assert first == last == {"global": 0, "global_trace": 0, "lm": 0, "module": 0, "predictor": 0}
    # Each call still reports its own LM request.
    assert len(reply.lm_calls) == 1


async def test_every_known_module_runs_offline(worker: Worker) -> None:
    await create(worker, "p", "Predict", "question -> answer")
    await create(worker, "r", "ReAct", "question -> answer", config={"max_iters": 3})
    await create(worker, "pot", "ProgramOfThought", "question -> answer", config={"interpreter": "local"})
    await create(worker, "custom", "sample_modules.Shouter", "text -> loud")
    for module_id in ("p", "r", "pot"):
        reply = await execute(worker, module_id, question="What is 2 + 2?")
        assert reply.outputs["answer"].text, module_id
        assert reply.lm_calls, module_id
    assert (await execute(worker, "custom", text="hi")).outputs["loud"].text == "HI"


async def test_bad_requests_get_clear_errors_with_bounded_messages(worker: Worker) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await create(worker, "x", "ChainOfThougt", "question -> answer")
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert kind(e.value) == "ERROR_KIND_MODULE"
    assert "unknown DSPy module class 'ChainOfThougt'" in (e.value.details() or "")

    await create(worker, "boom", "sample_modules.Exploding", "question -> answer")
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await execute(worker, "boom", question="q")
    assert e.value.code() == grpc.StatusCode.UNKNOWN
    assert kind(e.value) == "ERROR_KIND_PYTHON"
    assert e.value.details() == "RuntimeError: the module exploded on 'q'"
    # The exception's type travels on its own, qualified by its module unless it is a built-in.
    assert dict(e.value.trailing_metadata() or ())[contract.EXCEPTION_TYPE_METADATA] == b"RuntimeError"
    await create(worker, "refusing", "sample_modules.Refusing", "question -> answer")
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await execute(worker, "refusing", question="q")
    assert (kind(e.value), e.value.details()) == ("ERROR_KIND_PYTHON", "Refusal: refused 'q'")
    trailers = dict(e.value.trailing_metadata() or ())
    assert trailers[contract.EXCEPTION_TYPE_METADATA] == b"sample_modules.Refusing.Refusal"

    # An exception message of 1 MiB reaches the caller cut to the bound, with its real status.
    await create(worker, "verbose", "sample_modules.Verbose", "size -> answer")
    for size, cut in ((LIMITS["MAX_STATUS_MESSAGE_BYTES"] - len("ValueError: "), False), (1 << 20, True)):
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await execute(worker, "verbose", size=str(size))
        assert e.value.code() == grpc.StatusCode.UNKNOWN
        assert kind(e.value) == "ERROR_KIND_PYTHON"
        details = e.value.details() or ""
        assert len(details.encode()) <= LIMITS["MAX_STATUS_MESSAGE_BYTES"]
        assert details.endswith("... (message cut)") == cut
        assert dict(e.value.trailing_metadata() or ())[contract.EXCEPTION_TYPE_METADATA] == b"ValueError"

    with pytest.raises(grpc.aio.AioRpcError) as e:
        await execute(worker, "never-created", question="q")
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    assert kind(e.value) == "ERROR_KIND_NOT_FOUND"


async def test_callers_without_the_token_are_refused(worker: Worker) -> None:
    for token in ("", "0" * 64):
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await worker.stub.Health(pb.HealthRequest(), metadata=worker.metadata(token))
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert kind(e.value) == "ERROR_KIND_UNAUTHENTICATED"
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await worker.stub.CreateModule(
            pb.CreateModuleRequest(session_id="another-session", module_id="m", module_class="Predict", signature="a -> b"),
            metadata=worker.metadata(),
        )
    assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_shutdown_stops_the_worker(worker: Worker) -> None:
    await worker.stub.Shutdown(pb.ShutdownRequest(), metadata=worker.metadata())
    assert worker.process.wait(timeout=15) == 0


def test_sigterm_and_closed_stdin_stop_the_worker(session: SessionContext, server: Any) -> None:
    for how in ("sigterm", "stdin"):
        process = start_worker(session, server.address)
        try:
            read_ready(process)
            if how == "sigterm":
                process.send_signal(signal.SIGTERM)
            else:
                assert process.stdin is not None
                process.stdin.close()
            assert process.wait(timeout=15) == 0, how
        finally:
            stop(process)


def test_a_bad_configuration_on_stdin_is_one_clear_line(session: SessionContext, server: Any) -> None:
    over = LIMITS["MAX_WORKER_CONFIG_BYTES"] + 1
    cases = [
        (over.to_bytes(4, "big"), f"the WorkerConfig takes {over} bytes, over the limit"),
        (b"\x00\x00", "stdin closed before the whole WorkerConfig arrived"),
        (encode_config(pb.WorkerConfig(max_concurrent_calls=LIMITS["MAX_CONCURRENT_CALLS"] + 1)), "(MAX_CONCURRENT_CALLS)"),
    ]
    for config, message in cases:
        process = start_worker(session, server.address, config=config)
        try:
            assert process.stdin is not None
            process.stdin.close()
            assert process.wait(timeout=60) == 2
            assert process.stderr is not None
            (line,) = process.stderr.read().decode().strip().splitlines()
            assert line.startswith("dspex worker: bad WorkerConfig on stdin: ") and message in line, line
        finally:
            stop(process)


def test_a_missing_dependency_is_one_clear_line(session: SessionContext, server: Any) -> None:
    # An interpreter that can import dspex_bridge but nothing else of the environment.
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(Path(__file__).parents[1]),
        "DSPEX_STORE_ADDR": server.address,
        "DSPEX_SESSION_ID": session.session_id,
        "DSPEX_SESSION_TOKEN": session.token,
    }
    result = subprocess.run(
        [sys.executable, "-S", "-m", "dspex_bridge.worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 3, result.stderr
    (line,) = result.stderr.strip().splitlines()
    interpreter = os.path.normpath(sys.executable)
    assert line == f"dspex worker: {interpreter} could not import dspy: No module named 'dspy'"


async def test_a_call_may_carry_demos_of_its_own_for_a_predict_or_chain_of_thought(worker: Worker) -> None:
    await create(worker, "cot", "ChainOfThought", "question -> answer")
    demos = json.dumps([{"question": "2 + 2?", "reasoning": "Add.", "answer": "4", "augmented": True}])
    request = pb.ExecuteModuleRequest(
        module_id="cot", inputs={"question": text("q")}, call_id="demo-1", demos_json=demos
    )
    reply = await worker.stub.ExecuteModule(request, metadata=worker.metadata())
    assert reply.outputs["answer"].text == "[scripted answer] q"

    await create(worker, "react", "ReAct", "question -> answer", config={"max_iters": 1})
    cases = [
        ("react", demos, "ERROR_KIND_INVALID_REQUEST", "a call's own demos are for a Predict or ChainOfThought"),
        ("cot", '{"question": "q"}', "ERROR_KIND_INVALID_REQUEST", "not a JSON list of objects"),
        ("cot", "[", "ERROR_KIND_INVALID_REQUEST", "not JSON"),
        ("cot", json.dumps([{"question": "x" * LIMITS["MAX_COMPILED_STATE_BYTES"]}]), "ERROR_KIND_LIMIT", "MAX_COMPILED_STATE_BYTES"),
    ]
    for module_id, demos_json, error_kind, says in cases:
        request = pb.ExecuteModuleRequest(
            module_id=module_id, inputs={"question": text("q")}, call_id=f"demo-{module_id}", demos_json=demos_json
        )
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await worker.stub.ExecuteModule(request, metadata=worker.metadata())
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert kind(e.value) == error_kind, e.value.details()
        assert says in (e.value.details() or "")


async def test_a_rollout_call_runs_at_temperature_one_whatever_it_binds(worker: Worker) -> None:
    await create(worker, "p", "Predict", "question -> answer", bindings={"temperature": "temperature"})

    async def temperature(rollout: int | None) -> float:
        request = pb.ExecuteModuleRequest(
            module_id="p",
            inputs={"question": text("q")},
            bindings=bound(temperature=0.0),
            call_id=f"rollout-{rollout}",
            rollout_id=rollout,
        )
        reply = await worker.stub.ExecuteModule(request, metadata=worker.metadata())
        (call,) = reply.lm_calls
        return float(call.temperature)

    # A bootstrapping round after the first, as DSPy's `lm.copy(rollout_id=r, temperature=1.0)`.
    assert await temperature(1) == 1.0
    assert await temperature(2) == 1.0
    # The next call has its own temperature again.
    assert await temperature(None) == 0.0


async def test_a_python_metric_scores_a_whole_programs_run(worker: Worker) -> None:
    example = json.dumps({"inputs": {"question": "q"}, "labels": {"answer": "A"}})

    async def score(path: str, prediction: str, **kw: Any) -> float:
        request = pb.ScoreMetricRequest(
            metric_path=path, example_json=example, prediction_json=prediction, call_id="score-1", **kw
        )
        reply = await worker.stub.ScoreMetric(request, metadata=worker.metadata())
        return float(reply.score)

    assert await score("sample_modules.answer_matches", '{"answer": "A"}') == 1.0
    assert await score("sample_modules.answer_matches", '{"answer": "B"}') == 0.0
    trace = json.dumps([{"step": "answer", "inputs": {"question": "q"}, "outputs": {"answer": "A"}}])
    assert await score("sample_modules.answer_matches_traced", '{"answer": "A"}', trace_json=trace) == 1.0
    assert await score("sample_modules.answer_matches", "", check_only=True) == 0.0
    cases = [
        ("sample_modules.raising_metric", '{"answer": "A"}', {}, "ERROR_KIND_PYTHON", "ValueError: no score from Python"),
        ("sample_modules.overscored", '{"answer": "A"}', {}, "ERROR_KIND_PYTHON", "expected a number in [0, 1]"),
        ("sample_modules.answer_matches_traced", '{"answer": "B"}', {"trace_json": trace}, "ERROR_KIND_PYTHON", "the trace's last step"),
        ("sample_modules.no_such_metric", "{}", {"check_only": True}, "ERROR_KIND_INVALID_REQUEST", "no_such_metric"),
        ("sample_modules.not_a_metric", "{}", {}, "ERROR_KIND_INVALID_REQUEST", "not a callable"),
        ("sample_modules.answer_matches", "[1]", {}, "ERROR_KIND_INVALID_REQUEST", "the prediction is a JSON list"),
        ("sample_modules.answer_matches", "{}", {"trace_json": "{}"}, "ERROR_KIND_INVALID_REQUEST", "the trace is not a list"),
    ]
    for path, prediction, kw, error_kind, says in cases:
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await score(path, prediction, **kw)
        assert kind(e.value) == error_kind, e.value.details()
        assert says in (e.value.details() or ""), e.value.details()
