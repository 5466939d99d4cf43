"""Optuna's TPESampler on the tuning benchmark's objective, which stays in Rust: the Rust
benchmark (``cargo bench -p dspex --bench tune``) starts this script and evaluates every trial
it asks for with the same program, dev set and metric as its own samplers.

Protocol, JSON lines:

- stdin, first line: ``{"space": {...}, "seeds": [..], "budget": N, "target": 1.0,
  "configs": [{"name", "multivariate", "constant_liar", "batch"}, ..]}``, the space as
  ``{name: {"type": "float"|"int"|"categorical", "low", "high", "log", "choices"}}``.
- stdout, per batch of trials: ``{"config": name, "seed": s, "batch": [{params}, ..]}``;
  stdin answers ``{"scores": [x, ..]}``.
- stdout, per configuration and seed: ``{"config": name, "seed": s, "done": n}`` with ``n``
  the trials until the target was first reached (``null`` if the budget ran out); then
  ``{"end": true}``.

Each configuration is ``TPESampler(seed=s, multivariate=..., constant_liar=...)``, maximizing.
A batch of ``batch`` trials is asked before any of them is told, as ``batch`` workers running
at once would: with the constant liar, each ask sees the earlier ones of its batch as running.
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


def run(config: dict, seed: int, dists: dict, budget: int, target: float) -> int | None:
    sampler = optuna.samplers.TPESampler(
        seed=seed,
        multivariate=config["multivariate"],
        constant_liar=config["constant_liar"],
    )
    study = optuna.create_study(direction="maximize", sampler=sampler)
    asked = 0
    while asked < budget:
        trials = [study.ask(dists) for _ in range(min(config["batch"], budget - asked))]
        send({"config": config["name"], "seed": seed, "batch": [t.params for t in trials]})
        scores = json.loads(sys.stdin.readline())["scores"]
        for i, (trial, score) in enumerate(zip(trials, scores)):
            study.tell(trial, score)
            if score >= target:
                return asked + i + 1
        asked += len(trials)
    return None


def main() -> None:
    setup = json.loads(sys.stdin.readline())
    dists = distributions(setup["space"])
    for config in setup["configs"]:
        for seed in setup["seeds"]:
            done = run(config, seed, dists, setup["budget"], setup["target"])
            send({"config": config["name"], "seed": seed, "done": done})
    send({"end": True})


if __name__ == "__main__":
    main()
