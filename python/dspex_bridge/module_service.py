"""``ModuleService``: DSPy modules bound to the variables of one session, served by the worker
(:mod:`dspex_bridge.worker`)."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio

from ._proto.dspex.v1 import bridge_pb2 as pb
from ._proto.dspex.v1 import bridge_pb2_grpc as pb_grpc
from .errors import InvalidValueError
from .session import TOKEN_METADATA, SessionContext

log = logging.getLogger("dspex_bridge.worker")

#: The context of a ModuleService call.
_Context = grpc.aio.ServicerContext[Any, Any]

#: Largest request or response, in bytes.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024


@dataclass
class _Module:
    module: Any
    class_name: str
    lock: asyncio.Lock


def _text(value: Any) -> str:
    """An output field as text: strings as they are, anything else as JSON when it can be."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, default=str)
    except (TypeError, ValueError):
        return str(value)


def _lm_settings(lm: Any, entry: Mapping[str, Any]) -> pb.LmSettings:
    """The settings of one call, from an LM history entry and the LM's defaults."""
    used = {**(getattr(lm, "kwargs", None) or {}), **(entry.get("kwargs") or {})}
    settings = pb.LmSettings(model=str(entry.get("model") or getattr(lm, "model", "")))
    for key, cast in (("temperature", float), ("max_tokens", int), ("top_p", float), ("n", int)):
        if used.get(key) is not None:
            setattr(settings, key, cast(used[key]))
    return settings


class ModuleServicer(pb_grpc.ModuleServiceServicer):
    """``ModuleService``: DSPy modules bound to the variables of one session."""

    def __init__(self, session: SessionContext, token: str, lm_factory: Any, stop: asyncio.Event) -> None:
        from .dspy_integration import ModuleVariableResolver

        self._session = session
        self._token = token
        self._lm_factory = lm_factory
        self._resolver = ModuleVariableResolver(session)
        self._modules: dict[str, _Module] = {}
        self._stop = stop

    async def _authorize(self, context: _Context) -> None:
        token = dict(context.invocation_metadata() or ()).get(TOKEN_METADATA, "")
        if not hmac.compare_digest(str(token), self._token):
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong session token")

    async def Health(self, request: pb.HealthRequest, context: _Context) -> pb.HealthResponse:
        await self._authorize(context)
        import dspy

        return pb.HealthResponse(ready=True, dspy_version=dspy.__version__, modules=len(self._modules), pid=os.getpid())

    async def CreateModule(
        self, request: pb.CreateModuleRequest, context: _Context
    ) -> pb.CreateModuleResponse:
        await self._authorize(context)
        if request.session_id != self._session.session_id:
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED,
                f"this worker serves session {self._session.session_id}, not {request.session_id}",
            )
        if not request.module_id:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "module_id must not be empty")
        try:
            config = self._config(request.module_class, request.config)
            module = self._resolver.create(
                request.module_class,
                request.signature,
                bindings=dict(request.bindings),
                session=self._session,
                lm_factory=self._lm_factory.build,
                **config,
            )
        except Exception as e:  # noqa: BLE001 - every failure is reported to the caller
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"cannot create {request.module_class}({request.signature!r}): {type(e).__name__}: {e}",
            )
        self._modules[request.module_id] = _Module(module, type(module).__name__, asyncio.Lock())
        log.info("created module %s: %s(%r) bindings=%s", request.module_id, type(module).__name__,
                 request.signature, dict(request.bindings))
        return pb.CreateModuleResponse(module_id=request.module_id, resolved_class=type(module).__name__)

    def _config(self, module_class: str, config: Mapping[str, pb.Value]) -> dict[str, Any]:
        from .module_config import TOOLS_KEY, constructor_kwargs
        from .values import from_proto_value

        values: dict[str, Any] = {key: from_proto_value(value) for key, value in config.items()}
        # A `Value` has no list: the tools arrive as one comma-separated string of dotted paths.
        tools = values.get(TOOLS_KEY)
        if isinstance(tools, str):
            values[TOOLS_KEY] = [path.strip() for path in tools.split(",") if path.strip()]
        return constructor_kwargs(module_class, values)

    async def ExecuteModule(
        self, request: pb.ExecuteModuleRequest, context: _Context
    ) -> pb.ExecuteModuleResponse:
        await self._authorize(context)
        entry = self._modules.get(request.module_id)
        if entry is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no module {request.module_id!r} in this worker")
        async with entry.lock:
            try:
                await entry.module.sync_variables(dict(request.min_versions))
            except Exception as e:  # noqa: BLE001 - reported to the caller with its Python text
                context.set_trailing_metadata((("x-dspex-error", "python"),))
                await context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"{type(e).__name__}: {e}")
            for lm in entry.module.lms():
                lm.history.clear()
            started = time.perf_counter()
            try:
                prediction = await entry.module.acall_synced(**dict(request.inputs))
            except Exception as e:  # noqa: BLE001 - the Python error text goes back to Rust
                log.warning("module %s raised %s: %s", request.module_id, type(e).__name__, e)
                context.set_trailing_metadata((("x-dspex-error", "python"),))
                await context.abort(grpc.StatusCode.UNKNOWN, f"{type(e).__name__}: {e}")
            micros = int((time.perf_counter() - started) * 1e6)
            calls = [_lm_settings(lm, h) for lm in entry.module.lms() for h in lm.history]
        outputs = {key: _text(value) for key, value in prediction.items()}
        return pb.ExecuteModuleResponse(outputs=outputs, lm_calls=calls, duration_micros=micros)

    async def DropModule(self, request: pb.DropModuleRequest, context: _Context) -> pb.DropModuleResponse:
        await self._authorize(context)
        self._modules.pop(request.module_id, None)
        return pb.DropModuleResponse()

    async def Shutdown(self, request: pb.ShutdownRequest, context: _Context) -> pb.ShutdownResponse:
        await self._authorize(context)
        log.info("shutdown requested")
        # Answer first; stop right after.
        asyncio.get_running_loop().call_later(0.05, self._stop.set)
        return pb.ShutdownResponse()

