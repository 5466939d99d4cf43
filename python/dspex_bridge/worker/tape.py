"""Recorded LM traffic of the worker: the python lane of ``LmConfig::record`` and
``LmConfig::replay``.

A recording is a file of JSON lines, one per LM request, written by both lanes (the Rust client
and this worker) in one shape::

    {"lane": "python", "request": {"model": null, "messages": [...], "settings": {...}},
     "reply": {"text": "...", "prompt_tokens": 12, "completion_tokens": 3}}

The request is what the program asked for: the model the call bound (``null`` for the
configuration's), the chat messages (role and text), and the settings the call bound. So a
recording replays whatever configuration made it. A line is appended with one ``write`` on a
file opened for appending, so that the Rust process and the worker recording to the same file
never interleave lines.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..contract import LIMITS
from ..errors import InvalidValueError

__all__ = ["Player", "Recorder", "chat_messages", "recorded_request"]

_EXCERPT = 60


def chat_messages(messages: Any) -> list[dict[str, str]]:
    """Chat messages as a recording keeps them: role and text (the text parts of a content made
    of parts, joined)."""
    kept = []
    for m in messages or []:
        content = m.get("content") if isinstance(m, Mapping) else None
        if isinstance(content, list):
            content = "".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
        kept.append({"role": str(m.get("role", "")) if isinstance(m, Mapping) else "", "content": str(content or "")})
    return kept


def recorded_request(model: str | None, messages: Any, settings: Mapping[str, Any]) -> dict[str, Any]:
    """A request as a recording keys it."""
    return {
        "model": model,
        "messages": chat_messages(messages),
        "settings": {k: v for k, v in settings.items() if v is not None},
    }


def _key(request: Any) -> str:
    return json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class Recorder:
    """A recording being appended to."""

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as e:
            raise InvalidValueError(f"cannot open the LM recording {path} for appending: {e}") from e
        self._lock = threading.Lock()

    def append(self, request: dict[str, Any], reply: dict[str, Any]) -> None:
        """Appends one exchange as one line; ``InvalidValueError`` if the line is over
        ``MAX_LM_TAPE_LINE_BYTES``."""
        line = json.dumps({"lane": "python", "request": request, "reply": reply}, ensure_ascii=False).encode()
        limit = LIMITS["MAX_LM_TAPE_LINE_BYTES"]
        if len(line) > limit:
            raise InvalidValueError(
                f"an LM exchange of {len(line)} bytes is over the limit of {limit} bytes "
                f"(MAX_LM_TAPE_LINE_BYTES) for one line of {self.path}"
            )
        with self._lock:
            os.write(self._fd, line + b"\n")


@dataclass
class _Replies:
    recorded: list[dict[str, Any]] = field(default_factory=list)
    next: int = 0


class Player:
    """A recording being replayed: the replies of each request, in the order they were recorded,
    the last one again once they are used up."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._replies: dict[str, _Replies] = {}
        self._lock = threading.Lock()
        try:
            size = os.path.getsize(path)
            if size > LIMITS["MAX_LM_TAPE_BYTES"]:
                raise InvalidValueError(
                    f"the LM recording {path} takes {size} bytes, over the limit of "
                    f"{LIMITS['MAX_LM_TAPE_BYTES']} (MAX_LM_TAPE_BYTES)"
                )
            with open(path, "rb") as f:
                self._load(f)
        except OSError as e:
            raise InvalidValueError(f"cannot read the LM recording {path}: {e}") from e

    def _load(self, f: Any) -> None:
        line_limit, entries_limit = LIMITS["MAX_LM_TAPE_LINE_BYTES"], LIMITS["MAX_LM_TAPE_ENTRIES"]
        entries = 0
        number = 0
        while True:
            line = f.readline(line_limit + 1)
            if not line:
                return
            number += 1
            where = f"the LM recording {self.path} line {number}"
            if not line.endswith(b"\n"):
                if len(line) > line_limit:
                    raise InvalidValueError(f"{where}: longer than {line_limit} bytes (MAX_LM_TAPE_LINE_BYTES)")
                raise InvalidValueError(f"{where}: truncated (no end of line)")
            if not line.strip():
                continue
            entries += 1
            if entries > entries_limit:
                raise InvalidValueError(f"{where}: more than {entries_limit} exchanges (MAX_LM_TAPE_ENTRIES)")
            try:
                exchange = json.loads(line)
                request, reply = exchange["request"], exchange["reply"]
                if not isinstance(reply, dict) or not isinstance(reply.get("text"), str):
                    raise ValueError("its reply has no text")
            except (ValueError, KeyError, TypeError) as e:
                raise InvalidValueError(f"{where}: no recorded exchange ({e})") from e
            self._replies.setdefault(_key(request), _Replies()).recorded.append(reply)

    def reply(self, request: dict[str, Any]) -> dict[str, Any]:
        """The reply to `request`; ``InvalidValueError`` naming the file and the request when the
        recording holds none."""
        with self._lock:
            found = self._replies.get(_key(request))
            if found is None:
                raise InvalidValueError(f"the LM recording {self.path} holds no reply to the request {describe(request)}")
            reply = found.recorded[min(found.next, len(found.recorded) - 1)]
            found.next += 1
            return reply


def describe(request: Mapping[str, Any]) -> str:
    """A request as an error shows it: its model, its settings and the start of its last message."""
    model = request.get("model")
    messages = request.get("messages") or []
    last = str(messages[-1].get("content", "")) if messages else ""
    if len(last) > _EXCERPT:
        last = last[:_EXCERPT] + "..."
    named = f"`{model}`" if model else "(the configuration's)"
    return f"(model {named}, settings {json.dumps(request.get('settings') or {})}, last message {last!r})"
