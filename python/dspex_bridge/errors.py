"""Exceptions of ``dspex_bridge`` and the mapping of gRPC errors to them.

The Rust server puts the kind of every error in the ``x-dspex-error`` trailer, so the mapping is
precise: a value of the wrong type is a ``TypeError``, one that breaks a constraint a
``ValueError``, a missing variable a ``KeyError`` (:class:`VariableNotFoundError`), a stale
compare-and-set a :class:`ConflictError`, a bad token a ``PermissionError``.

Every exception raised for a gRPC error carries ``code`` (the ``grpc.StatusCode``) and ``kind``
(the trailer, or ``None``) attributes and chains the original ``grpc.RpcError``.
"""

from __future__ import annotations

from typing import Any

import grpc

#: The trailer that carries the kind of an error.
ERROR_METADATA = "x-dspex-error"


class VariableNotFoundError(KeyError):
    """No variable with this name in the session (gRPC ``NOT_FOUND``)."""

    def __str__(self) -> str:
        # KeyError quotes its argument; the message is already a sentence.
        return str(self.args[0]) if self.args else ""


class AlreadyExistsError(ValueError):
    """A variable with this name already exists (gRPC ``ALREADY_EXISTS``)."""


class ConflictError(Exception):
    """A compare-and-set write found the variable at another version (gRPC ``ABORTED``).

    ``expected_version`` is the version the write expected, ``actual_version`` the version the
    variable is at (``None`` when the server did not say).
    """

    def __init__(
        self,
        message: str,
        *,
        expected_version: int | None = None,
        actual_version: int | None = None,
    ) -> None:
        super().__init__(message)
        self.expected_version = expected_version
        self.actual_version = actual_version


class BridgeError(RuntimeError):
    """Any other failure of the bridge (an internal error, an unexpected status)."""


def _trailers(error: grpc.RpcError) -> dict[str, str]:
    out: dict[str, str] = {}
    trailing = getattr(error, "trailing_metadata", None)
    items: Any = trailing() if callable(trailing) else None
    for key, value in items or ():
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        out[key] = value
    return out


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


_VALUE_ERROR_KINDS = frozenset(
    {"constraint", "spec", "pattern", "invalid_request", "limit", "duplicate_write"}
)


def map_rpc_error(error: grpc.RpcError) -> Exception:
    """The exception a caller should see for a failed call (see the module docs)."""
    code_fn = getattr(error, "code", None)
    code: grpc.StatusCode | None = code_fn() if callable(code_fn) else None
    details_fn = getattr(error, "details", None)
    message = (details_fn() if callable(details_fn) else None) or str(error)
    trailers = _trailers(error)
    kind = trailers.get(ERROR_METADATA)

    exc: Exception
    if kind == "type":
        exc = TypeError(message)
    elif kind == "already_exists":
        exc = AlreadyExistsError(message)
    elif kind in _VALUE_ERROR_KINDS:
        exc = ValueError(message)
    elif kind == "not_found" or code == grpc.StatusCode.NOT_FOUND:
        exc = VariableNotFoundError(message)
    elif kind == "conflict" or code == grpc.StatusCode.ABORTED:
        exc = ConflictError(
            message,
            expected_version=_int_or_none(trailers.get("x-dspex-expected-version")),
            actual_version=_int_or_none(trailers.get("x-dspex-actual-version")),
        )
    elif code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
        exc = PermissionError(message)
    elif code == grpc.StatusCode.INVALID_ARGUMENT:
        exc = ValueError(message)
    elif code in (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.OUT_OF_RANGE):
        # Over a size limit (tonic's own message-size check carries no kind).
        exc = ValueError(message)
    elif code == grpc.StatusCode.UNAVAILABLE:
        exc = ConnectionError(message)
    elif code == grpc.StatusCode.DEADLINE_EXCEEDED:
        exc = TimeoutError(message)
    else:
        exc = BridgeError(message)
    exc.code = code  # type: ignore[attr-defined]
    exc.kind = kind  # type: ignore[attr-defined]
    exc.__cause__ = error
    return exc
