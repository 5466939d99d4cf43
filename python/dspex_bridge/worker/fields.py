"""Signature fields on the wire: the declared type of each field of a DSPy signature, and the
conversion of values to and from ``FieldValue`` by that type.

=================  ===================  ==================================================
declared type      ``FieldValue``       Python value
=================  ===================  ==================================================
``str`` (default)  ``text``             ``str``
``Literal[...]``   ``text``             one of the options
``int``            ``integer``          ``int``
``float``          ``float``            ``float`` (an ``integer`` is widened)
``bool``           ``boolean``          ``bool``
``list[str]``      ``strings``          ``list[str]``
``list[int]``      ``integers``         ``list[int]``
``list[float]``    ``floats``           ``list[float]`` (``integers`` are widened)
``dict``           ``json_object``      ``dict`` (a JSON object; integers stay integers)
=================  ===================  ==================================================

An input sent as ``text`` for a field declared with another type is parsed by that type
(``"3"`` for an ``int``, JSON for lists and dicts), so a caller that only has text works with
typed signatures. A value that does not fit is a :class:`FieldTypeError` naming the field, the
type and (a prefix of) the value.
"""

from __future__ import annotations

import json
import math
import typing
from dataclasses import dataclass
from typing import Any

from .._proto.dspex.v1 import bridge_pb2 as pb
from ..contract import echo, excerpt
from ..errors import InvalidValueError, WrongTypeError

__all__ = ["FieldType", "FieldTypeError", "field_type", "from_field_value", "text_field_value", "to_field_value"]

#: The declared types a signature field may have, as they are written.
SUPPORTED = "str, int, float, bool, list[str], list[int], list[float], dict, Literal[...]"


class FieldTypeError(InvalidValueError):
    """A field value that does not fit the field's declared type: ``field`` names the field,
    ``type`` is its declared type as a signature writes it (``float``), ``value`` an excerpt
    of the value as JSON (its ``repr`` when it has no JSON form)."""

    def __init__(self, message: str, *, field: str = "", type: str = "", value: str = "") -> None:  # noqa: A002
        super().__init__(message)
        self.field = field
        self.type = type
        self.value = value


@dataclass(frozen=True)
class FieldType:
    """The declared type of a signature field: ``kind`` is one of ``str``, ``literal``, ``int``,
    ``float``, ``bool``, ``list[str]``, ``list[int]``, ``list[float]``, ``dict``; ``options``
    are the options of a ``Literal``."""

    kind: str
    options: tuple[str, ...] = ()

    def __str__(self) -> str:
        if self.kind == "literal":
            return f"Literal[{', '.join(map(repr, self.options))}]"
        return self.kind


_SCALARS: dict[Any, str] = {str: "str", int: "int", float: "float", bool: "bool", dict: "dict"}
_LISTS: dict[Any, str] = {str: "list[str]", int: "list[int]", float: "list[float]"}


def field_type(annotation: Any) -> FieldType:
    """The declared type of a field from its annotation; ``TypeError`` for a type the wire does
    not carry."""
    if annotation in _SCALARS:
        return FieldType(_SCALARS[annotation])
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal and args and all(isinstance(a, str) for a in args):
        return FieldType("literal", tuple(args))
    if origin is list and len(args) == 1 and args[0] in _LISTS:
        return FieldType(_LISTS[args[0]])
    if origin is dict and args[:1] in ((), (str,)):
        return FieldType("dict")
    raise WrongTypeError(f"type `{_type_name(annotation)}` is not one of {SUPPORTED}")


def _type_name(annotation: Any) -> str:
    if typing.get_origin(annotation) is None and isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def signature_types(signature: Any) -> tuple[dict[str, FieldType], dict[str, FieldType]]:
    """The declared types of a DSPy signature's inputs and outputs; ``TypeError`` naming the
    field for a type the wire does not carry."""
    out: list[dict[str, FieldType]] = []
    for fields in (signature.input_fields, signature.output_fields):
        types = {}
        for name, info in fields.items():
            try:
                types[name] = field_type(info.annotation)
            except WrongTypeError as e:
                raise WrongTypeError(f"field `{name}`: {e}") from None
        out.append(types)
    return out[0], out[1]


def _problem(direction: str, name: str, ftype: FieldType, value: Any, why: str) -> FieldTypeError:
    shown = echo(value) if isinstance(value, str) else echo(_json_or_repr(value))
    return FieldTypeError(
        f"{direction} `{name}` ({ftype}): {shown} {why}",
        field=name,
        type=str(ftype),
        value=excerpt(_json_or_repr(value)),
    )


def _article(ftype: FieldType) -> str:
    return "an" if str(ftype)[0] in "aeiou" else "a"


def _json_or_repr(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    x = float(value)
    return x if math.isfinite(x) else None


def _parse_text(text: str, ftype: FieldType) -> Any:
    """A value of `ftype` parsed from text; raises ``ValueError`` when it does not parse."""
    kind = ftype.kind
    if kind in ("str", "literal"):
        return text
    stripped = text.strip()
    if kind == "int":
        return int(stripped)
    if kind == "float":
        return float(stripped)
    if kind == "bool":
        lowered = stripped.lower()
        if lowered in ("true", "false"):
            return lowered == "true"
        raise ValueError("not a boolean")
    return json.loads(stripped)


def _coerce(value: Any, ftype: FieldType) -> Any:
    """`value` as a value of `ftype`, or ``None`` if it is not one (text is parsed)."""
    if isinstance(value, str) and ftype.kind not in ("str", "literal"):
        try:
            value = _parse_text(value, ftype)
        except ValueError:
            return None
    kind = ftype.kind
    if kind == "str":
        return value if isinstance(value, str) else None
    if kind == "literal":
        return value if isinstance(value, str) and value in ftype.options else None
    if kind == "int":
        return _int(value)
    if kind == "float":
        return _float(value)
    if kind == "bool":
        return value if isinstance(value, bool) else None
    if kind == "dict":
        if isinstance(value, dict) and all(isinstance(k, str) for k in value):
            try:
                json.dumps(value, allow_nan=False)
            except (TypeError, ValueError):
                return None
            return value
        return None
    if not isinstance(value, (list, tuple)):
        return None
    item = {"list[str]": lambda x: x if isinstance(x, str) else None, "list[int]": _int, "list[float]": _float}[kind]
    items = [item(x) for x in value]
    return None if any(x is None for x in items) else items


def from_field_value(name: str, value: pb.FieldValue, ftype: FieldType) -> Any:
    """An input field's Python value, by its declared type (text is parsed)."""
    kind = value.WhichOneof("kind")
    raw: Any
    if kind is None:
        raise FieldTypeError(f"input `{name}` ({ftype}): no value")
    if kind == "json_object":
        try:
            raw = json.loads(value.json_object)
        except ValueError:
            raise _problem("input", name, ftype, value.json_object, "is not JSON") from None
        if not isinstance(raw, dict):
            raise _problem("input", name, ftype, value.json_object, "is not a JSON object")
    elif kind in ("strings", "integers", "floats"):
        raw = list(getattr(value, kind).values)
    else:
        raw = getattr(value, kind)
    converted = _coerce(raw, ftype)
    if converted is None:
        raise _problem("input", name, ftype, raw, f"is not {_article(ftype)} {ftype}")
    return converted


def to_field_value(name: str, value: Any, ftype: FieldType) -> pb.FieldValue:
    """A declared output's ``FieldValue``, by its declared type (text is parsed; ``str``
    fields take any value, as text)."""
    if ftype.kind == "str" and not isinstance(value, str):
        return text_field_value(value)
    converted = _coerce(value, ftype)
    if converted is None:
        raise _problem("output", name, ftype, value, f"cannot be converted to {ftype}")
    kind = ftype.kind
    if kind in ("str", "literal"):
        return pb.FieldValue(text=converted)
    if kind == "int":
        return pb.FieldValue(integer=converted)
    if kind == "float":
        return pb.FieldValue(float=converted)
    if kind == "bool":
        return pb.FieldValue(boolean=converted)
    if kind == "dict":
        return pb.FieldValue(json_object=json.dumps(converted, allow_nan=False))
    if kind == "list[str]":
        return pb.FieldValue(strings=pb.StringList(values=converted))
    if kind == "list[int]":
        return pb.FieldValue(integers=pb.IntegerList(values=converted))
    return pb.FieldValue(floats=pb.FloatList(values=converted))


def text_field_value(value: Any) -> pb.FieldValue:
    """An extra output (one the signature does not declare, like ``reasoning``) as text:
    strings as they are, anything else as JSON when it can be."""
    if isinstance(value, str):
        return pb.FieldValue(text=value)
    try:
        return pb.FieldValue(text=json.dumps(value, default=str))
    except (TypeError, ValueError):
        return pb.FieldValue(text=str(value))
