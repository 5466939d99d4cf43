"""Streamed calls (``ExecuteModuleStream``) in a real worker with the scripted LM, which does not
stream: one chunk per streamed field (the ``str`` outputs and ``reasoning``, never typed ones),
then the same reply ``ExecuteModule`` gives; bad requests fail as they do there."""

from __future__ import annotations

from typing import Any

import grpc
import grpc.aio
import pytest

from dspex_bridge._proto.dspex.v1 import bridge_pb2 as pb
from test_worker import Worker, create, health, kind, spawn, text, worker  # noqa: F401 - fixtures


async def stream(worker: Worker, module_id: str, call_id: str = "s-1", **inputs: str) -> list[pb.ExecuteModuleEvent]:
    request = pb.ExecuteModuleRequest(
        module_id=module_id, inputs={k: text(v) for k, v in inputs.items()}, call_id=call_id
    )
    return [event async for event in worker.stub.ExecuteModuleStream(request, metadata=worker.metadata())]


async def test_a_scripted_call_streams_one_chunk_per_text_field_then_its_reply(worker: Worker) -> None:
    await create(worker, "cot", "ChainOfThought", "question -> answer, score: float")
    events = await stream(worker, "cot", question="Why?")
    chunks = [(e.chunk.field, e.chunk.text) for e in events[:-1]]
    assert all(e.WhichOneof("event") == "chunk" for e in events[:-1])
    assert sorted(field for field, _ in chunks) == ["answer", "reasoning"]
    final = events[-1].finished
    assert events[-1].WhichOneof("event") == "finished"
    for field, chunk in chunks:
        assert final.outputs[field].text == chunk
    assert final.outputs["score"].float == 0.0
    assert len(final.lm_calls) == 1
    assert (await health(worker)).calls_in_flight == 0


async def test_a_streamed_call_is_refused_as_an_unstreamed_one(worker: Worker) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await stream(worker, "nope", question="Why?")
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    events: list[Any] = []
    # An input that does not fit the signature's type is refused before anything streams.
    await create(worker, "typed", "Predict", "n: int -> answer")
    request = pb.ExecuteModuleRequest(module_id="typed", inputs={"n": text("three")}, call_id="s-3")
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        events = [e async for e in worker.stub.ExecuteModuleStream(request, metadata=worker.metadata())]
    assert not events
    assert kind(bad.value) == "ERROR_KIND_INPUT_TYPE"
