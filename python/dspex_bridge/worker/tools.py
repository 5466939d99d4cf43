"""The tools of a module (``CreateModuleRequest.tools``) as ``dspy.Tool`` objects.

- A Python tool is a callable imported by its dotted path (an import failure names it, and
  fails the module's creation).
- A Rust tool runs in the Rust process: its ``dspy.Tool`` has the tool's name, description and
  argument schema (generated on the Rust side from the argument types), and calls
  ``CallbackService.Call`` on the bridge server with the worker's session token and the id of
  the ``ExecuteModule`` call it runs in, so that the Rust side sees the run's variable values
  and records the call in the run's trace. What the tool gives back is the agent's observation:
  its result (text as text, any other JSON value as JSON text), or ``error: ...`` when it
  failed, panicked, ran past its timeout, or could not be reached. The agent goes on either way.
  Its arguments are not checked here: the Rust side checks them against the same schema (an
  unknown, missing or mistyped argument is an ``error: ...`` observation naming it), so they
  are encoded as they come, once.

Calls of concurrent module calls run concurrently: each is a blocking gRPC call in the thread
of its own module call, over one channel shared by the worker.
"""

from __future__ import annotations

import contextvars
import json
import logging
import threading
from collections.abc import Callable
from typing import Any

import dspy
import grpc

from .._proto.dspex.v1 import bridge_pb2 as pb
from .._proto.dspex.v1 import bridge_pb2_grpc as pb_grpc
from ..contract import LIMITS, TOKEN_METADATA, TRACEPARENT_METADATA
from .module_config import import_tool

__all__ = ["ERROR_PREFIX", "CallbackClient", "build_tools", "rust_tool"]

log = logging.getLogger("dspex_bridge.worker")

#: How an observation of a tool that gave no result starts.
ERROR_PREFIX = "error: "

#: Seconds a call may take beyond the longest timeout the Rust side enforces, before the
#: worker gives up waiting for its answer.
_DEADLINE_SLACK = 5.0

#: Seconds the worker waits for the answer of one call.
_CALL_DEADLINE = LIMITS["MAX_CALLBACK_TIMEOUT_MS"] / 1000 + _DEADLINE_SLACK


#: The W3C trace context of the module call running in this context, as the Rust process sent
#: it; callbacks made during the call carry it back, so their spans join the call's trace.
TRACEPARENT: contextvars.ContextVar[str | None] = contextvars.ContextVar("dspex_traceparent", default=None)


class CallbackClient:
    """The worker's client of the bridge server's ``CallbackService``: one channel, opened on
    first use, shared by every call."""

    def __init__(self, address: str, session_id: str, token: str) -> None:
        self._address = address
        self._session_id = session_id
        self._metadata = ((TOKEN_METADATA, token),)
        self._stub: pb_grpc.CallbackServiceStub | None = None
        self._lock = threading.Lock()

    def _client(self) -> pb_grpc.CallbackServiceStub:
        with self._lock:
            if self._stub is None:
                channel = grpc.insecure_channel(
                    self._address,
                    options=[("grpc.max_receive_message_length", LIMITS["MAX_RESPONSE_BYTES"])],
                )
                self._stub = pb_grpc.CallbackServiceStub(channel)
            return self._stub

    def call(self, name: str, arguments: dict[str, Any], call_id: str) -> pb.CallbackResponse:
        """Calls Rust callable `name`; raises ``grpc.RpcError`` when the server refuses."""
        request = pb.CallbackRequest(
            session_id=self._session_id,
            name=name,
            arguments_json=json.dumps(arguments, default=str).encode(),
            call_id=call_id,
        )
        metadata: tuple[tuple[str, str], ...] = self._metadata
        traceparent = TRACEPARENT.get()
        if traceparent is not None:
            metadata = (*metadata, (TRACEPARENT_METADATA, traceparent))
        reply: pb.CallbackResponse = self._client().Call(request, metadata=metadata, timeout=_CALL_DEADLINE)
        return reply


def observation(reply: pb.CallbackResponse) -> str:
    """What the agent reads of a Rust tool's answer: text as it is, any other JSON value as
    JSON text (DSPy's trajectory formatting takes text, not every JSON value)."""
    if reply.WhichOneof("outcome") == "result_json":
        result = json.loads(reply.result_json)
        return result if isinstance(result, str) else reply.result_json
    return ERROR_PREFIX + reply.error


class _RustTool(dspy.Tool):  # type: ignore[misc]
    """A ``dspy.Tool`` whose arguments go to the Rust side unchecked: it checks them itself."""

    def _validate_and_parse_args(self, **kwargs: Any) -> dict[str, Any]:
        return kwargs


def rust_tool(spec: pb.RustTool, client: CallbackClient, call_id: Callable[[], str | None]) -> dspy.Tool:
    """A ``dspy.Tool`` calling Rust tool `spec` through `client`, in the module call
    `call_id()` names."""
    name = spec.name

    def call(**kwargs: Any) -> str:
        current = call_id() or ""
        if log.isEnabledFor(logging.DEBUG):
            log.debug("call %s: Rust tool %s", current, name)
        try:
            return observation(client.call(name, kwargs, current))
        except grpc.RpcError as e:
            return f"{ERROR_PREFIX}{e.details()}"

    call.__name__ = name
    args = {}
    for argument in spec.arguments:
        schema = json.loads(argument.json_schema)
        if not argument.required:
            schema["default"] = None
        args[argument.name] = schema
    return _RustTool(call, name=name, desc=spec.description, args=args, arg_types={})


def build_tools(
    specs: Any, client: CallbackClient | None, call_id: Callable[[], str | None]
) -> list[Callable[..., Any]]:
    """The tools of a module, in declared order: Python tools imported, Rust tools wrapped.
    Raises ``ImportError`` naming a Python tool that cannot be imported."""
    tools: list[Callable[..., Any]] = []
    for spec in specs:
        kind = spec.WhichOneof("kind")
        if kind == "python":
            tools.append(import_tool(spec.python))
        elif kind == "rust":
            if client is None:
                raise RuntimeError(f"Rust tool {spec.rust.name!r}: this worker has no bridge server address")
            tools.append(rust_tool(spec.rust, client, call_id))
        else:
            raise ValueError("a tool with neither a Python path nor a Rust tool")
    return tools
