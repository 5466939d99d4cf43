"""What the Python side agrees on with the Rust side outside the proto messages: the limits,
the metadata keys and environment variables, the readiness prefix, and the table of known DSPy
modules. They are read from ``contract.json``, which is generated from the Rust constants (a
Rust test fails when the committed file differs from them), so the two sides cannot drift.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any, Final


def _load() -> dict[str, Any]:
    text = resources.files(__package__).joinpath("contract.json").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


#: The whole contract: ``{"limits": ..., "modules": ..., "wire": ...}``.
CONTRACT: Final[dict[str, Any]] = _load()
#: The bounds, by the name of their Rust constant (``MAX_RESPONSE_BYTES``, ...).
LIMITS: Final[dict[str, int]] = CONTRACT["limits"]
#: Metadata keys, environment variables and the readiness prefix, by their Rust name.
WIRE: Final[dict[str, str]] = CONTRACT["wire"]
#: The DSPy modules known by name, with the parameters each takes.
MODULES: Final[dict[str, dict[str, Any]]] = CONTRACT["modules"]

#: The metadata entry that carries the session token on every call.
TOKEN_METADATA: Final[str] = WIRE["TOKEN_METADATA"]
#: The metadata entry that carries a call's W3C trace context, to the worker and back on the
#: callbacks it makes during that call.
TRACEPARENT_METADATA: Final[str] = WIRE["TRACEPARENT_METADATA"]
#: The trailer that carries the kind of an error (the name of a ``pb.ErrorKind``).
ERROR_METADATA: Final[str] = WIRE["ERROR_METADATA"]
#: The binary trailer (UTF-8) of a ``PYTHON`` error that carries the qualified name of the type of
#: the exception the module raised (``ValueError``, ``my_pkg.errors.QuotaError``).
EXCEPTION_TYPE_METADATA: Final[str] = WIRE["EXCEPTION_TYPE_METADATA"]
#: The trailers of a conflict: the version a write expected, the version the variable is at.
EXPECTED_VERSION_METADATA: Final[str] = WIRE["EXPECTED_VERSION_METADATA"]
ACTUAL_VERSION_METADATA: Final[str] = WIRE["ACTUAL_VERSION_METADATA"]
#: The trailers of an ``OUTPUT_TYPE`` error: the field, its declared type, and (binary, UTF-8)
#: an excerpt of the value the module returned, as JSON.
FIELD_METADATA: Final[str] = WIRE["FIELD_METADATA"]
FIELD_TYPE_METADATA: Final[str] = WIRE["FIELD_TYPE_METADATA"]
FIELD_VALUE_METADATA: Final[str] = WIRE["FIELD_VALUE_METADATA"]
#: The environment variables that describe a session.
ENV_STORE_ADDR: Final[str] = WIRE["ENV_STORE_ADDR"]
ENV_SESSION_ID: Final[str] = WIRE["ENV_SESSION_ID"]
ENV_SESSION_TOKEN: Final[str] = WIRE["ENV_SESSION_TOKEN"]
#: What the readiness line of a worker starts with.
READY_PREFIX: Final[str] = WIRE["READY_PREFIX"]


def echo(text: str) -> str:
    """`text` as error messages quote it: ``repr`` of at most ``MAX_ECHO_CHARS`` characters,
    followed by the length in bytes when cut (as the Rust side does)."""
    limit = LIMITS["MAX_ECHO_CHARS"]
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text.encode('utf-8'))} bytes)"


def excerpt(text: str) -> str:
    """`text` as an error message quotes it between backticks: whole up to ``MAX_ECHO_CHARS``
    characters, else its first ``MAX_ECHO_CHARS`` and how long it is (as the Rust side's
    ``dspex_core::excerpt`` does)."""
    limit = LIMITS["MAX_ECHO_CHARS"]
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} chars)"


def bounded_message(message: str) -> str:
    """`message` cut to ``MAX_STATUS_MESSAGE_BYTES`` bytes (a status message travels in a
    header that gRPC clients limit)."""
    limit = LIMITS["MAX_STATUS_MESSAGE_BYTES"]
    data = message.encode("utf-8")
    if len(data) <= limit:
        return message
    note = "... (message cut)"
    return data[: limit - len(note)].decode("utf-8", "ignore") + note
