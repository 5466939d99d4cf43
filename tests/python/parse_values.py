"""What DSPy makes of an LM's text for a typed output field, for the Rust test that compares
dspex's reading with DSPy's (`tests/tests/parse_like_dspy.rs`).

Reads ``[[annotation, text], ...]`` as JSON on stdin; writes, for each case, what DSPy's own
``parse_value`` (the ChatAdapter's reader) returns for ``text`` and the annotation DSPy builds
from the string signature ``"x -> y: <annotation>"``: ``{"ok": value}``, ``{"nonfinite":
"inf"}`` for a float JSON cannot hold, or ``{"error": "ValidationError"}``.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import dspy
from dspy.adapters.utils import parse_value


def read(annotation: str, text: str) -> dict[str, Any]:
    field = dspy.Signature(f"x -> y: {annotation}").output_fields["y"]
    try:
        value = parse_value(text, field.annotation)
    except Exception as e:  # noqa: BLE001 - any refusal is reported by its class name
        return {"error": type(e).__name__}
    try:
        return {"ok": json.loads(json.dumps(value, allow_nan=False))}
    except ValueError:
        return {"nonfinite": repr(value)}


def main() -> None:
    cases = json.load(sys.stdin)
    json.dump([read(annotation, text) for annotation, text in cases], sys.stdout)


if __name__ == "__main__":
    main()
