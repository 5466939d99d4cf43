"""The Rust test server (``tests/src/bin/bridge_server.rs``) for the pytest suite and the
benchmarks: a real bridge server holding one bridged Rust context with the fixture variables.

The binary is ``$DSPEX_BRIDGE_SERVER`` if set, else built (or found up to date) with
``cargo build -p dspex-tests --bin bridge_server``, which honours ``CARGO_TARGET_DIR``.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def server_binary(*, release: bool = False) -> Path:
    """The path of the ``bridge_server`` binary, built if needed (optimized with
    ``release``)."""
    explicit = os.environ.get("DSPEX_BRIDGE_SERVER")
    if explicit:
        return Path(explicit)
    build = subprocess.run(
        [
            "cargo",
            "build",
            "--quiet",
            "--locked",
            *(["--release"] if release else []),
            "-p",
            "dspex-tests",
            "--bin",
            "bridge_server",
            "--message-format=json",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if build.returncode != 0:
        raise RuntimeError(f"cannot build the Rust test server:\n{build.stderr}")
    for line in build.stdout.splitlines():
        message = json.loads(line)
        if (
            message.get("reason") == "compiler-artifact"
            and message.get("target", {}).get("name") == "bridge_server"
            and message.get("executable")
        ):
            return Path(message["executable"])
    raise RuntimeError("cargo built no bridge_server executable")


@dataclass
class RustServer:
    """A running ``bridge_server``: the address of its store, and the id and token of the
    session of its Rust context (which holds the fixture variables)."""

    process: subprocess.Popen[str]
    address: str
    session_id: str
    token: str

    _lock = threading.Lock()

    @classmethod
    def start(cls, *, release: bool = False) -> RustServer:
        """Starts the server and reads its address and session."""
        process = subprocess.Popen(
            [str(server_binary(release=release))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            process.kill()
            process.wait()
            raise RuntimeError("the Rust test server exited before serving")
        info = json.loads(line)
        return cls(process, info["address"], info["session_id"], info["token"])

    @property
    def env(self) -> dict[str, str]:
        """The environment ``SessionContext.from_env`` reads for the Rust context's session."""
        return {
            "DSPEX_STORE_ADDR": self.address,
            "DSPEX_SESSION_ID": self.session_id,
            "DSPEX_SESSION_TOKEN": self.token,
        }

    def _command(self, line: str) -> str:
        assert self.process.stdin is not None and self.process.stdout is not None
        with self._lock:
            self.process.stdin.write(line + "\n")
            self.process.stdin.flush()
            return self.process.stdout.readline().strip()

    def rust_set(self, name: str, value: Any) -> int:
        """Writes ``value`` from Rust (through the context, not gRPC); returns the version."""
        reply = self._command(f"set {name} {json.dumps(value)}")
        if not reply.startswith("ok "):
            raise RuntimeError(reply)
        return int(reply[3:])

    def rust_register_readonly(self, name: str, value: Any) -> None:
        """Registers a read-only variable from Rust, typed after ``value``."""
        reply = self._command(f"readonly {name} {json.dumps(value)}")
        if not reply.startswith("ok "):
            raise RuntimeError(reply)

    def rust_get(self, name: str) -> tuple[Any, int, str]:
        """The value, version and source of ``name`` as Rust sees it."""
        reply = self._command(f"get {name}")
        if not reply.startswith("value "):
            raise RuntimeError(reply)
        value, version, source = reply[6:].rsplit(" ", 2)
        return json.loads(value), int(version), source

    def stop(self) -> None:
        """Ends the server (closing its stdin) and reaps it."""
        if self.process.poll() is None:
            try:
                assert self.process.stdin is not None
                self.process.stdin.close()
                self.process.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()
