"""The worker's side of compiling: settings routed by the contract's optimizer table (GEPA's
one budget included) and metrics in the five-argument form GEPA calls, with feedback."""

from __future__ import annotations

import dspy
import pytest

from dspex_bridge.errors import InvalidValueError
from dspex_bridge._proto.dspex.v1 import bridge_pb2 as pb
from dspex_bridge.worker.module_service import _reflection_lm
from dspex_bridge.worker.optimize import _checked_metric, compile_module, split_settings


def test_gepa_takes_exactly_one_budget_and_its_settings_go_to_the_constructor():
    constructor, compile_kwargs = split_settings("GEPA", {"max_metric_calls": 8, "seed": 2})
    assert (constructor, compile_kwargs) == ({"max_metric_calls": 8, "seed": 2}, {})
    with pytest.raises(InvalidValueError, match=r"exactly one of `auto`, `max_full_evals`, `max_metric_calls`, found none"):
        split_settings("GEPA", {"seed": 2})
    with pytest.raises(InvalidValueError, match=r"found `auto`, `max_metric_calls`"):
        split_settings("GEPA", {"auto": "light", "max_metric_calls": 8})
    with pytest.raises(InvalidValueError, match=r"takes no setting `reflection_lm`"):
        split_settings("GEPA", {"auto": "light", "reflection_lm": "gpt"})


def test_a_metric_takes_five_arguments_and_answers_with_feedback():
    seen = []

    def metric(gold, pred, trace, pred_name, pred_trace):
        seen.append((pred_name, pred_trace))
        return {"score": 0.5, "feedback": "half right"}

    checked = _checked_metric("m", metric)
    answer = checked(dspy.Example(a=1), dspy.Prediction(b=2), None, "predict", [("p", {}, {})])
    assert isinstance(answer, dspy.Prediction)
    assert (answer.score, answer.feedback) == (0.5, "half right")
    assert seen == [("predict", [("p", {}, {})])]
    assert checked(dspy.Example(a=1), dspy.Prediction(b=2)).score == 0.5
    with pytest.raises(InvalidValueError, match=r"scored 2, expected a number in \[0, 1\]"):
        _checked_metric("m", lambda *_: {"score": 2, "feedback": "x"})(None, None)
    with pytest.raises(InvalidValueError, match=r"gave feedback 3, expected text"):
        _checked_metric("m", lambda *_: {"score": 1, "feedback": 3})(None, None)


def test_a_reflection_lm_is_built_for_a_reflective_optimizer_only():
    request = pb.CompileModuleRequest(optimizer="GEPA")
    assert _reflection_lm(request) is None
    request.reflection_lm.scripted.default_model = "reflector"
    lm = _reflection_lm(request)
    assert lm.model == "reflector"
    assert lm.call_history == []
    request.optimizer = "COPRO"
    with pytest.raises(InvalidValueError, match=r"optimizer `COPRO` does not reflect"):
        _reflection_lm(request)
    with pytest.raises(InvalidValueError, match=r"optimizer `COPRO` does not reflect"):
        compile_module(dspy.Predict("q -> a"), "COPRO", {}, [], [], lambda *_: 1.0, reflection_lm=lm)
