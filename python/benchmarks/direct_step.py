"""Timing of a DSPy module called directly in Python, with the worker's scripted LM: the
baseline of a dspex python step (``cargo bench -p dspex --bench worker`` runs this script and
reports the ratio of the python step's median to this one's).

Usage: ``.venv/bin/python python/benchmarks/direct_step.py [--calls N] [--module Predict]``.
Prints one JSON line: ``{"median_us": ..., "p10_us": ..., "p90_us": ..., "calls": ...}``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import warnings

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
warnings.filterwarnings("ignore", category=DeprecationWarning)

import dspy  # noqa: E402

from dspex_bridge.lm import LmConfig, LmFactory  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--module", default="Predict")
    args = parser.parse_args()

    lm = LmFactory(LmConfig()).build("gpt-4o-mini")
    module = getattr(dspy, args.module)("question -> answer")
    for predictor in module.predictors():
        predictor.lm = lm
    config = {"temperature": 0.7, "max_tokens": 256}
    for predictor in module.predictors():
        predictor.config.update(config)
    for _ in range(30):
        module(question="What is DSPy?")
    samples = []
    for i in range(args.calls):
        lm.history.clear()
        started = time.perf_counter()
        module(question=f"What is DSPy? ({i})")
        samples.append((time.perf_counter() - started) * 1e6)
    deciles = statistics.quantiles(samples, n=10)
    print(json.dumps({
        "median_us": statistics.median(samples),
        "p10_us": deciles[0],
        "p90_us": deciles[-1],
        "calls": args.calls,
    }))


if __name__ == "__main__":
    main()
