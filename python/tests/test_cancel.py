"""Cancelling calls in the worker: a call its caller drops, or one named by ``CancelCall``,
stops where it waits and frees its place once its thread returned; a call cancelled before it
arrived is refused; and the endpoint's retry policy is the Rust client's."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import grpc
import pytest

from dspex_bridge._proto.dspex.v1 import bridge_pb2 as pb
from dspex_bridge.worker.cancel import MAX_EARLY_CANCELS, CallCancelledError, CallRegistry
from dspex_bridge.worker.endpoint import RetryPolicy
from dspex_bridge.worker.lm import LmConfig

from test_worker import (  # the fixtures `spawn` and `worker` too
    DEADLINE,
    Worker,
    create,
    execute,
    health,
    spawn,
    wait_for_in_flight,
    worker,
)

__all__ = ["spawn", "worker"]


async def cancel(worker: Worker, call_id: str, wait_ms: int = 0) -> pb.CancelCallResponse:
    response: pb.CancelCallResponse = await worker.stub.CancelCall(
        pb.CancelCallRequest(call_id=call_id, wait_ms=wait_ms), metadata=worker.metadata()
    )
    return response


async def idle(worker: Worker) -> pb.HealthResponse:
    deadline = time.monotonic() + DEADLINE
    while (status := await health(worker)).calls_in_flight and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    return status


async def test_a_dropped_call_stops_and_frees_its_place(spawn: Callable[..., Awaitable[Worker]]) -> None:
    worker = await spawn(lm=LmConfig(model="m", delay_ms=30_000), max_concurrent_calls=1)
    await create(worker, "p", "Predict", "question -> answer")
    task = asyncio.create_task(execute(worker, "p", call_id="dropped", question="q"))
    assert await wait_for_in_flight(worker, 1, [task]) == 1
    started = time.monotonic()
    task.cancel()
    status = await idle(worker)
    assert status.calls_in_flight == 0
    assert status.calls_cancelled == 1
    # Well before the scripted LM's 30 s delay.
    assert time.monotonic() - started < DEADLINE / 2


async def test_cancel_call_waits_for_the_call_to_end(spawn: Callable[..., Awaitable[Worker]]) -> None:
    worker = await spawn(lm=LmConfig(model="m", delay_ms=30_000), max_concurrent_calls=2)
    await create(worker, "p", "Predict", "question -> answer")
    task = asyncio.create_task(execute(worker, "p", call_id="named", question="q"))
    assert await wait_for_in_flight(worker, 1, [task]) == 1
    reply = await cancel(worker, "named", wait_ms=1000)
    assert not reply.running
    assert reply.calls_in_flight == 0
    with pytest.raises(grpc.aio.AioRpcError):
        await task


async def test_a_call_cancelled_before_it_arrives_is_refused(worker: Worker) -> None:
    await create(worker, "p", "Predict", "question -> answer")
    assert not (await cancel(worker, "early")).running
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await execute(worker, "p", call_id="early", question="q")
    assert e.value.code() == grpc.StatusCode.CANCELLED
    # Refused once: the id is forgotten then.
    assert (await execute(worker, "p", call_id="early", question="q")).outputs["answer"].text


def test_early_cancels_are_bounded() -> None:
    registry = CallRegistry()
    for i in range(MAX_EARLY_CANCELS + 1):
        assert not registry.cancel(f"c{i}", 0)
    # The oldest was forgotten, the newest at the limit is still refused.
    assert registry.start("c0") is not None
    assert registry.start(f"c{MAX_EARLY_CANCELS}") is None
    scope = registry.start("running")
    assert scope is not None
    scope.cancel()
    with pytest.raises(CallCancelledError):
        scope.sleep(10)


class _Status(Exception):
    def __init__(self, status: int | None, retry_after: float | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.retry_after = retry_after


def test_the_retry_policy_is_the_rust_clients() -> None:
    policy = RetryPolicy(max_retries=3, backoff=0.5, max_backoff=30.0)
    assert policy.delay(_Status(429, 2.0), 0) == 2.0
    assert policy.delay(_Status(429, 1e9), 0) == 30.0
    assert [policy.delay(_Status(503), n) for n in range(4)] == [0.5, 1.0, 2.0, None]
    # A timeout without a status, a client error, a 504 past the retries: not retried.
    assert policy.delay(_Status(None), 0) is None
    assert policy.delay(_Status(400), 0) is None
    assert policy.delay(_Status(504), 3) is None
