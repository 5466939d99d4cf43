"""Generates the gRPC stubs of ``dspex_bridge`` (``dspex_bridge/_proto``) from ``proto/``.

The stubs are committed, so that ``pip install ./python`` needs neither ``proto/`` nor a
protobuf compiler; they are never edited by hand. ``tests/test_stubs.py`` runs this script
into a temporary directory and fails when its output differs from the committed files: after a
change to ``proto/``, run it again::

    .venv/bin/python python/generate_stubs.py

The output depends on the version of ``grpcio-tools`` (pinned in ``requirements.lock``), which
also sets the floors of ``grpcio`` and ``protobuf`` in ``pyproject.toml``: the stubs refuse to
load on an older runtime.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

#: The directory of this script (the Python project).
PYTHON_DIR = Path(__file__).resolve().parent
#: The repository's protobuf sources.
PROTO_DIR = PYTHON_DIR.parent / "proto"
#: The proto files that make up the wire contract.
PROTO_FILES = ("dspex/v1/bridge.proto",)
#: Where the stubs go, relative to the project: their imports resolve inside the package
#: (``dspex_bridge._proto.dspex.v1.bridge_pb2``).
PACKAGE_PATH = Path("dspex_bridge/_proto")


def generate(out: Path) -> list[Path]:
    """Writes the stubs under ``out / dspex_bridge/_proto`` (replacing what is there) and
    returns the files written, relative to ``out``."""
    target = out / PACKAGE_PATH
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    # The virtual include path puts the generated modules in the package.
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{PACKAGE_PATH.as_posix()}={PROTO_DIR}",
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            f"--pyi_out={out}",
            *(str(PROTO_DIR / name) for name in PROTO_FILES),
        ],
        check=True,
    )
    for directory in [target, *(p for p in target.rglob("*") if p.is_dir())]:
        (directory / "__init__.py").touch()
    return sorted(p.relative_to(out) for p in target.rglob("*") if p.is_file())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=PYTHON_DIR,
        help="the project directory to write dspex_bridge/_proto into (default: in place)",
    )
    args = parser.parse_args()
    for path in generate(args.out):
        print(path, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
