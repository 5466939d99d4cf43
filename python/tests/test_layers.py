"""The package's layers: a shared base at the top of ``dspex_bridge`` (the contract, errors,
values, imports by dotted path, bindings, the stubs), and two subpackages over it, the client
library (``dspex_bridge.client``) and the worker (``dspex_bridge.worker``), neither of which
imports the other; no module of the base imports either, and no modules import each other in
a cycle.

Checked twice: on the source (every import statement, also those inside functions, so that a
lazy import cannot hide a dependency) and in fresh interpreters (what importing each part
really loads)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = "dspex_bridge"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE
SUBPACKAGES = ("client", "worker")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def sources() -> dict[str, Path]:
    """The package's own modules (not the generated stubs), by name."""
    return {module_name(p): p for p in sorted(ROOT.rglob("*.py")) if "_proto" not in p.parts}


def imported(name: str, path: Path) -> set[str]:
    """The package's modules that module `name` imports anywhere in its source, by name
    (``from . import x`` counts as importing ``x``, a submodule when it is one)."""
    known = sources()
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            targets = [prefix] + [f"{prefix}.{alias.name}" for alias in node.names]
        for target in targets:
            if target in known or target.startswith(f"{PACKAGE}._proto"):
                found.add(target)
    found.discard(name)
    return found


def layer(name: str) -> str:
    """``client``, ``worker``, or ``base`` for the modules at the top."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in SUBPACKAGES else "base"


GRAPH = {name: imported(name, path) for name, path in sources().items()}


def test_the_layout_has_a_base_and_two_subpackages() -> None:
    by_layer: dict[str, set[str]] = {}
    for name in GRAPH:
        by_layer.setdefault(layer(name), set()).add(name)
    assert {f"{PACKAGE}.client.session", f"{PACKAGE}.client.sync", f"{PACKAGE}.client.dspy_integration"} <= by_layer[
        "client"
    ]
    assert {f"{PACKAGE}.worker.server", f"{PACKAGE}.worker.__main__", f"{PACKAGE}.worker.module_service"} <= by_layer[
        "worker"
    ]
    assert {f"{PACKAGE}.contract", f"{PACKAGE}.errors", f"{PACKAGE}.values", f"{PACKAGE}.imports"} <= by_layer["base"]
    # The scan sees imports of every kind, relative and absolute, also inside functions.
    assert f"{PACKAGE}.worker.lm" in GRAPH[f"{PACKAGE}.worker.module_service"]
    assert f"{PACKAGE}.values" in GRAPH[f"{PACKAGE}.worker.lm"]  # imported inside a method
    assert f"{PACKAGE}.worker.server" in GRAPH[f"{PACKAGE}.worker.__main__"]


@pytest.mark.parametrize("name", sorted(set(GRAPH) - {PACKAGE}))
def test_no_module_imports_across_the_layers(name: str) -> None:
    own = layer(name)
    crossing = sorted(t for t in GRAPH[name] if layer(t) not in ("base", own))
    assert not crossing, f"{name} ({own}) imports {crossing}"


def test_the_top_level_exports_load_the_client_and_the_base_only() -> None:
    # The package's lazy exports are the one place at the top that names a subpackage.
    assert all(layer(t) in ("base", "client") for t in GRAPH[PACKAGE]), GRAPH[PACKAGE]
    import dspex_bridge

    exported = {f"{PACKAGE}.{module}" for module in dspex_bridge._EXPORTS.values()}
    assert {layer(m) for m in exported} == {"base", "client"}
    assert exported <= set(GRAPH)


def test_the_modules_import_each_other_without_cycles() -> None:
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            cycle = path[path.index(name) :] + [name]
            raise AssertionError(f"import cycle: {' -> '.join(cycle)}")
        if name in done:
            return
        for target in GRAPH.get(name, ()):
            visit(target, [*path, name])
        done.add(name)

    for name in GRAPH:
        visit(name, [])


def loaded_after(*modules: str) -> list[str]:
    """The modules a fresh interpreter holds after importing `modules` (that are not part of
    the standard library, unless they are the package's)."""
    code = (
        "import importlib, json, sys\n"
        f"for m in {list(modules)!r}: importlib.import_module(m)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    names: list[str] = json.loads(done.stdout)
    return names


def test_importing_the_package_loads_the_standard_library_only() -> None:
    # What the interpreter loads anyway (the environment's .pth hooks) is not the package's doing.
    before = set(loaded_after())
    expected = {
        PACKAGE: [PACKAGE],
        f"{PACKAGE}.client": [PACKAGE, f"{PACKAGE}.client"],
        f"{PACKAGE}.worker": [PACKAGE, f"{PACKAGE}.worker"],
    }
    for part, modules in expected.items():
        new = sorted(set(loaded_after(part)) - before)
        assert [n for n in new if n.split(".")[0] not in sys.stdlib_module_names] == modules, part


def test_the_worker_never_loads_the_client_nor_the_client_the_worker() -> None:
    parts = {sub: sorted(n for n in GRAPH if layer(n) == sub) for sub in SUBPACKAGES}
    worker = loaded_after(*parts["worker"])
    assert f"{PACKAGE}.worker.module_service" in worker
    assert [n for n in worker if layer(n) == "client" and n.startswith(PACKAGE)] == []
    client = loaded_after(*parts["client"])
    assert f"{PACKAGE}.client.dspy_integration" in client
    assert [n for n in client if layer(n) == "worker" and n.startswith(PACKAGE)] == []
