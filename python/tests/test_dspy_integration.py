"""Variable-aware DSPy modules against a real session: a binding must change what DSPy does,
as the LM's own history (DSPy's ``DummyLM``, under the scripted LM) records it."""

from __future__ import annotations

import json

import dspy
import pytest
from dspy.utils.dummies import DummyLM

from dspex_bridge.client.dspy_integration import (
    ModuleVariableResolver,
    VariableAwareChainOfThought,
    VariableAwarePredict,
    VariableAwareProgramOfThought,
    VariableAwareReAct,
    variable_aware,
)
from dspex_bridge.worker.lm import MAX_SYSTEM_MESSAGES, LmConfig, LmFactory, ScriptedLM, _read_system

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
    """The last LM request of `module`, from the history of the LM its factory built for the
    request's model: the model and the settings it went out with."""
    entry = max((e for lm in module.lms() for e in lm.history), key=lambda e: e["timestamp"])
    (lm,) = [lm for lm in module.lms() if lm.model == entry["model"]]
    return {"model": entry["model"], **lm.kwargs, **entry["kwargs"]}


async def test_bound_lm_settings_become_the_settings_of_the_next_call(session, lms):
    await register_lm_variables(session)
    # A constructor setting is the module's default; a bound value wins over it.
    predict = VariableAwarePredict("question -> answer", session=session, lm_factory=lms.build, temperature=0.1)
    (lm,) = predict.lms()
    defaults = dict(lm.kwargs)
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
    # Nothing sticks to the module nor to its LM: the predictor keeps its own configuration and
    # no LM, the LM its defaults (and the history of both calls).
    assert predict.config == {"temperature": 0.1} and predict.lm is None
    assert predict.lms() == [lm] and lm.kwargs == defaults and len(lm.history) == 2

    # A synchronous call after an explicit sync runs with the values applied then.
    await session.set_variable("temperature", 0.2)
    assert await predict.sync_variables() == {"temperature": 0.2, "max_tokens": 64}
    predict(question="sync")
    assert last_call(predict)["temperature"] == 0.2


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
        assert len(module.named_predictors()) >= 2
        (lm,) = module.lms()
        # One request per predictor at least (ReAct's step and extraction, PoT's code and answer).
        assert len(lm.history) >= 2, f"{type(module).__name__} made {len(lm.history)} LM call(s)"
        assert all(h["kwargs"]["temperature"] == 0.7 for h in lm.history)


async def test_a_missing_variable_is_a_value_error_naming_it(session, lms):
    predict = VariableAwarePredict("question -> answer", session=session, lm_factory=lms.build)
    predict.bind_to_variable("temperature", "no_such_variable")
    with pytest.raises(ValueError, match="no_such_variable"):
        await predict.sync_variables()
    with pytest.raises(ValueError, match="must be an identifier"):
        predict.bind_to_variable("not a param", "x")


class Echo(dspy.Module):
    """A custom module that answers with the keyword arguments of its call beyond its inputs."""

    def __init__(self, signature: str) -> None:
        super().__init__()
        self.signature = dspy.Signature(signature)

    def forward(self, **kwargs):
        extra = {k: v for k, v in kwargs.items() if k not in self.signature.input_fields}
        return dspy.Prediction(seen=json.dumps(extra, sort_keys=True))


async def test_other_parameters_are_keyword_arguments_of_the_call(session, lms):
    await session.register_variable("style", "string", "concise")
    await session.register_variable("max_iters", "integer", 0)
    echo = ModuleVariableResolver(session).create(
        f"{__name__}.Echo", "text -> seen", bindings={"style": "style"}, lm_factory=lms.build
    )
    assert (await echo.acall(text="hi")).seen == '{"style": "concise"}'
    await session.set_variable("style", "long")
    assert (await echo.acall(text="hi")).seen == '{"style": "long"}'
    assert not hasattr(echo, "style")

    # ReAct takes `max_iters` per call: none at all leaves only the final extraction.
    react = VariableAwareReAct("question -> answer", session=session, lm_factory=lms.build)
    react.bind_to_variable("max_iters", "max_iters")
    await react.acall(question="q")
    assert len(react.lms()[0].history) == 1 and react.max_iters == 20


async def test_a_known_module_takes_only_the_parameters_of_the_contract(session, lms):
    predict = VariableAwarePredict("question -> answer", session=session, lm_factory=lms.build)
    with pytest.raises(ValueError, match="Predict takes no parameter `style`; it takes max_tokens, model, n"):
        predict.bind_to_variable("style", "style")
    with pytest.raises(ValueError, match="Predict takes no parameter `max_iters`"):
        predict.bind_to_variable("max_iters", "max_iters")
    assert predict.get_bindings() == {}
    # DSPy's own class resolves to the same variable-aware class, with the same table.
    assert variable_aware(dspy.Predict) is VariableAwarePredict


async def test_bound_settings_without_a_factory_apply_to_dspys_configured_lm(session):
    await register_lm_variables(session)
    lm = ScriptedLM("configured")
    defaults = dict(lm.kwargs)
    predict = VariableAwarePredict("question -> answer", session=session)
    predict.bind_to_variable("temperature", "temperature")
    with pytest.raises(RuntimeError, match="need an LM: give the module an lm_factory"):
        await predict.sync_variables()
    with dspy.context(lm=lm):
        await predict.acall(question="q")
    assert [h["kwargs"]["temperature"] for h in lm.history] == [0.7]
    assert lm.kwargs == defaults
    predict.bind_to_variable("model", "model")
    with pytest.raises(RuntimeError, match="binding `model` needs an LM factory"):
        await predict.sync_variables()


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


def test_scripted_rules_match_the_instructions_after_the_last_message_and_answer_json_in_json():
    lm = ScriptedLM("m", rules={"Say yes": {"answer": "yes"}, "Italy": {"answer": "Rome"}})
    says_yes = dspy.Predict(dspy.Signature("question -> answer", "Say yes."))
    with dspy.context(lm=lm):
        assert says_yes(question="capital of Spain?").answer == "yes"
        assert says_yes(question="capital of Italy?").answer == "Rome"
        assert dspy.Predict("question -> answer")(question="Spain?").answer == "[scripted answer] Spain?"
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        assert says_yes(question="capital of Italy?").answer == "Rome"


def test_scripted_answers_are_written_as_dummy_lms_are() -> None:
    lm = ScriptedLM("m")
    for answer in ({"answer": "Paris"}, {"reasoning": "line\nnext ", "answer": "[1, 2]"}, {"answer": ""}):
        assert lm._format_answer_fields(answer) == DummyLM._format_answer_fields(lm, answer)
    # Another adapter is asked as DummyLM asks it (with the assistant's role when it takes one).
    lm.adapter = dspy.JSONAdapter()
    assert lm._format_answer_fields({"answer": "Paris"}) == DummyLM._format_answer_fields(lm, {"answer": "Paris"})
    assert json.loads(lm._format_answer_fields({"answer": "Paris"})) == {"answer": "Paris"}


def test_the_scripted_lm_reads_at_most_max_system_messages_once() -> None:
    lm = ScriptedLM("m")
    _read_system.cache_clear()
    signatures = [dspy.Signature("question -> answer", f"Task {i}.") for i in range(MAX_SYSTEM_MESSAGES + 1)]
    with dspy.context(lm=lm):
        for signature in signatures[:MAX_SYSTEM_MESSAGES]:
            dspy.Predict(signature)(question="q")
        assert _read_system.cache_info().currsize == MAX_SYSTEM_MESSAGES
        dspy.Predict(signatures[-1])(question="q")
        assert _read_system.cache_info().currsize == MAX_SYSTEM_MESSAGES
        # The first one, read again after it was dropped, is answered as before.
        assert dspy.Predict(signatures[0])(question="q").answer == "[scripted answer] q"
    # The usage counts every word of the messages, the system message's as read once.
    words = [sum(len(m["content"].split()) for m in entry["messages"]) for entry in lm.history]
    assert [entry["usage"]["prompt_tokens"] for entry in lm.history] == words


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
