"""What the worker formats once instead of on every call.

- :class:`SignatureCachedChatAdapter`: DSPy's ``ChatAdapter`` whose system message (the field
  descriptions, the field structure and the task description, all functions of the signature
  alone) is built once per signature rather than on every call. A signature with other
  instructions is another signature class, or is noticed by its instructions.
- :func:`install_json_fast_path`: DSPy formats every input and output value through a pydantic
  ``TypeAdapter`` built for the value's type on each call; a ``str``, ``int``, ``bool`` or
  ``None`` is JSON as it is, and is given back at once.
- :func:`fields_once`: DSPy rebuilds a signature's ``input_fields`` and ``output_fields`` from
  its pydantic fields each time they are read (some twenty times a call); the signatures of a
  worker's module read them once, and give a new dict of the same fields each time.

The worker's calls run under the adapter (unless the code of a module sets its own); the fast
path is installed once when the worker starts, and each module's signatures are given
:func:`fields_once` when it is created.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import dspy
import dspy.adapters.utils as adapter_utils

__all__ = ["FieldsOnceSignatureMeta", "SignatureCachedChatAdapter", "fields_once", "install_json_fast_path"]

#: DSPy's metaclass of signatures.
_SignatureMeta: Any = type(dspy.Signature)


class SignatureCachedChatAdapter(dspy.ChatAdapter):  # type: ignore[misc]
    """``ChatAdapter`` building the system message of a signature once."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._system: weakref.WeakKeyDictionary[type, tuple[str | None, str]] = weakref.WeakKeyDictionary()

    def format_system_message(self, signature: type[dspy.Signature]) -> str:
        # The instructions are the docstring, cleaned: the same docstring gives the same ones.
        doc = signature.__doc__
        cached = self._system.get(signature)
        if cached is not None and cached[0] == doc:
            return cached[1]
        message: str = super().format_system_message(signature)
        self._system[signature] = (doc, message)
        return message


class FieldsOnceSignatureMeta(_SignatureMeta):  # type: ignore[misc]
    """DSPy's signature metaclass, whose classes read their input and output fields once: each
    read gives a new dict (a caller may change it) of the same fields, as DSPy's does. A class
    keeps what it read with the dict of pydantic fields it read it from, and reads again if
    that dict is replaced (a rebuilt model)."""

    def _fields_once(cls) -> tuple[dict[str, Any], dict[str, Any]]:
        source = cls.__pydantic_fields__
        read = cls.__dict__.get(_FIELDS_ATTR)
        if read is None or read[0] is not source:
            read = (source, _SignatureMeta.input_fields.fget(cls), _SignatureMeta.output_fields.fget(cls))
            type.__setattr__(cls, _FIELDS_ATTR, read)
        return read[1], read[2]

    @property
    def input_fields(cls) -> dict[str, Any]:
        return dict(cls._fields_once()[0])

    @property
    def output_fields(cls) -> dict[str, Any]:
        return dict(cls._fields_once()[1])


#: Where a :class:`FieldsOnceSignatureMeta` class keeps the fields it read.
_FIELDS_ATTR = "__dspex_fields__"


def fields_once(module: dspy.Module) -> None:
    """Makes the signatures of `module`'s predictors read their fields once (the classes stay
    the same: their metaclass becomes :class:`FieldsOnceSignatureMeta`). A predictor given
    another signature later (an optimizer, a loaded state) reads that one's as DSPy does."""
    for predictor in module.predictors():
        signature = predictor.signature
        if type(signature) is _SignatureMeta:
            signature.__class__ = FieldsOnceSignatureMeta


#: The types whose values are JSON as they are (exactly these: not their subclasses).
_JSON_AS_IS = frozenset({str, int, bool, type(None)})


def _fast(original: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def serialize_for_json(value: Any) -> Any:
        if type(value) in _JSON_AS_IS:
            return value
        return original(value)

    serialize_for_json.__wrapped__ = original  # type: ignore[attr-defined]
    return serialize_for_json


def install_json_fast_path() -> None:
    """Makes DSPy's value formatting give a ``str``, ``int``, ``bool`` or ``None`` back at
    once (idempotent)."""
    current = adapter_utils.serialize_for_json
    if getattr(current, "__wrapped__", None) is None:
        adapter_utils.serialize_for_json = _fast(current)
