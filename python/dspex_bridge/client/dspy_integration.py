"""DSPy modules whose parameters are bound to session variables, for Python code that uses
dspex variables itself (the dspex worker does not: its calls carry their values, see
:mod:`dspex_bridge.worker.module_service`).

A binding makes a module parameter follow a variable of the session store. Before each call
(``sync_variables``, done automatically by ``acall``) the bound values are read, and the calls
that follow run with them, applied as the worker applies the values its calls carry
(:func:`~dspex_bridge.binding.apply_binding`, after the contract's module table):

- the LM settings (``temperature``, ``max_tokens``, ``top_p``, ``n``) become the request
  settings of the call's LM, over the LM's defaults and every predictor's ``config``;
- ``model`` selects the call's LM (built by the module's LM factory);
- any other parameter is a keyword argument of the call (ReAct's ``max_iters``; a class the
  table does not know takes any).

The call's LM is a copy of the module's LM (the one its factory built for the model, else the
LM DSPy is configured with) that carries the settings and records its requests in that LM's
history; it is installed with ``dspy.context(lm=...)`` around each call, so it reaches every
predictor that has no LM of its own. So a Rust ``set`` of a bound ``temperature`` changes the
temperature of the next LM request, as the LM's own history shows.
"""

from __future__ import annotations

import asyncio
import inspect
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

import dspy

from ..binding import PARAMS, BoundCall, apply_binding, lm_for_call
from ..errors import InvalidValueError, UsageError, WrongTypeError
from ..imports import import_module_class

__all__ = [
    "ModuleVariableResolver",
    "VariableAwareChainOfThought",
    "VariableAwareMixin",
    "VariableAwarePredict",
    "VariableAwareProgramOfThought",
    "VariableAwareReAct",
    "variable_aware",
]

LmFactory = Callable[[str | None], Any]


class VariableAwareMixin:
    """Adds variable bindings to a ``dspy.Module``.

    Mix it in before the DSPy class (``class M(VariableAwareMixin, dspy.Predict)``) and call
    ``_init_variables(session, lm_factory)`` from ``__init__``. ``session`` is a
    ``SessionContext`` (async) or its sync facade; ``lm_factory(model)`` builds the LM for a
    model name (``None``: the default model). With an LM factory the module's calls run with
    its own LMs, so their history holds exactly the module's calls.
    """

    #: The module's name in the contract's table (``"Predict"``...); ``None`` for a class the
    #: table does not know, which takes the LM's parameters and any other as a call argument.
    _dspex_module: ClassVar[str | None] = None

    _dspex_session: Any
    _dspex_bindings: dict[str, str]
    _dspex_lm_factory: LmFactory | None
    _dspex_lms: dict[str | None, Any]
    _dspex_call: BoundCall

    def _init_variables(self, session: Any = None, lm_factory: LmFactory | None = None) -> None:
        # Plain attributes in __dict__; DSPy only walks Parameters and Modules.
        self._dspex_session = session
        self._dspex_bindings = {}
        self._dspex_lm_factory = lm_factory
        self._dspex_lms = {}
        self.apply_variables({})

    @classmethod
    def _dspex_name(cls) -> str:
        """The module as the contract's table names it, or the dotted path of its class."""
        return cls._dspex_module or f"{cls.__module__}.{cls.__qualname__}"

    # ---- bindings --------------------------------------------------------------------------

    def bind_to_variable(self, attr: str, variable: str) -> None:
        """Makes module parameter `attr` follow session variable `variable`; ``ValueError`` for
        a parameter the module does not take."""
        if not attr.isidentifier():
            raise InvalidValueError(f"cannot bind {attr!r}: a module parameter must be an identifier")
        if not variable:
            raise InvalidValueError(f"cannot bind {attr!r} to an empty variable name")
        PARAMS.use(self._dspex_name(), attr)
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
            return self.apply_variables({})
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
        """Applies variable values (variable -> value) to the bound parameters, for the calls
        that follow; returns parameter -> value applied."""
        missing = sorted({v for v in self._dspex_bindings.values() if v not in values})
        if missing:
            raise InvalidValueError(
                f"{type(self).__name__}: bound variable(s) {', '.join(map(repr, missing))} not found in the session"
            )
        applied = {attr: values[variable] for attr, variable in self._dspex_bindings.items()}
        self._dspex_call = apply_binding(self._dspex_name(), applied, self._lm_for)
        return applied

    def _lm_for(self, model: str | None, settings: Mapping[str, Any]) -> Any:
        """The LM of the module's calls: a copy, carrying `settings`, of the LM its factory
        builds for `model`, else of DSPy's configured LM; ``None`` (the LM in effect) when
        there is no factory and nothing to carry."""
        factory = self._dspex_lm_factory
        if factory is None:
            if model is not None:
                raise UsageError(
                    f"{type(self).__name__}: binding `model` needs an LM factory to build the LM for {model!r}"
                )
            if not settings:
                return None
            lm = dspy.settings.lm
            if lm is None:
                raise UsageError(
                    f"{type(self).__name__}: the bound LM settings {', '.join(sorted(settings))} need an LM: "
                    "give the module an lm_factory or configure DSPy's with dspy.configure(lm=...)"
                )
        else:
            if model not in self._dspex_lms:
                self._dspex_lms[model] = factory(model)
            lm = self._dspex_lms[model]
        return lm_for_call(lm, settings, own_history=False)

    def lms(self) -> list[Any]:
        """The LMs this module built (one per model it used)."""
        return list(self._dspex_lms.values())

    # ---- calls -----------------------------------------------------------------------------

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Calls the module with the values applied last (``sync_variables``,
        ``apply_variables``)."""
        return self._dspex_call.run(super().__call__, *args, **kwargs)  # type: ignore[misc]

    async def acall(self, *args: Any, **kwargs: Any) -> Any:
        """Syncs the bound variables, then calls the module without blocking the event loop."""
        await self.sync_variables()
        return await self.acall_synced(*args, **kwargs)

    async def acall_synced(self, *args: Any, **kwargs: Any) -> Any:
        """Calls the module with the values already applied (after an explicit
        ``sync_variables``), in a worker thread. Every module has a synchronous path (not all
        have ``aforward``), and with DSPy 3.4 it is also the faster one."""
        return await asyncio.to_thread(self.__call__, *args, **kwargs)


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
    ``VariableAwareMixin``, made once per class; for a module of the contract's table, such as
    ``dspy.Predict``, its ``VariableAware`` class); the class itself if it already is
    variable-aware."""
    if not (isinstance(cls, type) and issubclass(cls, dspy.Module)):
        raise WrongTypeError(f"{cls!r} is not a dspy.Module class")
    if issubclass(cls, VariableAwareMixin):
        return cls
    builtin = _BUILTIN.get(cls.__name__)
    if builtin is not None and cls is getattr(dspy, cls.__name__, None):
        return builtin
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

    _dspex_module = "Predict"
    __init__ = _variable_aware_init(dspy.Predict)


class VariableAwareChainOfThought(VariableAwareMixin, dspy.ChainOfThought):
    """``dspy.ChainOfThought`` with variable bindings."""

    _dspex_module = "ChainOfThought"
    __init__ = _variable_aware_init(dspy.ChainOfThought)


class VariableAwareReAct(VariableAwareMixin, dspy.ReAct):
    """``dspy.ReAct`` with variable bindings (``tools`` defaults to none)."""

    _dspex_module = "ReAct"

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

    _dspex_module = "ProgramOfThought"
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
