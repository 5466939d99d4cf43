"""Python values and records of the wire contract: typed values, constraints, variables and
watch updates, converted to and from the generated protobuf messages.

Python values map naturally: ``float``, ``int``, ``str``, ``bool`` and ``list[float]`` (an
embedding). A ``bool`` is never sent as an integer, and an ``int`` is sent as an integer (the
server widens it for float variables, like Rust does).
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal, TypeAlias

from ._proto.dspex.v1 import bridge_pb2 as pb
from .errors import InvalidValueError, WrongTypeError

#: A variable's value on the Python side.
PyValue: TypeAlias = float | int | str | bool | list[float]

#: The seven variable types.
VarType: TypeAlias = Literal[
    "float", "integer", "string", "boolean", "choice", "module", "embedding"
]

_I64_MIN = -(2**63)
_I64_MAX = 2**63 - 1

_TYPES: dict[str, pb.VariableType] = {
    "float": pb.VARIABLE_TYPE_FLOAT,
    "integer": pb.VARIABLE_TYPE_INTEGER,
    "string": pb.VARIABLE_TYPE_STRING,
    "boolean": pb.VARIABLE_TYPE_BOOLEAN,
    "choice": pb.VARIABLE_TYPE_CHOICE,
    "module": pb.VARIABLE_TYPE_MODULE,
    "embedding": pb.VARIABLE_TYPE_EMBEDDING,
}
_TYPE_NAMES: dict[int, str] = {v: k for k, v in _TYPES.items()}
_SOURCES: dict[int, str] = {pb.SOURCE_RUST: "rust", pb.SOURCE_PYTHON: "python"}
_UPDATE_KINDS: dict[int, str] = {
    pb.UPDATE_KIND_INITIAL: "initial",
    pb.UPDATE_KIND_REGISTERED: "registered",
    pb.UPDATE_KIND_UPDATED: "updated",
    pb.UPDATE_KIND_DELETED: "deleted",
    pb.UPDATE_KIND_LAGGED: "lagged",
}
_CONSTRAINT_KEYS = ("min", "max", "min_length", "max_length", "pattern", "choices", "dimensions")


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def to_proto_value(value: Any, *, field_name: str = "value") -> pb.Value:
    """A Python value as a wire value. Raises :class:`~dspex_bridge.WrongTypeError` (a
    ``TypeError``) for a value no variable can hold, :class:`~dspex_bridge.InvalidValueError` (a
    ``ValueError``) for an ``int`` outside the 64-bit range."""
    # bool first: it is a subclass of int, and must never become one.
    if isinstance(value, bool):
        return pb.Value(boolean_value=value)
    if isinstance(value, numbers.Integral):
        i = int(value)
        if not _I64_MIN <= i <= _I64_MAX:
            raise InvalidValueError(f"{field_name}: {i} does not fit in a 64-bit integer")
        return pb.Value(integer_value=i)
    if isinstance(value, numbers.Real):
        return pb.Value(float_value=float(value))
    if isinstance(value, str):
        return pb.Value(string_value=value)
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        value = value.tolist()  # numpy arrays and the like
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes, bytearray)):
        components: list[float] = []
        for i, x in enumerate(value):
            if isinstance(x, bool) or not isinstance(x, numbers.Real):
                raise WrongTypeError(
                    f"{field_name}: an embedding holds numbers, found {_describe(x)} at index {i}"
                )
            components.append(float(x))
        return pb.Value(embedding_value=pb.Embedding(values=components))
    raise WrongTypeError(
        f"{field_name}: {_describe(value)} ({type(value).__name__}) is not a variable value; "
        "expected float, int, str, bool or a list of floats"
    )


def from_proto_value(value: pb.Value) -> PyValue | None:
    """A wire value as a Python value (``None`` when unset)."""
    kind = value.WhichOneof("kind")
    if kind == "float_value":
        return value.float_value
    if kind == "integer_value":
        return value.integer_value
    if kind == "string_value":
        return value.string_value
    if kind == "boolean_value":
        return value.boolean_value
    if kind == "embedding_value":
        return list(value.embedding_value.values)
    return None


def to_proto_type(var_type: str) -> pb.VariableType:
    """A type name (``"float"``, ...) as the wire enum; ``ValueError`` for an unknown one."""
    try:
        return _TYPES[var_type]
    except KeyError:
        expected = ", ".join(_TYPES)
        raise InvalidValueError(f"unknown variable type {var_type!r}; expected one of {expected}") from None


def _number(bound: Any, key: str) -> pb.Number:
    if isinstance(bound, bool) or not isinstance(bound, numbers.Real):
        raise WrongTypeError(f"constraints[{key!r}]: a bound must be a number, found {_describe(bound)}")
    if isinstance(bound, numbers.Integral):
        return pb.Number(integer=int(bound))
    return pb.Number(float=float(bound))


def to_proto_constraints(constraints: Mapping[str, Any] | None) -> pb.Constraints:
    """A constraints mapping (keys ``min``, ``max``, ``min_length``, ``max_length``, ``pattern``,
    ``choices``, ``dimensions``) as the wire message. Whether they suit the type is the server's
    call."""
    out = pb.Constraints()
    if not constraints:
        return out
    unknown = sorted(set(constraints) - set(_CONSTRAINT_KEYS))
    if unknown:
        raise InvalidValueError(
            f"unknown constraint {unknown[0]!r}; expected one of {', '.join(_CONSTRAINT_KEYS)}"
        )
    for key in ("min", "max"):
        if constraints.get(key) is not None:
            getattr(out, key).CopyFrom(_number(constraints[key], key))
    for key in ("min_length", "max_length", "dimensions"):
        if constraints.get(key) is not None:
            n = constraints[key]
            if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
                raise InvalidValueError(f"constraints[{key!r}]: expected a non-negative int, found {n!r}")
            setattr(out, key, int(n))
    if constraints.get("pattern") is not None:
        out.pattern = str(constraints["pattern"])
    if constraints.get("choices") is not None:
        choices = constraints["choices"]
        if isinstance(choices, str):
            raise WrongTypeError("constraints['choices']: expected a list of strings, found a string")
        out.choices.SetInParent()
        out.choices.values.extend(str(c) for c in choices)
    return out


def from_proto_constraints(c: pb.Constraints) -> dict[str, Any]:
    """The constraints that are set, as a dict."""
    out: dict[str, Any] = {}
    for key in ("min", "max"):
        if c.HasField(key):
            number = getattr(c, key)
            out[key] = number.integer if number.WhichOneof("kind") == "integer" else number.float
    for key in ("min_length", "max_length", "pattern", "dimensions"):
        if c.HasField(key):
            out[key] = getattr(c, key)
    if c.HasField("choices"):
        out["choices"] = list(c.choices.values)
    return out


def _datetime(ts: Any) -> datetime:
    return datetime.fromtimestamp(ts.seconds + ts.nanos / 1e9, tz=timezone.utc)


@dataclass(frozen=True, slots=True)
class Variable:
    """A variable record, as the session holds it."""

    id: int
    name: str
    type: str
    value: PyValue | None
    constraints: dict[str, Any]
    description: str | None
    metadata: dict[str, str]
    version: int
    created_at: datetime
    updated_at: datetime
    source: str
    #: Only Rust may write it: a write from Python raises :class:`~dspex_bridge.ReadOnlyError`.
    readonly: bool = False

    @classmethod
    def from_proto(cls, v: pb.Variable) -> Variable:
        """Decodes a wire record."""
        return cls(
            id=v.id,
            name=v.name,
            type=_TYPE_NAMES.get(v.type, "unspecified"),
            value=from_proto_value(v.value),
            constraints=from_proto_constraints(v.constraints),
            description=v.description if v.HasField("description") else None,
            metadata=dict(v.metadata),
            version=v.version,
            created_at=_datetime(v.created_at),
            updated_at=_datetime(v.updated_at),
            source=_SOURCES.get(v.source, "unspecified"),
            readonly=v.readonly,
        )


@dataclass(frozen=True, slots=True)
class VariableUpdate:
    """One event of a watch stream.

    ``kind`` is ``"initial"``, ``"registered"``, ``"updated"``, ``"deleted"`` or ``"lagged"``
    (the watcher fell behind and ``missed`` events were dropped just before this point).
    """

    kind: str
    name: str
    id: int = 0
    old_value: PyValue | None = None
    new_value: PyValue | None = None
    version: int = 0
    source: str | None = None
    missed: int = 0
    at: datetime | None = field(default=None)

    @classmethod
    def from_proto(cls, u: pb.VariableUpdate) -> VariableUpdate:
        """Decodes a wire update."""
        return cls(
            kind=_UPDATE_KINDS.get(u.kind, "unspecified"),
            name=u.name,
            id=u.id,
            old_value=from_proto_value(u.old_value) if u.HasField("old_value") else None,
            new_value=from_proto_value(u.new_value) if u.HasField("new_value") else None,
            version=u.version,
            source=_SOURCES.get(u.source),
            missed=u.missed,
            at=_datetime(u.at) if u.HasField("at") else None,
        )


@dataclass(frozen=True, slots=True)
class GetVariablesResult:
    """The result of ``get_variables``: the values found, in request order, and the names that
    are not there (never dropped silently)."""

    found: dict[str, PyValue | None]
    missing: list[str]
    records: dict[str, Variable]


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One accepted write of a variable, as its history keeps it (registration is version 1).

    ``metadata`` is the metadata given with that write: empty for a plain write,
    ``{"rolled_back_from": "<version>"}`` for a rollback, the declared metadata for the
    registration.
    """

    version: int
    value: PyValue | None
    source: str
    metadata: dict[str, str]
    at: datetime

    @classmethod
    def from_proto(cls, e: pb.HistoryEntry) -> HistoryEntry:
        """Decodes a wire history entry."""
        return cls(
            version=e.version,
            value=from_proto_value(e.value),
            source=_SOURCES.get(e.source, "unspecified"),
            metadata=dict(e.metadata),
            at=_datetime(e.at),
        )
