"""``pip install ./python`` into a fresh virtual environment gives a working package: the
tracked files of ``python/`` (what a fresh clone has) install with their declared dependencies,
the package imports with its client and worker subpackages, its contract, gRPC stubs and type
information, and the ``dspex-worker`` command (and ``python -m dspex_bridge.worker``) runs.

The dependencies are resolved, offline, against the pinned environment of the interpreter
running the tests (``requirements.lock``), which the fresh environment sees through a ``.pth``
file: pip checks every declared floor against it (``--no-index``: a floor the pinned versions
do not meet fails the install) and installs only ``dspex-bridge`` itself, fast, built by the
pinned setuptools.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

PYTHON_DIR = Path(__file__).resolve().parents[1]

#: Build artefacts a working copy may hold that a fresh clone does not.
_UNTRACKED = shutil.ignore_patterns("*.egg-info", "build", "__pycache__", ".pytest_cache")


def _fresh_copy(dest: Path) -> Path:
    """The files of ``python/`` a fresh clone has: those git tracks (or, outside a git
    checkout, everything but build artefacts)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "."],
        cwd=PYTHON_DIR,
        capture_output=True,
    )
    if listed.returncode != 0:
        shutil.copytree(PYTHON_DIR, dest, ignore=_UNTRACKED)
        return dest
    for name in filter(None, listed.stdout.decode().split("\0")):
        source = PYTHON_DIR / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


def _run(*command: str | Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(c) for c in command], capture_output=True, text=True, env=env, timeout=600
    )
    assert done.returncode == 0, (
        f"{' '.join(map(str, command))} exited with {done.returncode}\n"
        f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    )
    return done.stdout


def test_a_fresh_venv_installs_a_working_package_and_the_worker_command(tmp_path: Path) -> None:
    source = _fresh_copy(tmp_path / "python")
    venv = tmp_path / "venv"
    # Without its own pip and setuptools (an old one on Python 3.11): the pinned ones build.
    _run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    site = Path(_run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip())
    pinned = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "dspex_pinned_environment.pth").write_text("\n".join(sorted(pinned)) + "\n")

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON"))}
    _run(
        python, "-m", "pip", "install", "--disable-pip-version-check", "--no-index",
        "--no-build-isolation", str(source),
        env=env,
    )  # fmt: skip

    # The installed copy is the one imported (not this checkout), with both subpackages, the
    # contract, its stubs, types and the dependencies it declares.
    check = (
        "import importlib.metadata as md, pathlib, dspex_bridge;"
        "from dspex_bridge import SessionContext, SyncSessionContext, DspexError;"
        "from dspex_bridge._proto.dspex.v1 import bridge_pb2, bridge_pb2_grpc;"
        "from dspex_bridge.client.dspy_integration import VariableAwarePredict;"
        "from dspex_bridge.worker.module_service import ModuleServicer;"
        "from dspex_bridge.contract import MODULES;"
        "root = pathlib.Path(dspex_bridge.__file__).parent;"
        "print(root);"
        "print((root / 'py.typed').is_file(), (root / '_proto/dspex/v1/bridge_pb2.pyi').is_file(),"
        " (root / 'contract.json').is_file(), 'ReAct' in MODULES);"
        "print(sorted(r for r in md.requires('dspex-bridge') if 'extra ==' not in r))"
    )
    root, typed, requires = _run(python, "-c", check, env=env).splitlines()
    assert Path(root).is_relative_to(venv), root
    assert typed == "True True True True"
    assert requires == "['dspy>=3.4.1', 'grpcio>=1.85.0', 'protobuf>=7.35.1']"
    # Nothing of the development tree came along.
    assert not (Path(root).parent / "generate_stubs.py").exists()
    assert not (Path(root).parent / "tests").exists()

    # The worker's command is installed and runs (it needs its environment to serve).
    help_text = _run(venv / "bin" / "dspex-worker", "--help", env=env)
    assert "usage: dspex-worker" in help_text
    assert "DSPEX_STORE_ADDR" in help_text and "WorkerConfig" in help_text
    # The way the Rust supervisor starts it runs the same command.
    assert _run(python, "-m", "dspex_bridge.worker", "--help", env=env) == help_text
    missing = subprocess.run(
        [str(venv / "bin" / "dspex-worker")],
        capture_output=True,
        text=True,
        env={**env, "LITELLM_LOCAL_MODEL_COST_MAP": "True"},
        timeout=600,
    )
    assert missing.returncode == 2, missing.stderr
    assert "DSPEX_SESSION_ID" in missing.stderr
