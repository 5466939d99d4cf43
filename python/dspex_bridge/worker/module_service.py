"""``ModuleService``: the DSPy modules of one worker, created and run on behalf of the python
steps of one session (served by :mod:`dspex_bridge.worker.server`).

A call (``ExecuteModule``) carries its typed inputs and the values of the module's bound
parameters, read by the caller in one snapshot. They apply to that call only, with no shared
mutable module state, as :func:`~dspex_bridge.binding.apply_binding` applies them (the
contract's module table says which parameter is what):

- the LM settings (``temperature``, ``max_tokens``, ``top_p``, ``n``) become the settings of the
  call's LM requests, and ``model`` selects the call's LM: the call runs with a per-call copy of
  the worker's LM for that model (:meth:`~dspex_bridge.worker.lm.LmFactory.for_call`), installed
  with ``dspy.context(lm=...)``, so the module's predictors keep ``lm=None``;
- any other parameter is a keyword argument of the call (``module(**inputs, max_iters=3)``).

A module that raises fails its call with ``ERROR_KIND_PYTHON``: the message is ``Type: message``
and the trailer ``EXCEPTION_TYPE_METADATA`` carries the exception's qualified type name
(``ValueError``, ``my_pkg.errors.QuotaError``; see :func:`exception_type`).

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

import contextlib
import contextvars
import functools
import hmac
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import dspy
import grpc

from .._proto.dspex.v1 import bridge_pb2 as pb
from .._proto.dspex.v1 import bridge_pb2_grpc as pb_grpc
from ..binding import PARAMS, BoundCall, apply_binding
from ..contract import (
    ERROR_METADATA,
    EXCEPTION_TYPE_METADATA,
    FIELD_METADATA,
    FIELD_TYPE_METADATA,
    FIELD_VALUE_METADATA,
    LIMITS,
    TOKEN_METADATA,
    TRACEPARENT_METADATA,
    bounded_message,
)
from ..errors import DspexError, InvalidValueError
from ..imports import import_module_class
from ..values import from_config_value, from_proto_value
from .cancel import CANCEL_SCOPE, CallRegistry, CancelScope
from .fields import FieldType, FieldTypeError, from_field_value, signature_types, text_field_value, to_field_value
from .formatting import SignatureCachedChatAdapter, fields_once, install_json_fast_path
from .lm import Capture, LmConfig, LmFactory, lm_call, lm_calls
from .module_config import TOOLS_KEY, constructor_kwargs
from .optimize import (
    OPTIMIZERS,
    StateTooLargeError,
    callback_metric,
    compile_module,
    dump_state,
    import_metric,
    load_state,
    program_run,
    program_score,
    run_demos,
    train_examples,
)
from .streaming import CallStream, Emit, run_streamed, streamed_fields
from .tools import TRACEPARENT, CallbackClient, build_tools

__all__ = [
    "BUILTIN_MODULES",
    "CALL_ID",
    "CONTROL_THREADS",
    "ModuleServicer",
    "current_call_id",
    "exception_type",
    "resolve_module_class",
]

log = logging.getLogger("dspex_bridge.worker")

_T = TypeVar("_T")

#: Threads of the server's pool beyond one per call: what health checks, module creation and
#: shutdown run on while every call thread is busy.
CONTROL_THREADS = 4

#: The id of the call being served, for the whole call.
CALL_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("dspex_call_id", default=None)

#: The adapter of the calls (unless a module's code configures its own): it builds a
#: signature's system message once.
_ADAPTER = SignatureCachedChatAdapter()


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
    #: The module as the request named it: a name of the contract's table or a dotted path.
    name: str
    class_name: str
    inputs: dict[str, FieldType]
    outputs: dict[str, FieldType]
    #: Parameter -> variable, as created.
    bindings: dict[str, str]
    #: A new module as created, without any compiled state (what an optimizer starts from).
    fresh: Callable[[], dspy.Module]


#: The type of an input the signature does not declare: text.
_TEXT = FieldType("str")

#: The temperature of every LM request of a rollout (DSPy's bootstrapping rounds after the
#: first), as ``ROLLOUT_TEMPERATURE`` in Rust.
ROLLOUT_TEMPERATURE = 1.0


@dataclass(frozen=True)
class _Call:
    """What one call runs with: its inputs, and its LM (a per-call copy) and keyword arguments
    as its bound values make them."""

    call_id: str
    inputs: dict[str, Any]
    bound: BoundCall
    #: The W3C trace context the Rust process sent with the call, if any.
    traceparent: str | None = None
    #: Demos for this call only (``ExecuteModuleRequest.demos_json``), in place of the module's.
    demos: list[dspy.Example] | None = None


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


def exception_type(e: BaseException) -> str:
    """The qualified name of the type of `e`: ``ValueError`` for a built-in exception,
    ``my_pkg.errors.QuotaError`` for any other."""
    cls = type(e)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def _python_error(e: Exception, what: str) -> _CallError:
    """What a module (or an optimizer) raised during `what`: ``PYTHON``, with the message
    ``Type: message`` and the exception's qualified type name in the trailer
    ``EXCEPTION_TYPE_METADATA``, so that the caller keeps the type without parsing the message."""
    message = bounded_message(f"{type(e).__name__}: {e}")
    log.warning("%s raised %s", what, message)
    name = bounded_message(exception_type(e)).encode("utf-8")
    return _CallError(grpc.StatusCode.UNKNOWN, pb.ERROR_KIND_PYTHON, message, ((EXCEPTION_TYPE_METADATA, name),))


def _in_scope(scope: CancelScope, run: Callable[..., _T], *args: Any) -> _T:
    """`run(*args)` in a context of its own (nothing it sets outlives it in this thread), under
    the cancellation scope of its call."""
    context = contextvars.copy_context()
    context.run(CANCEL_SCOPE.set, scope)
    return context.run(run, *args)


def _rss_bytes() -> int:
    """The worker's resident memory (0 where ``/proc`` does not tell)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


#: What a call gives: its outputs, its LM calls, how long it took in microseconds.
_Outcome = tuple[dict[str, pb.FieldValue], list[pb.LmCall], int]


def _run(entry: _Module, call: _Call, capture: Capture | None, emit: Emit | None = None) -> _Outcome:
    """Runs one call (in a thread of the pool, or of its stream): the module with the call's
    LM and arguments, then its outputs converted by their declared types, and its LM requests
    (with their messages and replies, as `capture` bounds them). With `emit`, the call is
    streamed: the text of its streamed fields goes to `emit` as the LM writes it (see
    :mod:`.streaming`)."""
    CALL_ID.set(call.call_id)
    TRACEPARENT.set(call.traceparent)
    started = time.perf_counter()
    # A trace list of the call's own: DSPy appends every prediction to the current trace. The
    # call's LM goes in the same settings (one context per call, not one more for the LM).
    settings: dict[str, Any] = {"trace": [], "adapter": dspy.settings.adapter or _ADAPTER}
    if emit is None and call.bound.lm is not None:
        settings["lm"] = call.bound.lm
    try:
        with dspy.context(**settings):
            # Demos of this call only (a compile's runs) go with the call, not into the module.
            demos = {} if call.demos is None else {"demos": call.demos}
            if emit is None:
                prediction = entry.module(**call.inputs, **demos, **call.bound.kwargs)
            else:
                run = functools.partial(call.bound.run, entry.module)
                fields = streamed_fields(entry.outputs)
                prediction = run_streamed(entry.module, run, {**call.inputs, **demos}, fields, emit)
    except Exception as e:  # noqa: BLE001 - the Python error goes back to Rust
        raise _python_error(e, f"call {call.call_id}") from e
    micros = int((time.perf_counter() - started) * 1e6)
    outputs: dict[str, pb.FieldValue] = {}
    try:
        for name, value in prediction.items():
            ftype = entry.outputs.get(name)
            outputs[name] = text_field_value(value) if ftype is None else to_field_value(name, value, ftype)
    except FieldTypeError as e:
        raise _output_type_error(e) from e
    return outputs, lm_calls(call.bound.lm, capture), micros


@dataclass(frozen=True)
class _CompileJob:
    """What one compilation runs with."""

    call_id: str
    optimizer: str
    settings: dict[str, Any]
    trainset: list[dspy.Example]
    valset: list[dspy.Example]
    metric: Callable[..., Any]
    lm: Any
    #: A reflective optimizer's own LM (``CompileModuleRequest.reflection_lm``), or None for
    #: the compilation's LM.
    reflection_lm: Any = None


def _compile(entry: _Module, job: _CompileJob) -> pb.CompileModuleResponse:
    """Compiles a fresh copy of the module (in a thread of the pool) under the job's LM and
    returns its state; the module of the worker is left as it is."""
    CALL_ID.set(job.call_id)
    started = time.perf_counter()
    try:
        with dspy.context(lm=job.lm):
            compiled = compile_module(
                entry.fresh(),
                job.optimizer,
                job.settings,
                job.trainset,
                job.valset,
                job.metric,
                reflection_lm=job.reflection_lm,
            )
        state, demos = dump_state(compiled)
    except StateTooLargeError as e:
        raise _CallError(grpc.StatusCode.INVALID_ARGUMENT, pb.ERROR_KIND_LIMIT, str(e)) from e
    except Exception as e:  # noqa: BLE001 - the Python error goes back to Rust
        raise _python_error(e, f"compilation {job.call_id}") from e
    micros = int((time.perf_counter() - started) * 1e6)
    lms = [lm for lm in (job.lm, job.reflection_lm) if lm is not None]
    calls = [lm_call(lm, entry_) for lm in lms for entry_ in lm.call_history]
    log.info("compiled %s with %s: demos %s, %d LM requests", job.call_id, job.optimizer, demos, len(calls))
    return pb.CompileModuleResponse(
        state_json=state,
        demos=demos,
        lm_requests=len(calls),
        prompt_tokens=sum(c.prompt_tokens for c in calls),
        completion_tokens=sum(c.completion_tokens for c in calls),
        duration_micros=micros,
    )


def _reflection_lm(request: pb.CompileModuleRequest) -> Any:
    """The LM a reflective optimizer reflects with when the request sets one apart (built for
    this compilation only, recording its own requests), else None. ``ValueError`` for an
    optimizer that does not reflect or a configuration the worker cannot use."""
    if not request.HasField("reflection_lm"):
        return None
    table = OPTIMIZERS.get(request.optimizer)
    if table is None or not table["reflective"]:
        raise InvalidValueError(f"optimizer `{request.optimizer[:64]}` does not reflect: it takes no reflection LM")
    config = LmConfig.from_proto(request.reflection_lm)
    return LmFactory(config).for_call(None, {})


def _score(metric: Callable[..., Any], path: str, run: tuple[Any, Any, Any]) -> float:
    """A Python metric's score of a whole program's run (in a thread of the pool)."""
    try:
        return program_score(metric, *run)
    except Exception as e:  # noqa: BLE001 - the Python error goes back to Rust
        raise _python_error(e, f"metric {path[:64]!r}") from e


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
        self._calls = CallRegistry()
        self._metrics: dict[str, Callable[..., Any]] = {}
        install_json_fast_path()

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

    def _authorize(self, context: grpc.ServicerContext) -> str | None:
        """Refuses a caller without the session's token (``UNAUTHENTICATED``); the W3C trace
        context the caller sent, if any (the call's metadata is read once)."""
        authorized = False
        traceparent = None
        for key, value in context.invocation_metadata() or ():
            if key == TOKEN_METADATA:
                authorized = authorized or hmac.compare_digest(str(value), self._token)
            elif key == TRACEPARENT_METADATA:
                traceparent = str(value)
        if not authorized:
            self._abort(
                context, grpc.StatusCode.UNAUTHENTICATED, pb.ERROR_KIND_UNAUTHENTICATED, "missing or wrong session token"
            )
        return traceparent

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
            threads=threading.active_count(),
            rss_bytes=_rss_bytes(),
            calls_cancelled=self._calls.cancelled,
        )

    def CancelCall(self, request: pb.CancelCallRequest, context: grpc.ServicerContext) -> pb.CancelCallResponse:
        self._authorize(context)
        running = self._calls.cancel(request.call_id, request.wait_ms / 1000)
        return pb.CancelCallResponse(running=running, calls_in_flight=self._in_flight)

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
            for param in request.bindings:
                PARAMS.use(request.module_class, param)
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
        try:
            # A module given no state says what it starts with: what saving it writes.
            if request.HasField("state_json"):
                load_state(module, request.state_json)
                state = ""
            else:
                state, _ = dump_state(module)
        except StateTooLargeError as e:
            self._abort(context, grpc.StatusCode.INVALID_ARGUMENT, pb.ERROR_KIND_LIMIT, str(e))
        except Exception as e:  # noqa: BLE001 - every failure is reported to the caller
            self._abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                pb.ERROR_KIND_MODULE,
                f"cannot load the compiled state into {request.module_class}({request.signature!r}): "
                f"{type(e).__name__}: {e}",
            )
        # Its predictors' signatures read their fields once, not on every call.
        fields_once(module)
        class_name = type(module).__name__

        def fresh(text: str = request.signature, cls: Callable[..., dspy.Module] = constructor) -> dspy.Module:
            return cls(text, **kwargs)

        self._modules[request.module_id] = _Module(
            module, request.module_class, class_name, inputs, outputs, dict(request.bindings), fresh
        )
        log.info(
            "%s",
            bounded_message(
                f"created module {request.module_id}: {class_name}({request.signature!r}) "
                f"bindings={dict(request.bindings)}"
            ),
        )
        return pb.CreateModuleResponse(module_id=request.module_id, resolved_class=class_name, state_json=state)

    def _prepare(self, entry: _Module, request: pb.ExecuteModuleRequest, traceparent: str | None) -> _Call:
        """The call's inputs, LM and keyword arguments (and the trace context its caller sent);
        ``_CallError`` for a request that does not fit the module."""
        try:
            inputs = {
                name: from_field_value(name, value, entry.inputs.get(name, _TEXT))
                for name, value in request.inputs.items()
            }
        except FieldTypeError as e:
            raise _CallError(grpc.StatusCode.INVALID_ARGUMENT, pb.ERROR_KIND_INPUT_TYPE, str(e)) from e
        rollout = request.rollout_id if request.HasField("rollout_id") else None
        bound = self._bound(entry, request.bindings, rollout)
        demos = self._call_demos(entry, request, inputs, bound) if request.HasField("demos_json") else None
        return _Call(request.call_id, inputs, bound, traceparent, demos)

    def _call_demos(
        self, entry: _Module, request: pb.ExecuteModuleRequest, inputs: dict[str, Any], bound: BoundCall
    ) -> list[dspy.Example]:
        """The demos a call gives its module for the call only; ``_CallError`` for a module
        that takes none that way, or demos that are not a list of objects or are too large."""
        takes_demos = isinstance(entry.module, (dspy.Predict, dspy.ChainOfThought))
        if not takes_demos or "demos" in inputs or "demos" in bound.kwargs:
            raise _CallError(
                grpc.StatusCode.INVALID_ARGUMENT,
                pb.ERROR_KIND_INVALID_REQUEST,
                f"a call's own demos are for a Predict or ChainOfThought module with no `demos` input or argument, "
                f"not {entry.class_name}",
            )
        try:
            return run_demos(request.demos_json)
        except StateTooLargeError as e:
            raise _CallError(grpc.StatusCode.INVALID_ARGUMENT, pb.ERROR_KIND_LIMIT, str(e)) from e
        except ValueError as e:
            raise _CallError(grpc.StatusCode.INVALID_ARGUMENT, pb.ERROR_KIND_INVALID_REQUEST, str(e)) from e

    def _bound(self, entry: _Module, bindings: Iterable[pb.BoundValue], rollout: int | None = None) -> BoundCall:
        """The LM (a per-call copy with the bound settings and model) and the keyword arguments
        that the bound values of a call give; ``_CallError`` for bindings that do not fit the
        module. A `rollout` call's LM is DSPy's ``lm.copy(rollout_id=rollout, temperature=1.0)``
        over the bound settings (``ExecuteModuleRequest.rollout_id``)."""
        values: dict[str, Any] = {}
        for bound in bindings:
            variable = entry.bindings.get(bound.param)
            if variable != bound.variable:
                expected = "no such parameter" if variable is None else f"it is bound to `{variable}`"
                raise _CallError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    pb.ERROR_KIND_INVALID_REQUEST,
                    f"the call binds parameter `{bound.param[:64]}` to `{bound.variable[:64]}`, "
                    f"but the module has {expected}",
                )
            values[bound.param] = from_proto_value(bound.value)
        # Every value is of a bound parameter (checked above): as many values as parameters
        # is all of them.
        if len(values) < len(entry.bindings):
            missing = sorted(set(entry.bindings) - set(values))
            raise _CallError(
                grpc.StatusCode.INVALID_ARGUMENT,
                pb.ERROR_KIND_INVALID_REQUEST,
                f"the call carries no value for the bound parameter(s) {', '.join(missing)}",
            )
        lm_for = self._lm_factory.for_call
        if rollout is not None:
            rollout_settings = {"temperature": ROLLOUT_TEMPERATURE, "rollout_id": rollout}

            def lm_for(model: str | None, settings: Mapping[str, Any]) -> Any:
                return self._lm_factory.for_call(model, {**settings, **rollout_settings})

        return apply_binding(entry.name, values, lm_for)

    def _entry(self, module_id: str, context: grpc.ServicerContext) -> _Module:
        entry = self._modules.get(module_id)
        if entry is None:
            self._abort(
                context,
                grpc.StatusCode.NOT_FOUND,
                pb.ERROR_KIND_NOT_FOUND,
                f"no module {module_id[:64]!r} in this worker",
            )
        return entry

    @contextlib.contextmanager
    def _call_place(self, context: grpc.ServicerContext, call_id: str) -> Iterator[CancelScope]:
        """One of the worker's ``max_concurrent_calls`` places for the duration of a call (a
        compilation takes one too), and the call's cancellation scope, cancelled when the caller
        drops the call; ``RESOURCE_EXHAUSTED`` when the places are all taken, ``CANCELLED`` for
        a call cancelled before it arrived. The place is free once the call's code returned."""
        scope = self._calls.start(call_id)
        if scope is None:
            self._abort(
                context,
                grpc.StatusCode.CANCELLED,
                pb.ERROR_KIND_INVALID_REQUEST,
                f"call {call_id[:64]!r} was cancelled before it arrived",
            )
        with self._lock:
            running = self._in_flight
            if running < self._max_calls:
                self._in_flight += 1
        if running >= self._max_calls:
            self._calls.finish(call_id, scope)
            self._abort(
                context,
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                pb.ERROR_KIND_LIMIT,
                f"the worker already runs {running} calls, its limit (WorkerConfig.max_concurrent_calls = "
                f"{self._max_calls}, at most MAX_CONCURRENT_CALLS = {LIMITS['MAX_CONCURRENT_CALLS']})",
            )
        if not context.add_callback(scope.cancel):
            scope.cancel()
        try:
            yield scope
        finally:
            with self._lock:
                self._in_flight -= 1
                self._served += 1
            self._calls.finish(call_id, scope)

    def ExecuteModule(self, request: pb.ExecuteModuleRequest, context: grpc.ServicerContext) -> pb.ExecuteModuleResponse:
        traceparent = self._authorize(context)
        entry = self._entry(request.module_id, context)
        with self._call_place(context, request.call_id) as scope:
            try:
                call = self._prepare(entry, request, traceparent)
                # A context of the call's own: the call id does not outlive the call in this thread.
                outputs, calls, micros = _in_scope(scope, _run, entry, call, self._lm_factory.config.capture)
            except _CallError as e:
                self._abort(context, e.status, e.error_kind, str(e), e.trailers)
        return pb.ExecuteModuleResponse(outputs=outputs, lm_calls=calls, duration_micros=micros)

    def ExecuteModuleStream(
        self, request: pb.ExecuteModuleRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.ExecuteModuleEvent]:
        """``ExecuteModule``, streamed: the chunks of the call's streamed fields as its LM
        writes them, then the reply. The call runs in a thread of its own while this one
        sends its chunks; a caller that goes away cancels it, and its place is free once that
        thread returned."""
        traceparent = self._authorize(context)
        entry = self._entry(request.module_id, context)
        with self._call_place(context, request.call_id) as scope:
            try:
                call = self._prepare(entry, request, traceparent)

                def body(put: Callable[[pb.ExecuteModuleEvent], None]) -> _Outcome:
                    def emit(field: str, text: str) -> None:
                        put(pb.ExecuteModuleEvent(chunk=pb.OutputChunk(field=field, text=text)))

                    return _in_scope(scope, _run, entry, call, self._lm_factory.config.capture, emit)

                outputs, calls, micros = yield from CallStream(body, scope.cancel).run()
            except _CallError as e:
                self._abort(context, e.status, e.error_kind, str(e), e.trailers)
        reply = pb.ExecuteModuleResponse(outputs=outputs, lm_calls=calls, duration_micros=micros)
        yield pb.ExecuteModuleEvent(finished=reply)

    def CompileModule(self, request: pb.CompileModuleRequest, context: grpc.ServicerContext) -> pb.CompileModuleResponse:
        self._authorize(context)
        entry = self._entry(request.module_id, context)
        with self._call_place(context, request.call_id) as scope:
            try:
                job = self._compile_job(entry, request)
                reply = _in_scope(scope, _compile, entry, job)
            except _CallError as e:
                self._abort(context, e.status, e.error_kind, str(e), e.trailers)
        return reply

    def _compile_job(self, entry: _Module, request: pb.CompileModuleRequest) -> _CompileJob:
        """What a compilation runs with; ``_CallError`` for a request that does not fit the
        module or the contract's optimizer table."""
        limit = LIMITS["MAX_TRAIN_EXAMPLES"]
        for which, examples in (("trainset", request.trainset), ("valset", request.valset)):
            if len(examples) > limit:
                raise _CallError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    pb.ERROR_KIND_LIMIT,
                    f"the {which} holds {len(examples)} examples, over the limit of {limit} (MAX_TRAIN_EXAMPLES)",
                )
        if not request.trainset:
            raise _CallError(grpc.StatusCode.INVALID_ARGUMENT, pb.ERROR_KIND_INVALID_REQUEST, "the trainset is empty")
        bound = self._bound(entry, request.bindings)
        if bound.kwargs:
            raise _CallError(
                grpc.StatusCode.INVALID_ARGUMENT,
                pb.ERROR_KIND_INVALID_REQUEST,
                f"cannot compile a module whose bound parameter(s) {', '.join(sorted(bound.kwargs))} are call "
                "arguments: an optimizer calls the module with its inputs only",
            )
        try:
            trainset = train_examples("trainset", request.trainset, entry.inputs, entry.outputs)
            valset = train_examples("valset", request.valset, entry.inputs, entry.outputs)
        except ValueError as e:
            raise _CallError(grpc.StatusCode.INVALID_ARGUMENT, pb.ERROR_KIND_INPUT_TYPE, str(e)) from e
        try:
            which = request.WhichOneof("metric")
            if which == "metric_path":
                metric = import_metric(request.metric_path)
            elif which == "metric_callback":
                metric = callback_metric(self._callbacks, request.metric_callback)
            else:
                raise ValueError("the request names no metric")
            settings = {key: from_config_value(value) for key, value in request.settings.items()}
            reflection_lm = _reflection_lm(request)
        except (ValueError, ImportError) as e:
            raise _CallError(grpc.StatusCode.INVALID_ARGUMENT, pb.ERROR_KIND_INVALID_REQUEST, str(e)) from e
        return _CompileJob(
            request.call_id, request.optimizer, settings, trainset, valset, metric, bound.lm, reflection_lm
        )

    def ScoreMetric(self, request: pb.ScoreMetricRequest, context: grpc.ServicerContext) -> pb.ScoreMetricResponse:
        self._authorize(context)
        try:
            metric = self._metric(request.metric_path)
        except (ValueError, ImportError) as e:
            self._abort(context, grpc.StatusCode.INVALID_ARGUMENT, pb.ERROR_KIND_INVALID_REQUEST, str(e))
        if request.check_only:
            return pb.ScoreMetricResponse(score=0.0)
        try:
            trace_json = request.trace_json if request.HasField("trace_json") else None
            example, prediction, trace = program_run(request.example_json, request.prediction_json, trace_json)
        except ValueError as e:
            self._abort(context, grpc.StatusCode.INVALID_ARGUMENT, pb.ERROR_KIND_INVALID_REQUEST, str(e))
        with self._call_place(context, request.call_id) as scope:
            try:
                score = _in_scope(scope, _score, metric, request.metric_path, (example, prediction, trace))
            except _CallError as e:
                self._abort(context, e.status, e.error_kind, str(e), e.trailers)
        return pb.ScoreMetricResponse(score=score)

    def _metric(self, path: str) -> Callable[..., Any]:
        """The metric at dotted path `path`, imported once."""
        with self._lock:
            metric = self._metrics.get(path)
        if metric is None:
            metric = import_metric(path)
            with self._lock:
                self._metrics[path] = metric
        return metric

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
