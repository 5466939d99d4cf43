"""Custom DSPy modules and tools that the worker tests load by dotted path
(``sample_modules.Shouter``, ``sample_modules.word_count``), and metrics for compilations
(``sample_modules.answer_matches``)."""

from __future__ import annotations

import dspy


class Shouter(dspy.Module):
    """Upper-cases its input (a text, or each item of a list) without an LM call."""

    def __init__(self, signature: str) -> None:
        super().__init__()
        self.signature = dspy.Signature(signature)

    def forward(self, **kwargs: object) -> dspy.Prediction:
        (name,) = self.signature.input_fields
        (out,) = self.signature.output_fields
        value = kwargs[name]
        loud = [str(item).upper() for item in value] if isinstance(value, list) else str(value).upper()
        return dspy.Prediction(**{out: loud})


class Exploding(dspy.Module):
    """Raises on every call."""

    def __init__(self, signature: str) -> None:
        super().__init__()
        self.predict = dspy.Predict(signature)

    def forward(self, **kwargs: str) -> dspy.Prediction:
        raise RuntimeError(f"the module exploded on {kwargs.get('question')!r}")


class Refusing(dspy.Module):
    """Raises an exception of its own type, ``Refusing.Refusal``, on every call."""

    class Refusal(Exception):
        """The exception of :class:`Refusing`."""

    def __init__(self, signature: str) -> None:
        super().__init__()
        self.signature = dspy.Signature(signature)

    def forward(self, **kwargs: str) -> dspy.Prediction:
        raise Refusing.Refusal(f"refused {kwargs.get('question')!r}")


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


class Kwargs(dspy.Module):
    """Answers with the keyword arguments it was called with, beyond its inputs, as JSON."""

    def __init__(self, signature: str) -> None:
        super().__init__()
        self.signature = dspy.Signature(signature)

    def forward(self, **kwargs: object) -> dspy.Prediction:
        import json

        extra = {k: v for k, v in kwargs.items() if k not in self.signature.input_fields}
        (out,) = self.signature.output_fields
        return dspy.Prediction(**{out: json.dumps(extra, sort_keys=True)})


class CallId(dspy.Module):
    """Answers with the id of the call it runs in, read after an LM call (so in the call's
    thread, after DSPy ran)."""

    def __init__(self, signature: str) -> None:
        super().__init__()
        self.predict = dspy.Predict(signature)

    def forward(self, **kwargs: object) -> dspy.Prediction:
        from dspex_bridge.worker.module_service import current_call_id

        self.predict(**kwargs)
        (out,) = self.predict.signature.output_fields
        return dspy.Prediction(**{out: current_call_id() or ""})


class HistoryProbe(dspy.Module):
    """Runs a Predict, then answers with the sizes of every history DSPy keeps (global, this
    module's, the predictor's, the LM's, the trace), as JSON: they must not grow call after
    call in the worker."""

    def __init__(self, signature: str) -> None:
        super().__init__()
        self.predict = dspy.Predict(signature)

    def forward(self, **kwargs: object) -> dspy.Prediction:
        import json

        from dspy.clients.base_lm import GLOBAL_HISTORY
        from dspy.dsp.utils.settings import main_thread_config

        self.predict(**kwargs)
        sizes = {
            "global": len(GLOBAL_HISTORY),
            "module": len(self.history),
            "predictor": len(self.predict.history),
            "lm": len(dspy.settings.lm.history),
            "global_trace": len(main_thread_config.get("trace") or []),
        }
        (out,) = self.predict.signature.output_fields
        return dspy.Prediction(**{out: json.dumps(sizes, sort_keys=True)})


class Fixed(dspy.Module):
    """Answers every output field with the value given by the `value` keyword argument of its
    constructor (default: the text ``"high"``), whatever the declared type."""

    def __init__(self, signature: str, value: str = "high") -> None:
        super().__init__()
        self.signature = dspy.Signature(signature)
        self.value = value

    def forward(self, **kwargs: object) -> dspy.Prediction:
        return dspy.Prediction(**{name: self.value for name in self.signature.output_fields})


class Verbose(dspy.Module):
    """Raises with a message as long as its `size` input says."""

    def __init__(self, signature: str) -> None:
        super().__init__()

    def forward(self, **kwargs: object) -> dspy.Prediction:
        raise ValueError("x" * int(str(kwargs.get("size") or 0)))


class Pid(dspy.Module):
    """Answers with the process id of the worker that ran it, after an LM call."""

    def __init__(self, signature: str) -> None:
        super().__init__()
        self.predict = dspy.Predict(signature)

    def forward(self, **kwargs: object) -> dspy.Prediction:
        import os

        self.predict(**kwargs)
        (out,) = self.predict.signature.output_fields
        return dspy.Prediction(**{out: str(os.getpid())})


class Overlap(dspy.Module):
    """Takes `seconds` (its input) and answers with the most calls of this class it saw running
    at once in its process while it ran."""

    import threading as _threading

    _lock = _threading.Lock()
    _running = 0

    def __init__(self, signature: str) -> None:
        super().__init__()
        self.signature = dspy.Signature(signature)

    def forward(self, **kwargs: str) -> dspy.Prediction:
        import time

        cls = type(self)
        with cls._lock:
            cls._running += 1
            peak = cls._running
        deadline = time.monotonic() + float(kwargs.get("seconds") or 0.5)
        while time.monotonic() < deadline:
            with cls._lock:
                peak = max(peak, cls._running)
            time.sleep(0.01)
        with cls._lock:
            cls._running -= 1
        (out,) = self.signature.output_fields
        return dspy.Prediction(**{out: str(peak)})


class Repeater(dspy.Module):
    """Asks its `question` (an input) `times` times (another input) with one Predict
    ("question -> answer"), and answers with the last answer: one call of many LM requests."""

    def __init__(self, signature: str) -> None:
        super().__init__()
        self.predict = dspy.Predict("question -> answer")

    def forward(self, question: str, times: int) -> dspy.Prediction:
        answer = ""
        for _ in range(int(times)):
            answer = self.predict(question=question).answer
        return dspy.Prediction(answer=answer)


def word_count(text: str) -> int:
    """Counts the words of `text` (a tool the agents of the tests call by dotted path)."""
    return len(str(text).split())


def answer_matches(example: dspy.Example, prediction: dspy.Prediction, trace: object = None) -> bool:
    """A metric: the prediction's ``answer`` is the example's."""
    return bool(example.answer == prediction.answer)


def answer_matches_traced(example: dspy.Example, prediction: dspy.Prediction, trace: object = None) -> bool:
    """A metric of a whole program: the prediction's ``answer`` is the example's. While
    bootstrapping (DSPy passes a trace then), the trace's last LM step must be the ``answer``
    step, its outputs holding the prediction's answer."""
    if trace is not None:
        if not isinstance(trace, list) or not trace:
            raise ValueError(f"expected the run's LM steps as the trace, found {trace!r}")
        step, inputs, outputs = trace[-1]
        if step != "answer" or not isinstance(inputs, dict) or outputs.answer != prediction.answer:
            raise ValueError(f"the trace's last step is not the answer: {trace[-1]!r}")
    return bool(example.answer == prediction.answer)


def raising_metric(example: dspy.Example, prediction: dspy.Prediction, trace: object = None) -> bool:
    """A broken metric: raises."""
    raise ValueError("no score from Python")


def overscored(example: dspy.Example, prediction: dspy.Prediction, trace: object = None) -> float:
    """A broken metric: scores above 1."""
    return 2.0


not_a_metric = 42
