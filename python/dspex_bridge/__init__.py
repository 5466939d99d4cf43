"""The Python side of dspex: the variables of a dspex session, shared with a Rust process over
gRPC (``proto/dspex/v1/bridge.proto``).

>>> import dspex_bridge
>>> ctx = dspex_bridge.SessionContext.from_env()        # doctest: +SKIP
>>> await ctx.get_variable("temperature")               # doctest: +SKIP
0.7

:class:`SessionContext` is async (``grpc.aio``); :class:`SyncSessionContext` is its facade for
synchronous code, with the same methods. Every error derives from :class:`DspexError` and from
the standard exception it also is (``KeyError``, ``ValueError``, ``TypeError``,
``PermissionError``, ...; see :mod:`dspex_bridge.errors`).

The worker that runs DSPy modules for a Rust process is the ``dspex-worker`` command (or
``python -m dspex_bridge.worker``).

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
        WrongTypeError,
    )
    from .session import (
        DEFAULT_CACHE_TTL,
        ENV_SESSION_ID,
        ENV_SESSION_TOKEN,
        ENV_STORE_ADDR,
        TOKEN_METADATA,
        CacheStats,
        SessionContext,
        connect,
    )
    from .sync import SyncSessionContext
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
    "WrongTypeError": "errors",
    "DEFAULT_CACHE_TTL": "session",
    "ENV_SESSION_ID": "session",
    "ENV_SESSION_TOKEN": "session",
    "ENV_STORE_ADDR": "session",
    "TOKEN_METADATA": "session",
    "CacheStats": "session",
    "SessionContext": "session",
    "connect": "session",
    "SyncSessionContext": "sync",
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
