"""DSPy's side of the Rust test comparing program compile with DSPy's own
(`tests/tests/program_compile.rs`).

Reads ``{"base_url", "train": [[question, answer], ...], "dev": [...], "max_bootstrapped_demos",
"max_labeled_demos", "program", "max_rounds" (default 1)}`` as JSON on stdin. Builds the DSPy original of the test's
program: ``"query_then_answer"`` (the default: ``question -> query`` with ``Predict``, then
``query -> answer`` with ``ChainOfThought``) or ``"answer"`` (``question -> answer`` with
``Predict``), compiles it with ``BootstrapFewShot`` and an exact-match metric against the LM on
the loopback server at ``base_url`` (no cache), and evaluates it on the dev pairs. Writes
``{"compile_requests" (those of its LM's history: not those of the LM copies of rounds after the
first), "dev_requests", "dev_score", "demos": {predictor: count}, "augmented":
{predictor: count}, "compile_seconds"}``.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
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


class Answer(dspy.Module):
    def __init__(self) -> None:
        super().__init__()
        self.answer = dspy.Predict("question -> answer")

    def forward(self, question: str) -> dspy.Prediction:
        return self.answer(question=question)


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
            max_rounds=request.get("max_rounds", 1),
        )
        program = QueryThenAnswer() if request.get("program", "query_then_answer") == "query_then_answer" else Answer()
        started = time.perf_counter()
        compiled = optimizer.compile(program, trainset=examples(request["train"]))
        compile_seconds = time.perf_counter() - started
        compile_requests = len(lm.history)
        dev = examples(request["dev"])
        scores = [exact_answer(ex, compiled(question=ex.question)) for ex in dev]
    json.dump(
        {
            "compile_requests": compile_requests,
            "dev_requests": len(lm.history) - compile_requests,
            "dev_score": sum(scores) / len(scores),
            "demos": {name: len(p.demos) for name, p in compiled.named_predictors()},
            "augmented": {
                name: sum(1 for d in p.demos if d.get("augmented")) for name, p in compiled.named_predictors()
            },
            "compile_seconds": compile_seconds,
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
