"""The generated gRPC stubs never drift from ``proto/``: they are compared with a fresh
compilation of the proto file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from google.protobuf import descriptor_pb2

from dspex_bridge._proto.dspex.v1 import bridge_pb2

ROOT = Path(__file__).resolve().parents[2]


def test_the_installed_stubs_match_the_proto_file(tmp_path: Path) -> None:
    out = tmp_path / "bridge.desc"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-Idspex_bridge/_proto={ROOT / 'proto'}",
            f"--descriptor_set_out={out}",
            str(ROOT / "proto/dspex/v1/bridge.proto"),
        ],
        check=True,
    )
    fresh = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file[0]
    installed = descriptor_pb2.FileDescriptorProto()
    bridge_pb2.DESCRIPTOR.CopyToProto(installed)
    # `--descriptor_set_out` adds json names that the embedded descriptor leaves implicit.
    for message in fresh.message_type:
        _clear_json_names(message)
    assert fresh.name == installed.name
    assert fresh == installed, (
        "python/dspex_bridge/_proto is stale: run scripts/python-env to regenerate it from proto/"
    )


def _clear_json_names(message: descriptor_pb2.DescriptorProto) -> None:
    for field in message.field:
        field.ClearField("json_name")
    for nested in message.nested_type:
        _clear_json_names(nested)
