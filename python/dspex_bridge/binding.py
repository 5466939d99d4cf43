"""Applying the bound parameters of a DSPy module to a call of it: which parameters are LM
settings, which is the model and which are keyword arguments, as the contract's module table
says, and the one function that applies bound values to a call (:func:`apply_binding`), used
by the worker and by the client's variable-aware modules alike.

Each parameter a module takes applies to its calls in one of three ways (``"applies"`` in the
table of ``contract.json``, generated from the Rust side's ``dspex_core::dspy::ParamUse``):

- ``lm_setting`` (``temperature``, ``max_tokens``, ...): a request setting of the call's LM;
- ``model``: selects the call's LM;
- ``call_argument`` (ReAct's ``max_iters``): a keyword argument of the call,
  ``module(**inputs, max_iters=3)``.

A module the table knows takes exactly the parameters it lists. A module it does not know (a
class named by dotted path) takes the parameters every known module takes, the LM's, applied
the same way, and any other one as a keyword argument.

A call runs with an LM of its own (:func:`lm_for_call`): a light copy of the LM for its model
that carries the bound settings, which win over the LM's defaults and over the settings a
request asks for (a predictor's ``config``, a module's constructor configuration). It is
installed with ``dspy.context(lm=...)`` around the call, so that nothing of one call sticks to
the module or to the LM, and reaches every predictor that has no LM of its own (DSPy's default,
``lm=None``).
"""

from __future__ import annotations

import contextvars
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from enum import StrEnum
from typing import Any, Final

from .contract import MODULES
from .errors import InvalidValueError

__all__ = [
    "LM_SETTINGS",
    "PARAMS",
    "BoundCall",
    "CallScoped",
    "LmForCall",
    "Param",
    "ParamTable",
    "ParamUse",
    "apply_binding",
    "lm_for_call",
]


class ParamUse(StrEnum):
    """How a bound parameter applies to a call (the contract's ``"applies"``)."""

    LM_SETTING = "lm_setting"
    MODEL = "model"
    CALL_ARGUMENT = "call_argument"


#: The Python type of an LM setting's value, by the variable type the table gives it.
_SETTING_TYPES: Final[dict[str, type[int] | type[float]]] = {"integer": int, "float": float}


@dataclass(frozen=True)
class Param:
    """A parameter a module takes: how it applies, and the variable types it accepts."""

    applies: ParamUse
    types: tuple[str, ...]


@dataclass(frozen=True)
class ParamTable:
    """The parameters of the known modules, by module, as the contract's table lists them
    (:data:`PARAMS` is the table of ``contract.json``)."""

    modules: Mapping[str, Mapping[str, Param]]

    @classmethod
    def from_contract(cls, modules: Mapping[str, Mapping[str, Any]]) -> ParamTable:
        """The table of a contract's ``"modules"`` section."""
        return cls(
            {
                name: {
                    param: Param(ParamUse(spec["applies"]), tuple(spec["types"]))
                    for param, spec in entry["params"].items()
                }
                for name, entry in modules.items()
            }
        )

    @cached_property
    def common(self) -> dict[str, Param]:
        """The parameters every known module takes, the same way: the LM's, which a module the
        table does not know takes too."""
        tables = list(self.modules.values())
        if not tables:
            return {}
        return {name: p for name, p in tables[0].items() if all(t.get(name) == p for t in tables[1:])}

    @cached_property
    def lm_settings(self) -> dict[str, type[int] | type[float]]:
        """The LM request settings a binding may carry, with the Python type of their values."""
        settings: dict[str, type[int] | type[float]] = {}
        for name, param in self.common.items():
            if param.applies is ParamUse.LM_SETTING:
                (ty,) = param.types
                settings[name] = _SETTING_TYPES[ty]
        return settings

    def use(self, module: str, param: str) -> ParamUse:
        """How `param` applies to the calls of `module` (a known name or a dotted path);
        :class:`~dspex_bridge.errors.InvalidValueError` when the table knows the module and it
        does not take `param`."""
        params = self.modules.get(module)
        if params is None:
            common = self.common.get(param)
            return ParamUse.CALL_ARGUMENT if common is None else common.applies
        if param not in params:
            raise InvalidValueError(
                f"{module} takes no parameter `{param[:64]}`; it takes {', '.join(sorted(params))}"
            )
        return params[param].applies


#: The table of ``contract.json``.
PARAMS: Final[ParamTable] = ParamTable.from_contract(MODULES)
#: The LM request settings a binding may carry (``temperature``, ...), with the Python type of
#: their values, from the contract.
LM_SETTINGS: Final[dict[str, type[int] | type[float]]] = PARAMS.lm_settings

#: Gives the LM of a call: ``lm_for(model, settings)``, `model` the bound model (``None`` when
#: none is bound), `settings` the bound LM settings. ``None``: the call keeps the LM in effect.
LmForCall = Callable[[str | None, Mapping[str, Any]], Any]


@dataclass(frozen=True)
class BoundCall:
    """What bound values make of a call: its LM (``None``: the LM in effect) and its keyword
    arguments."""

    lm: Any
    kwargs: Mapping[str, Any]

    def run(self, module: Callable[..., Any], /, *args: Any, **inputs: Any) -> Any:
        """Calls `module` with `inputs` and the call's keyword arguments, under the call's LM."""
        if self.lm is None:
            return module(*args, **inputs, **self.kwargs)
        import dspy

        with dspy.context(lm=self.lm):
            return module(*args, **inputs, **self.kwargs)


def apply_binding(
    module: str, values: Mapping[str, Any], lm_for: LmForCall, table: ParamTable = PARAMS
) -> BoundCall:
    """Applies the bound values of a call of `module` (a known name or a dotted path),
    parameter -> value: the LM settings and the model go to ``lm_for(model, settings)``, which
    gives the call's LM, and the other parameters become the call's keyword arguments, as the
    contract's `table` says. :class:`~dspex_bridge.errors.InvalidValueError` for a parameter
    that a known module does not take."""
    settings: dict[str, Any] = {}
    model: str | None = None
    kwargs: dict[str, Any] = {}
    for param, value in values.items():
        use = table.use(module, param)
        if use is ParamUse.LM_SETTING:
            settings[param] = value
        elif use is ParamUse.MODEL:
            model = str(value)
        else:
            kwargs[param] = value
    return BoundCall(lm_for(model, settings), kwargs)


#: When the LM request running in this context went out, in nanoseconds since the Unix epoch.
_REQUEST_STARTED: contextvars.ContextVar[int | None] = contextvars.ContextVar("dspex_lm_request_started", default=None)
#: The key of a history entry holding its request's start and end, in nanoseconds since the
#: Unix epoch.
REQUEST_TIMES_KEY = "_dspex_request_times"


class CallScoped:
    """Mixed into an LM class: what makes a copy of an LM the LM of one call
    (:func:`lm_for_call` makes them; an LM used directly records its history as DSPy does)."""

    #: The history of the call's requests, when the copy keeps its own.
    _call_history: list[dict[str, Any]] | None = None
    #: The LM whose history the copy's requests go to, when it keeps none of its own.
    _history_owner: Any = None
    #: The settings of the call: they win over the LM's defaults and over what a request asks
    #: for (a predictor's ``config``, a module's constructor configuration).
    _call_settings: Mapping[str, Any] = {}
    #: Called with the copy and each history entry as it is made (the worker records LM traffic
    #: with it), before the entry is kept.
    _on_request: Callable[[Any, dict[str, Any]], None] | None = None

    def __call__(self, prompt: Any = None, *, messages: Any = None, **kwargs: Any) -> Any:
        token = _REQUEST_STARTED.set(time.time_ns())
        try:
            return super().__call__(prompt, messages=messages, **{**kwargs, **self._call_settings})  # type: ignore[misc]
        finally:
            _REQUEST_STARTED.reset(token)

    async def acall(self, prompt: Any = None, *, messages: Any = None, **kwargs: Any) -> Any:
        token = _REQUEST_STARTED.set(time.time_ns())
        try:
            return await super().acall(prompt, messages=messages, **{**kwargs, **self._call_settings})  # type: ignore[misc]
        finally:
            _REQUEST_STARTED.reset(token)

    @property
    def call_history(self) -> list[dict[str, Any]]:
        """The history entries of the call's requests, in order, when the copy keeps its own."""
        return self._call_history if self._call_history is not None else []

    def update_history(self, entry: dict[str, Any]) -> None:
        # When the request went out and its reply came (what the Rust process's telemetry
        # spans of the call's LM requests are made of).
        started = _REQUEST_STARTED.get()
        if started is not None:
            entry[REQUEST_TIMES_KEY] = (started, time.time_ns())
        if self._on_request is not None:
            self._on_request(self, entry)
        if self._call_history is not None:
            self._call_history.append(entry)
        elif self._history_owner is not None:
            self._history_owner.update_history(entry)
        else:
            super().update_history(entry)  # type: ignore[misc]


_SCOPED: weakref.WeakKeyDictionary[type, type] = weakref.WeakKeyDictionary()


def _call_scoped(cls: type) -> type:
    """`cls` with :class:`CallScoped` mixed in (made once per class)."""
    if issubclass(cls, CallScoped):
        return cls
    if cls not in _SCOPED:
        _SCOPED[cls] = type(cls.__name__, (CallScoped, cls), {"__module__": cls.__module__, "__doc__": cls.__doc__})
    return _SCOPED[cls]


def lm_for_call(lm: Any, settings: Mapping[str, Any], *, own_history: bool) -> Any:
    """A copy of `lm` (any DSPy LM) for one call, whose requests carry `settings` over the LM's
    defaults and over the settings each request asks for.

    With `own_history` its requests are recorded in its ``call_history`` only, nowhere else (not
    in DSPy's global history, not in the calling modules' ``history``): what keeps a call's LM
    requests exactly its own, and the cost of a call flat however many calls came before. Else
    they are recorded as `lm`'s own requests are (in its ``history``, DSPy's global history and
    the calling modules')."""
    copied = lm.copy(**settings)
    copied.__class__ = _call_scoped(type(copied))
    copied._call_settings = dict(settings)
    if own_history:
        copied._call_history = []
    else:
        copied._history_owner = lm
    return copied
