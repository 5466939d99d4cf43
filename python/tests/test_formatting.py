"""What the worker formats once: the cached adapter gives exactly ``ChatAdapter``'s messages,
and a signature with other instructions gets its own; the JSON fast path gives exactly what
DSPy's formatting gives; a signature that reads its fields once gives DSPy's fields."""

from __future__ import annotations

import math
from typing import Any

import dspy
import dspy.adapters.utils as adapter_utils

from dspex_bridge.worker.formatting import (
    FieldsOnceSignatureMeta,
    SignatureCachedChatAdapter,
    fields_once,
    install_json_fast_path,
)


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


def test_signatures_that_read_their_fields_once_give_what_dspy_gives() -> None:
    module = dspy.ChainOfThought("question, context: list[str] -> answer: int")
    (predictor,) = module.predictors()
    plain = type(predictor.signature)
    expected = (predictor.signature.input_fields, predictor.signature.output_fields)
    fields_once(module)
    signature = predictor.signature
    assert type(signature) is FieldsOnceSignatureMeta and isinstance(signature, plain)
    for _ in range(2):  # read, then kept
        assert (signature.input_fields, signature.output_fields) == expected
    assert list(signature.output_fields) == ["reasoning", "answer"]
    # Each read is a new dict: a caller that changes one changes nothing else.
    signature.output_fields.pop("answer")
    assert list(signature.output_fields) == ["reasoning", "answer"]
    # The fields of a rebuilt model are read again.
    signature.__pydantic_fields__ = {"question": signature.__pydantic_fields__["question"]}
    assert (list(signature.input_fields), signature.output_fields) == (["question"], {})
    # A signature given later (an optimizer's, a loaded state's) is DSPy's as it is.
    predictor.signature = predictor.signature.with_instructions("Think.")
    assert type(predictor.signature) is plain


def test_a_module_with_fields_read_once_answers_as_before() -> None:
    from dspex_bridge.worker.lm import ScriptedLM

    lm = ScriptedLM("m")
    before = dspy.Predict("question -> answer, score: float")
    after = dspy.Predict("question -> answer, score: float")
    fields_once(after)
    with dspy.context(lm=lm, adapter=SignatureCachedChatAdapter()):
        for question in ("What?", "Why?"):
            assert after(question=question).toDict() == before(question=question).toDict()
    assert [h["messages"] for h in lm.history[0::2]] == [h["messages"] for h in lm.history[1::2]]
