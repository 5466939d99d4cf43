"""Exceptions of ``dspex_bridge`` and the mapping of gRPC errors to them.

Every exception the package raises derives from :class:`DspexError`, and also from the
standard exception a Python user expects, so both ``except DspexError`` and ``except
KeyError`` work:

- :class:`VariableNotFoundError` (``KeyError``): no variable with this name;
- :class:`MissingEnvironmentError` (``KeyError``): the ``DSPEX_*`` variables are not set;
- :class:`AlreadyExistsError` (``ValueError``): a variable name that is taken;
- :class:`InvalidValueError` (``ValueError``): a value, declaration or request that breaks a
  rule (a constraint, a limit, a malformed pattern);
- :class:`WrongTypeError` (``TypeError``): a value of the wrong type;
- :class:`ConflictError`: a stale compare-and-set;
- :class:`VersionNotFoundError` (``KeyError``): a rollback to a version the history no longer
  keeps;
- :class:`NotAuthorizedError` (``PermissionError``): a missing, wrong or expired token;
- :class:`ReadOnlyError` (a :class:`NotAuthorizedError`): a write to a variable only Rust may
  write;
- :class:`BridgeUnavailableError` (``ConnectionError``): the store cannot be reached;
- :class:`BridgeTimeoutError` (``TimeoutError``): no answer in time;
- :class:`UsageError` (``RuntimeError``): a call the object's state does not allow (a closed
  context, a module with no session);
- :class:`ModuleImportError` (``ImportError``): a module class that cannot be imported;
- :class:`WorkerConfigError` (``ValueError``): a worker's configuration on stdin that is
  missing or unusable;
- :class:`BridgeError` (``RuntimeError``): any other failure of the bridge.

A signature field whose value does not fit its declared type is a
:class:`~dspex_bridge.worker.fields.FieldTypeError` (an :class:`InvalidValueError`).

The Rust server puts the kind of every error in the ``x-dspex-error`` trailer (the name of an
``ErrorKind`` of the proto, ``ERROR_KIND_CONSTRAINT``), so the mapping is precise. Every
exception raised for a gRPC error carries ``code`` (the ``grpc.StatusCode``) and ``kind`` (the
kind in lower case without its prefix, ``"constraint"``, or ``None``) and chains the original
``grpc.RpcError``.
"""

from __future__ import annotations

import grpc

from ._proto.dspex.v1 import bridge_pb2 as pb
from .contract import ACTUAL_VERSION_METADATA, ERROR_METADATA, EXPECTED_VERSION_METADATA


class DspexError(Exception):
    """The base class of every exception of ``dspex_bridge``."""

    #: The gRPC status of the failed call, when the error comes from one.
    code: grpc.StatusCode | None = None
    #: The kind the server gave the error (``x-dspex-error``), when it gave one.
    kind: str | None = None


class _MessageKeyError(DspexError, KeyError):
    """A ``KeyError`` whose message is a sentence (``KeyError`` quotes its argument)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class VariableNotFoundError(_MessageKeyError):
    """No variable with this name in the session (gRPC ``NOT_FOUND``)."""


class VersionNotFoundError(_MessageKeyError):
    """A rollback to a version the variable's history no longer keeps, or never had (gRPC
    ``NOT_FOUND``, kind ``VERSION_NOT_FOUND``); the message names the versions it keeps."""


class MissingEnvironmentError(_MessageKeyError):
    """The environment does not describe a session (``DSPEX_STORE_ADDR``, ...)."""


class AlreadyExistsError(DspexError, ValueError):
    """A variable with this name already exists (gRPC ``ALREADY_EXISTS``)."""


class InvalidValueError(DspexError, ValueError):
    """A value, declaration or request that breaks a rule: a constraint, a limit, a malformed
    pattern or request, one variable twice in an atomic write."""


class WrongTypeError(DspexError, TypeError):
    """A value of a type the variable (or any variable) cannot hold."""


class ConflictError(DspexError):
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


class NotAuthorizedError(DspexError, PermissionError):
    """A missing, unknown or expired session token, or the token of another session."""


class ReadOnlyError(NotAuthorizedError):
    """A write (set, batch, update, rollback, delete) to a read-only variable: only Rust code
    may write it, and nothing changed (gRPC ``PERMISSION_DENIED``, kind ``READ_ONLY``)."""


class BridgeUnavailableError(DspexError, ConnectionError):
    """The store cannot be reached (gRPC ``UNAVAILABLE``)."""


class BridgeTimeoutError(DspexError, TimeoutError):
    """The store did not answer in time."""


class UsageError(DspexError, RuntimeError):
    """A call the object's state does not allow: a closed context, a module with no session."""


class ModuleImportError(DspexError, ImportError):
    """A module class given by dotted path that cannot be imported."""


class BridgeError(DspexError, RuntimeError):
    """Any other failure of the bridge (an internal error, an unexpected status)."""


class WorkerConfigError(DspexError, ValueError):
    """The ``WorkerConfig`` a worker reads on its stdin is missing, truncated or over a limit."""


def _trailers(error: grpc.RpcError) -> dict[str, str]:
    out: dict[str, str] = {}
    trailing = getattr(error, "trailing_metadata", None)
    items = trailing() if callable(trailing) else None
    for key, value in items or ():
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        out[str(key)] = str(value)
    return out


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


_INVALID_VALUE_KINDS = frozenset(
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


def map_rpc_error(error: grpc.RpcError) -> DspexError:
    """The exception a caller should see for a failed call (see the module docs)."""
    code_fn = getattr(error, "code", None)
    code: grpc.StatusCode | None = code_fn() if callable(code_fn) else None
    details_fn = getattr(error, "details", None)
    message = str((details_fn() if callable(details_fn) else None) or error)
    trailers = _trailers(error)
    kind = error_kind(trailers.get(ERROR_METADATA))

    exc: DspexError
    if kind == pb.ERROR_KIND_TYPE:
        exc = WrongTypeError(message)
    elif kind == pb.ERROR_KIND_ALREADY_EXISTS:
        exc = AlreadyExistsError(message)
    elif kind in _INVALID_VALUE_KINDS:
        exc = InvalidValueError(message)
    elif kind == pb.ERROR_KIND_VERSION_NOT_FOUND:
        exc = VersionNotFoundError(message)
    elif kind == pb.ERROR_KIND_READ_ONLY:
        exc = ReadOnlyError(message)
    elif kind == pb.ERROR_KIND_NOT_FOUND or code == grpc.StatusCode.NOT_FOUND:
        exc = VariableNotFoundError(message)
    elif kind == pb.ERROR_KIND_CONFLICT or code == grpc.StatusCode.ABORTED:
        exc = ConflictError(
            message,
            expected_version=_int_or_none(trailers.get(EXPECTED_VERSION_METADATA)),
            actual_version=_int_or_none(trailers.get(ACTUAL_VERSION_METADATA)),
        )
    elif code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
        exc = NotAuthorizedError(message)
    elif code in (
        grpc.StatusCode.INVALID_ARGUMENT,
        # Over a size limit (the transport's own message-size check carries no kind).
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.OUT_OF_RANGE,
    ):
        exc = InvalidValueError(message)
    elif code == grpc.StatusCode.UNAVAILABLE:
        exc = BridgeUnavailableError(message)
    elif code == grpc.StatusCode.DEADLINE_EXCEEDED:
        exc = BridgeTimeoutError(message)
    else:
        exc = BridgeError(message)
    exc.code = code
    exc.kind = kind_name(kind)
    exc.__cause__ = error
    return exc
