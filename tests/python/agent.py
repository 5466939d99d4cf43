"""A Python process the Rust end-to-end tests drive: it opens the session described by its
environment (DSPEX_STORE_ADDR, DSPEX_SESSION_ID, DSPEX_SESSION_TOKEN) with the real
``dspex_bridge.SessionContext`` and runs one JSON command per stdin line, answering one JSON
line on stdout: ``{"ok": ...}`` or ``{"error": "TypeError", "message": ..., "mro": [...]}``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from typing import Any

import dspex_bridge
from dspex_bridge import ConflictError, SessionContext, VariableUpdate


def record_json(r: dspex_bridge.Variable) -> dict[str, Any]:
    return {
        "id": r.id,
        "name": r.name,
        "type": r.type,
        "value": r.value,
        "value_type": type(r.value).__name__,
        "constraints": r.constraints,
        "description": r.description,
        "metadata": r.metadata,
        "version": r.version,
        "source": r.source,
    }


def update_json(u: VariableUpdate) -> dict[str, Any]:
    return {
        "kind": u.kind,
        "name": u.name,
        "old": u.old_value,
        "new": u.new_value,
        "version": u.version,
        "source": u.source,
        "missed": u.missed,
    }


class Agent:
    def __init__(self, ctx: SessionContext) -> None:
        self.ctx = ctx
        self.updates: asyncio.Queue[VariableUpdate] = asyncio.Queue()
        self.watch_task: asyncio.Task[None] | None = None

    async def op_get(self, name: str, bypass_cache: bool = False) -> Any:
        value = await self.ctx.get_variable(name, bypass_cache=bypass_cache)
        return {"value": value, "type": type(value).__name__}

    async def op_record(self, name: str) -> Any:
        return record_json(await self.ctx.get_record(name, bypass_cache=True))

    async def op_get_many(self, names: list[str]) -> Any:
        result = await self.ctx.get_variables(names)
        return {"found": list(result.found.items()), "missing": result.missing}

    async def op_set(self, name: str, value: Any, **kw: Any) -> Any:
        return await self.ctx.set_variable(name, value, **kw)

    async def op_set_many(self, values: dict[str, Any]) -> Any:
        return await self.ctx.set_variables(values)

    async def op_register(self, name: str, var_type: str, initial: Any, **kw: Any) -> Any:
        return record_json(await self.ctx.register_variable(name, var_type, initial, **kw))

    async def op_list(self, pattern: str | None = None) -> Any:
        return [r.name for r in await self.ctx.list_variables(pattern)]

    async def op_delete(self, name: str) -> Any:
        return record_json(await self.ctx.delete_variable(name))

    async def op_watch(self, names: list[str], include_initial: bool = False) -> Any:
        async def pump() -> None:
            async for u in self.ctx.watch_variables(names, include_initial=include_initial):
                await self.updates.put(u)

        self.watch_task = asyncio.create_task(pump())
        if include_initial:
            # The initial values arrive once the server has subscribed the stream: answering
            # only then means every later write reaches it.
            deadline = time.monotonic() + 30
            while self.updates.empty():
                if self.watch_task.done():
                    self.watch_task.result()
                if time.monotonic() > deadline:
                    raise TimeoutError("the watch stream never started")
                await asyncio.sleep(0.01)
        return True

    async def op_take(self, count: int, timeout: float = 30.0) -> Any:
        out = []
        for _ in range(count):
            u = await asyncio.wait_for(self.updates.get(), timeout)
            out.append(update_json(u))
        return out

    async def op_cas_increments(self, name: str, times: int) -> Any:
        conflicts = 0
        done = 0
        while done < times:
            record = await self.ctx.get_record(name, bypass_cache=True)
            try:
                await self.ctx.set_variable(name, record.value + 1, expected_version=record.version)
                done += 1
            except ConflictError:
                conflicts += 1
        return {"conflicts": conflicts}

    async def op_stale_cas(self, name: str, value: Any, expected_version: int) -> Any:
        try:
            await self.ctx.set_variable(name, value, expected_version=expected_version)
        except ConflictError as e:
            return {
                "expected": e.expected_version,
                "actual": e.actual_version,
                "message": str(e),
            }
        return None

    async def op_poll_until(self, name: str, value: Any, timeout: float = 30.0) -> Any:
        """Cached reads until `value` shows up; the cache TTL is far longer than `timeout`, so
        only an invalidation can make it appear."""
        deadline = time.monotonic() + timeout
        polls = 0
        while True:
            polls += 1
            current = await self.ctx.get_variable(name)
            if current == value:
                return {"polls": polls}
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name} still {current!r}, never {value!r}")
            await asyncio.sleep(0.005)

    async def op_stats(self) -> Any:
        s = self.ctx.stats
        return {"hits": s.hits, "misses": s.misses, "invalidations": s.invalidations}

    async def op_ping(self) -> Any:
        return await self.ctx.ping()


async def main() -> None:
    cache_ttl = float(os.environ.get("AGENT_CACHE_TTL", "3600"))
    ctx = SessionContext.from_env(cache_ttl=cache_ttl)
    agent = Agent(ctx)
    loop = asyncio.get_running_loop()
    print(json.dumps({"ready": True}), flush=True)
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            break
        command = json.loads(line)
        op = command.pop("op")
        if op == "exit":
            break
        try:
            result = await getattr(agent, f"op_{op}")(**command)
            reply: dict[str, Any] = {"ok": result}
        except Exception as e:  # noqa: BLE001 - reported to the test
            reply = {
                "error": type(e).__name__,
                "message": str(e),
                "mro": [c.__name__ for c in type(e).__mro__],
            }
        print(json.dumps(reply), flush=True)
    if agent.watch_task is not None:
        agent.watch_task.cancel()
    await ctx.close()


if __name__ == "__main__":
    asyncio.run(main())
