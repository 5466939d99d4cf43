"""``SessionContext`` against a real Rust bridge server."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from rust_server import RustServer

from dspex_bridge import (
    AlreadyExistsError,
    BridgeError,
    ConflictError,
    SessionContext,
    SyncSessionContext,
    VariableNotFoundError,
    connect,
)


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


async def test_ping_and_from_env(server: RustServer) -> None:
    async with SessionContext.from_env(server.env) as ctx:
        assert await ctx.ping() == "0.1.0"
        assert ctx.session_id == server.session_id
        assert await ctx.get_variable("max_tokens", bypass_cache=True) >= 1


def test_from_env_names_what_is_missing() -> None:
    with pytest.raises(KeyError, match="DSPEX_SESSION_TOKEN"):
        SessionContext.from_env({"DSPEX_STORE_ADDR": "127.0.0.1:1", "DSPEX_SESSION_ID": "s"})


async def test_values_map_naturally(session: SessionContext) -> None:
    cases = [
        ("f", "float", 0.5, float),
        ("i", "integer", 3, int),
        ("s", "string", "é", str),
        ("b", "boolean", True, bool),
        ("c", "choice", "a", str),
        ("m", "module", "ChainOfThought", str),
        ("e", "embedding", [0.5, -1.0, 2.0], list),
    ]
    for name, var_type, value, py_type in cases:
        constraints = {"choices": ["a", "b"]} if var_type == "choice" else None
        record = await session.register_variable(name, var_type, value, constraints=constraints)
        assert record.type == var_type
        assert record.source == "python"
        got = await session.get_variable(name)
        assert got == value and type(got) is py_type, (name, got)
    # An int for a float variable is widened, as in Rust.
    await session.set_variable("f", 2)
    got = await session.get_variable("f", bypass_cache=True)
    assert got == 2.0 and type(got) is float


async def test_a_bool_is_never_an_integer(session: SessionContext) -> None:
    await session.register_variable("n", "integer", 1)
    await session.register_variable("b", "boolean", False)
    with pytest.raises(TypeError, match="true is a boolean, expected an integer"):
        await session.set_variable("n", True)
    with pytest.raises(TypeError, match="1 is an integer, expected a boolean"):
        await session.set_variable("b", 1)
    assert await session.get_variable("n", bypass_cache=True) == 1
    # Not even as the initial value of a registration.
    with pytest.raises(TypeError):
        await session.register_variable("n2", "integer", False)


async def test_type_errors_and_constraint_violations_change_nothing(
    session: SessionContext,
) -> None:
    await session.register_variable(
        "temperature", "float", 0.7, constraints={"min": 0.0, "max": 2.0}
    )
    before = await session.get_record("temperature", bypass_cache=True)
    with pytest.raises(TypeError, match='temperature: "hot" is a string, expected a float') as e:
        await session.set_variable("temperature", "hot")
    assert e.value.kind == "type"  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="temperature: 2.5 is above max 2.0") as e:
        await session.set_variable("temperature", 2.5, metadata={"k": "v"})
    assert e.value.kind == "constraint"  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="not finite"):
        await session.set_variable("temperature", float("nan"))
    with pytest.raises(TypeError, match="not a variable value"):
        await session.set_variable("temperature", {"a": 1})
    with pytest.raises(ValueError, match="does not fit in a 64-bit integer"):
        await session.set_variable("temperature", 2**70)
    assert await session.get_record("temperature", bypass_cache=True) == before


async def test_missing_variables_are_key_errors_and_reported_by_get_variables(
    session: SessionContext,
) -> None:
    await session.register_variable("a", "integer", 1)
    with pytest.raises(KeyError) as e:
        await session.get_variable("nope")
    assert isinstance(e.value, VariableNotFoundError)
    assert str(e.value) == "variable `nope` not found"
    with pytest.raises(KeyError):
        await session.set_variable("nope", 1)
    with pytest.raises(KeyError):
        await session.delete_variable("nope")
    result = await session.get_variables(["nope", "a", "gone"])
    assert result.found == {"a": 1}
    assert result.missing == ["nope", "gone"]
    assert result.records["a"].version == 1


async def test_set_variables_is_atomic(session: SessionContext) -> None:
    await session.register_variable("a", "integer", 0, constraints={"min": 0, "max": 10})
    await session.register_variable("b", "integer", 0, constraints={"min": 0, "max": 10})
    with pytest.raises(ValueError, match="b: 50 is above max 10"):
        await session.set_variables({"a": 5, "b": 50})
    assert (await session.get_variables(["a", "b"])).found == {"a": 0, "b": 0}
    assert await session.set_variables({"a": 5, "b": 6}) == {"a": 2, "b": 2}
    assert (await session.get_variables(["a", "b"])).found == {"a": 5, "b": 6}


async def test_compare_and_set_and_metadata(session: SessionContext) -> None:
    await session.register_variable("n", "integer", 0, metadata={"a": "1"})
    assert await session.set_variable("n", 1, expected_version=1, metadata={"b": "2"}) == 2
    with pytest.raises(ConflictError) as e:
        await session.set_variable("n", 2, expected_version=1)
    assert (e.value.expected_version, e.value.actual_version) == (1, 2)
    record = await session.get_record("n", bypass_cache=True)
    assert (record.value, record.version) == (1, 2)
    assert record.metadata == {"a": "1", "b": "2"}


async def test_update_variable_loses_no_concurrent_increment(server: RustServer) -> None:
    main = await SessionContext.initialize(server.address)
    try:
        await main.register_variable("n", "integer", 0)
        others = [
            SessionContext(
                main.session_id, connect(server.address), main.token, close_channel=True
            )
            for _ in range(3)
        ]

        async def bump(ctx: SessionContext) -> None:
            for _ in range(40):
                await ctx.update_variable("n", lambda v: v + 1)

        await asyncio.gather(*(bump(c) for c in [main, *others]))
        record = await main.get_record("n", bypass_cache=True)
        assert (record.value, record.version) == (160, 161)
        for ctx in others:
            await ctx.close()
    finally:
        await main.cleanup()
        await main.close()


async def test_register_list_and_delete(session: SessionContext) -> None:
    for name in ["llm.top_p", "zeta", "llm.temperature"]:
        await session.register_variable(
            name, "float", 0.5, description="d", constraints={"min": 0, "max": 1}
        )
    records = await session.list_variables()
    assert [r.name for r in records] == ["llm.temperature", "llm.top_p", "zeta"]
    assert records[0].constraints == {"min": 0, "max": 1}
    assert records[0].description == "d"
    assert [r.name for r in await session.list_variables("llm.*")] == [
        "llm.temperature",
        "llm.top_p",
    ]
    with pytest.raises(ValueError):
        await session.list_variables("[")
    with pytest.raises(AlreadyExistsError, match="variable `zeta` already exists"):
        await session.register_variable("zeta", "integer", 1)
    with pytest.raises(ValueError, match="a choice variable needs `choices`"):
        await session.register_variable("c", "choice", "a")
    with pytest.raises(ValueError, match="unknown variable type 'double'"):
        await session.register_variable("d", "double", 1.0)
    gone = await session.delete_variable("zeta")
    assert gone.value == 0.5
    assert [r.name for r in await session.list_variables()] == ["llm.temperature", "llm.top_p"]


async def test_oversized_values_are_refused(session: SessionContext) -> None:
    await session.register_variable("s", "string", "x")
    with pytest.raises(ValueError, match="MAX_STRING_BYTES"):
        await session.set_variable("s", "x" * (64 * 1024 + 1))
    with pytest.raises(ValueError, match="MAX_NAMES_PER_REQUEST"):
        await session.get_variables(["s"] * 1025)
    assert await session.get_variable("s") == "x"


async def test_watch_variables_is_an_async_iterator(session: SessionContext) -> None:
    await session.register_variable("n", "integer", 0)
    updates = session.watch_variables(["n"], include_initial=True)
    first = await anext(updates)
    assert (first.kind, first.name, first.new_value, first.version) == ("initial", "n", 0, 1)
    await session.set_variable("n", 1)
    await session.set_variable("n", 2)
    await session.delete_variable("n")
    got = [await anext(updates) for _ in range(3)]
    assert [(u.kind, u.old_value, u.new_value, u.source) for u in got] == [
        ("updated", 0, 1, "python"),
        ("updated", 1, 2, "python"),
        ("deleted", None, None, "python"),
    ]
    await updates.aclose()


async def test_a_rust_write_invalidates_the_cache(
    server: RustServer, rust_session: SessionContext
) -> None:
    name = unique("cached")
    await rust_session.register_variable(name, "integer", 0)
    assert await rust_session.get_variable(name) == 0
    assert await rust_session.get_variable(name) == 0
    hits = rust_session.stats.hits
    assert hits >= 1
    server.rust_set(name, 42)
    # The TTL is an hour: only the watch stream's invalidation can bring the new value.
    for _ in range(3000):
        if await rust_session.get_variable(name) == 42:
            break
        await asyncio.sleep(0.01)
    assert await rust_session.get_variable(name) == 42
    assert rust_session.stats.invalidations >= 1
    assert server.rust_get(name) == (42, 2, "rust")


async def test_writes_of_other_python_clients_invalidate_the_cache(server: RustServer) -> None:
    a = await SessionContext.initialize(server.address, cache_ttl=3600)
    b = SessionContext(a.session_id, connect(server.address), a.token, close_channel=True)
    try:
        await a.register_variable("x", "string", "one")
        assert await a.get_variable("x") == "one"
        await b.set_variable("x", "two")
        for _ in range(3000):
            if await a.get_variable("x") == "two":
                break
            await asyncio.sleep(0.01)
        assert await a.get_variable("x") == "two"
        # bypass_cache always asks the server.
        misses = a.stats.misses
        await a.get_variable("x", bypass_cache=True)
        assert a.stats.misses == misses + 1
    finally:
        await b.close()
        await a.cleanup()
        await a.close()


async def test_python_writes_are_seen_by_rust_as_python_writes(
    server: RustServer, rust_session: SessionContext
) -> None:
    name = unique("from_py")
    await rust_session.register_variable(name, "float", 0.0)
    await rust_session.set_variable(name, 0.25)
    assert server.rust_get(name) == (0.25, 2, "python")


async def test_bad_tokens_and_other_sessions_are_permission_errors(
    server: RustServer, session: SessionContext
) -> None:
    forged = SessionContext(
        server.session_id, connect(server.address), "0" * 64, close_channel=True
    )
    crossed = SessionContext(
        server.session_id, connect(server.address), session.token, close_channel=True
    )
    try:
        with pytest.raises(PermissionError, match="invalid or expired session token"):
            await forged.get_variable("max_tokens")
        with pytest.raises(PermissionError, match="does not grant access"):
            await crossed.set_variable("max_tokens", 1)
        with pytest.raises(PermissionError):
            await anext(crossed.watch_variables())
    finally:
        await forged.close()
        await crossed.close()


async def test_remote_sessions_heartbeat_and_cleanup(server: RustServer) -> None:
    ctx = await SessionContext.initialize(server.address, ttl_seconds=30)
    assert ctx.ttl_seconds == 30
    assert await ctx.heartbeat() is not None
    await ctx.register_variable("v", "boolean", True)
    assert await ctx.cleanup() == 1
    with pytest.raises(PermissionError):
        await ctx.get_variable("v")
    await ctx.close()
    # The session of a Rust context never expires, and only Rust ends it.
    async with SessionContext.from_env(server.env) as rust:
        assert await rust.heartbeat() is None
        with pytest.raises(BridgeError, match="belongs to a Rust context"):
            await rust.cleanup()


def test_the_sync_facade(server: RustServer) -> None:
    with SyncSessionContext.from_env(server.env, cache_ttl=3600) as ctx:
        assert ctx.ping() == "0.1.0"
        name = unique("sync")
        ctx.register_variable(name, "integer", 1, constraints={"min": 0})
        assert ctx.get_variable(name) == 1
        hits = ctx.stats.hits
        assert ctx.get_variable(name) == 1
        assert ctx.stats.hits == hits + 1
        assert ctx.set_variable(name, 2) == 2
        with pytest.raises(ValueError):
            ctx.set_variable(name, -1)
        with pytest.raises(TypeError):
            ctx.set_variable(name, "x")
        with pytest.raises(KeyError):
            ctx.get_variable("nope")
        with pytest.raises(ConflictError):
            ctx.set_variable(name, 3, expected_version=1)
        assert ctx.update_variable(name, lambda v: v * 10) == (20, 3)
        assert ctx.get_variables([name, "nope"]).missing == ["nope"]
        updates = ctx.watch_variables([name], include_initial=True)
        assert next(updates).new_value == 20
        server.rust_set(name, 7)
        update = next(updates)
        assert (update.kind, update.new_value, update.source) == ("updated", 7, "rust")
        updates.close()
        # The TTL is an hour: only the watch stream's invalidation can bring the new value.
        for _ in range(3000):
            if ctx.get_variable(name) == 7:
                break
            time.sleep(0.01)
        assert ctx.get_variable(name) == 7
        assert ctx.delete_variable(name).value == 7
