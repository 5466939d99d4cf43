"""DSPy modules whose parameters are bound to session variables, for Python code that uses
dspex variables itself (the dspex worker does not: its calls carry their values, see
:mod:`dspex_bridge.worker.module_service`).

A binding makes a module parameter follow a variable of the session store. Before each call
(``sync_variables``, done automatically by ``acall``) the bound values are read and applied
where DSPy really reads them:

- ``temperature``, ``max_tokens``, ``top_p`` and ``n`` become the ``config`` of every
  predictor inside the module, which DSPy passes to the LM as request settings;
- ``model`` selects the LM of every predictor (built by the module's LM factory);
- any other parameter is set as an attribute of the module.

So a Rust ``set`` of a bound ``temperature`` changes the temperature of the next LM request,
as the LM's own history shows.
"""

from __future__ import annotations

import asyncio
import inspect
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import dspy

from ..errors import InvalidValueError, UsageError, WrongTypeError
from ..imports import import_module_class

__all__ = [
    "LM_PARAMETERS",
    "ModuleVariableResolver",
    "VariableAwareChainOfThought",
    "VariableAwareMixin",
    "VariableAwarePredict",
    "VariableAwareProgramOfThought",
    "VariableAwareReAct",
    "variable_aware",
]

#: Parameters that become LM request settings of every predictor of the module.
LM_PARAMETERS = ("temperature", "max_tokens", "top_p", "n")

LmFactory = Callable[[str | None], Any]


class VariableAwareMixin:
    """Adds variable bindings to a ``dspy.Module``.

    Mix it in before the DSPy class (``class M(VariableAwareMixin, dspy.Predict)``) and call
    ``_init_variables(session, lm_factory)`` from ``__init__``. ``session`` is a
    ``SessionContext`` (async) or its sync facade; ``lm_factory(model)`` builds the LM for a
    model name (``None``: the default model). With an LM factory every predictor gets its own
    LM, so the module's LM history holds exactly its own calls.
    """

    _dspex_session: Any
    _dspex_bindings: dict[str, str]
    _dspex_lm_factory: LmFactory | None
    _dspex_lms: dict[str | None, Any]

    def _init_variables(self, session: Any = None, lm_factory: LmFactory | None = None) -> None:
        # Plain attributes in __dict__; DSPy only walks Parameters and Modules.
        self._dspex_session = session
        self._dspex_bindings = {}
        self._dspex_lm_factory = lm_factory
        self._dspex_lms = {}
        if lm_factory is not None:
            self._use_lm(None)

    # ---- bindings --------------------------------------------------------------------------

    def bind_to_variable(self, attr: str, variable: str) -> None:
        """Makes module parameter `attr` follow session variable `variable`."""
        if not attr.isidentifier():
            raise InvalidValueError(f"cannot bind {attr!r}: a module parameter must be an identifier")
        if not variable:
            raise InvalidValueError(f"cannot bind {attr!r} to an empty variable name")
        self._dspex_bindings[attr] = variable

    def unbind_variable(self, attr: str) -> None:
        """Removes the binding of `attr` (KeyError if there is none)."""
        del self._dspex_bindings[attr]

    def get_bindings(self) -> dict[str, str]:
        """The bindings, parameter -> variable."""
        return dict(self._dspex_bindings)

    def set_session(self, session: Any) -> None:
        """Sets the session the bound variables are read from."""
        self._dspex_session = session

    # ---- applying values -------------------------------------------------------------------

    async def sync_variables(self, min_versions: Mapping[str, int] | None = None) -> dict[str, Any]:
        """Reads every bound variable and applies it; returns parameter -> value applied.

        The values come from the store in one ``get_variables`` call, or, when the caller knows
        the versions it needs (``min_versions``, variable -> version), from the session's
        watch-invalidated cache if it holds them. A bound variable that does not exist is a
        ``ValueError`` naming it.
        """
        if not self._dspex_bindings:
            return {}
        if self._dspex_session is None:
            raise UsageError(
                f"{type(self).__name__} has bindings {self._dspex_bindings} but no session to read them from"
            )
        names = sorted(set(self._dspex_bindings.values()))
        if min_versions is None:
            result = self._dspex_session.get_variables(names)
        else:
            result = self._dspex_session.get_variables(names, min_versions=min_versions)
        if inspect.isawaitable(result):
            result = await result
        return self.apply_variables(result.found)

    def apply_variables(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Applies variable values (variable -> value) to the bound parameters."""
        missing = sorted({v for v in self._dspex_bindings.values() if v not in values})
        if missing:
            raise InvalidValueError(
                f"{type(self).__name__}: bound variable(s) {', '.join(map(repr, missing))} not found in the session"
            )
        applied = {}
        for attr, variable in self._dspex_bindings.items():
            value = values[variable]
            self._apply(attr, value)
            applied[attr] = value
        return applied

    def _apply(self, attr: str, value: Any) -> None:
        if attr in LM_PARAMETERS:
            for _, predictor in self.named_predictors():  # type: ignore[attr-defined]
                predictor.config[attr] = value
        elif attr == "model":
            self._use_lm(str(value))
        else:
            setattr(self, attr, value)

    def _use_lm(self, model: str | None) -> None:
        if self._dspex_lm_factory is None:
            raise UsageError(
                f"{type(self).__name__}: binding `model` needs an LM factory to build the LM for {model!r}"
            )
        if model not in self._dspex_lms:
            self._dspex_lms[model] = self._dspex_lm_factory(model)
        lm = self._dspex_lms[model]
        for _, predictor in self.named_predictors():  # type: ignore[attr-defined]
            predictor.lm = lm

    def lms(self) -> list[Any]:
        """The LMs this module built (one per model it used)."""
        return list(self._dspex_lms.values())

    # ---- calls -----------------------------------------------------------------------------

    async def acall(self, *args: Any, **kwargs: Any) -> Any:
        """Syncs the bound variables, then calls the module without blocking the event loop."""
        await self.sync_variables()
        return await self.acall_synced(*args, **kwargs)

    async def acall_synced(self, *args: Any, **kwargs: Any) -> Any:
        """Calls the module with the values already applied (after an explicit
        ``sync_variables``), in a worker thread. Every module has a synchronous path (not all
        have ``aforward``), and with DSPy 3.4 it is also the faster one."""
        return await asyncio.to_thread(self.__call__, *args, **kwargs)  # type: ignore[operator]


def _variable_aware_init(base: type) -> Callable[..., None]:
    def __init__(
        self: Any,
        *args: Any,
        session: Any = None,
        lm_factory: LmFactory | None = None,
        **kwargs: Any,
    ) -> None:
        base.__init__(self, *args, **kwargs)  # type: ignore[misc]  # `base` is the DSPy class itself
        self._init_variables(session, lm_factory)

    __init__.__doc__ = (
        f"Creates a variable-aware ``{base.__name__}``: the arguments of ``{base.__module__}.{base.__name__}``, "
        "plus ``session`` (where bound variables are read) and ``lm_factory`` (model name -> LM)."
    )
    return __init__


_AWARE: weakref.WeakKeyDictionary[type, type] = weakref.WeakKeyDictionary()


def variable_aware(cls: type) -> type:
    """The variable-aware variant of a ``dspy.Module`` class (a subclass mixing in
    ``VariableAwareMixin``, made once per class); the class itself if it already is
    variable-aware."""
    if not (isinstance(cls, type) and issubclass(cls, dspy.Module)):
        raise WrongTypeError(f"{cls!r} is not a dspy.Module class")
    if issubclass(cls, VariableAwareMixin):
        return cls
    if cls not in _AWARE:
        _AWARE[cls] = type(
            f"VariableAware{cls.__name__}",
            (VariableAwareMixin, cls),
            {
                "__init__": _variable_aware_init(cls),
                "__module__": __name__,
                "__doc__": f"Variable-aware {cls.__name__}.",
            },
        )
    return _AWARE[cls]


class VariableAwarePredict(VariableAwareMixin, dspy.Predict):
    """``dspy.Predict`` with variable bindings."""

    __init__ = _variable_aware_init(dspy.Predict)


class VariableAwareChainOfThought(VariableAwareMixin, dspy.ChainOfThought):
    """``dspy.ChainOfThought`` with variable bindings."""

    __init__ = _variable_aware_init(dspy.ChainOfThought)


class VariableAwareReAct(VariableAwareMixin, dspy.ReAct):
    """``dspy.ReAct`` with variable bindings (``tools`` defaults to none)."""

    def __init__(
        self,
        signature: Any,
        tools: list[Callable[..., Any]] | None = None,
        *,
        session: Any = None,
        lm_factory: LmFactory | None = None,
        **kwargs: Any,
    ) -> None:
        dspy.ReAct.__init__(self, signature, tools=list(tools or []), **kwargs)
        self._init_variables(session, lm_factory)


class VariableAwareProgramOfThought(VariableAwareMixin, dspy.ProgramOfThought):
    """``dspy.ProgramOfThought`` with variable bindings."""

    __init__ = _variable_aware_init(dspy.ProgramOfThought)


_BUILTIN: dict[str, type] = {
    "Predict": VariableAwarePredict,
    "ChainOfThought": VariableAwareChainOfThought,
    "ReAct": VariableAwareReAct,
    "ProgramOfThought": VariableAwareProgramOfThought,
}


class ModuleVariableResolver:
    """Resolves the value of a ``module`` variable (a DSPy module class name or a dotted path)
    to a class, preferring the variable-aware variant. Custom classes can be registered."""

    def __init__(self, session: Any = None) -> None:
        self._session = session
        self._classes: dict[str, type] = dict(_BUILTIN)

    def register(self, name: str, cls: type) -> None:
        """Makes `name` resolve to (the variable-aware variant of) `cls`."""
        self._classes[name] = variable_aware(cls)

    def known(self) -> list[str]:
        """The names that resolve without an import."""
        return sorted(self._classes)

    def resolve_class(self, name: str) -> type:
        """The variable-aware class for a module name or dotted path.

        Raises ``ValueError`` for an unknown name, ``ImportError`` for a path that does not
        import, ``TypeError`` for something that is not a ``dspy.Module`` class.
        """
        if name in self._classes:
            return self._classes[name]
        aware = variable_aware(import_module_class(name, self.known()))
        self._classes[name] = aware
        return aware

    async def resolve(self, variable: str) -> type:
        """The class named by the current value of `variable`."""
        if self._session is None:
            raise UsageError("ModuleVariableResolver needs a session to read variables")
        value = self._session.get_variable(variable)
        if inspect.isawaitable(value):
            value = await value
        if not isinstance(value, str):
            raise WrongTypeError(f"variable {variable!r} holds {type(value).__name__}, not a module class name")
        return self.resolve_class(value)

    def create(
        self,
        name: str,
        signature: str,
        *,
        bindings: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        session: Any = None,
        lm_factory: LmFactory | None = None,
        **config: Any,
    ) -> VariableAwareMixin:
        """Instantiates `name` with `signature` and binds `bindings` (parameter -> variable)."""
        cls = self.resolve_class(name)
        module: VariableAwareMixin = cls(
            signature, session=session or self._session, lm_factory=lm_factory, **config
        )
        items = bindings.items() if isinstance(bindings, Mapping) else bindings
        for attr, variable in items:
            module.bind_to_variable(attr, variable)
        return module
