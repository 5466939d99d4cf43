"""``SessionContext``: async access to the variables of one dspex session over gRPC.

Reads are cached for ``cache_ttl`` seconds. The cache is kept honest by a watch stream of the
whole session that the context opens on the first cached read: every accepted change, from
Rust or from Python, evicts the cached record as soon as the event arrives, so a Rust write is
seen without waiting for the TTL. A record fetched while a change of it was in flight is not
cached, and if the watch stream is down nothing is cached at all.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any

import grpc
import grpc.aio

from .._proto.dspex.v1 import bridge_pb2 as pb
from .._proto.dspex.v1 import bridge_pb2_grpc as pb_grpc
from ..contract import ENV_SESSION_ID, ENV_SESSION_TOKEN, ENV_STORE_ADDR, LIMITS, TOKEN_METADATA
from ..errors import ConflictError, InvalidValueError, MissingEnvironmentError, map_rpc_error
from ..values import (
    GetVariablesResult,
    HistoryEntry,
    PyValue,
    Variable,
    VariableUpdate,
    from_proto_value,
    to_proto_constraints,
    to_proto_type,
    to_proto_value,
)

log = logging.getLogger("dspex_bridge")

__all__ = [
    "DEFAULT_CACHE_TTL",
    "ENV_SESSION_ID",
    "ENV_SESSION_TOKEN",
    "ENV_STORE_ADDR",
    "MAX_RESPONSE_BYTES",
    "TOKEN_METADATA",
    "CacheStats",
    "SessionContext",
    "connect",
]

#: Largest response the client accepts: the server's ``MAX_RESPONSE_BYTES``.
MAX_RESPONSE_BYTES = LIMITS["MAX_RESPONSE_BYTES"]

#: How long a read waits for the invalidation stream to start before it goes uncached, in
#: seconds.
WATCH_START_TIMEOUT = 2.0

#: Default time a cached read stays valid without an invalidation, in seconds.
DEFAULT_CACHE_TTL = 5.0

_CHANNEL_OPTIONS = (
    ("grpc.max_receive_message_length", MAX_RESPONSE_BYTES),
    ("grpc.enable_http_proxy", 0),
)


def connect(address: str) -> grpc.aio.Channel:
    """An insecure channel to a dspex store (loopback or Unix socket), configured for its
    message sizes. Create it in the event loop that will use it."""
    options: list[tuple[str, str | int]] = list(_CHANNEL_OPTIONS)
    if address.startswith("unix:"):
        # gRPC would send the socket path as the HTTP/2 authority, which is not a valid one.
        options.append(("grpc.default_authority", "localhost"))
    return grpc.aio.insecure_channel(address, options=options)


class CacheStats:
    """Counts of cached reads (``hits``), reads that went to the server (``misses``) and
    records evicted by the watch stream (``invalidations``)."""

    __slots__ = ("hits", "misses", "invalidations")

    def __init__(self) -> None:
        self.hits = 0
        self.misses = 0
        self.invalidations = 0

    def __repr__(self) -> str:
        return (
            f"CacheStats(hits={self.hits}, misses={self.misses}, "
            f"invalidations={self.invalidations})"
        )


class _Entry:
    """A cached read: the value (decoded at once) and the wire record (decoded into a
    :class:`Variable` only if someone asks for the record)."""

    __slots__ = ("expires", "value", "message", "record")

    def __init__(self, expires: float, value: PyValue | None, message: pb.Variable) -> None:
        self.expires = expires
        self.value = value
        self.message = message
        self.record: Variable | None = None

    def decoded(self) -> Variable:
        if self.record is None:
            self.record = Variable.from_proto(self.message)
        return self.record


class SessionContext:
    """The variables of one session of a dspex store, over gRPC (``grpc.aio``).

    ``SessionContext(session_id, channel, token)`` uses an existing channel, which the caller
    keeps owning unless ``close_channel=True``; :meth:`from_env` and :meth:`initialize` open
    their own. :meth:`close` (or ``async with``) stops the context. ``cache_ttl`` is how long a
    read stays cached (0 disables the cache). Use it in the event loop the channel belongs to;
    :class:`~dspex_bridge.SyncSessionContext` is the facade for synchronous code.

    Errors are standard exceptions: a missing variable is a ``KeyError``, a value of the wrong
    type a ``TypeError``, one outside the constraints a ``ValueError``, a stale compare-and-set
    a :class:`~dspex_bridge.ConflictError`, a bad token a ``PermissionError``, a write to a
    read-only variable a :class:`~dspex_bridge.ReadOnlyError` (also a ``PermissionError``).
    """

    def __init__(
        self,
        session_id: str,
        channel: grpc.aio.Channel,
        token: str,
        *,
        cache_ttl: float = DEFAULT_CACHE_TTL,
        close_channel: bool = False,
    ) -> None:
        self.session_id = session_id
        self._channel = channel
        self._owns_channel = close_channel
        self._stub = pb_grpc.SessionServiceStub(channel)
        self._token = token
        # Built once: a ready `Metadata` costs less per call than a tuple.
        self._metadata = grpc.aio.Metadata((TOKEN_METADATA, token))
        self._cache_ttl = max(0.0, float(cache_ttl))
        self._cache: dict[str, _Entry] = {}
        self._get_requests: dict[str, pb.GetVariableRequest] = {}
        # Invalidation generations: a fetched record is cached only if no event about it (or
        # about everything) arrived while it was in flight.
        self._generation: dict[str, int] = {}
        self._generation_all = 0
        self._watch_task: asyncio.Task[None] | None = None
        self._watch_live = asyncio.Event()
        self._watch_failed = False
        self._closed = False
        self.stats = CacheStats()
        #: The TTL of a session created by :meth:`initialize` (``None`` otherwise).
        self.ttl_seconds: int | None = None

    @property
    def token(self) -> str:
        """The session's token (what another client of the same session needs)."""
        return self._token

    # ---- construction -----------------------------------------------------------------------

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str] | None = None,
        *,
        cache_ttl: float = DEFAULT_CACHE_TTL,
    ) -> SessionContext:
        """The session described by ``DSPEX_STORE_ADDR``, ``DSPEX_SESSION_ID`` and
        ``DSPEX_SESSION_TOKEN`` (the environment a dspex worker is started with)."""
        env = os.environ if env is None else env
        cls.check_env(env)
        return cls(
            env[ENV_SESSION_ID],
            connect(env[ENV_STORE_ADDR]),
            env[ENV_SESSION_TOKEN],
            cache_ttl=cache_ttl,
            close_channel=True,
        )

    @staticmethod
    def check_env(env: Mapping[str, str]) -> None:
        """Raises :class:`~dspex_bridge.MissingEnvironmentError` (a ``KeyError``) naming the
        variables that ``env`` lacks to describe a session."""
        missing = [k for k in (ENV_STORE_ADDR, ENV_SESSION_ID, ENV_SESSION_TOKEN) if not env.get(k)]
        if missing:
            raise MissingEnvironmentError(
                f"{', '.join(missing)} not set: a dspex session is described by "
                f"{ENV_STORE_ADDR}, {ENV_SESSION_ID} and {ENV_SESSION_TOKEN}"
            )

    @classmethod
    async def initialize(
        cls,
        address: str,
        *,
        ttl_seconds: int = 0,
        metadata: Mapping[str, str] | None = None,
        cache_ttl: float = DEFAULT_CACHE_TTL,
    ) -> SessionContext:
        """Creates a new session in the store at ``address`` and returns its context. The
        session expires ``ttl_seconds`` after its last call (0 for the server's default): call
        :meth:`heartbeat` (or anything else) more often than that to keep it, and
        :meth:`cleanup` to end it."""
        channel = connect(address)
        stub = pb_grpc.SessionServiceStub(channel)
        try:
            response = await stub.InitializeSession(
                pb.InitializeSessionRequest(ttl_seconds=ttl_seconds, metadata=dict(metadata or {}))
            )
        except grpc.RpcError as e:
            await channel.close()
            raise map_rpc_error(e) from e
        ctx = cls(
            response.session_id, channel, response.token, cache_ttl=cache_ttl, close_channel=True
        )
        ctx.ttl_seconds = response.ttl_seconds
        return ctx

    async def __aenter__(self) -> SessionContext:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Stops the invalidation stream and closes the channel if this context opened it."""
        self._closed = True
        task, self._watch_task = self._watch_task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - closing
                pass
        self._watch_live.clear()
        self._cache.clear()
        if self._owns_channel:
            await self._channel.close()

    # ---- calls ------------------------------------------------------------------------------

    async def _call(self, method: Callable[..., Any], request: Any) -> Any:
        try:
            return await method(request, metadata=self._metadata)
        except grpc.RpcError as e:
            raise map_rpc_error(e) from e

    async def ping(self) -> str:
        """The server's version (needs no token)."""
        response: pb.PingResponse = await self._call(self._stub.Ping, pb.PingRequest())
        return response.server_version

    async def heartbeat(self) -> float | None:
        """Renews the session's TTL; returns the new expiry as a UNIX time (``None`` for the
        session of a Rust context, which never expires while the context lives)."""
        response: pb.HeartbeatResponse = await self._call(
            self._stub.Heartbeat, pb.HeartbeatRequest(session_id=self.session_id)
        )
        if not response.HasField("expires_at"):
            return None
        return response.expires_at.seconds + response.expires_at.nanos / 1e9

    async def cleanup(self) -> int:
        """Ends a session created with :meth:`initialize`; returns how many variables it
        dropped."""
        response: pb.CleanupSessionResponse = await self._call(
            self._stub.CleanupSession, pb.CleanupSessionRequest(session_id=self.session_id)
        )
        self._cache.clear()
        return response.variables_dropped

    # ---- reads ------------------------------------------------------------------------------

    async def get_variable(self, name: str, *, bypass_cache: bool = False) -> PyValue | None:
        """The value of ``name``: from the cache if it holds a fresh record, else from the
        server. ``KeyError`` if there is no such variable."""
        if not bypass_cache:
            entry = self._cache.get(name)
            if entry is not None and entry.expires > time.monotonic():
                self.stats.hits += 1
                return entry.value
        entry = await self._fetch(name, bypass_cache)
        return entry.value

    async def get_record(self, name: str, *, bypass_cache: bool = False) -> Variable:
        """The full record of ``name`` (value, version, constraints, metadata, ...)."""
        if not bypass_cache:
            entry = self._cache.get(name)
            if entry is not None and entry.expires > time.monotonic():
                self.stats.hits += 1
                return entry.decoded()
        return (await self._fetch(name, bypass_cache)).decoded()

    async def _fetch(self, name: str, bypass_cache: bool) -> _Entry:
        self.stats.misses += 1
        caching = self._cache_ttl > 0 and not self._closed
        if caching and not bypass_cache:
            await self._ensure_watch()
        generation = (self._generation_all, self._generation.get(name, 0))
        request = self._get_requests.get(name)
        if request is None:
            # Requests are never mutated once built, so one per name is reused.
            request = pb.GetVariableRequest(session_id=self.session_id, name=name)
            if len(self._get_requests) < 4096:
                self._get_requests[name] = request
        try:
            response = await self._stub.GetVariable(request, metadata=self._metadata)
        except grpc.RpcError as e:
            raise map_rpc_error(e) from e
        message = response.variable
        entry = _Entry(
            time.monotonic() + self._cache_ttl, from_proto_value(message.value), message
        )
        if caching:
            self._remember(name, entry, generation)
        return entry

    def _remember(self, name: str, entry: _Entry, generation: tuple[int, int]) -> None:
        if (
            self._watch_live.is_set()
            and (self._generation_all, self._generation.get(name, 0)) == generation
        ):
            self._cache[name] = entry

    async def get_variables(
        self, names: Iterable[str], *, min_versions: Mapping[str, int] | None = None
    ) -> GetVariablesResult:
        """Several variables in one call; names with no variable are listed in ``missing``.

        Without ``min_versions`` the values come from the server. With it (name -> version),
        cached records at least that new are used without a call, and anything older, missing
        or expired is fetched: a caller that knows the versions it needs (a worker told by the
        Rust side which versions it saw) reads them from the cache with no risk of a stale value.
        """
        names = list(names)
        if min_versions is not None and self._cache_ttl > 0 and not self._closed:
            await self._ensure_watch()
            cached = self._cached_at_least(names, min_versions)
            if cached is not None:
                self.stats.hits += len(names)
                return GetVariablesResult(
                    found={name: entry.value for name, entry in cached.items()},
                    missing=[],
                    records={name: entry.decoded() for name, entry in cached.items()},
                )
        generations = {n: (self._generation_all, self._generation.get(n, 0)) for n in names}
        response = await self._call(
            self._stub.GetVariables,
            pb.GetVariablesRequest(session_id=self.session_id, names=names),
        )
        records = {v.name: Variable.from_proto(v) for v in response.variables}
        if self._cache_ttl > 0 and not self._closed:
            expires = time.monotonic() + self._cache_ttl
            for message, record in zip(response.variables, records.values(), strict=True):
                entry = _Entry(expires, record.value, message)
                entry.record = record
                self._remember(record.name, entry, generations[record.name])
        found = {name: records[name].value for name in names if name in records}
        return GetVariablesResult(found=found, missing=list(response.missing), records=records)

    def _cached_at_least(
        self, names: list[str], min_versions: Mapping[str, int]
    ) -> dict[str, _Entry] | None:
        """The cache entries of every name if each is fresh and at least at its version."""
        now = time.monotonic()
        entries = {}
        for name in names:
            entry = self._cache.get(name)
            if (
                entry is None
                or entry.expires <= now
                or entry.message.version < min_versions.get(name, 0)
            ):
                return None
            entries[name] = entry
        return entries

    async def list_variables(self, pattern: str | None = None) -> list[Variable]:
        """The records sorted by name; with a glob ``pattern`` (``*``, ``?``, ``[a-z]``), only
        those whose whole name matches. The server answers in pages, which this follows to the
        end: each page is a consistent snapshot, the whole list is not."""
        records: list[Variable] = []
        token = ""
        while True:
            response = await self._call(
                self._stub.ListVariables,
                pb.ListVariablesRequest(session_id=self.session_id, pattern=pattern or "", page_token=token),
            )
            records.extend(Variable.from_proto(v) for v in response.variables)
            token = response.next_page_token
            if not token:
                return records

    # ---- writes -----------------------------------------------------------------------------

    async def set_variable(
        self,
        name: str,
        value: Any,
        *,
        expected_version: int | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> int:
        """Writes ``value``, validated by the store; returns the new version. With
        ``expected_version`` the write applies only at that version (``ConflictError``
        otherwise); ``metadata`` is merged into the variable's when the write applies."""
        request = pb.SetVariableRequest(
            session_id=self.session_id,
            name=name,
            value=to_proto_value(value, field_name=name),
            metadata=dict(metadata or {}),
        )
        if expected_version is not None:
            request.expected_version = expected_version
        self._evict(name)
        response: pb.SetVariableResponse = await self._call(self._stub.SetVariable, request)
        return response.version

    async def set_variables(self, values: Mapping[str, Any]) -> dict[str, int]:
        """Writes several variables atomically: all are validated first, then all apply or
        none does. Returns the new versions by name."""
        writes = [
            pb.VariableWrite(name=name, value=to_proto_value(value, field_name=name))
            for name, value in values.items()
        ]
        for name in values:
            self._evict(name)
        response = await self._call(
            self._stub.SetVariables,
            pb.SetVariablesRequest(session_id=self.session_id, writes=writes),
        )
        return dict(zip(values, response.versions, strict=True))

    async def update_variable(
        self,
        name: str,
        update: Callable[[Any], Any],
        *,
        max_attempts: int = 1000,
    ) -> tuple[Any, int]:
        """Replaces the value with ``update(current)`` through compare-and-set, retrying on
        conflicts, so that no concurrent write (from Rust or Python) is lost. Returns the new
        value and version."""
        for _ in range(max_attempts):
            record = await self.get_record(name, bypass_cache=True)
            new = update(record.value)
            try:
                version = await self.set_variable(name, new, expected_version=record.version)
            except ConflictError:
                continue
            return new, version
        raise ConflictError(f"{name}: gave up after {max_attempts} conflicting attempts")

    async def register_variable(
        self,
        name: str,
        var_type: str,
        initial: Any,
        *,
        constraints: Mapping[str, Any] | None = None,
        description: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> Variable:
        """Registers a variable (``var_type`` is ``"float"``, ``"integer"``, ``"string"``,
        ``"boolean"``, ``"choice"``, ``"module"`` or ``"embedding"``). A taken name is an
        :class:`~dspex_bridge.AlreadyExistsError`; an invalid declaration a ``ValueError``
        (``TypeError`` for an initial value of the wrong type)."""
        request = pb.RegisterVariableRequest(
            session_id=self.session_id,
            name=name,
            type=to_proto_type(var_type),
            initial=to_proto_value(initial, field_name=name),
            constraints=to_proto_constraints(constraints),
            metadata=dict(metadata or {}),
        )
        if description is not None:
            request.description = description
        response = await self._call(self._stub.RegisterVariable, request)
        return Variable.from_proto(response.variable)

    async def delete_variable(self, name: str) -> Variable:
        """Deletes a variable and returns its last record."""
        self._evict(name)
        response = await self._call(
            self._stub.DeleteVariable,
            pb.DeleteVariableRequest(session_id=self.session_id, name=name),
        )
        return Variable.from_proto(response.variable)

    # ---- history ----------------------------------------------------------------------------

    async def get_history(self, name: str, limit: int | None = None) -> list[HistoryEntry]:
        """The last writes of ``name``, newest first: at most ``limit`` of them (every kept one
        with ``None``; at most ``MAX_HISTORY_ENTRIES_PER_REQUEST`` = 1000, ``ValueError``
        beyond). Registration is version 1."""
        request = pb.GetHistoryRequest(session_id=self.session_id, name=name)
        if limit is not None:
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
                raise InvalidValueError(f"limit: expected a non-negative int, found {limit!r}")
            if limit >= 2**64:
                raise InvalidValueError(f"limit: {limit} does not fit in 64 bits")
            request.limit = limit
        response: pb.GetHistoryResponse = await self._call(self._stub.GetHistory, request)
        return [HistoryEntry.from_proto(e) for e in response.entries]

    async def rollback(self, name: str, version: int) -> int:
        """Writes the value ``name`` had at ``version`` again, as a new version with metadata
        ``rolled_back_from``; returns the new version. A write like any other (watchers see an
        update); a version the history no longer keeps is a
        :class:`~dspex_bridge.VersionNotFoundError` (a ``KeyError``) naming those it keeps."""
        if isinstance(version, bool) or not isinstance(version, int) or not 0 <= version < 2**64:
            raise InvalidValueError(f"version: expected a non-negative int, found {version!r}")
        self._evict(name)
        response: pb.RollbackResponse = await self._call(
            self._stub.Rollback,
            pb.RollbackRequest(session_id=self.session_id, name=name, version=version),
        )
        return response.version

    # ---- watching ---------------------------------------------------------------------------

    async def watch_variables(
        self,
        names: Iterable[str] = (),
        *,
        include_initial: bool = False,
    ) -> AsyncIterator[VariableUpdate]:
        """Every accepted change of the named variables (all, registrations included, when
        ``names`` is empty), in order, as :class:`~dspex_bridge.VariableUpdate`. A watcher that
        falls behind gets a ``"lagged"`` update saying how many it missed. Ends when the
        session does; stop early with ``break`` or ``aclose()``."""
        call = self._stub.WatchVariables(
            pb.WatchVariablesRequest(
                session_id=self.session_id, names=list(names), include_initial=include_initial
            ),
            metadata=self._metadata,
        )
        try:
            async for update in call:
                yield VariableUpdate.from_proto(update)
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.CANCELLED:
                raise map_rpc_error(e) from e
        finally:
            call.cancel()

    # ---- the cache --------------------------------------------------------------------------

    def invalidate(self, name: str | None = None) -> None:
        """Drops ``name`` (or everything) from the cache."""
        if name is None:
            self._evict_all()
        else:
            self._evict(name)

    def cached(self, name: str) -> Variable | None:
        """The cached record of ``name`` if it is fresh, without any call."""
        entry = self._cache.get(name)
        if entry is not None and entry.expires > time.monotonic():
            return entry.decoded()
        return None

    def cached_value(self, name: str) -> tuple[bool, PyValue | None]:
        """``(True, value)`` if the cache holds a fresh value of ``name``, without any call;
        ``(False, None)`` otherwise."""
        entry = self._cache.get(name)
        if entry is not None and entry.expires > time.monotonic():
            return True, entry.value
        return False, None

    def _evict(self, name: str) -> None:
        self._generation[name] = self._generation.get(name, 0) + 1
        if self._cache.pop(name, None) is not None:
            self.stats.invalidations += 1

    def _evict_all(self) -> None:
        self._generation_all += 1
        self.stats.invalidations += len(self._cache)
        self._cache.clear()

    async def _ensure_watch(self) -> None:
        """Starts the invalidation stream and waits until the server has subscribed it (or it
        failed, in which case nothing is cached)."""
        if self._watch_live.is_set() or self._watch_failed:
            return
        if self._watch_task is None or self._watch_task.done():
            self._watch_task = asyncio.get_running_loop().create_task(
                self._invalidation_loop(), name=f"dspex-invalidation-{self.session_id}"
            )
        live = asyncio.ensure_future(self._watch_live.wait())
        # Bounded: with the store unreachable, reads go uncached (and fail fast) rather than
        # wait for a stream that cannot start.
        done, _ = await asyncio.wait(
            {live, self._watch_task},
            timeout=WATCH_START_TIMEOUT,
            return_when=asyncio.FIRST_COMPLETED,
        )
        if live not in done:
            live.cancel()

    async def _invalidation_loop(self) -> None:
        backoff = 0.05
        while not self._closed:
            call = self._stub.WatchVariables(
                pb.WatchVariablesRequest(session_id=self.session_id), metadata=self._metadata
            )
            try:
                # Headers arrive once the server has subscribed the stream: from here on every
                # change reaches this loop, so records fetched from now on may be cached.
                await call.initial_metadata()
                self._evict_all()
                self._watch_live.set()
                backoff = 0.05
                async for update in call:
                    if update.kind == pb.UPDATE_KIND_LAGGED:
                        self._evict_all()
                    else:
                        self._evict(update.name)
            except asyncio.CancelledError:
                call.cancel()
                raise
            except grpc.RpcError as e:
                code = e.code()
                if code in (
                    grpc.StatusCode.UNAUTHENTICATED,
                    grpc.StatusCode.PERMISSION_DENIED,
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                ):
                    log.warning(
                        "dspex_bridge: cannot watch session %s (%s); reads are not cached",
                        self.session_id,
                        e.details(),
                    )
                    self._watch_failed = True
                    return
            finally:
                self._watch_live.clear()
                self._evict_all()
            if self._closed:
                return
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)
