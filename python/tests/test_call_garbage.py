"""What a call of the worker leaves behind: nothing for the cycle collector. Every object a call
makes (its per-call LM, the LM's engines and history, DSPy's prediction and trace) is freed by
reference counting when the call ends; garbage left in reference cycles would pile up between
collections and make each collection of the worker cost more the more calls it serves.

The calls go through ``ModuleServicer.ExecuteModule`` in this process (no gRPC), as the
worker's threads make them."""

from __future__ import annotations

import gc
import json
import threading
import weakref
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from dspex_bridge._proto.dspex.v1 import bridge_pb2 as pb
from dspex_bridge.worker.in_process import InProcessContext
from dspex_bridge.worker.lm import LmConfig, LmFactory
from dspex_bridge.worker.module_service import ModuleServicer

TOKEN = "garbage-token"


@pytest.fixture
def no_collector() -> Iterator[None]:
    """The cycle collector off for the test (whatever it finds afterwards is what the calls
    left in cycles)."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def servicer(module_class: str, signature: str, lm: LmConfig | None = None) -> ModuleServicer:
    service = ModuleServicer("session", TOKEN, LmFactory(lm or LmConfig()), 8, threading.Event())
    service.CreateModule(
        pb.CreateModuleRequest(
            session_id="session",
            module_id="m",
            module_class=module_class,
            signature=signature,
            bindings={"temperature": "temperature", "max_tokens": "max_tokens"},
        ),
        InProcessContext(TOKEN),  # type: ignore[arg-type]
    )
    return service


def call(service: ModuleServicer, i: int) -> pb.ExecuteModuleResponse:
    request = pb.ExecuteModuleRequest(
        module_id="m",
        call_id=f"call-{i}",
        inputs={"question": pb.FieldValue(text=f"What is DSPy? ({i})")},
        bindings=[
            pb.BoundValue(param="temperature", variable="temperature", value=pb.Value(float_value=0.7)),
            pb.BoundValue(param="max_tokens", variable="max_tokens", value=pb.Value(integer_value=256)),
        ],
    )
    return service.ExecuteModule(request, InProcessContext(TOKEN))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("module_class", "signature"),
    [("Predict", "question -> answer"), ("ChainOfThought", "question -> answer: int")],
)
@pytest.mark.usefixtures("no_collector")
def test_a_call_leaves_nothing_in_reference_cycles(module_class: str, signature: str) -> None:
    service = servicer(module_class, signature)
    call(service, 0)  # the first call fills the caches that live as long as the module
    gc.collect()
    for i in range(1, 21):
        reply = call(service, i)
        assert reply.lm_calls[0].temperature == pytest.approx(0.7)
    assert gc.collect() == 0, "calls left objects in reference cycles"


class ChatCompletions(BaseHTTPRequestHandler):
    """An OpenAI-compatible endpoint answering every chat completion with `answer`."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        body = json.dumps(
            {
                "id": "chat",
                "object": "chat.completion",
                "created": 0,
                "model": "m",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "[[ ## answer ## ]]\nParis\n\n[[ ## completed ## ]]"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
            }
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def endpoint() -> Iterator[str]:
    """The base URL of a local OpenAI-compatible endpoint, stopped after the test."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), ChatCompletions)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/v1"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_a_call_with_a_real_lm_leaves_nothing_in_reference_cycles(endpoint: str, no_collector: None) -> None:
    service = servicer("Predict", "question -> answer", LmConfig(kind="openai", model="m", base_url=endpoint))
    assert call(service, 0).outputs["answer"].text == "Paris"
    gc.collect()
    for i in range(1, 11):
        assert call(service, i).lm_calls[0].prompt_tokens == 5
    assert gc.collect() == 0, "calls left objects in reference cycles"


@pytest.mark.usefixtures("no_collector")
def test_a_calls_scripted_lm_is_freed_when_its_last_reference_goes() -> None:
    lm = LmFactory(LmConfig(delay_ms=0)).for_call(None, {"temperature": 0.5})
    engine = lm._engine_spec
    assert engine.owner is lm
    gone = weakref.ref(lm)
    del lm
    assert gone() is None, "the per-call LM is kept alive by a reference cycle"
    assert engine.owner is None
