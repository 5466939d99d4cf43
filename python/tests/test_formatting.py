"""What the worker formats once: the cached adapter gives exactly ``ChatAdapter``'s messages,
and a signature with other instructions gets its own; the JSON fast path gives exactly what
DSPy's formatting gives."""

from __future__ import annotations

import math
from typing import Any

import dspy
import dspy.adapters.utils as adapter_utils

from dspex_bridge.worker.formatting import SignatureCachedChatAdapter, install_json_fast_path


def test_the_cached_adapter_formats_as_chat_adapter_does() -> None:
    plain, cached = dspy.ChatAdapter(), SignatureCachedChatAdapter()
    signature = dspy.Signature("question, context: list[str] -> answer: int")
    inputs = {"question": "How many?", "context": ["a", "b"]}
    for _ in range(2):  # built, then from the cache
        assert cached.format(signature, [], inputs) == plain.format(signature, [], inputs)
    other = signature.with_instructions("Count carefully.")
    assert cached.format_system_message(other) == plain.format_system_message(other)
    assert "Count carefully." in cached.format_system_message(other)
    assert "Count carefully." not in cached.format_system_message(signature)
    # Instructions changed in place are noticed too.
    other.instructions = "Count twice."
    assert "Count twice." in cached.format_system_message(other)


def test_the_json_fast_path_gives_what_dspy_gives() -> None:
    original: Any = getattr(adapter_utils.serialize_for_json, "__wrapped__", adapter_utils.serialize_for_json)
    install_json_fast_path()
    install_json_fast_path()
    fast = adapter_utils.serialize_for_json
    assert fast.__wrapped__ is original  # installed once

    class Text(str):
        pass

    for value in ["text", "", 7, -(2**70), True, None, 1.5, math.inf, [1, "a"], {"k": (1, 2)}, Text("t")]:
        assert fast(value) == original(value) and type(fast(value)) is type(original(value)), value
