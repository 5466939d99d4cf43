"""``ModuleService``: the DSPy modules of one worker, created and run on behalf of the python
steps of one session (served by :mod:`dspex_bridge.worker`).

A call (``ExecuteModule``) carries its typed inputs and the values of the module's bound
parameters, read by the caller in one snapshot. They apply to that call only, with no shared
mutable module state:

- ``temperature``, ``max_tokens``, ``top_p`` and ``n`` become the settings of the call's LM
  requests, and ``model`` selects the call's LM: the call runs with a per-call copy of the
  worker's LM for that model (:class:`~dspex_bridge.lm.CallScoped`), installed with
  ``dspy.context(lm=...)``, so the module's predictors keep ``lm=None``;
- any other parameter is a keyword argument of the call (``module(**inputs, max_iters=3)``).

The worker never reads bound variables from the session store. The service runs on gRPC's
threaded server: each call runs in a thread of the server's pool, start to end (one thread per
call it may run at once, plus a few for health checks and module management, so that a busy
worker still answers them), with the call's id in :data:`CALL_ID` for its whole duration. (The
threaded server was measured faster than ``grpc.aio`` handing each call to a thread: one hand
over less per call.) The LM calls a reply reports are exactly the call's own: the per-call LM
records them, and nothing else does (no global or per-module history grows, so the cost and
memory of a call do not depend on how many calls the worker served).
"""

from __future__ import annotations

import contextvars
import hmac
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

import dspy
import grpc

from ._proto.dspex.v1 import bridge_pb2 as pb
from ._proto.dspex.v1 import bridge_pb2_grpc as pb_grpc
from .contract import (
    ERROR_METADATA,
    FIELD_METADATA,
    FIELD_TYPE_METADATA,
    FIELD_VALUE_METADATA,
    LIMITS,
    TOKEN_METADATA,
    bounded_message,
)
from .dspy_integration import import_module_class
from .errors import DspexError
from .fields import FieldType, FieldTypeError, from_field_value, signature_types, text_field_value, to_field_value
from .lm import LM_SETTINGS, LmFactory, lm_call
from .module_config import TOOLS_KEY, constructor_kwargs
from .tools import CallbackClient, build_tools
from .values import from_config_value, from_proto_value

__all__ = ["BUILTIN_MODULES", "CALL_ID", "CONTROL_THREADS", "ModuleServicer", "current_call_id", "resolve_module_class"]

log = logging.getLogger("dspex_bridge.worker")

#: Threads of the server's pool beyond one per call: what health checks, module creation and
#: shutdown run on while every call thread is busy.
CONTROL_THREADS = 4

#: The id of the call being served, for the whole call.
CALL_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("dspex_call_id", default=None)


def current_call_id() -> str | None:
    """The id of the ``ExecuteModule`` call the current code runs in, if any."""
    return CALL_ID.get()


def _react(signature: Any, tools: list[Callable[..., Any]] | None = None, **kwargs: Any) -> dspy.Module:
    return dspy.ReAct(signature, tools=list(tools or []), **kwargs)


#: The DSPy modules the worker knows by name (exactly the contract's table of known modules).
BUILTIN_MODULES: dict[str, Callable[..., dspy.Module]] = {
    "Predict": dspy.Predict,
    "ChainOfThought": dspy.ChainOfThought,
    "ReAct": _react,
    "ProgramOfThought": dspy.ProgramOfThought,
}


def resolve_module_class(name: str) -> Callable[..., dspy.Module]:
    """The constructor for a known module name or a dotted path to a ``dspy.Module`` class.

    Raises ``ValueError`` for an unknown name, ``ImportError`` for a path that does not import,
    ``TypeError`` for something that is not a ``dspy.Module`` class.
    """
    if name in BUILTIN_MODULES:
        return BUILTIN_MODULES[name]
    return import_module_class(name, BUILTIN_MODULES)


@dataclass(frozen=True)
class _Module:
    """A module of the worker, and what its calls need to know about it."""

    module: dspy.Module
    class_name: str
    inputs: dict[str, FieldType]
    outputs: dict[str, FieldType]
    #: Parameter -> variable, as created.
    bindings: dict[str, str]


@dataclass(frozen=True)
class _Call:
    """What one call runs with: its inputs, its LM (a per-call copy) and its keyword
    arguments."""

    call_id: str
    inputs: dict[str, Any]
    lm: Any
    kwargs: dict[str, Any]


class _CallError(DspexError):
    """A call refused or failed: the status code, the error kind, the message and the trailers
    that say more."""

    def __init__(
        self,
        code: grpc.StatusCode,
        kind: int,
        message: str,
        trailers: tuple[tuple[str, str | bytes], ...] = (),
    ) -> None:
        super().__init__(message)
        self.status = code
        self.error_kind = kind
        self.trailers = trailers


def _output_type_error(e: FieldTypeError) -> _CallError:
    """An output that cannot be converted to its declared type: ``OUTPUT_TYPE``, with the field,
    its type and the value in trailers, so that the caller can name them in its own words."""
    return _CallError(
        grpc.StatusCode.FAILED_PRECONDITION,
        pb.ERROR_KIND_OUTPUT_TYPE,
        str(e),
        (
            (FIELD_METADATA, e.field),
            (FIELD_TYPE_METADATA, e.type),
            (FIELD_VALUE_METADATA, e.value.encode("utf-8")),
        ),
    )


def _run(entry: _Module, call: _Call) -> tuple[dict[str, pb.FieldValue], list[pb.LmCall], int]:
    """Runs one call (in a thread of the pool): the module with the call's LM and arguments,
    then its outputs converted by their declared types."""
    CALL_ID.set(call.call_id)
    started = time.perf_counter()
    try:
        # A trace list of the call's own: DSPy appends every prediction to the current trace.
        with dspy.context(lm=call.lm, trace=[]):
            prediction = entry.module(**call.inputs, **call.kwargs)
    except Exception as e:  # noqa: BLE001 - the Python error text goes back to Rust
        message = bounded_message(f"{type(e).__name__}: {e}")
        log.warning("call %s raised %s", call.call_id, message)
        raise _CallError(grpc.StatusCode.UNKNOWN, pb.ERROR_KIND_PYTHON, message) from e
    micros = int((time.perf_counter() - started) * 1e6)
    outputs: dict[str, pb.FieldValue] = {}
    try:
        for name, value in prediction.items():
            ftype = entry.outputs.get(name)
            outputs[name] = text_field_value(value) if ftype is None else to_field_value(name, value, ftype)
    except FieldTypeError as e:
        raise _output_type_error(e) from e
    calls = [lm_call(call.lm, entry_) for entry_ in call.lm.call_history]
    return outputs, calls, micros


class ModuleServicer(pb_grpc.ModuleServiceServicer):
    """``ModuleService`` for one session, on gRPC's threaded server (give it a pool of
    ``max_concurrent_calls + CONTROL_THREADS`` threads): creates modules, runs calls (up to
    ``max_concurrent_calls`` at once; one more is refused with ``RESOURCE_EXHAUSTED``), reports
    health. `stop` is set when a caller asks the worker to shut down. `callbacks` reaches the
    Rust process's ``CallbackService``, which the modules' Rust tools call."""

    def __init__(
        self,
        session_id: str,
        token: str,
        lm_factory: LmFactory,
        max_concurrent_calls: int,
        stop: threading.Event,
        callbacks: CallbackClient | None = None,
    ) -> None:
        self._session_id = session_id
        self._callbacks = callbacks
        self._token = token
        self._lm_factory = lm_factory
        self._modules: dict[str, _Module] = {}
        self._stop = stop
        self._max_calls = max_concurrent_calls
        self._lock = threading.Lock()
        self._in_flight = 0
        self._served = 0

    def _abort(
        self,
        context: grpc.ServicerContext,
        code: grpc.StatusCode,
        kind: int,
        message: str,
        trailers: tuple[tuple[str, str | bytes], ...] = (),
    ) -> NoReturn:
        context.set_trailing_metadata(((ERROR_METADATA, pb.ErrorKind.Name(kind)), *trailers))
        context.abort(code, bounded_message(message))
        raise AssertionError("abort returns only by raising")  # pragma: no cover

    def _authorize(self, context: grpc.ServicerContext) -> None:
        for key, value in context.invocation_metadata() or ():
            if key == TOKEN_METADATA and hmac.compare_digest(str(value), self._token):
                return
        self._abort(
            context, grpc.StatusCode.UNAUTHENTICATED, pb.ERROR_KIND_UNAUTHENTICATED, "missing or wrong session token"
        )

    def Health(self, request: pb.HealthRequest, context: grpc.ServicerContext) -> pb.HealthResponse:
        self._authorize(context)
        return pb.HealthResponse(
            ready=True,
            dspy_version=dspy.__version__,
            modules=len(self._modules),
            pid=os.getpid(),
            calls_in_flight=self._in_flight,
            max_concurrent_calls=self._max_calls,
            calls_served=self._served,
        )

    def CreateModule(self, request: pb.CreateModuleRequest, context: grpc.ServicerContext) -> pb.CreateModuleResponse:
        self._authorize(context)
        if request.session_id != self._session_id:
            self._abort(
                context,
                grpc.StatusCode.PERMISSION_DENIED,
                pb.ERROR_KIND_PERMISSION_DENIED,
                f"this worker serves session {self._session_id}, not {request.session_id[:64]!r}",
            )
        if not request.module_id:
            self._abort(
                context, grpc.StatusCode.INVALID_ARGUMENT, pb.ERROR_KIND_INVALID_REQUEST, "module_id must not be empty"
            )
        try:
            signature = dspy.Signature(request.signature)
            inputs, outputs = signature_types(signature)
            constructor = resolve_module_class(request.module_class)
            config = {key: from_config_value(value) for key, value in request.config.items()}
            kwargs = constructor_kwargs(request.module_class, config)
            if request.tools:
                kwargs[TOOLS_KEY] = build_tools(request.tools, self._callbacks, current_call_id)
            module = constructor(request.signature, **kwargs)
        except Exception as e:  # noqa: BLE001 - every failure is reported to the caller
            self._abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                pb.ERROR_KIND_MODULE,
                f"cannot create {request.module_class}({request.signature!r}): {type(e).__name__}: {e}",
            )
        class_name = type(module).__name__
        self._modules[request.module_id] = _Module(module, class_name, inputs, outputs, dict(request.bindings))
        log.info(
            "%s",
            bounded_message(
                f"created module {request.module_id}: {class_name}({request.signature!r}) "
                f"bindings={dict(request.bindings)}"
            ),
        )
        return pb.CreateModuleResponse(module_id=request.module_id, resolved_class=class_name)

    def _prepare(self, entry: _Module, request: pb.ExecuteModuleRequest) -> _Call:
        """The call's inputs, LM and keyword arguments; ``_CallError`` for a request that does
        not fit the module."""
        try:
            inputs = {
                name: from_field_value(name, value, entry.inputs.get(name, FieldType("str")))
                for name, value in request.inputs.items()
            }
        except FieldTypeError as e:
            raise _CallError(grpc.StatusCode.INVALID_ARGUMENT, pb.ERROR_KIND_INPUT_TYPE, str(e)) from e
        settings: dict[str, Any] = {}
        model: str | None = None
        kwargs: dict[str, Any] = {}
        given: set[str] = set()
        for bound in request.bindings:
            variable = entry.bindings.get(bound.param)
            if variable != bound.variable:
                expected = "no such parameter" if variable is None else f"it is bound to `{variable}`"
                raise _CallError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    pb.ERROR_KIND_INVALID_REQUEST,
                    f"the call binds parameter `{bound.param[:64]}` to `{bound.variable[:64]}`, "
                    f"but the module has {expected}",
                )
            given.add(bound.param)
            value = from_proto_value(bound.value)
            if bound.param in LM_SETTINGS:
                settings[bound.param] = value
            elif bound.param == "model":
                model = str(value)
            else:
                kwargs[bound.param] = value
        missing = sorted(set(entry.bindings) - given)
        if missing:
            raise _CallError(
                grpc.StatusCode.INVALID_ARGUMENT,
                pb.ERROR_KIND_INVALID_REQUEST,
                f"the call carries no value for the bound parameter(s) {', '.join(missing)}",
            )
        return _Call(request.call_id, inputs, self._lm_factory.for_call(model, settings), kwargs)

    def ExecuteModule(self, request: pb.ExecuteModuleRequest, context: grpc.ServicerContext) -> pb.ExecuteModuleResponse:
        self._authorize(context)
        entry = self._modules.get(request.module_id)
        if entry is None:
            self._abort(
                context,
                grpc.StatusCode.NOT_FOUND,
                pb.ERROR_KIND_NOT_FOUND,
                f"no module {request.module_id[:64]!r} in this worker",
            )
        with self._lock:
            running = self._in_flight
            if running < self._max_calls:
                self._in_flight += 1
        if running >= self._max_calls:
            self._abort(
                context,
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                pb.ERROR_KIND_LIMIT,
                f"the worker already runs {running} calls, its limit (WorkerConfig.max_concurrent_calls = "
                f"{self._max_calls}, at most MAX_CONCURRENT_CALLS = {LIMITS['MAX_CONCURRENT_CALLS']})",
            )
        try:
            call = self._prepare(entry, request)
            # A context of the call's own: the call id does not outlive the call in this thread.
            outputs, calls, micros = contextvars.copy_context().run(_run, entry, call)
        except _CallError as e:
            self._abort(context, e.status, e.error_kind, str(e), e.trailers)
        finally:
            with self._lock:
                self._in_flight -= 1
                self._served += 1
        return pb.ExecuteModuleResponse(outputs=outputs, lm_calls=calls, duration_micros=micros)

    def DropModule(self, request: pb.DropModuleRequest, context: grpc.ServicerContext) -> pb.DropModuleResponse:
        self._authorize(context)
        self._modules.pop(request.module_id, None)
        return pb.DropModuleResponse()

    def Shutdown(self, request: pb.ShutdownRequest, context: grpc.ServicerContext) -> pb.ShutdownResponse:
        self._authorize(context)
        log.info("shutdown requested")
        # Answer first; stop right after.
        threading.Timer(0.05, self._stop.set).start()
        return pb.ShutdownResponse()
