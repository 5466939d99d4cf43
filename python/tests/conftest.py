"""Fixtures of the ``dspex_bridge`` test suite: one real Rust bridge server per test run
(``tests/src/bin/bridge_server.rs``), and a fresh session per test."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from rust_server import RustServer  # noqa: E402

from dspex_bridge import SessionContext, connect  # noqa: E402


@pytest.fixture(scope="session")
def server() -> Iterator[RustServer]:
    """The Rust test server, shared by the whole run."""
    server = RustServer.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def session(server: RustServer) -> AsyncIterator[SessionContext]:
    """A fresh, empty session created over gRPC, cleaned up after the test."""
    ctx = await SessionContext.initialize(server.address, ttl_seconds=60)
    try:
        yield ctx
    finally:
        try:
            await ctx.cleanup()
        finally:
            await ctx.close()


@pytest.fixture
async def rust_session(server: RustServer) -> AsyncIterator[SessionContext]:
    """The session of the server's Rust context (fixture variables), with a long cache TTL so
    that only invalidations refresh cached reads."""
    ctx = SessionContext(
        server.session_id,
        connect(server.address),
        server.token,
        cache_ttl=3600,
        close_channel=True,
    )
    try:
        yield ctx
    finally:
        await ctx.close()
