"""Calling the worker's handlers in process, without gRPC (tests, profiling):
:class:`InProcessContext` is the part of ``grpc.ServicerContext`` the handlers use."""

from __future__ import annotations

from typing import Any

from dspex_bridge.contract import TOKEN_METADATA

__all__ = ["InProcessContext"]


class InProcessContext:
    """The context of one call made in process with `token`: it carries the token, keeps no
    trailing metadata, is never cancelled by its client, and raises what an abort would send."""

    def __init__(self, token: str) -> None:
        self._metadata = ((TOKEN_METADATA, token),)

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    def set_trailing_metadata(self, metadata: Any) -> None:
        pass

    def add_callback(self, callback: Any) -> bool:
        return True

    def abort(self, code: Any, message: str) -> None:
        raise RuntimeError(f"{code}: {message}")
