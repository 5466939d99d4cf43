"""The worker's engine for an OpenAI-compatible endpoint (``LmConfig`` kind ``openai``).

Requests and replies are DSPy's own: the engine hands each request to DSPy's native lm15
engine, which encodes it and decodes the reply. What the engine adds is the policy the Rust
client follows, so that one ``LmConfig`` means the same in both lanes:

- **Timeout**: each request may take the configured timeout (no byte for that long fails it);
  a request that timed out is not retried (DSPy's own retries are off: ``num_retries=0``).
- **Retries**: a request answered 429 or 5xx is retried up to ``max_retries`` times, after the
  ``Retry-After`` the endpoint asked for or else a backoff doubling from ``retry_backoff``,
  never longer than ``max_backoff`` at a time. Other failures are not retried.
- **Cancellation**: the socket of a request is watched by the call's
  :class:`~dspex_bridge.worker.cancel.CancelScope`: cancelling the call shuts it down, so the
  request is abandoned at once; a cancelled call waits no backoff and starts no request.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from dspy.clients.engines.lm15_engine import AsyncLM15Engine, LM15Engine
from dspy.lm15 import RouterConfig, Timeouts

from .cancel import cancellable_sleep, current_scope

__all__ = ["EndpointEngine", "AsyncEndpointEngine", "RetryPolicy", "endpoint_engines"]

# lm15's standard-library transport. Imported by name: the vendored lm15 ships type
# information that the rest of DSPy does not, and a static import would make the type checker
# read DSPy as typed.
StdlibTransport: Any = importlib.import_module("dspy._vendor.lm15.transports").StdlibTransport

#: The provider of the ``openai/<model>`` route DSPy takes to an OpenAI-compatible endpoint.
_ROUTE_PREFIX = "openai/"


@dataclass(frozen=True)
class RetryPolicy:
    """When and after how long a failed request is sent again."""

    max_retries: int
    #: Seconds before the first retry, doubling with every retry.
    backoff: float
    #: The longest wait between two attempts, in seconds.
    max_backoff: float

    def delay(self, error: BaseException, retries: int) -> float | None:
        """How long to wait before sending the request again after `error`, with `retries`
        retries already made; None when it is not sent again."""
        status = getattr(error, "status", None)
        if retries >= self.max_retries or not isinstance(status, int):
            return None
        if status != 429 and not 500 <= status <= 599:
            return None
        hint = getattr(error, "retry_after", None)
        if isinstance(hint, (int, float)) and not isinstance(hint, bool) and math.isfinite(hint) and hint >= 0:
            wait = float(hint)
        else:
            wait = self.backoff * 2 ** min(retries, 16)
        return min(wait, self.max_backoff)


class _CancellableTransport(StdlibTransport):
    """lm15's standard-library transport, whose request sockets the calling call's cancel
    scope watches while a request is in flight."""

    def _send_request(self, conn: Any, *args: Any, **kwargs: Any) -> None:
        scope = current_scope()
        if scope is not None:
            scope.watch(conn.sock)
        super()._send_request(conn, *args, **kwargs)

    def _make_release(self, conn: Any, keep_alive: bool) -> Callable[[bool], None]:
        release: Callable[[bool], None] = super()._make_release(conn, keep_alive)
        scope = current_scope()
        if scope is None:
            return release

        def release_unwatched(body_consumed: bool) -> None:
            scope.unwatch(conn.sock)
            release(body_consumed)

        return release_unwatched


def _router_config(base_url: str, api_key: str, transport: Any = None, timeout: float | None = None) -> RouterConfig:
    provider = LM15Engine(RouterConfig(env={})).resolve(_ROUTE_PREFIX + "model").provider
    timeouts = None if transport is not None or timeout is None else Timeouts(connect=timeout, read=timeout, write=timeout, pool=timeout)
    return RouterConfig(
        env={}, api_keys={provider: api_key}, base_urls={provider: base_url}, transport=transport, timeouts=timeouts
    )


class EndpointEngine:
    """The synchronous engine (a DSPy custom engine: ``complete`` and ``stream``)."""

    def __init__(self, base_url: str, api_key: str, timeout: float, policy: RetryPolicy) -> None:
        transport = _CancellableTransport(
            connect_timeout=timeout, read_timeout=timeout, write_timeout=timeout, pool_timeout=timeout
        )
        self._engine = LM15Engine(_router_config(base_url, api_key, transport))
        self.policy = policy

    def complete(self, request: Any) -> Any:
        retries = 0
        while True:
            scope = current_scope()
            if scope is not None:
                scope.check()
            try:
                return self._engine.complete(request)
            except Exception as e:
                wait = self.policy.delay(e, retries)
                if wait is None:
                    raise
            cancellable_sleep(wait)
            retries += 1

    def stream(self, request: Any) -> Iterator[Any]:
        yield from self._engine.stream(request)

    def close(self) -> None:
        self._engine.close()


class AsyncEndpointEngine:
    """The asynchronous engine, with the same policy (cancelled as asyncio cancels a task)."""

    def __init__(self, base_url: str, api_key: str, timeout: float, policy: RetryPolicy) -> None:
        self._engine = AsyncLM15Engine(_router_config(base_url, api_key, timeout=timeout))
        self.policy = policy

    async def complete(self, request: Any) -> Any:
        import asyncio

        retries = 0
        while True:
            try:
                return await self._engine.complete(request)
            except Exception as e:
                wait = self.policy.delay(e, retries)
                if wait is None:
                    raise
            await asyncio.sleep(wait)
            retries += 1

    async def stream(self, request: Any) -> AsyncIterator[Any]:
        async for event in self._engine.stream(request):
            yield event

    async def aclose(self) -> None:
        await self._engine.aclose()


def endpoint_engines(
    base_url: str, api_key: str, timeout: float, policy: RetryPolicy
) -> tuple[EndpointEngine, AsyncEndpointEngine]:
    """The engine pair of ``dspy.LM(engine=..., async_engine=...)`` for an endpoint."""
    return EndpointEngine(base_url, api_key, timeout, policy), AsyncEndpointEngine(base_url, api_key, timeout, policy)
