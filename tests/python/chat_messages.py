"""The messages DSPy's ChatAdapter builds, and the worker's scripted LM's answers to them, for
the Rust test that compares them with dspex's (`tests/tests/prompts_like_dspy.rs`).

Reads ``[{"signature", "instructions", "cot", "demos", "inputs", "rules"}, ...]`` as JSON on
stdin (``instructions`` null for DSPy's default, ``cot`` to extend the signature as
``dspy.ChainOfThought`` does); writes, for each case, ``{"messages": [...], "scripted":
text}``: the ChatAdapter's messages, and what the scripted LM (``dspex_bridge.worker.lm``) configured
with ``rules`` answers to them.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import dspy
from dspy.adapters.chat_adapter import ChatAdapter

from dspex_bridge.worker.lm import LmConfig, ScriptedLM


def build(case: dict[str, Any]) -> dict[str, Any]:
    if case["instructions"] is None:
        signature = dspy.Signature(case["signature"])
    else:
        signature = dspy.Signature(case["signature"], case["instructions"])
    if case["cot"]:
        signature = dspy.ChainOfThought(signature).predict.signature
    messages = ChatAdapter().format(signature, demos=case["demos"], inputs=case["inputs"])
    config = LmConfig(rules=[(needle, fields) for needle, fields in case["rules"]])
    lm = ScriptedLM(rules=dict(config.rules))
    response = lm._engine_spec.answer(messages)
    return {"messages": messages, "scripted": response.message.text}


def main() -> None:
    cases = json.load(sys.stdin)
    json.dump([build(case) for case in cases], sys.stdout)


if __name__ == "__main__":
    main()
