"""``SyncSessionContext``: the synchronous facade of :class:`~dspex_bridge.SessionContext`.

It runs a private event loop on a daemon thread and forwards every call to an async
``SessionContext`` living there. A cached read is answered on the calling thread without a
hop to the loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import queue
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

from .session import (
    DEFAULT_CACHE_TTL,
    ENV_SESSION_ID,
    ENV_SESSION_TOKEN,
    ENV_STORE_ADDR,
    SessionContext,
    connect,
)
from .values import GetVariablesResult, PyValue, Variable, VariableUpdate

T = TypeVar("T")

_END = object()

#: How many watch events wait for a slow synchronous consumer before it lags (it is then told
#: how many it missed, as an update of kind ``"lagged"``).
WATCH_QUEUE_SIZE = 1024


class SyncSessionContext:
    """The variables of one session, for synchronous code. Same methods, same exceptions as
    :class:`~dspex_bridge.SessionContext`, without ``await``.

    ``SyncSessionContext(session_id, address, token)``, or :meth:`from_env`. Close it (or use it
    as a context manager) to stop its thread.
    """

    def __init__(
        self,
        session_id: str,
        address: str,
        token: str,
        *,
        cache_ttl: float = DEFAULT_CACHE_TTL,
        timeout: float | None = 60.0,
    ) -> None:
        self._timeout = timeout
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=f"dspex-session-{session_id}", daemon=True
        )
        self._thread.start()

        async def make() -> SessionContext:
            return SessionContext(
                session_id, connect(address), token, cache_ttl=cache_ttl, close_channel=True
            )

        self._ctx: SessionContext = self._run(make())
        self.session_id = session_id

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str] | None = None,
        *,
        cache_ttl: float = DEFAULT_CACHE_TTL,
    ) -> SyncSessionContext:
        """The session described by ``DSPEX_STORE_ADDR``, ``DSPEX_SESSION_ID`` and
        ``DSPEX_SESSION_TOKEN``."""
        import os

        env = os.environ if env is None else env
        missing = [k for k in (ENV_STORE_ADDR, ENV_SESSION_ID, ENV_SESSION_TOKEN) if not env.get(k)]
        if missing:
            raise KeyError(f"{', '.join(missing)} not set")
        return cls(
            env[ENV_SESSION_ID], env[ENV_STORE_ADDR], env[ENV_SESSION_TOKEN], cache_ttl=cache_ttl
        )

    def _run(self, coro: Awaitable[T]) -> T:
        if not self._thread.is_alive():
            raise RuntimeError("this SyncSessionContext is closed")
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)  # type: ignore[arg-type]
        try:
            return future.result(self._timeout)
        except concurrent.futures.TimeoutError:
            # A call the caller saw fail must not apply later.
            future.cancel()
            raise TimeoutError(f"no answer from the dspex store within {self._timeout} s") from None

    def __enter__(self) -> SyncSessionContext:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Closes the session context and stops the thread."""
        if not self._thread.is_alive():
            return
        try:
            self._run(self._ctx.close())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()

    @property
    def stats(self) -> Any:
        """The cache statistics (hits, misses, invalidations)."""
        return self._ctx.stats

    def ping(self) -> str:
        """The server's version."""
        return self._run(self._ctx.ping())

    def heartbeat(self) -> float | None:
        """Renews the session's TTL."""
        return self._run(self._ctx.heartbeat())

    def get_variable(self, name: str, *, bypass_cache: bool = False) -> PyValue | None:
        """The value of ``name`` (cached reads never leave the calling thread)."""
        if not bypass_cache:
            hit, value = self._ctx.cached_value(name)
            if hit:
                self._ctx.stats.hits += 1
                return value
        return self._run(self._ctx.get_variable(name, bypass_cache=bypass_cache))

    def get_record(self, name: str, *, bypass_cache: bool = False) -> Variable:
        """The full record of ``name``."""
        return self._run(self._ctx.get_record(name, bypass_cache=bypass_cache))

    def get_variables(self, names: Iterable[str]) -> GetVariablesResult:
        """Several variables; missing names are listed in ``missing``."""
        return self._run(self._ctx.get_variables(list(names)))

    def list_variables(self, pattern: str | None = None) -> list[Variable]:
        """The records sorted by name, optionally filtered by a glob."""
        return self._run(self._ctx.list_variables(pattern))

    def set_variable(
        self,
        name: str,
        value: Any,
        *,
        expected_version: int | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> int:
        """Writes a value; returns the new version."""
        return self._run(
            self._ctx.set_variable(
                name, value, expected_version=expected_version, metadata=metadata
            )
        )

    def set_variables(self, values: Mapping[str, Any]) -> dict[str, int]:
        """Writes several variables atomically."""
        return self._run(self._ctx.set_variables(dict(values)))

    def update_variable(
        self, name: str, update: Callable[[Any], Any], *, max_attempts: int = 1000
    ) -> tuple[Any, int]:
        """Compare-and-set update, retried on conflicts."""
        return self._run(self._ctx.update_variable(name, update, max_attempts=max_attempts))

    def register_variable(
        self,
        name: str,
        var_type: str,
        initial: Any,
        *,
        constraints: Mapping[str, Any] | None = None,
        description: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> Variable:
        """Registers a variable."""
        return self._run(
            self._ctx.register_variable(
                name,
                var_type,
                initial,
                constraints=constraints,
                description=description,
                metadata=metadata,
            )
        )

    def delete_variable(self, name: str) -> Variable:
        """Deletes a variable and returns its last record."""
        return self._run(self._ctx.delete_variable(name))

    def invalidate(self, name: str | None = None) -> None:
        """Drops ``name`` (or everything) from the cache; the next read goes to the server."""

        async def invalidate() -> None:
            self._ctx.invalidate(name)

        self._run(invalidate())

    def watch_variables(
        self, names: Iterable[str] = (), *, include_initial: bool = False
    ) -> Iterator[VariableUpdate]:
        """A blocking iterator over the changes of the named variables (all when empty).
        Closing the iterator (or leaving a ``for`` loop with ``break``) ends the watch."""
        updates: queue.Queue[Any] = queue.Queue(maxsize=WATCH_QUEUE_SIZE)
        # How the stream ended: None, or the exception to raise in the consuming thread.
        ended: list[BaseException | None] = []
        names = list(names)

        async def pump() -> None:
            missed = 0
            try:
                async for update in self._ctx.watch_variables(
                    names, include_initial=include_initial
                ):
                    # Never block the loop on a slow consumer: count what does not fit and
                    # report it before the next event that does.
                    if missed:
                        try:
                            updates.put_nowait(VariableUpdate(kind="lagged", name="", missed=missed))
                            missed = 0
                        except queue.Full:
                            missed += 1
                            continue
                    try:
                        updates.put_nowait(update)
                    except queue.Full:
                        missed += 1
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - handed to the consuming thread
                ended.append(e)
            finally:
                if not ended:
                    ended.append(None)
                with contextlib.suppress(queue.Full):
                    updates.put_nowait(_END)

        future = asyncio.run_coroutine_threadsafe(pump(), self._loop)
        try:
            while True:
                try:
                    item = updates.get(timeout=0.1)
                except queue.Empty:
                    if ended:
                        break
                    continue
                if item is _END:
                    break
                yield item
            if ended and ended[0] is not None:
                raise ended[0]
        finally:
            future.cancel()
