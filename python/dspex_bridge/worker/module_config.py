"""A python step's ``with`` configuration as the constructor arguments of its DSPy module, and
the table of known modules it follows (``contract.json``, generated from the Rust side's
``dspex_core::dspy``).

Every key goes to the constructor as it is, except two that name Python objects a literal
cannot give: ``tools`` (dotted paths of callables, imported here) and ProgramOfThought's
``interpreter`` (``"deno"``, DSPy's sandbox, or ``"local"``, :class:`dspy.LocalInterpreter`),
which picks its ``interpreter_factory``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..contract import MODULES
from ..errors import InvalidValueError, WrongTypeError
from ..imports import import_callable

__all__ = ["TOOLS_KEY", "constructor_kwargs", "import_tool", "module_table"]

#: The configuration key that gives an agent its tools.
TOOLS_KEY = "tools"


def module_table() -> dict[str, dict[str, Any]]:
    """The known DSPy modules, by name: ``{"params": {...}, "config": {...}}`` each (the
    contract's table, :data:`dspex_bridge.contract.MODULES`)."""
    return MODULES


def constructor_kwargs(module_class: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments that construct `module_class` with `config` (a step's ``with``
    entries, key -> value). Raises ``ImportError`` naming a tool that cannot be imported and
    ``ValueError`` for an interpreter that is neither ``"deno"`` nor ``"local"``."""
    kwargs = dict(config)
    if TOOLS_KEY in kwargs:
        kwargs[TOOLS_KEY] = [import_tool(path) for path in _paths(kwargs[TOOLS_KEY])]
    if module_class == "ProgramOfThought" and "interpreter" in kwargs:
        kwargs["interpreter_factory"] = _interpreter_factory(kwargs.pop("interpreter"))
    return kwargs


def import_tool(path: str) -> Callable[..., Any]:
    """The callable at dotted path `path` (``"my_pkg.tools.search"``)."""
    return import_callable(path, "tool", "my_pkg.tools.search")


def _paths(tools: Any) -> list[str]:
    if isinstance(tools, str) or not all(isinstance(path, str) for path in tools):
        raise WrongTypeError(f"{TOOLS_KEY!r} must be a list of dotted paths, not {tools!r}")
    return list(tools)


def _interpreter_factory(interpreter: Any) -> Callable[[], Any]:
    import dspy

    factories: dict[str, Callable[[], Any]] = {"deno": dspy.PythonInterpreter, "local": dspy.LocalInterpreter}
    try:
        return factories[interpreter]
    except (KeyError, TypeError):
        raise InvalidValueError(
            f"interpreter must be 'deno' (DSPy's sandbox) or 'local' (no sandbox), not {interpreter!r}"
        ) from None
