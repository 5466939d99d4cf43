"""DSPy's side of the Rust test of DSPy's saved state (`tests/tests/dspy_state.rs`).

Reads ``{"action", "base_url", "cases": [...]}`` as JSON on stdin. Each case is ``{"module":
"Predict" | "ChainOfThought", "signature", "instructions", "descriptions": {field: text},
"demos", "inputs", "path"}``.

- ``save_and_call``: builds the module with that state, saves it with ``module.save(path)``,
  and calls it once on ``inputs`` with an LM on the loopback server at ``base_url`` (so that the
  server records the request DSPy sends); writes each module's ``dump_state()``.
- ``call``: builds the module with that state and calls it once on ``inputs`` with the
  case's ``adapter`` (``"chat"``: DSPy's default ``ChatAdapter``, which falls back to the
  ``JSONAdapter`` when a reply does not parse; ``"json"``: the ``JSONAdapter``); writes each
  call's outputs.
- ``load``: loads the file at ``path`` (written by dspex) into a fresh module of the case's
  signature with ``module.load(path)`` and writes each module's ``dump_state()``.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import dspy


def build(case: dict[str, Any]) -> dspy.Module:
    signature = dspy.Signature(case["signature"], case["instructions"])
    for name, text in case["descriptions"].items():
        signature = signature.with_updated_fields(name, desc=text)
    if case["module"] == "ChainOfThought":
        return dspy.ChainOfThought(signature)
    return dspy.Predict(signature)


def predictor(module: dspy.Module) -> dspy.Predict:
    return module.predict if isinstance(module, dspy.ChainOfThought) else module


def save_and_call(case: dict[str, Any], lm: dspy.LM) -> dict[str, Any]:
    module = build(case)
    predictor(module).demos = [dspy.Example(**demo) for demo in case["demos"]]
    module.save(case["path"])
    with dspy.context(lm=lm):
        module(**case["inputs"])
    return module.dump_state()


def call(case: dict[str, Any], lm: dspy.LM) -> dict[str, Any]:
    module = build(case)
    predictor(module).demos = [dspy.Example(**demo) for demo in case["demos"]]
    adapter = dspy.JSONAdapter() if case["adapter"] == "json" else dspy.ChatAdapter()
    with dspy.context(lm=lm, adapter=adapter):
        prediction = module(**case["inputs"])
    return dict(prediction.items())


def load(case: dict[str, Any]) -> dict[str, Any]:
    module = build({**case, "instructions": None, "descriptions": {}})
    module.load(case["path"])
    return module.dump_state()


def main() -> None:
    request = json.load(sys.stdin)
    lm = dspy.LM(
        "openai/dspy-model",
        api_base=request["base_url"],
        api_key="unused",
        cache=False,
        num_retries=0,
    )
    if request["action"] == "save_and_call":
        states = [save_and_call(case, lm) for case in request["cases"]]
    elif request["action"] == "call":
        states = [call(case, lm) for case in request["cases"]]
    else:
        states = [load(case) for case in request["cases"]]
    json.dump(states, sys.stdout)


if __name__ == "__main__":
    main()
