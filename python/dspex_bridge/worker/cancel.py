"""Cancelling calls: a call whose caller gave up stops where it waits, and frees its place only
once its thread has returned.

Each ``ExecuteModule`` or ``CompileModule`` call runs under a :class:`CancelScope` (in
:data:`CANCEL_SCOPE` for the whole call). The worker cancels the scope when the caller drops
the RPC (gRPC reports it on the call's context) or sends ``CancelCall`` with its id. A
cancelled call stops at its next wait: its LM request's socket is shut down (the request is
abandoned at once, not at its timeout), a retry's backoff and the scripted LM's delay end, and
no new LM request starts. :class:`CallRegistry` keeps the calls running by id, so that
``CancelCall`` can say when one has ended; an id cancelled before its call arrived is
remembered (up to :data:`MAX_EARLY_CANCELS`), and that call is refused when it arrives.
"""

from __future__ import annotations

import contextvars
import socket
import threading
import time
from collections import OrderedDict
from typing import Any

from ..errors import DspexError

__all__ = [
    "CANCEL_SCOPE",
    "MAX_CANCEL_WAIT",
    "MAX_EARLY_CANCELS",
    "CallCancelledError",
    "CallRegistry",
    "CancelScope",
    "cancellable_sleep",
    "current_scope",
]

#: The longest a ``CancelCall`` waits for its call to end, in seconds (the caller asks again).
MAX_CANCEL_WAIT = 1.0
#: How many ids of calls cancelled before they arrived the worker remembers (oldest forgotten).
MAX_EARLY_CANCELS = 1024


class CallCancelledError(DspexError):
    """The call was cancelled: its caller gave up on it."""


class CancelScope:
    """The cancellation of one call: a flag, and the sockets of the LM requests it is making
    (shut down when it is cancelled). Its events are made only when something waits on them:
    most calls are never cancelled, and making an event costs more than the rest of a scope."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cancelled = False
        self._ended = False
        self._wake: threading.Event | None = None
        self._ended_event: threading.Event | None = None
        self._sockets: set[Any] = set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def cancel(self) -> None:
        """Cancels the call: its waits end, its LM requests' sockets are shut down."""
        with self._lock:
            self._cancelled = True
            wake = self._wake
            sockets = list(self._sockets)
        if wake is not None:
            wake.set()
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def check(self) -> None:
        """Raises :class:`CallCancelledError` once the call is cancelled."""
        if self._cancelled:
            raise CallCancelledError("the call was cancelled by its caller")

    def sleep(self, seconds: float) -> None:
        """Waits `seconds`, or raises :class:`CallCancelledError` as soon as the call is
        cancelled."""
        if seconds <= 0:
            # Nothing to wait for (an instant scripted LM): no event made, no lock taken.
            self.check()
            return
        with self._lock:
            if self._wake is None:
                self._wake = threading.Event()
            wake = self._wake
            if self._cancelled:
                wake.set()
        wake.wait(seconds)
        self.check()

    def watch(self, sock: Any) -> None:
        """Shuts `sock` down if the call is (or gets) cancelled while it is watched."""
        with self._lock:
            self._sockets.add(sock)
            cancelled = self._cancelled
        if cancelled:
            self.cancel()
            self.check()

    def unwatch(self, sock: Any) -> None:
        with self._lock:
            self._sockets.discard(sock)

    def end(self) -> None:
        """Marks the call ended (its place in the worker is free)."""
        with self._lock:
            self._ended = True
            ended = self._ended_event
        if ended is not None:
            ended.set()

    def wait_ended(self, seconds: float) -> bool:
        """Waits up to `seconds` for the call to end; whether it has."""
        with self._lock:
            if self._ended:
                return True
            if self._ended_event is None:
                self._ended_event = threading.Event()
            ended = self._ended_event
        return ended.wait(seconds)


#: The scope of the call the current code runs in, if any.
CANCEL_SCOPE: contextvars.ContextVar[CancelScope | None] = contextvars.ContextVar("dspex_cancel_scope", default=None)


def current_scope() -> CancelScope | None:
    """The cancellation scope of the call the current code runs in, if any."""
    return CANCEL_SCOPE.get()


def cancellable_sleep(seconds: float) -> None:
    """``time.sleep`` that ends early, with :class:`CallCancelledError`, when the current call is
    cancelled."""
    scope = CANCEL_SCOPE.get()
    if scope is None:
        time.sleep(seconds)
    else:
        scope.sleep(seconds)


class CallRegistry:
    """The calls a worker runs, by call id, for ``CancelCall``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[str, CancelScope] = {}
        self._early: OrderedDict[str, None] = OrderedDict()
        self.cancelled = 0

    def start(self, call_id: str) -> CancelScope | None:
        """The scope of a new call; None if its id was cancelled before it arrived. (A call
        without an id, or with the id of a call running already, is cancelled only when its
        caller drops it.)"""
        scope = CancelScope()
        if not call_id:
            return scope
        with self._lock:
            if call_id in self._early:
                del self._early[call_id]
                return None
            self._running.setdefault(call_id, scope)
        return scope

    def finish(self, call_id: str, scope: CancelScope) -> None:
        """The call has ended and its place is free."""
        with self._lock:
            if self._running.get(call_id) is scope:
                del self._running[call_id]
            if scope.cancelled:
                self.cancelled += 1
        scope.end()

    def cancel(self, call_id: str, wait: float) -> bool:
        """Cancels the call `call_id` and waits up to `wait` seconds (at most
        :data:`MAX_CANCEL_WAIT`) for it to end; whether it still runs. An id not running yet is
        remembered, so that its call is refused if it arrives."""
        with self._lock:
            scope = self._running.get(call_id)
            if scope is None:
                self._early[call_id] = None
                while len(self._early) > MAX_EARLY_CANCELS:
                    self._early.popitem(last=False)
                return False
        scope.cancel()
        return not scope.wait_ended(min(max(wait, 0.0), MAX_CANCEL_WAIT))
