"""Importing what a name given as a dotted path refers to: a DSPy module class, a tool, a
metric. Shared by the worker and the client library, so that neither imports the other.

Every failure is a :class:`~dspex_bridge.errors.DspexError` that names the path:
:class:`~dspex_bridge.errors.ModuleImportError` (an ``ImportError``) for a path that does not
import, :class:`~dspex_bridge.errors.InvalidValueError` (a ``ValueError``) for a name that is
no path, :class:`~dspex_bridge.errors.WrongTypeError` (a ``TypeError``) for something of the
wrong kind.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from typing import Any

from .errors import InvalidValueError, ModuleImportError, WrongTypeError

__all__ = ["import_callable", "import_module_class"]


def _import_attribute(path: str, what: str, shown: str) -> Any:
    """The attribute that the dotted path `path` ends with, in the module it starts with;
    ``ModuleImportError`` naming the `what` (as `shown`) when there is none."""
    module_path, _, name = path.rpartition(".")
    try:
        module = importlib.import_module(module_path)
    except ImportError as e:
        raise ModuleImportError(f"cannot import {what} {shown}: {e}") from e
    try:
        return getattr(module, name)
    except AttributeError:
        raise ModuleImportError(f"cannot import {what} {shown}: {module_path} has no {name!r}") from None


def import_callable(path: str, what: str, example: str, shown: str | None = None) -> Callable[..., Any]:
    """The callable at dotted path `path`, a `what` (``"tool"``, ``"metric"``) like `example`;
    ``ModuleImportError`` naming it (as `shown`, by default the path) if there is none."""
    name_shown = repr(path) if shown is None else shown
    module_path, _, name = path.rpartition(".")
    if not module_path or not name:
        raise ModuleImportError(f"cannot import {what} {name_shown}: expected a dotted path like {example!r}")
    found = _import_attribute(path, what, name_shown)
    if not callable(found):
        raise ModuleImportError(f"cannot import {what} {name_shown}: it is a {type(found).__name__}, not a callable")
    checked: Callable[..., Any] = found
    return checked


def import_module_class(name: str, known: Iterable[str]) -> type:
    """The ``dspy.Module`` class at dotted path `name` (`known` are the names that resolve
    without a path, for the error message).

    Raises :class:`InvalidValueError` (a ``ValueError``) for a name that is not a path,
    :class:`ModuleImportError` (an ``ImportError``) for a path that does not import,
    :class:`WrongTypeError` (a ``TypeError``) for something that is not a ``dspy.Module`` class.
    """
    import dspy

    if "." not in name:
        raise InvalidValueError(
            f"unknown DSPy module class {name!r}; expected one of {', '.join(sorted(known))} "
            "or a dotted path like 'my_pkg.module.Class'"
        )
    cls = _import_attribute(name, "module class", repr(name))
    if not (isinstance(cls, type) and issubclass(cls, dspy.Module)):
        raise WrongTypeError(f"{name!r} is not a dspy.Module class")
    return cls
