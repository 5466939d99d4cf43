"""The committed gRPC stubs never drift from ``proto/``: a fresh run of
``python/generate_stubs.py`` into a temporary directory must give the very same files."""

from __future__ import annotations

import sys
from pathlib import Path

PYTHON_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PYTHON_DIR))

import generate_stubs  # noqa: E402


def test_the_committed_stubs_are_what_the_proto_file_generates(tmp_path: Path) -> None:
    fresh = generate_stubs.generate(tmp_path)
    committed = sorted(
        p.relative_to(PYTHON_DIR)
        for p in (PYTHON_DIR / generate_stubs.PACKAGE_PATH).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    )
    assert fresh == committed, "files differ; run python/generate_stubs.py"
    stale = [
        str(path)
        for path in fresh
        if (tmp_path / path).read_bytes() != (PYTHON_DIR / path).read_bytes()
    ]
    assert not stale, f"{stale} differ from proto/; run python/generate_stubs.py"


def test_the_stubs_describe_every_service_of_the_proto_file() -> None:
    from dspex_bridge._proto.dspex.v1 import bridge_pb2

    services = set(bridge_pb2.DESCRIPTOR.services_by_name)
    assert services == {"SessionService", "ModuleService", "CallbackService"}
