"""``SyncSessionContext``: the synchronous facade of :class:`~dspex_bridge.SessionContext`.

It runs a private event loop on a daemon thread and forwards every call to an async
``SessionContext`` living there. The facade is derived from the async class, not written
again: each method is a :class:`_Blocking` wrapper of the async method of the same name, with
its signature, its documentation and (through ``ParamSpec``) its types, so the two cannot
disagree on a parameter. Only what cannot be forwarded as is is written here: construction
(the facade opens its own loop and channel), :meth:`~SyncSessionContext.close` (it also stops
the thread), :meth:`~SyncSessionContext.watch_variables` (a blocking iterator instead of an
async one), and the context-manager protocol. A cached read is answered on the calling thread
without a hop to the loop. ``python/tests/test_sync.py`` checks that every public member of
``SessionContext`` has its twin here, with the same parameters.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import inspect
import os
import queue
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator, Mapping
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, overload

from ..errors import BridgeTimeoutError, UsageError
from ..values import PyValue, Variable, VariableUpdate
from .session import DEFAULT_CACHE_TTL, CacheStats, SessionContext, connect

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

_END = object()

#: How many watch events wait for a slow synchronous consumer before it lags (it is then told
#: how many it missed, as an update of kind ``"lagged"``).
WATCH_QUEUE_SIZE = 1024

#: How long a call waits for the store by default, in seconds.
DEFAULT_TIMEOUT = 60.0

#: How often a blocking watch iterator checks whether its stream ended, in seconds.
_WATCH_POLL = 0.1


class _Twin(Generic[P, R]):
    """A member of :class:`SyncSessionContext` derived from the ``SessionContext`` method of
    the same name: that method's parameters, types and documentation, bound on first use."""

    def __init__(self, method: Callable[..., Any]) -> None:
        self._name = method.__name__
        self.__doc__ = method.__doc__
        # On the class, like a function: `SyncSessionContext.ping(ctx)`.
        self.__signature__ = inspect.signature(method)
        self._bound_signature = self.__signature__.replace(
            parameters=list(self.__signature__.parameters.values())[1:]
        )

    def __set_name__(self, owner: type, name: str) -> None:
        if name != self._name:
            raise TypeError(f"{owner.__name__}.{name} cannot wrap SessionContext.{self._name}")

    @overload
    def __get__(self, instance: None, owner: type) -> _Twin[P, R]: ...

    @overload
    def __get__(self, instance: SyncSessionContext, owner: type) -> Callable[P, R]: ...

    def __get__(
        self, instance: SyncSessionContext | None, owner: type
    ) -> _Twin[P, R] | Callable[P, R]:
        if instance is None:
            return self
        call = self._bind(instance)
        call.__name__ = self._name
        call.__qualname__ = f"{owner.__name__}.{self._name}"
        call.__doc__ = self.__doc__
        call.__signature__ = self._bound_signature  # type: ignore[attr-defined]
        # Bound once: later lookups find it in the instance's dict.
        instance.__dict__[self._name] = call
        return call

    def __call__(self, instance: SyncSessionContext, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.__get__(instance, type(instance))(*args, **kwargs)

    def _bind(self, instance: SyncSessionContext) -> Callable[P, R]:
        raise NotImplementedError


class _Blocking(_Twin[P, R]):
    """Runs an async method of ``SessionContext`` on the facade's loop and waits for it.

    ``cached``, when given, is tried first on the calling thread with the same arguments: it
    returns ``(True, result)`` to answer without the loop, ``(False, None)`` to go on.
    """

    def __init__(
        self,
        method: Callable[Concatenate[SessionContext, P], Awaitable[R]],
        *,
        cached: Callable[Concatenate[SessionContext, P], tuple[bool, R | None]] | None = None,
    ) -> None:
        super().__init__(method)
        self._method = method
        self._cached = cached

    def _bind(self, instance: SyncSessionContext) -> Callable[P, R]:
        method, cached = self._method, self._cached

        def call(*args: P.args, **kwargs: P.kwargs) -> R:
            ctx = instance._ctx
            if cached is not None:
                hit, value = cached(ctx, *args, **kwargs)
                if hit:
                    return value  # type: ignore[return-value]  # a hit carries a result
            return instance._run(method(ctx, *args, **kwargs))  # type: ignore[arg-type]

        return call


class _Direct(_Twin[P, R]):
    """Calls a plain method of ``SessionContext`` that only reads (the cache) on the calling
    thread, as the async class does."""

    def __init__(self, method: Callable[Concatenate[SessionContext, P], R]) -> None:
        super().__init__(method)
        self._method = method

    def _bind(self, instance: SyncSessionContext) -> Callable[P, R]:
        method = self._method

        def call(*args: P.args, **kwargs: P.kwargs) -> R:
            return method(instance._ctx, *args, **kwargs)

        return call


def _on_loop(
    method: Callable[Concatenate[SessionContext, P], R],
) -> Callable[Concatenate[SessionContext, P], Coroutine[Any, Any, R]]:
    """A plain method of ``SessionContext`` that touches the loop's state (the cache), as a
    coroutine to run on the loop."""

    @functools.wraps(method)
    async def on_loop(ctx: SessionContext, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return method(ctx, *args, **kwargs)

    return on_loop


def _cached_value(
    ctx: SessionContext, name: str, *, bypass_cache: bool = False
) -> tuple[bool, PyValue | None]:
    if bypass_cache:
        return False, None
    hit, value = ctx.cached_value(name)
    if hit:
        ctx.stats.hits += 1
    return hit, value


def _cached_record(
    ctx: SessionContext, name: str, *, bypass_cache: bool = False
) -> tuple[bool, Variable | None]:
    record = None if bypass_cache else ctx.cached(name)
    if record is not None:
        ctx.stats.hits += 1
    return record is not None, record


class SyncSessionContext:
    """The variables of one session, for synchronous code. Same methods, same parameters, same
    exceptions as :class:`~dspex_bridge.SessionContext`, without ``await``.

    ``SyncSessionContext(session_id, address, token)`` (an address where the async class takes
    a channel), :meth:`from_env` or :meth:`initialize`. ``timeout`` bounds every call
    (:class:`~dspex_bridge.BridgeTimeoutError`). Close it (or use it as a context manager) to
    stop its thread.
    """

    def __init__(
        self,
        session_id: str,
        address: str,
        token: str,
        *,
        cache_ttl: float = DEFAULT_CACHE_TTL,
        timeout: float | None = DEFAULT_TIMEOUT,
    ) -> None:
        async def make() -> SessionContext:
            return SessionContext(
                session_id, connect(address), token, cache_ttl=cache_ttl, close_channel=True
            )

        self._start(make, timeout)

    def _start(
        self,
        make: Callable[[], Coroutine[Any, Any, SessionContext]],
        timeout: float | None,
    ) -> None:
        """Starts the loop's thread and creates the async context on it."""
        self._timeout = timeout
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="dspex-session", daemon=True
        )
        self._thread.start()
        try:
            self._ctx: SessionContext = self._run(make())
        except BaseException:
            self._stop_loop()
            raise
        self._thread.name = f"dspex-session-{self._ctx.session_id}"

    @classmethod
    def _create(
        cls,
        make: Callable[[], Coroutine[Any, Any, SessionContext]],
        timeout: float | None,
    ) -> SyncSessionContext:
        this = cls.__new__(cls)
        this._start(make, timeout)
        return this

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str] | None = None,
        *,
        cache_ttl: float = DEFAULT_CACHE_TTL,
    ) -> SyncSessionContext:
        """The session described by ``DSPEX_STORE_ADDR``, ``DSPEX_SESSION_ID`` and
        ``DSPEX_SESSION_TOKEN`` (the environment a dspex worker is started with)."""
        # Read here, on the caller's thread, so that a missing variable is reported before any
        # thread starts.
        env = dict(os.environ if env is None else env)
        SessionContext.check_env(env)

        async def make() -> SessionContext:
            return SessionContext.from_env(env, cache_ttl=cache_ttl)

        return cls._create(make, DEFAULT_TIMEOUT)

    @classmethod
    def initialize(
        cls,
        address: str,
        *,
        ttl_seconds: int = 0,
        metadata: Mapping[str, str] | None = None,
        cache_ttl: float = DEFAULT_CACHE_TTL,
    ) -> SyncSessionContext:
        """Creates a new session in the store at ``address`` and returns its context (see
        :meth:`SessionContext.initialize <dspex_bridge.SessionContext.initialize>`)."""

        async def make() -> SessionContext:
            return await SessionContext.initialize(
                address, ttl_seconds=ttl_seconds, metadata=metadata, cache_ttl=cache_ttl
            )

        return cls._create(make, DEFAULT_TIMEOUT)

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if not self._thread.is_alive():
            coro.close()
            raise UsageError("this SyncSessionContext is closed")
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(self._timeout)
        except concurrent.futures.TimeoutError:
            # A call the caller saw fail must not apply later.
            future.cancel()
            raise BridgeTimeoutError(
                f"no answer from the dspex store within {self._timeout} s"
            ) from None

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def __enter__(self) -> SyncSessionContext:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stops the invalidation stream, closes the channel and stops the thread."""
        if not self._thread.is_alive():
            return
        try:
            self._run(self._ctx.close())
        finally:
            self._stop_loop()

    # ---- state of the async context -------------------------------------------------------

    @property
    def session_id(self) -> str:
        """The session's id."""
        return self._ctx.session_id

    @property
    def token(self) -> str:
        """The session's token (what another client of the same session needs)."""
        return self._ctx.token

    @property
    def stats(self) -> CacheStats:
        """The cache statistics (hits, misses, invalidations)."""
        return self._ctx.stats

    @property
    def ttl_seconds(self) -> int | None:
        """The TTL of a session created by :meth:`initialize` (``None`` otherwise)."""
        return self._ctx.ttl_seconds

    # ---- forwarded calls ------------------------------------------------------------------

    check_env = staticmethod(SessionContext.check_env)

    ping = _Blocking(SessionContext.ping)
    heartbeat = _Blocking(SessionContext.heartbeat)
    cleanup = _Blocking(SessionContext.cleanup)
    get_variable = _Blocking(SessionContext.get_variable, cached=_cached_value)
    get_record = _Blocking(SessionContext.get_record, cached=_cached_record)
    get_variables = _Blocking(SessionContext.get_variables)
    list_variables = _Blocking(SessionContext.list_variables)
    set_variable = _Blocking(SessionContext.set_variable)
    set_variables = _Blocking(SessionContext.set_variables)
    update_variable = _Blocking(SessionContext.update_variable)
    register_variable = _Blocking(SessionContext.register_variable)
    delete_variable = _Blocking(SessionContext.delete_variable)
    get_history = _Blocking(SessionContext.get_history)
    rollback = _Blocking(SessionContext.rollback)
    # Changes the cache, which the loop owns: runs there.
    invalidate = _Blocking(_on_loop(SessionContext.invalidate))
    # Only read the cache: answered on the calling thread.
    cached = _Direct(SessionContext.cached)
    cached_value = _Direct(SessionContext.cached_value)

    # ---- watching -------------------------------------------------------------------------

    def watch_variables(
        self,
        names: Iterable[str] = (),
        *,
        include_initial: bool = False,
    ) -> Iterator[VariableUpdate]:
        """A blocking iterator over the changes of the named variables (all when empty), as
        :meth:`SessionContext.watch_variables <dspex_bridge.SessionContext.watch_variables>`
        yields them. Closing the iterator (or leaving a ``for`` loop with ``break``) ends the
        watch."""
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
                    item = updates.get(timeout=_WATCH_POLL)
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
