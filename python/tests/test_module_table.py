"""The table of known DSPy modules (``contract.json``, generated from ``dspex_core::dspy``)
against the installed DSPy and the worker's way of building modules: every module exists, the
worker constructs it with every configuration key the table lists (and the value takes
effect), and its calls accept every parameter the table binds per call (and the value takes
effect). Runs offline, on the scripted LM."""

from __future__ import annotations

from typing import Any

import dspy
import pytest

from dspex_bridge.client.dspy_integration import ModuleVariableResolver
from dspex_bridge.worker.lm import LmConfig, LmFactory
from dspex_bridge.worker.module_config import TOOLS_KEY, constructor_kwargs, import_tool, module_table
from dspex_bridge.worker.module_service import resolve_module_class

pytestmark = pytest.mark.filterwarnings("ignore:ProgramOfThought is deprecated:DeprecationWarning")

TABLE = module_table()
TOOL = "sample_modules.word_count"
#: Makes every ReAct step call `word_count`, so that each iteration is one tool call.
CALL_THE_TOOL = {
    "[[ ## next_tool_name ## ]]": {
        "next_thought": "count the words",
        "next_tool_name": "word_count",
        "next_tool_args": '{"text": "one two three"}',
    }
}
#: Makes every program ProgramOfThought writes fail, so that it retries until `max_iters`.
FAILING_CODE = {"[[ ## generated_code ## ]]": {"generated_code": "```python\nraise ValueError('no')\n```"}}


def build(name: str, config: dict[str, Any], rules: dict | None = None) -> Any:
    """`name` as the worker builds it (its known modules, with the constructor arguments of
    `config`), on a scripted LM of its own."""
    module = resolve_module_class(name)("question -> answer", **constructor_kwargs(name, config))
    module.set_lm(LmFactory(LmConfig(rules=list((rules or {}).items()))).build())
    return module


def lm_history(module: Any) -> list[dict]:
    return list(module.get_lm().history)


def samples(kind: dict) -> list[Any]:
    """Values of a configuration kind that the Rust side accepts."""
    match kind["kind"]:
        case "integer":
            return [kind["min"], kind["min"] + 1]
        case "float":
            top = kind["max"] if kind["max"] is not None else kind["min"] + 1.0
            return [(kind["min"] + top) / 2]
        case "one_of":
            return list(kind["options"])
        case "tools":
            return [[TOOL]]
    raise AssertionError(f"no samples for kind {kind}")


def entries(section: str) -> list[tuple[str, str, dict]]:
    return [(module, key, spec) for module, m in TABLE.items() for key, spec in m[section].items()]


# ---- what the worker must know ------------------------------------------------------------


def test_the_table_lists_the_modules_of_the_worker_and_of_dspy():
    assert set(TABLE) == {"Predict", "ChainOfThought", "ReAct", "ProgramOfThought"}
    resolver = ModuleVariableResolver()
    for name in TABLE:
        cls = getattr(dspy, name)
        assert issubclass(cls, dspy.Module), name
        assert name in resolver.known(), name
        assert issubclass(resolver.resolve_class(name), cls), name


# ---- configuration keys ---------------------------------------------------------------------


def takes_effect_lm_setting(name: str, key: str, value: Any) -> None:
    module = build(name, {key: value})
    module(question="What is DSPy?")
    assert lm_history(module)[-1]["kwargs"][key] == value


def takes_effect_react_max_iters(name: str, key: str, value: Any) -> None:
    module = build(name, {key: value, TOOLS_KEY: [TOOL]}, rules=CALL_THE_TOOL)
    trajectory = module(question="How many words?").trajectory
    assert sum(k.startswith("tool_name_") for k in trajectory) == value


def takes_effect_react_tools(name: str, key: str, value: Any) -> None:
    module = build(name, {key: value, "max_iters": 1}, rules=CALL_THE_TOOL)
    assert "word_count" in module.tools
    trajectory = module(question="How many words?").trajectory
    assert (trajectory["tool_name_0"], trajectory["observation_0"]) == ("word_count", 3)


def takes_effect_pot_max_iters(name: str, key: str, value: Any) -> None:
    module = build(name, {key: value, "interpreter": "local"}, rules=FAILING_CODE)
    with pytest.raises(RuntimeError, match="Max hops reached"):
        module(question="What is 2 + 2?")
    # The first program, then one more per retry.
    assert len(lm_history(module)) == value


def takes_effect_pot_interpreter(name: str, key: str, value: Any) -> None:
    module = build(name, {key: value})
    expected = {"deno": dspy.PythonInterpreter, "local": dspy.LocalInterpreter}[value]
    assert module._interpreter_factory is expected
    if value == "local":  # DSPy's sandbox needs Deno; the local interpreter runs here
        assert module(question="What is 2 + 2?").answer


#: How each configuration key shows its effect, beyond the LM settings (checked alike).
CONFIG_EFFECTS = {
    ("ReAct", "max_iters"): takes_effect_react_max_iters,
    ("ReAct", TOOLS_KEY): takes_effect_react_tools,
    ("ProgramOfThought", "max_iters"): takes_effect_pot_max_iters,
    ("ProgramOfThought", "interpreter"): takes_effect_pot_interpreter,
}


def config_effect(module: str, key: str):
    param = TABLE[module]["params"].get(key)
    if param is not None and param["applies"] == "lm_setting":
        return takes_effect_lm_setting
    return CONFIG_EFFECTS.get((module, key))


@pytest.mark.parametrize(("module", "key", "kind"), entries("config"), ids=lambda v: str(v))
def test_the_worker_constructs_each_module_with_each_configuration_key(module, key, kind):
    effect = config_effect(module, key)
    assert effect is not None, f"no check that `{key}` of {module} takes effect: add one to CONFIG_EFFECTS"
    for value in samples(kind):
        effect(module, key, value)


def test_a_key_beyond_the_table_is_refused_where_the_constructor_is_strict():
    # ReAct and ProgramOfThought take no `**kwargs`: the construction above is a real test.
    for name in ("ReAct", "ProgramOfThought"):
        with pytest.raises(TypeError, match="no_such_key"):
            build(name, {"no_such_key": 1})


def test_tools_and_interpreters_that_do_not_exist_are_errors_naming_them():
    with pytest.raises(ImportError, match="sample_modules.no_such_tool"):
        constructor_kwargs("ReAct", {TOOLS_KEY: ["sample_modules.no_such_tool"]})
    with pytest.raises(ImportError, match="'calculator'"):
        import_tool("calculator")
    with pytest.raises(ValueError, match="'docker'"):
        constructor_kwargs("ProgramOfThought", {"interpreter": "docker"})
    # A class named by dotted path takes `interpreter` as it is.
    assert constructor_kwargs("my_pkg.Solver", {"interpreter": "docker"}) == {"interpreter": "docker"}


# ---- parameters bound per call --------------------------------------------------------------


def per_call_react_max_iters(value: int) -> None:
    module = build("ReAct", {TOOLS_KEY: [TOOL], "max_iters": 5}, rules=CALL_THE_TOOL)
    trajectory = module(question="How many words?", max_iters=value).trajectory
    assert sum(k.startswith("tool_name_") for k in trajectory) == value
    assert module.max_iters == 5, "a per-call value leaves the module as it was"


#: How each parameter bound per call (a keyword argument of the call) shows its effect.
CALL_EFFECTS = {("ReAct", "max_iters"): per_call_react_max_iters}


@pytest.mark.parametrize(
    ("module", "param", "spec"),
    [e for e in entries("params") if e[2]["applies"] == "call_argument"],
    ids=lambda v: str(v),
)
def test_each_call_argument_is_taken_by_the_modules_calls(module, param, spec):
    effect = CALL_EFFECTS.get((module, param))
    assert effect is not None, f"no check that {module} takes `{param}` per call: add one to CALL_EFFECTS"
    assert spec["types"] == ["integer"]
    for value in (1, 2):
        effect(value)


def test_lm_parameters_are_the_same_for_every_module():
    lm_params = {
        name: spec
        for name, spec in TABLE["Predict"]["params"].items()
        if spec["applies"] in ("lm_setting", "model")
    }
    assert set(lm_params) == {"temperature", "top_p", "max_tokens", "n", "model"}
    for module in TABLE.values():
        assert {k: v for k, v in module["params"].items() if k in lm_params} == lm_params
