"""``SyncSessionContext`` is ``SessionContext`` without ``await``: every public member of the
async class has its twin in the facade, with the same parameters, and the members an earlier,
hand-copied facade lacked (``cleanup``, ``initialize``, ``cached``, ``cached_value``, ``token``,
``ttl_seconds``, ``get_variables(min_versions=...)``) work."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest
from rust_server import RustServer

from dspex_bridge import (
    DspexError,
    MissingEnvironmentError,
    NotAuthorizedError,
    SessionContext,
    SyncSessionContext,
    UsageError,
    connect,
)

#: Members written in the facade rather than derived (construction, closing the thread, a
#: blocking iterator instead of an async one): same parameters, their own documentation.
_WRITTEN_HERE = {"close", "from_env", "initialize", "watch_variables"}


def _public_members_of_a_live_async_context() -> set[str]:
    async def members() -> set[str]:
        ctx = SessionContext("s", connect("127.0.0.1:1"), "t")
        try:
            return {n for n in dir(ctx) if not n.startswith("_")}
        finally:
            await ctx.close()

    return asyncio.run(members())


def _parameters(member: Any) -> list[tuple[str, Any, Any, Any]]:
    return [
        (p.name, p.kind, p.default, p.annotation)
        for p in inspect.signature(member).parameters.values()
    ]


def test_every_public_member_of_the_async_context_has_a_sync_twin() -> None:
    async_members = _public_members_of_a_live_async_context()
    sync_members = {n for n in dir(SyncSessionContext) if not n.startswith("_")}
    assert async_members - sync_members == set()
    for name in sorted(async_members):
        member = inspect.getattr_static(SessionContext, name, None)
        if member is None or isinstance(member, property):
            continue  # an attribute or property: presence is the contract
        async_callable = getattr(SessionContext, name)
        sync_callable = getattr(SyncSessionContext, name)
        async_parameters = _parameters(async_callable)
        if not isinstance(member, (classmethod, staticmethod)):
            async_parameters = async_parameters[1:]  # self
        sync_parameters = _parameters(sync_callable)
        if sync_parameters and sync_parameters[0][0] == "self":
            sync_parameters = sync_parameters[1:]
        assert sync_parameters == async_parameters, name
        if name not in _WRITTEN_HERE:
            assert inspect.getdoc(sync_callable) == inspect.getdoc(async_callable), name


def test_the_members_a_copied_facade_lacked(server: RustServer) -> None:
    with SyncSessionContext.initialize(server.address, ttl_seconds=30, cache_ttl=3600) as ctx:
        assert ctx.ttl_seconds == 30
        assert len(ctx.token) == 64
        ctx.register_variable("n", "integer", 1)
        assert ctx.get_variable("n") == 1
        assert ctx.cached_value("n") == (True, 1)
        record = ctx.cached("n")
        assert record is not None and record.value == 1
        # Versions the caller knows are read from the cache, without a call.
        hits = ctx.stats.hits
        found = ctx.get_variables(["n"], min_versions={"n": record.version})
        assert found.found == {"n": 1} and ctx.stats.hits == hits + 1
        ctx.invalidate("n")
        assert ctx.cached("n") is None
        assert ctx.cleanup() == 1
        with pytest.raises(NotAuthorizedError):
            ctx.get_variable("n", bypass_cache=True)


def test_a_closed_facade_and_a_missing_environment_are_dspex_errors(server: RustServer) -> None:
    ctx = SyncSessionContext.from_env(server.env)
    ctx.close()
    with pytest.raises(UsageError, match="closed") as e:
        ctx.ping()
    assert isinstance(e.value, (DspexError, RuntimeError))
    with pytest.raises(MissingEnvironmentError, match="DSPEX_SESSION_ID") as missing:
        SyncSessionContext.from_env({"DSPEX_STORE_ADDR": server.address})
    assert isinstance(missing.value, KeyError)
