"""Exceptions of ``dspex_bridge`` and the mapping of gRPC errors to them.

The Rust server puts the kind of every error in the ``x-dspex-error`` trailer (the name of a
``ErrorKind`` of the proto), so the mapping is precise: a value of the wrong type is a
``TypeError``, one that breaks a constraint a ``ValueError``, a missing variable a ``KeyError``
(:class:`VariableNotFoundError`), a stale compare-and-set a :class:`ConflictError`, a bad token a
``PermissionError``.

Every exception raised for a gRPC error carries ``code`` (the ``grpc.StatusCode``) and ``kind``
(the kind in lower case without its prefix, ``"constraint"``, or ``None``) attributes and chains
the original ``grpc.RpcError``.
"""

from __future__ import annotations

from typing import Any

import grpc

from ._proto.dspex.v1 import bridge_pb2 as pb
from .contract import ACTUAL_VERSION_METADATA, ERROR_METADATA, EXPECTED_VERSION_METADATA


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
    {
        pb.ERROR_KIND_CONSTRAINT,
        pb.ERROR_KIND_SPEC,
        pb.ERROR_KIND_PATTERN,
        pb.ERROR_KIND_INVALID_REQUEST,
        pb.ERROR_KIND_LIMIT,
        pb.ERROR_KIND_DUPLICATE_WRITE,
    }
)
_KIND_PREFIX = "ERROR_KIND_"


def error_kind(name: str | None) -> int:
    """The ``pb.ErrorKind`` a trailer names (``ERROR_KIND_UNSPECIFIED`` for none or an unknown
    name)."""
    try:
        return pb.ErrorKind.Value(name) if name else pb.ERROR_KIND_UNSPECIFIED
    except ValueError:
        return pb.ERROR_KIND_UNSPECIFIED


def kind_name(kind: int) -> str | None:
    """The short name of an error kind (``"constraint"``), ``None`` for ``UNSPECIFIED``."""
    if kind == pb.ERROR_KIND_UNSPECIFIED:
        return None
    return pb.ErrorKind.Name(kind).removeprefix(_KIND_PREFIX).lower()


def map_rpc_error(error: grpc.RpcError) -> Exception:
    """The exception a caller should see for a failed call (see the module docs)."""
    code_fn = getattr(error, "code", None)
    code: grpc.StatusCode | None = code_fn() if callable(code_fn) else None
    details_fn = getattr(error, "details", None)
    message = (details_fn() if callable(details_fn) else None) or str(error)
    trailers = _trailers(error)
    kind = error_kind(trailers.get(ERROR_METADATA))

    exc: Exception
    if kind == pb.ERROR_KIND_TYPE:
        exc = TypeError(message)
    elif kind == pb.ERROR_KIND_ALREADY_EXISTS:
        exc = AlreadyExistsError(message)
    elif kind in _VALUE_ERROR_KINDS:
        exc = ValueError(message)
    elif kind == pb.ERROR_KIND_NOT_FOUND or code == grpc.StatusCode.NOT_FOUND:
        exc = VariableNotFoundError(message)
    elif kind == pb.ERROR_KIND_CONFLICT or code == grpc.StatusCode.ABORTED:
        exc = ConflictError(
            message,
            expected_version=_int_or_none(trailers.get(EXPECTED_VERSION_METADATA)),
            actual_version=_int_or_none(trailers.get(ACTUAL_VERSION_METADATA)),
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
    exc.kind = kind_name(kind)  # type: ignore[attr-defined]
    exc.__cause__ = error
    return exc
