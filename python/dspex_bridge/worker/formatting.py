"""What the worker formats once instead of on every call.

- :class:`SignatureCachedChatAdapter`: DSPy's ``ChatAdapter`` whose system message (the field
  descriptions, the field structure and the task description, all functions of the signature
  alone) is built once per signature rather than on every call. A signature with other
  instructions is another signature class, or is noticed by its instructions.
- :func:`install_json_fast_path`: DSPy formats every input and output value through a pydantic
  ``TypeAdapter`` built for the value's type on each call; a ``str``, ``int``, ``bool`` or
  ``None`` is JSON as it is, and is given back at once.

The worker's calls run under the adapter (unless the code of a module sets its own); the fast
path is installed once when the worker starts.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import dspy
import dspy.adapters.utils as adapter_utils

__all__ = ["SignatureCachedChatAdapter", "install_json_fast_path"]


class SignatureCachedChatAdapter(dspy.ChatAdapter):  # type: ignore[misc]
    """``ChatAdapter`` building the system message of a signature once."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._system: weakref.WeakKeyDictionary[type, tuple[str, str]] = weakref.WeakKeyDictionary()

    def format_system_message(self, signature: type[dspy.Signature]) -> str:
        instructions = signature.instructions
        cached = self._system.get(signature)
        if cached is not None and cached[0] == instructions:
            return cached[1]
        message: str = super().format_system_message(signature)
        self._system[signature] = (instructions, message)
        return message


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
