"""Variable-aware DSPy modules against a real session: a binding must change what DSPy does,
as the LM's own history (DSPy's ``DummyLM``, under the scripted LM) records it."""

from __future__ import annotations

import dspy
import pytest

from dspex_bridge.client.dspy_integration import (
    ModuleVariableResolver,
    VariableAwareChainOfThought,
    VariableAwarePredict,
    VariableAwareProgramOfThought,
    VariableAwareReAct,
    variable_aware,
)
from dspex_bridge.worker.lm import LmConfig, LmFactory, ScriptedLM

# DSPy 3.4 deprecates ProgramOfThought (it still ships it, and dspex knows it by name).
pytestmark = pytest.mark.filterwarnings("ignore:ProgramOfThought is deprecated:DeprecationWarning")


@pytest.fixture
def lms() -> LmFactory:
    return LmFactory(LmConfig())


async def register_lm_variables(session) -> None:
    await session.register_variable("temperature", "float", 0.7, constraints={"min": 0.0, "max": 2.0})
    await session.register_variable("max_tokens", "integer", 256, constraints={"min": 1, "max": 4096})
    await session.register_variable(
        "model", "choice", "gpt-4o-mini", constraints={"choices": ["gpt-4o-mini", "claude-3-haiku"]}
    )


def last_call(module) -> dict:
    (lm,) = {id(p.lm): p.lm for _, p in module.named_predictors()}.values()
    entry = lm.history[-1]
    return {"model": entry["model"], **lm.kwargs, **entry["kwargs"]}


async def test_bound_lm_settings_become_the_settings_of_the_next_call(session, lms):
    await register_lm_variables(session)
    predict = VariableAwarePredict("question -> answer", session=session, lm_factory=lms.build)
    predict.bind_to_variable("temperature", "temperature")
    predict.bind_to_variable("max_tokens", "max_tokens")
    assert predict.get_bindings() == {"temperature": "temperature", "max_tokens": "max_tokens"}

    result = await predict.acall(question="What is DSPy?")
    assert result.answer.startswith("[scripted answer]")
    call = last_call(predict)
    assert (call["temperature"], call["max_tokens"]) == (0.7, 256)

    # Another writer changes the variables; the next call uses the new values.
    await session.set_variable("temperature", 1.3)
    await session.set_variable("max_tokens", 64)
    await predict.acall(question="And now?")
    call = last_call(predict)
    assert (call["temperature"], call["max_tokens"]) == (1.3, 64)


async def test_a_bound_model_selects_the_lm(session, lms):
    await register_lm_variables(session)
    cot = VariableAwareChainOfThought("question -> answer", session=session, lm_factory=lms.build)
    cot.bind_to_variable("model", "model")
    await cot.acall(question="q")
    assert last_call(cot)["model"] == "gpt-4o-mini"
    await session.set_variable("model", "claude-3-haiku")
    result = await cot.acall(question="q")
    assert last_call(cot)["model"] == "claude-3-haiku"
    assert result.reasoning.startswith("[scripted reasoning]")


async def test_bindings_reach_every_predictor_of_composite_modules(session, lms):
    await register_lm_variables(session)
    react = VariableAwareReAct("question -> answer", session=session, lm_factory=lms.build)
    pot = VariableAwareProgramOfThought(
        "question -> answer", session=session, lm_factory=lms.build, interpreter_factory=dspy.LocalInterpreter
    )
    for module in (react, pot):
        module.bind_to_variable("temperature", "temperature")
        await module.acall(question="What is 1 + 1?")
        predictors = module.named_predictors()
        assert len(predictors) >= 2
        assert all(p.config["temperature"] == 0.7 for _, p in predictors)
        lm = predictors[0][1].lm
        assert lm.history, f"{type(module).__name__} made no LM call"
        assert all(h["kwargs"]["temperature"] == 0.7 for h in lm.history)


async def test_a_missing_variable_is_a_value_error_naming_it(session, lms):
    predict = VariableAwarePredict("question -> answer", session=session, lm_factory=lms.build)
    predict.bind_to_variable("temperature", "no_such_variable")
    with pytest.raises(ValueError, match="no_such_variable"):
        await predict.sync_variables()
    with pytest.raises(ValueError, match="must be an identifier"):
        predict.bind_to_variable("not a param", "x")


async def test_other_parameters_become_attributes(session, lms):
    await session.register_variable("style", "string", "concise")
    predict = VariableAwarePredict("question -> answer", session=session, lm_factory=lms.build)
    predict.bind_to_variable("style", "style")
    assert await predict.sync_variables() == {"style": "concise"}
    assert predict.style == "concise"


def test_scripted_answers_come_first_then_rules_then_generated():
    lm = ScriptedLM("m", answers=[{"answer": "scripted"}], rules={"Italy": {"answer": "Rome"}})
    predict = dspy.Predict("question -> answer")
    with dspy.context(lm=lm):
        assert predict(question="anything").answer == "scripted"
        assert predict(question="capital of Italy?").answer == "Rome"
        assert predict(question="capital of Spain?").answer == "[scripted answer] capital of Spain?"
        typed = dspy.Predict("question -> count: int, ok: bool")(question="how many?")
    assert (typed.count, typed.ok) == (0, False)
    assert lm.history[-1]["model"] == "m"


class Doubler(dspy.Module):
    """A custom module for the resolver tests."""

    def __init__(self, signature: str) -> None:
        super().__init__()
        self.inner = dspy.Predict(signature)

    def forward(self, **kwargs):
        return self.inner(**kwargs)


async def test_resolver_prefers_variable_aware_classes_and_imports_paths(session, lms):
    resolver = ModuleVariableResolver(session)
    assert resolver.resolve_class("ChainOfThought") is VariableAwareChainOfThought
    assert resolver.resolve_class("Predict") is VariableAwarePredict
    aware = resolver.resolve_class(f"{__name__}.Doubler")
    assert issubclass(aware, Doubler) and aware is variable_aware(Doubler)
    resolver.register("Doubler", Doubler)
    assert "Doubler" in resolver.known()

    await session.register_variable("reasoning", "module", "ChainOfThought")
    assert await resolver.resolve("reasoning") is VariableAwareChainOfThought
    await session.set_variable("reasoning", "Predict")
    assert await resolver.resolve("reasoning") is VariableAwarePredict

    module = resolver.create("Doubler", "question -> answer", bindings={"n": "reasoning"}, lm_factory=lms.build)
    assert module.get_bindings() == {"n": "reasoning"}

    with pytest.raises(ValueError, match="unknown DSPy module class 'ChainOfThougt'.*ChainOfThought"):
        resolver.resolve_class("ChainOfThougt")
    with pytest.raises(ImportError, match="no_such_pkg"):
        resolver.resolve_class("no_such_pkg.Module")
    with pytest.raises(TypeError, match="not a dspy.Module class"):
        resolver.resolve_class("collections.OrderedDict")
