"""Compiling a worker's module with a DSPy optimizer (``ModuleService.CompileModule``), and the
compiled state that comes back to Rust and is loaded into modules again.

The optimizers and the settings each takes are the contract's table (``contract.json``,
generated from ``dspex_core::optimizers``): every setting goes to the optimizer's constructor
or to its ``compile``, as the table says, and anything the table does not list is refused. The
metric is a Python callable by dotted path (``metric(example, prediction, trace=None)``,
returning a number in ``[0, 1]`` or a boolean) or a Rust callable. A reflective optimizer
(GEPA) calls it with five arguments (``gold, pred, trace, pred_name, pred_trace``) and reads
feedback text from its answer (``dspy.Prediction(score=..., feedback=...)``); its reflection LM
is the LM of the compilation, or one the request sets apart (``reflection_lm``).

The compiled state is DSPy's ``dump_state()`` as JSON (demos, instructions), without any LM:
the worker's modules run with the LM of each call, never one of their own, and a state never
makes the worker build an LM.
"""

from __future__ import annotations

import inspect
import json
import numbers
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

import dspy

from .._proto.dspex.v1 import bridge_pb2 as pb
from ..contract import CONTRACT, LIMITS
from ..errors import InvalidValueError
from ..imports import import_callable
from .fields import FieldType, from_field_value
from .tools import CallbackClient

__all__ = [
    "OPTIMIZERS",
    "StateTooLargeError",
    "callback_metric",
    "compile_module",
    "dump_state",
    "import_metric",
    "load_state",
    "program_score",
    "run_demos",
    "split_settings",
    "train_examples",
]

#: The optimizers the worker knows, by name: ``{"settings": {name: {"kind", "stage", ...}},
#: "takes_valset": bool, "exactly_one_of": [name, ...], "reflective": bool}`` each.
OPTIMIZERS: Final[dict[str, dict[str, Any]]] = CONTRACT["optimizers"]

#: The value of MIPROv2's ``auto`` that stands for DSPy's ``None``.
_AUTO_NONE = "none"


class StateTooLargeError(InvalidValueError):
    """A compiled state over ``MAX_COMPILED_STATE_BYTES``."""


def _kind_error(optimizer: str, key: str, spec: Mapping[str, Any], value: Any) -> InvalidValueError:
    return InvalidValueError(f"optimizer `{optimizer}` takes `{key}` as {spec['kind']}, found {value!r}")


def _checked(optimizer: str, key: str, spec: Mapping[str, Any], value: Any) -> Any:
    """`value` if it is of the kind `spec` says (an integer widened for a float)."""
    kind = spec["kind"]
    if kind == "boolean":
        ok = isinstance(value, bool)
    elif kind == "integer":
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= spec["min"]
    elif kind == "float":
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
        if ok:
            value = float(value)
            ok = value >= spec["min"] and (spec["max"] is None or value <= spec["max"])
    elif kind == "one_of":
        ok = value in spec["options"]
    else:
        ok = False
    if not ok:
        raise _kind_error(optimizer, key, spec, value)
    if optimizer == "MIPROv2" and key == "auto" and value == _AUTO_NONE:
        return None
    return value


def split_settings(optimizer: str, settings: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The keyword arguments of the optimizer's constructor and of its ``compile``, from its
    settings. ``ValueError`` for an unknown optimizer, an unknown setting or a value of the
    wrong kind."""
    table = OPTIMIZERS.get(optimizer)
    if table is None:
        raise InvalidValueError(f"unknown optimizer {optimizer[:64]!r}; the known optimizers are {', '.join(OPTIMIZERS)}")
    constructor: dict[str, Any] = {}
    compile_kwargs: dict[str, Any] = {}
    for key, value in settings.items():
        spec = table["settings"].get(key)
        if spec is None:
            raise InvalidValueError(
                f"optimizer `{optimizer}` takes no setting `{key[:64]}`; it takes {', '.join(table['settings'])}"
            )
        target = constructor if spec["stage"] == "constructor" else compile_kwargs
        target[key] = _checked(optimizer, key, spec, value)
    one_of = table["exactly_one_of"]
    given = [key for key in one_of if key in settings]
    if one_of and len(given) != 1:
        found = ", ".join(f"`{key}`" for key in given) or "none"
        raise InvalidValueError(
            f"optimizer `{optimizer}` takes exactly one of {', '.join(f'`{key}`' for key in one_of)}, found {found}"
        )
    return constructor, compile_kwargs


def import_metric(path: str) -> Callable[..., Any]:
    """The metric callable at dotted path `path`; ``ImportError`` if there is none. It is
    called with five arguments if it takes them, else with three."""
    metric = import_callable(path, "metric", "my_pkg.metrics.exact", shown=repr(path[:64]))
    try:
        inspect.signature(metric).bind(None, None, None, None, None)
        takes_five = True
    except (TypeError, ValueError):
        takes_five = False

    def called(example: Any, prediction: Any, trace: Any, pred_name: Any, pred_trace: Any) -> Any:
        if takes_five:
            return metric(example, prediction, trace, pred_name, pred_trace)
        return metric(example, prediction, trace)

    return _checked_metric(path, called)


def _checked_metric(name: str, metric: Callable[..., Any]) -> Callable[..., Any]:
    """`metric` taking GEPA's five arguments (the last four optional) and refusing scores
    outside ``[0, 1]`` (an error naming it, which the optimizer counts as a failed example). A
    score with feedback (a mapping or a ``dspy.Prediction`` with ``score`` and ``feedback``)
    comes back as ``dspy.Prediction(score=..., feedback=...)``."""

    def checked(score: Any) -> float | bool:
        if isinstance(score, bool):
            return score
        if isinstance(score, numbers.Real) and 0.0 <= float(score) <= 1.0:
            return float(score)
        raise InvalidValueError(f"metric {name!r} scored {score!r}, expected a number in [0, 1] or a boolean")

    def scored(
        example: Any, prediction: Any, trace: Any = None, pred_name: Any = None, pred_trace: Any = None
    ) -> Any:
        score = metric(example, prediction, trace, pred_name, pred_trace)
        if isinstance(score, (Mapping, dspy.Prediction)) and "score" in score:
            feedback = score.get("feedback")
            if feedback is not None and not isinstance(feedback, str):
                raise InvalidValueError(f"metric {name!r} gave feedback {feedback!r}, expected text")
            return dspy.Prediction(score=checked(score["score"]), feedback=feedback)
        return checked(score)

    return scored


def _json_object(text: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise InvalidValueError(f"{what} is not JSON: {e}") from None
    if not isinstance(value, dict):
        raise InvalidValueError(f"{what} is a JSON {type(value).__name__}, not an object")
    return value


def program_run(
    example_json: str, prediction_json: str, trace_json: str | None
) -> tuple[dspy.Example, dspy.Prediction, list[tuple[str, dict[str, Any], dspy.Prediction]] | None]:
    """A whole program's example (its inputs marked), prediction and, for a run scored while
    bootstrapping, its trace as DSPy's metrics see one (``(step, inputs, prediction)`` per LM
    step), from ``ScoreMetricRequest``'s JSON. ``ValueError`` for JSON of another shape."""
    example = _json_object(example_json, "the example")
    inputs = example.get("inputs")
    labels = example.get("labels")
    if not isinstance(inputs, dict) or not isinstance(labels, dict):
        raise InvalidValueError("the example has no objects `inputs` and `labels`")
    prediction = _json_object(prediction_json, "the prediction")
    trace = None
    if trace_json is not None:
        try:
            steps = json.loads(trace_json)
        except json.JSONDecodeError as e:
            raise InvalidValueError(f"the trace is not JSON: {e}") from None
        if not isinstance(steps, list) or not all(
            isinstance(s, dict) and isinstance(s.get("inputs"), dict) and isinstance(s.get("outputs"), dict)
            for s in steps
        ):
            raise InvalidValueError("the trace is not a list of `{step, inputs, outputs}` objects")
        trace = [(str(s.get("step", "")), s["inputs"], dspy.Prediction(**s["outputs"])) for s in steps]
    return dspy.Example(**inputs, **labels).with_inputs(*inputs), dspy.Prediction(**prediction), trace


def program_score(metric: Callable[..., Any], example: Any, prediction: Any, trace: Any) -> float:
    """What a metric from :func:`import_metric` scores a whole program's run, as a number
    (a boolean is 1 or 0; a score with feedback gives its score)."""
    score = metric(example, prediction, trace)
    if isinstance(score, dspy.Prediction):
        score = score.score
    return float(score)


def run_demos(text: str) -> list[dspy.Example]:
    """The demos of one call (``ExecuteModuleRequest.demos_json``) as DSPy's predictors hold
    them. ``ValueError`` for anything but a list of objects, or over
    ``MAX_COMPILED_STATE_BYTES``."""
    size = len(text.encode("utf-8"))
    if size > LIMITS["MAX_COMPILED_STATE_BYTES"]:
        raise StateTooLargeError(
            f"the call's demos are {size} bytes, over the limit of {LIMITS['MAX_COMPILED_STATE_BYTES']} "
            "(MAX_COMPILED_STATE_BYTES)"
        )
    try:
        demos = json.loads(text)
    except json.JSONDecodeError as e:
        raise InvalidValueError(f"the call's demos are not JSON: {e}") from None
    if not isinstance(demos, list) or not all(isinstance(d, dict) for d in demos):
        raise InvalidValueError("the call's demos are not a JSON list of objects")
    return [dspy.Example(**demo) for demo in demos]


def callback_metric(callbacks: CallbackClient | None, name: str) -> Callable[..., Any]:
    """A metric that asks the session's Rust callable `name` for each score (or score with
    feedback), through the bridge server's ``CallbackService``, with the example and the
    prediction. Its error is the metric's."""
    if callbacks is None:
        raise ValueError("this worker knows no bridge server to call Rust callables on")

    def metric(example: Any, prediction: Any, trace: Any, pred_name: Any, pred_trace: Any) -> Any:
        arguments = {
            "example": {"inputs": dict(example.inputs()), "labels": dict(example.labels())},
            "prediction": dict(prediction.items()),
        }
        response = callbacks.call(name, arguments, "")
        if response.WhichOneof("outcome") != "result_json":
            raise InvalidValueError(f"the Rust metric {name!r} failed: {response.error}")
        return json.loads(response.result_json)

    return _checked_metric(name, metric)


def train_examples(
    which: str,
    examples: Iterable[pb.TrainExample],
    inputs: Mapping[str, FieldType],
    outputs: Mapping[str, FieldType],
) -> list[dspy.Example]:
    """The examples of a train or validation set as ``dspy.Example``s with the module's inputs
    marked. ``ValueError`` naming the example and the field for a missing input, a field the
    module neither takes nor produces, or a value not of its declared type."""
    result = []
    for index, example in enumerate(examples):
        where = f"{which} example {index}"
        missing = sorted(set(inputs) - set(example.inputs))
        if missing:
            raise InvalidValueError(f"{where} has no input `{missing[0]}`")
        fields: dict[str, Any] = {}
        for name, value in example.inputs.items():
            ftype = inputs.get(name)
            if ftype is None:
                raise InvalidValueError(f"{where}: the module takes no input `{name[:64]}`")
            fields[name] = from_field_value(f"{where}: {name}", value, ftype)
        for name, value in example.labels.items():
            ftype = outputs.get(name)
            if ftype is None:
                raise InvalidValueError(f"{where}: the module has no output `{name[:64]}`")
            fields[name] = from_field_value(f"{where}: {name}", value, ftype)
        result.append(dspy.Example(**fields).with_inputs(*inputs))
    return result


def compile_module(
    student: dspy.Module,
    optimizer: str,
    settings: Mapping[str, Any],
    trainset: list[dspy.Example],
    valset: list[dspy.Example],
    metric: Callable[..., Any],
    reflection_lm: Any = None,
) -> dspy.Module:
    """`student` (a fresh, uncompiled module) compiled by `optimizer` with `settings`, under
    the LM installed by the caller (``dspy.context(lm=...)``), which a reflective optimizer
    reflects with too unless `reflection_lm` is given."""
    constructor, compile_kwargs = split_settings(optimizer, settings)
    if OPTIMIZERS[optimizer]["reflective"]:
        constructor["reflection_lm"] = reflection_lm if reflection_lm is not None else dspy.settings.lm
    elif reflection_lm is not None:
        raise InvalidValueError(f"optimizer `{optimizer}` does not reflect: it takes no reflection LM")
    if valset:
        if not OPTIMIZERS[optimizer]["takes_valset"]:
            raise InvalidValueError(f"optimizer `{optimizer}` takes no validation set")
        compile_kwargs["valset"] = valset
    teleprompter = getattr(dspy, optimizer)(metric=metric, **constructor)
    compiled: dspy.Module = teleprompter.compile(student, trainset=trainset, **compile_kwargs)
    return compiled


def dump_state(module: dspy.Module) -> tuple[str, dict[str, int]]:
    """The module's state as JSON, without LMs, and the demos of each predictor.
    ``ValueError`` if it is larger than ``MAX_COMPILED_STATE_BYTES``."""
    for _, predictor in module.named_predictors():
        predictor.lm = None
    text = json.dumps(module.dump_state(), ensure_ascii=False)
    size = len(text.encode("utf-8"))
    if size > LIMITS["MAX_COMPILED_STATE_BYTES"]:
        raise StateTooLargeError(
            f"the compiled state is {size} bytes, over the limit of {LIMITS['MAX_COMPILED_STATE_BYTES']} "
            "(MAX_COMPILED_STATE_BYTES)"
        )
    demos = {name: len(predictor.demos) for name, predictor in module.named_predictors()}
    return text, demos


def load_state(module: dspy.Module, text: str) -> None:
    """Loads a state from :func:`dump_state` into `module`, all or nothing. ``ValueError`` for
    a state that is not a JSON object, that is too large, or that names parts the module does
    not have or lacks parts it has; whatever DSPy raises for a part that does not load."""
    size = len(text.encode("utf-8"))
    if size > LIMITS["MAX_COMPILED_STATE_BYTES"]:
        raise StateTooLargeError(
            f"the state is {size} bytes, over the limit of {LIMITS['MAX_COMPILED_STATE_BYTES']} (MAX_COMPILED_STATE_BYTES)"
        )
    try:
        state = json.loads(text)
    except json.JSONDecodeError as e:
        raise InvalidValueError(f"the state is not JSON: {e}") from None
    if not isinstance(state, dict):
        raise InvalidValueError(f"the state is a JSON {type(state).__name__}, not an object")
    # A predictor's state is its own (flat); a module's has one part per predictor.
    single = isinstance(module, dspy.Predict)
    if not single:
        parts = {name for name, _ in module.named_parameters()}
        extra = sorted(set(state) - parts)
        missing = sorted(parts - set(state))
        if extra or missing:
            problems = [f"it has no part `{name[:64]}`" for name in extra[:4]]
            problems += [f"the state lacks part `{name}`" for name in missing[:4]]
            raise InvalidValueError(f"the state does not fit a {type(module).__name__}: {'; '.join(problems)}")
    for part in [state] if single else state.values():
        if isinstance(part, dict) and part.get("lm") is not None:
            raise InvalidValueError("the state holds an LM; a worker's modules use the LM of each call")
    # DSPy tries the load on a copy first: the module is untouched when a part does not load.
    module.load_state(state)
