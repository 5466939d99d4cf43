"""The Python side of dspex: the variables of a dspex session, shared with a Rust process over
gRPC (``proto/dspex/v1/bridge.proto``), and the worker that runs DSPy modules for it.

>>> import dspex_bridge
>>> ctx = dspex_bridge.SessionContext.from_env()        # doctest: +SKIP
>>> await ctx.get_variable("temperature")               # doctest: +SKIP
0.7

:class:`SessionContext` is async (``grpc.aio``); :class:`SyncSessionContext` is its facade for
synchronous code, with the same methods. Every error derives from :class:`DspexError` and from
the standard exception it also is (``KeyError``, ``ValueError``, ``TypeError``,
``PermissionError``, ...; see :mod:`dspex_bridge.errors`).

The package has two parts over a shared base, and neither part imports the other:

- the base: :mod:`~dspex_bridge.contract` (what both sides of the bridge agree on, read from
  ``contract.json``), :mod:`~dspex_bridge.errors`, :mod:`~dspex_bridge.values` (wire values),
  :mod:`~dspex_bridge.imports` (classes and callables by dotted path),
  :mod:`~dspex_bridge.binding` (applying a module's bound parameters to a call, as the contract
  says) and the generated gRPC stubs (``_proto``);
- :mod:`dspex_bridge.client`: the library for Python code that reads and writes a session's
  variables (``SessionContext``, ``SyncSessionContext``, variable-aware DSPy modules);
- :mod:`dspex_bridge.worker`: the worker process that runs DSPy modules for a Rust process,
  the ``dspex-worker`` command (or ``python -m dspex_bridge.worker``).

Importing the package imports nothing but the standard library: the names below load their
module (and ``grpc``) on first use, so that ``python -m dspex_bridge.worker`` can report a
missing dependency itself.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .errors import (
        AlreadyExistsError,
        BridgeError,
        BridgeTimeoutError,
        BridgeUnavailableError,
        ConflictError,
        DspexError,
        InvalidValueError,
        MissingEnvironmentError,
        ModuleImportError,
        NotAuthorizedError,
        ReadOnlyError,
        UsageError,
        VariableNotFoundError,
        VersionNotFoundError,
        WorkerConfigError,
        WrongTypeError,
    )
    from .client.session import (
        DEFAULT_CACHE_TTL,
        ENV_SESSION_ID,
        ENV_SESSION_TOKEN,
        ENV_STORE_ADDR,
        TOKEN_METADATA,
        CacheStats,
        SessionContext,
        connect,
    )
    from .client.sync import SyncSessionContext
    from .values import GetVariablesResult, HistoryEntry, PyValue, Variable, VariableUpdate

_EXPORTS = {
    "AlreadyExistsError": "errors",
    "BridgeError": "errors",
    "BridgeTimeoutError": "errors",
    "BridgeUnavailableError": "errors",
    "ConflictError": "errors",
    "DspexError": "errors",
    "InvalidValueError": "errors",
    "MissingEnvironmentError": "errors",
    "ModuleImportError": "errors",
    "NotAuthorizedError": "errors",
    "ReadOnlyError": "errors",
    "UsageError": "errors",
    "VariableNotFoundError": "errors",
    "VersionNotFoundError": "errors",
    "WorkerConfigError": "errors",
    "WrongTypeError": "errors",
    "DEFAULT_CACHE_TTL": "client.session",
    "ENV_SESSION_ID": "client.session",
    "ENV_SESSION_TOKEN": "client.session",
    "ENV_STORE_ADDR": "client.session",
    "TOKEN_METADATA": "client.session",
    "CacheStats": "client.session",
    "SessionContext": "client.session",
    "connect": "client.session",
    "SyncSessionContext": "client.sync",
    "GetVariablesResult": "values",
    "HistoryEntry": "values",
    "PyValue": "values",
    "Variable": "values",
    "VariableUpdate": "values",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'dspex_bridge' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
