"""Applying bound values to a call (``dspex_bridge.binding``): which parameter is an LM setting,
the model or a keyword argument comes from the contract's module table, and a call's LM is a
copy that carries the bound settings over everything else and keeps nothing behind."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dspy
import pytest
from dspy.clients.base_lm import GLOBAL_HISTORY
from dspy.utils.dummies import DummyLM

from dspex_bridge import contract
from dspex_bridge.binding import (
    PARAMS,
    BoundCall,
    CallScoped,
    ParamTable,
    ParamUse,
    apply_binding,
    lm_for_call,
)
from dspex_bridge.worker.lm import ScriptedLM


class Recorder:
    """An `lm_for` that records what it was asked for and gives a marker LM."""

    def __init__(self) -> None:
        self.asked: list[tuple[str | None, dict[str, Any]]] = []

    def __call__(self, model: str | None, settings: Mapping[str, Any]) -> str:
        self.asked.append((model, dict(settings)))
        return f"lm:{model}"


def test_the_contracts_table_sorts_the_bound_values_of_a_call() -> None:
    lm_for = Recorder()
    bound = apply_binding("ReAct", {"temperature": 0.3, "n": 2, "model": "m", "max_iters": 4}, lm_for)
    assert lm_for.asked == [("m", {"temperature": 0.3, "n": 2})]
    assert bound == BoundCall("lm:m", {"max_iters": 4})
    # No model bound: the LM of the default model.
    lm_for.asked.clear()
    assert apply_binding("Predict", {"top_p": 0.5}, lm_for) == BoundCall("lm:None", {})
    assert lm_for.asked == [(None, {"top_p": 0.5})]


def test_a_module_the_table_does_not_know_takes_the_lm_parameters_and_any_call_argument() -> None:
    lm_for = Recorder()
    bound = apply_binding("my_pkg.Solver", {"max_tokens": 9, "model": "m", "style": "terse"}, lm_for)
    assert lm_for.asked == [("m", {"max_tokens": 9})]
    assert bound.kwargs == {"style": "terse"}
    assert PARAMS.common.keys() == {"temperature", "max_tokens", "top_p", "n", "model"}


def test_a_known_module_refuses_a_parameter_it_does_not_take() -> None:
    expected = "Predict takes no parameter `max_iters`; it takes max_tokens, model, n, temperature, top_p"
    with pytest.raises(ValueError, match=expected):
        apply_binding("Predict", {"max_iters": 3}, Recorder())
    assert PARAMS.use("ReAct", "max_iters") is ParamUse.CALL_ARGUMENT


def test_the_decisions_follow_the_table_they_are_read_from() -> None:
    # Another contract: `seed` is an LM setting of every module, `temperature` a call argument
    # of one of them (so not an LM parameter of every module any more).
    def params(**applies: str) -> dict[str, Any]:
        return {
            "params": {n: {"applies": a, "types": ["integer" if n == "seed" else "float"]} for n, a in applies.items()}
        }

    table = ParamTable.from_contract(
        {
            "A": params(seed="lm_setting", temperature="lm_setting", model="model"),
            "B": params(seed="lm_setting", temperature="call_argument", model="model"),
        }
    )
    assert table.lm_settings == {"seed": int}
    lm_for = Recorder()
    bound = apply_binding("B", {"seed": 7, "temperature": 0.5}, lm_for, table)
    assert (lm_for.asked, bound.kwargs) == ([(None, {"seed": 7})], {"temperature": 0.5})
    assert apply_binding("pkg.C", {"temperature": 0.5}, lm_for, table).kwargs == {"temperature": 0.5}
    assert ParamTable.from_contract(contract.MODULES) == PARAMS


def test_a_bound_call_runs_under_its_lm_with_its_keyword_arguments() -> None:
    seen: list[tuple[Any, dict[str, Any]]] = []

    def module(**kwargs: Any) -> str:
        seen.append((dspy.settings.lm, kwargs))
        return "done"

    lm = ScriptedLM("m")
    assert BoundCall(lm, {"max_iters": 2}).run(module, question="q") == "done"
    assert BoundCall(None, {}).run(module, question="q") == "done"
    assert seen == [(lm, {"question": "q", "max_iters": 2}), (None, {"question": "q"})]


def test_a_calls_lm_carries_its_settings_over_the_defaults_and_the_requests() -> None:
    lm = ScriptedLM("m", temperature=0.1, max_tokens=100)
    predict = dspy.Predict("question -> answer", temperature=0.2)  # a request setting
    call = lm_for_call(lm, {"temperature": 0.9}, own_history=True)
    before = len(GLOBAL_HISTORY)
    with dspy.context(lm=call):
        assert predict(question="q").answer == "[scripted answer] q"
    (entry,) = call.call_history
    assert (entry["kwargs"]["temperature"], call.kwargs["max_tokens"]) == (0.9, 100)
    # Its own history only: nothing in the LM's, DSPy's global one or the module's.
    assert (lm.history, len(GLOBAL_HISTORY), predict.history) == ([], before, [])
    assert lm.kwargs["temperature"] == 0.1 and predict.config == {"temperature": 0.2}


def test_a_calls_lm_may_record_its_requests_in_the_lm_it_copies() -> None:
    # Any DSPy LM, not only the worker's: a plain DummyLM.
    lm = DummyLM([{"answer": "a"}, {"answer": "b"}])
    call = lm_for_call(lm, {"n": 1, "top_p": 0.5}, own_history=False)
    assert isinstance(call, DummyLM) and isinstance(call, CallScoped) and not isinstance(lm, CallScoped)
    assert type(call) is type(lm_for_call(lm, {}, own_history=True))  # made once per class
    with dspy.context(lm=call):
        assert [dspy.Predict("q -> answer")(q=str(i)).answer for i in range(2)] == ["a", "b"]
    assert [h["kwargs"]["top_p"] for h in lm.history] == [0.5, 0.5]
    assert call.call_history == [] and call.history == []
