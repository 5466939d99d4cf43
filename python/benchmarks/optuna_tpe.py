"""Optuna's TPESampler on the tuning benchmark's objective, which stays in Rust: the Rust
benchmark (``cargo bench -p dspex --bench tune``) starts this script and evaluates every trial
it asks for with the same program, dev set and metric as its own samplers.

Protocol, JSON lines:

- stdin, first line: ``{"space": {...}, "seeds": [..], "budget": N, "target": 1.0}``, the space as
  ``{name: {"type": "float"|"int"|"categorical", "low", "high", "log", "choices"}}``.
- stdout, per trial: ``{"seed": s, "trial": i, "params": {...}}``; stdin answers ``{"score": x}``.
- stdout, per seed: ``{"seed": s, "done": n}`` with ``n`` the trials until the target was
  reached (``null`` if the budget ran out); then ``{"end": true}``.

Optuna's default TPESampler settings (``TPESampler(seed=s)``), maximizing, one trial at a time.
"""

from __future__ import annotations

import json
import sys
import warnings

import optuna

warnings.filterwarnings("ignore")
optuna.logging.set_verbosity(optuna.logging.WARNING)


def distributions(space: dict) -> dict:
    out = {}
    for name, spec in space.items():
        kind = spec["type"]
        if kind == "float":
            out[name] = optuna.distributions.FloatDistribution(spec["low"], spec["high"], log=spec["log"])
        elif kind == "int":
            out[name] = optuna.distributions.IntDistribution(spec["low"], spec["high"], log=spec["log"])
        elif kind == "categorical":
            out[name] = optuna.distributions.CategoricalDistribution(spec["choices"])
        else:
            raise ValueError(f"unknown dimension type {kind!r}")
    return out


def send(message: dict) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def main() -> None:
    setup = json.loads(sys.stdin.readline())
    dists = distributions(setup["space"])
    for seed in setup["seeds"]:
        study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
        done = None
        for i in range(setup["budget"]):
            trial = study.ask(dists)
            send({"seed": seed, "trial": i, "params": trial.params})
            score = json.loads(sys.stdin.readline())["score"]
            study.tell(trial, score)
            if score >= setup["target"]:
                done = i + 1
                break
        send({"seed": seed, "done": done})
    send({"end": True})


if __name__ == "__main__":
    main()
