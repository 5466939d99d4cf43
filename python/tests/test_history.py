"""History, rollback and read-only variables from Python, against a real Rust bridge server."""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest
from rust_server import RustServer

from dspex_bridge import (
    HistoryEntry,
    InvalidValueError,
    NotAuthorizedError,
    ReadOnlyError,
    SessionContext,
    SyncSessionContext,
    VariableNotFoundError,
    VersionNotFoundError,
    connect,
)

#: The server's ``MAX_HISTORY_ENTRIES_PER_REQUEST``.
MAX_HISTORY_ENTRIES_PER_REQUEST = 1000


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


async def test_get_history_is_newest_first_and_typed(session: SessionContext) -> None:
    await session.register_variable(
        "t", "float", 0.1, constraints={"min": 0, "max": 1}, metadata={"owner": "py"}
    )
    await session.set_variable("t", 0.2)
    await session.set_variable("t", 0.3, metadata={"by": "test"})
    history = await session.get_history("t")
    assert all(isinstance(e, HistoryEntry) for e in history)
    assert [(e.version, e.value) for e in history] == [(3, 0.3), (2, 0.2), (1, 0.1)]
    assert [e.source for e in history] == ["python"] * 3
    assert history[0].metadata == {"by": "test"}
    assert history[1].metadata == {}
    assert history[2].metadata == {"owner": "py"}
    assert all(isinstance(e.at, datetime) for e in history)
    assert history[0].at >= history[2].at
    assert [e.version for e in await session.get_history("t", 2)] == [3, 2]
    assert await session.get_history("t", 0) == []
    assert len(await session.get_history("t", MAX_HISTORY_ENTRIES_PER_REQUEST)) == 3


async def test_history_requests_out_of_bounds_are_value_errors(session: SessionContext) -> None:
    await session.register_variable("n", "integer", 1)
    with pytest.raises(InvalidValueError, match="MAX_HISTORY_ENTRIES_PER_REQUEST") as e:
        await session.get_history("n", MAX_HISTORY_ENTRIES_PER_REQUEST + 1)
    assert e.value.kind == "limit"
    for bad in (-1, 2**64, True, 1.5):
        with pytest.raises(ValueError, match="limit"):
            await session.get_history("n", bad)  # type: ignore[arg-type]
    with pytest.raises(VariableNotFoundError, match="`nope` not found"):
        await session.get_history("nope")


async def test_rollback_writes_an_old_value_as_a_new_version(session: SessionContext) -> None:
    await session.register_variable("t", "float", 0.1)
    await session.set_variable("t", 0.9)
    # The initial value arrives once the stream is subscribed: the rollback cannot be missed.
    updates = session.watch_variables(["t"], include_initial=True)
    assert (await anext(updates)).kind == "initial"
    assert await session.rollback("t", 1) == 3
    update = await anext(updates)
    assert (update.kind, update.old_value, update.new_value) == ("updated", 0.9, 0.1)
    assert (update.version, update.source) == (3, "python")
    await updates.aclose()
    record = await session.get_record("t", bypass_cache=True)
    assert (record.value, record.version) == (0.1, 3)
    assert record.metadata["rolled_back_from"] == "1"
    assert (await session.get_history("t", 1))[0].metadata == {"rolled_back_from": "1"}


async def test_rollback_to_a_version_not_kept_names_the_kept_ones(session: SessionContext) -> None:
    await session.register_variable("n", "integer", 0)
    for i in range(1, 101):
        await session.set_variable("n", i)
    # The default history keeps the last 100 writes: version 1 is gone.
    for version in (1, 0, 102, 2**64 - 1):
        with pytest.raises(VersionNotFoundError) as e:
            await session.rollback("n", version)
        assert isinstance(e.value, KeyError)
        assert str(e.value) == (
            f"variable `n` has no version {version} in its history, which keeps versions 2 to 101"
        )
        assert e.value.kind == "version_not_found"
    assert (await session.get_record("n", bypass_cache=True)).version == 101
    with pytest.raises(ValueError, match="version"):
        await session.rollback("n", -1)
    with pytest.raises(VariableNotFoundError):
        await session.rollback("nope", 1)
    assert await session.rollback("n", 2) == 102
    assert await session.get_variable("n", bypass_cache=True) == 1


async def test_python_writes_to_read_only_variables_are_refused(
    server: RustServer, rust_session: SessionContext
) -> None:
    name = unique("locked")
    server.rust_register_readonly(name, 0.5)
    server.rust_set(name, 0.75)
    other = unique("open")
    await rust_session.register_variable(other, "float", 0.5)
    record = await rust_session.get_record(name, bypass_cache=True)
    assert record.readonly
    assert not (await rust_session.get_record(other, bypass_cache=True)).readonly
    listed = {v.name: v.readonly for v in await rust_session.list_variables(f"{name}*")}
    assert listed == {name: True}
    message = f"variable `{name}` is read-only: only Rust code may write it"

    writes = {
        "set": lambda: rust_session.set_variable(name, 0.25),
        "batch": lambda: rust_session.set_variables({other: 0.25, name: 0.25}),
        "update": lambda: rust_session.update_variable(name, lambda v: v + 0.1),
        "rollback": lambda: rust_session.rollback(name, 1),
        "delete": lambda: rust_session.delete_variable(name),
    }
    for what, write in writes.items():
        with pytest.raises(ReadOnlyError) as e:
            await write()
        assert isinstance(e.value, PermissionError), what
        assert isinstance(e.value, NotAuthorizedError), what
        assert str(e.value) == message, what
        assert e.value.kind == "read_only", what
    # Nothing changed: not the read-only variable, not the other one of the batch.
    assert server.rust_get(name) == (0.75, 2, "rust")
    assert server.rust_get(other) == (0.5, 1, "python")
    assert len(await rust_session.get_history(name)) == 2
    # Reads work; Rust still writes it.
    assert await rust_session.get_variable(name, bypass_cache=True) == 0.75
    server.rust_set(name, 1.0)
    assert server.rust_get(name) == (1.0, 3, "rust")


async def test_another_sessions_token_reaches_neither_rpc(
    server: RustServer, session: SessionContext
) -> None:
    crossed = SessionContext(
        server.session_id, connect(server.address), session.token, close_channel=True
    )
    try:
        with pytest.raises(NotAuthorizedError, match="does not grant access") as e:
            await crossed.get_history("max_tokens")
        assert e.value.kind == "permission_denied"
        with pytest.raises(PermissionError, match="does not grant access"):
            await crossed.rollback("max_tokens", 1)
    finally:
        await crossed.close()


def test_the_sync_facade_has_history_and_rollback(server: RustServer) -> None:
    with SyncSessionContext.from_env(server.env) as ctx:
        name = unique("sync_history")
        ctx.register_variable(name, "string", "a")
        ctx.set_variable(name, "b")
        assert [e.value for e in ctx.get_history(name)] == ["b", "a"]
        assert ctx.rollback(name, 1) == 3
        assert ctx.get_variable(name, bypass_cache=True) == "a"
        with pytest.raises(VersionNotFoundError):
            ctx.rollback(name, 9)
        ctx.delete_variable(name)
