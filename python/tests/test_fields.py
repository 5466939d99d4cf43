"""Typed signature fields: declared types from DSPy signatures, and values to and from
``FieldValue`` by those types."""

from __future__ import annotations

import json
from typing import Any, Literal

import dspy
import pytest

from dspex_bridge._proto.dspex.v1 import bridge_pb2 as pb
from dspex_bridge.contract import LIMITS
from dspex_bridge.worker.fields import (
    FieldType,
    FieldTypeError,
    field_type,
    from_field_value,
    signature_types,
    text_field_value,
    to_field_value,
)


def test_declared_types_come_from_the_signature() -> None:
    signature = dspy.Signature(
        "q, k: int -> a: float, b: list[str], c: Literal['x', 'y'], d: dict, e: bool, f: list[int], g: list[float]"
    )
    inputs, outputs = signature_types(signature)
    assert inputs == {"q": FieldType("str"), "k": FieldType("int")}
    assert [str(t) for t in outputs.values()] == [
        "float", "list[str]", "Literal['x', 'y']", "dict", "bool", "list[int]", "list[float]",
    ]
    assert field_type(dict[str, Any]) == FieldType("dict")
    for bad in (set[int], list[dict], Literal[1, 2], tuple[int], dict[int, str]):
        with pytest.raises(TypeError, match="is not one of str, int"):
            field_type(bad)


@pytest.mark.parametrize(
    ("ftype", "value", "wire_kind", "back"),
    [
        (FieldType("str"), "hi", "text", "hi"),
        (FieldType("literal", ("a", "b")), "b", "text", "b"),
        (FieldType("int"), 3, "integer", 3),
        (FieldType("int"), 3.0, "integer", 3),
        (FieldType("int"), "42", "integer", 42),
        (FieldType("float"), 2, "float", 2.0),
        (FieldType("float"), "0.5", "float", 0.5),
        (FieldType("bool"), "true", "boolean", True),
        (FieldType("list[str]"), ["a"], "strings", ["a"]),
        (FieldType("list[int]"), "[1, 2]", "integers", [1, 2]),
        (FieldType("list[float]"), [1, 2.5], "floats", [1.0, 2.5]),
        (FieldType("dict"), {"n": 1, "xs": [True]}, "json_object", {"n": 1, "xs": [True]}),
        (FieldType("dict"), '{"n": 1}', "json_object", {"n": 1}),
    ],
)
def test_values_convert_by_their_declared_type(ftype: FieldType, value: Any, wire_kind: str, back: Any) -> None:
    wire = to_field_value("f", value, ftype)
    assert wire.WhichOneof("kind") == wire_kind
    assert from_field_value("f", wire, ftype) == back
    if wire_kind == "json_object":
        assert json.loads(wire.json_object) == back
        assert isinstance(json.loads(wire.json_object)["n"], int)


@pytest.mark.parametrize(
    ("ftype", "value"),
    [
        (FieldType("int"), True),
        (FieldType("int"), 2.5),
        (FieldType("int"), "two"),
        (FieldType("float"), float("nan")),
        (FieldType("float"), False),
        (FieldType("bool"), 1),
        (FieldType("literal", ("a", "b")), "c"),
        (FieldType("list[int]"), [1, "2"]),
        (FieldType("list[str]"), "not json"),
        (FieldType("dict"), [1]),
        (FieldType("dict"), {1: "a"}),
    ],
)
def test_values_that_do_not_fit_are_errors_naming_field_type_and_value(ftype: FieldType, value: Any) -> None:
    with pytest.raises(FieldTypeError, match=rf"^output `score` \({ftype}\)".replace("[", r"\[").replace("]", r"\]")):
        to_field_value("score", value, ftype)


def test_str_outputs_take_anything_as_text_and_extras_are_text() -> None:
    assert to_field_value("a", 3, FieldType("str")) == pb.FieldValue(text="3")
    assert text_field_value({"k": [1]}) == pb.FieldValue(text='{"k": [1]}')
    assert text_field_value("plain") == pb.FieldValue(text="plain")


def test_inputs_of_the_wrong_kind_are_refused_and_long_values_quoted_by_a_prefix() -> None:
    with pytest.raises(FieldTypeError, match=r"^input `k` \(int\): 'x' is not an int$"):
        from_field_value("k", pb.FieldValue(text="x"), FieldType("int"))
    with pytest.raises(FieldTypeError, match="is not a JSON object"):
        from_field_value("d", pb.FieldValue(json_object="[1]"), FieldType("dict"))
    with pytest.raises(FieldTypeError, match="no value"):
        from_field_value("d", pb.FieldValue(), FieldType("dict"))
    huge = "y" * 100_000
    with pytest.raises(FieldTypeError) as e:
        from_field_value("k", pb.FieldValue(text=huge), FieldType("int"))
    assert str(e.value) == f"input `k` (int): {'y' * LIMITS['MAX_ECHO_CHARS']!r}... (100000 bytes) is not an int"
