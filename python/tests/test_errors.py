"""Every exception of ``dspex_bridge`` is a ``DspexError`` and the standard exception a Python
user expects, and gRPC failures map to them by the kind the server gives."""

from __future__ import annotations

import inspect

import grpc
import pytest

import dspex_bridge
from dspex_bridge import errors
from dspex_bridge.values import to_proto_constraints, to_proto_type, to_proto_value

#: Each exception class and the standard exception it also is.
STANDARD = {
    errors.VariableNotFoundError: KeyError,
    errors.VersionNotFoundError: KeyError,
    errors.MissingEnvironmentError: KeyError,
    errors.AlreadyExistsError: ValueError,
    errors.InvalidValueError: ValueError,
    errors.WrongTypeError: TypeError,
    errors.NotAuthorizedError: PermissionError,
    errors.ReadOnlyError: errors.NotAuthorizedError,
    errors.BridgeUnavailableError: ConnectionError,
    errors.BridgeTimeoutError: TimeoutError,
    errors.UsageError: RuntimeError,
    errors.ModuleImportError: ImportError,
    errors.BridgeError: RuntimeError,
    errors.ConflictError: errors.DspexError,
}


def test_every_exception_class_is_a_dspex_error_and_a_standard_one() -> None:
    public = {
        cls
        for name, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, BaseException) and not name.startswith("_") and cls is not errors.DspexError
    }
    assert public == set(STANDARD)
    for cls, standard in STANDARD.items():
        assert issubclass(cls, errors.DspexError) and issubclass(cls, standard), cls
        # Exported at the top of the package.
        assert getattr(dspex_bridge, cls.__name__) is cls


def test_key_errors_read_as_sentences() -> None:
    assert str(errors.VariableNotFoundError("variable `x` not found")) == "variable `x` not found"


class FakeRpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str, trailers: dict[str, str]) -> None:
        self._code, self._details, self._trailers = code, details, trailers

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:
        return tuple(self._trailers.items())


@pytest.mark.parametrize(
    ("code", "kind", "expected"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, "type", errors.WrongTypeError),
        (grpc.StatusCode.INVALID_ARGUMENT, "constraint", errors.InvalidValueError),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, "limit", errors.InvalidValueError),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, None, errors.InvalidValueError),
        (grpc.StatusCode.ALREADY_EXISTS, "already_exists", errors.AlreadyExistsError),
        (grpc.StatusCode.ALREADY_EXISTS, "duplicate_write", errors.InvalidValueError),
        (grpc.StatusCode.NOT_FOUND, None, errors.VariableNotFoundError),
        (grpc.StatusCode.ABORTED, "conflict", errors.ConflictError),
        (grpc.StatusCode.UNAUTHENTICATED, "unauthenticated", errors.NotAuthorizedError),
        (grpc.StatusCode.PERMISSION_DENIED, "permission_denied", errors.NotAuthorizedError),
        (grpc.StatusCode.PERMISSION_DENIED, "read_only", errors.ReadOnlyError),
        (grpc.StatusCode.NOT_FOUND, "version_not_found", errors.VersionNotFoundError),
        (grpc.StatusCode.UNAVAILABLE, None, errors.BridgeUnavailableError),
        (grpc.StatusCode.DEADLINE_EXCEEDED, None, errors.BridgeTimeoutError),
        (grpc.StatusCode.INTERNAL, "internal", errors.BridgeError),
    ],
)
def test_rpc_errors_map_by_kind(
    code: grpc.StatusCode, kind: str | None, expected: type[errors.DspexError]
) -> None:
    trailers = {errors.ERROR_METADATA: kind} if kind else {}
    if kind == "conflict":
        trailers |= {"x-dspex-expected-version": "3", "x-dspex-actual-version": "4"}
    rpc = FakeRpcError(code, "what went wrong", trailers)
    exc = errors.map_rpc_error(rpc)
    assert type(exc) is expected
    assert (str(exc), exc.code, exc.kind, exc.__cause__) == ("what went wrong", code, kind, rpc)
    if isinstance(exc, errors.ConflictError):
        assert (exc.expected_version, exc.actual_version) == (3, 4)


def test_values_the_wire_cannot_carry_are_refused_before_any_call() -> None:
    with pytest.raises(errors.WrongTypeError, match="not a variable value"):
        to_proto_value({"a": 1})
    with pytest.raises(errors.InvalidValueError, match="64-bit"):
        to_proto_value(2**64)
    with pytest.raises(errors.InvalidValueError, match="unknown variable type 'double'"):
        to_proto_type("double")
    with pytest.raises(errors.WrongTypeError, match="a bound must be a number"):
        to_proto_constraints({"min": "low"})
