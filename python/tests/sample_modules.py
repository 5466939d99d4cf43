"""Custom DSPy modules and tools that the worker tests load by dotted path
(``sample_modules.Shouter``, ``sample_modules.word_count``)."""

from __future__ import annotations

import dspy


class Shouter(dspy.Module):
    """Upper-cases its input without an LM call."""

    def __init__(self, signature: str) -> None:
        super().__init__()
        self.signature = dspy.Signature(signature)

    def forward(self, **kwargs: str) -> dspy.Prediction:
        (name,) = self.signature.input_fields
        (out,) = self.signature.output_fields
        return dspy.Prediction(**{out: kwargs[name].upper()})


class Exploding(dspy.Module):
    """Raises on every call."""

    def __init__(self, signature: str) -> None:
        super().__init__()
        self.predict = dspy.Predict(signature)

    def forward(self, **kwargs: str) -> dspy.Prediction:
        raise RuntimeError(f"the module exploded on {kwargs.get('question')!r}")


class Sleeper(dspy.Module):
    """Takes its time (``seconds`` input, default 30) before answering. With a ``notify``
    input (``host:port``), it first connects there and sends ``call started``, so that a test
    knows the call is under way without guessing how long that takes."""

    def __init__(self, signature: str) -> None:
        super().__init__()
        self.signature = dspy.Signature(signature)

    def forward(self, **kwargs: str) -> dspy.Prediction:
        import socket
        import time

        notify = kwargs.get("notify")
        if notify:
            host, _, port = notify.rpartition(":")
            with socket.create_connection((host, int(port))) as marker:
                marker.sendall(b"call started\n")
        time.sleep(float(kwargs.get("seconds") or 30))
        (out,) = self.signature.output_fields
        return dspy.Prediction(**{out: "slept"})


class Spawner(dspy.Module):
    """Starts a long ``sleep`` process and answers with its pid (the worker must not leave it
    behind)."""

    def __init__(self, signature: str) -> None:
        super().__init__()
        self.signature = dspy.Signature(signature)

    def forward(self, **kwargs: str) -> dspy.Prediction:
        import subprocess

        child = subprocess.Popen(["sleep", "300"])
        (out,) = self.signature.output_fields
        return dspy.Prediction(**{out: str(child.pid)})


def word_count(text: str) -> int:
    """Counts the words of `text` (a tool the agents of the tests call by dotted path)."""
    return len(str(text).split())
