"""DSPy's side of the Rust test comparing program compile with DSPy's own
(`tests/tests/program_compile.rs`).

Reads ``{"base_url", "train": [[question, answer], ...], "dev": [...], "max_bootstrapped_demos",
"max_labeled_demos"}`` as JSON on stdin. Builds the DSPy original of the test's two-step
program (``question -> query`` with ``Predict``, then ``query -> answer`` with
``ChainOfThought``), compiles it with ``BootstrapFewShot`` and an exact-match metric against the
LM on the loopback server at ``base_url`` (no cache), and evaluates it on the dev pairs. Writes
``{"compile_requests", "dev_score", "demos": {predictor: count}}``.
"""

from __future__ import annotations

import contextlib
import json
import sys
from typing import Any

import dspy


class QueryThenAnswer(dspy.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rewrite = dspy.Predict("question -> query")
        self.answer = dspy.ChainOfThought("query -> answer")

    def forward(self, question: str) -> dspy.Prediction:
        query = self.rewrite(question=question).query
        return self.answer(query=query)


def exact_answer(example: dspy.Example, prediction: dspy.Prediction, trace: Any = None) -> bool:
    return bool(example.answer == prediction.answer)


def examples(pairs: list[list[str]]) -> list[dspy.Example]:
    return [dspy.Example(question=q, answer=a).with_inputs("question") for q, a in pairs]


def main() -> None:
    request = json.load(sys.stdin)
    lm = dspy.LM(
        "openai/dspy-model",
        api_base=request["base_url"],
        api_key="unused",
        cache=False,
        num_retries=0,
    )
    # DSPy prints its progress to stdout, where the answer goes.
    with dspy.context(lm=lm), contextlib.redirect_stdout(sys.stderr):
        optimizer = dspy.BootstrapFewShot(
            metric=exact_answer,
            max_bootstrapped_demos=request["max_bootstrapped_demos"],
            max_labeled_demos=request["max_labeled_demos"],
        )
        compiled = optimizer.compile(QueryThenAnswer(), trainset=examples(request["train"]))
        compile_requests = len(lm.history)
        dev = examples(request["dev"])
        scores = [exact_answer(ex, compiled(question=ex.question)) for ex in dev]
    json.dump(
        {
            "compile_requests": compile_requests,
            "dev_score": sum(scores) / len(scores),
            "demos": {name: len(p.demos) for name, p in compiled.named_predictors()},
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
