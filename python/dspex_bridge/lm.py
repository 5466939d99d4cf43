"""Language models for the worker: the offline scripted LM (the default) and real ``dspy.LM``.

The scripted LM is DSPy's own ``DummyLM`` with a smarter answer source: it reads the output
fields DSPy's chat adapter asks for and answers each one, taking answers from a script first
(in order), then from rules (by substring of the prompt), and otherwise generating a
deterministic answer of the right shape (``Literal`` picks ``finish`` or its first option,
``int`` gives ``0``, ``generated_code`` gives a runnable snippet). Because it is a ``DummyLM``,
``lm.history[-1]["kwargs"]`` records the settings every call really used.
"""

from __future__ import annotations

import ast
import json
import re
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import dspy
from dspy.clients.engines.dummy_engine import AsyncDummyEngine, DummyEngine
from dspy.utils.dummies import DummyLM

from .errors import InvalidValueError

__all__ = ["LmConfig", "ScriptedLM", "build_lm"]

_OUTPUTS = re.compile(r"Your output fields are:\n(?P<body>.*?)\n(?:All interactions|\Z)", re.S)
_FIELD = re.compile(r"^\d+\. `(?P<name>[A-Za-z_][A-Za-z0-9_]*)` \((?P<type>.*?)\)(?::|$)", re.M)
_INPUT_BLOCK = re.compile(r"\[\[ ## (?P<name>\w+) ## \]\]\n(?P<value>.*?)(?=\n\n\[\[ ## |\n\nRespond with|\Z)", re.S)
_EXCERPT = 60


@dataclass
class Script:
    """Answers shared by an LM and its copies: a queue consumed in order, then rules."""

    answers: deque[dict[str, str]] = field(default_factory=deque)
    rules: dict[str, dict[str, str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_for(self, prompt: str) -> dict[str, str]:
        with self.lock:
            if self.answers:
                return dict(self.answers.popleft())
        for needle, answer in self.rules.items():
            if needle in prompt:
                return dict(answer)
        return {}


class ScriptedEngine(DummyEngine):
    """DummyLM's engine, answering exactly the fields each call asks for."""

    def _complete_messages(self, messages: list[dict[str, Any]]) -> Any:
        owner: ScriptedLM = self.owner
        system = next((m["content"] for m in messages if m.get("role") == "system"), "")
        last = messages[-1]["content"] if messages else ""
        wanted = _output_fields(system)
        answer = owner.script.next_for(last)
        first_input = _first_input(last)
        for name, annotation in wanted:
            answer.setdefault(name, _generated(name, annotation, first_input))
        # Keep the adapter's field order; drop fields the call did not ask for.
        if wanted:
            answer = {name: answer[name] for name, _ in wanted}
        saved = owner.answers
        owner.answers = iter([answer])
        try:
            return super()._complete_messages(messages)
        finally:
            owner.answers = saved


def _output_fields(system: str) -> list[tuple[str, str]]:
    match = _OUTPUTS.search(system)
    if not match:
        return []
    return [(m["name"], m["type"]) for m in _FIELD.finditer(match["body"])]


def _first_input(user: str) -> str:
    match = _INPUT_BLOCK.search(user)
    text = " ".join(match["value"].split()) if match else ""
    return text if len(text) <= _EXCERPT else text[: _EXCERPT - 3] + "..."


def _generated(name: str, annotation: str, first_input: str) -> str:
    """A deterministic answer whose shape parses as `annotation`."""
    ann = annotation.replace(" ", "")
    if ann.startswith("Literal["):
        try:
            options = ast.literal_eval("[" + annotation.strip()[len("Literal[") : -1] + "]")
        except (ValueError, SyntaxError):
            options = []
        if options:
            return str("finish" if "finish" in options else options[0])
    if name == "generated_code":
        return f"```python\nprint({json.dumps('scripted result for: ' + first_input)})\n```"
    if ann.startswith(("dict", "Dict")):
        return "{}"
    if ann.startswith(("list", "List")):
        return "[]"
    if ann == "int":
        return "0"
    if ann == "float":
        return "0.0"
    if ann == "bool":
        return "False"
    return f"[scripted {name}] {first_input}" if first_input else f"[scripted {name}]"


class ScriptedLM(DummyLM):
    """An offline LM: DSPy's ``DummyLM`` that answers any signature without network.

    Args:
        model: The model name recorded in the history (a bound ``model`` variable selects it).
        answers: Answers consumed in order, one dict of output fields per call.
        rules: Answers chosen when the key occurs in the prompt.
        **kwargs: Default request settings (``temperature``, ``max_tokens``...).
    """

    def __init__(
        self,
        model: str = "scripted",
        answers: list[dict[str, str]] | None = None,
        rules: dict[str, dict[str, str]] | None = None,
        script: Script | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(answers=[])
        self.model = model
        self.kwargs.update(kwargs)
        self.script = script or Script(deque(answers or []), dict(rules or {}))
        self._engine_spec = ScriptedEngine(self)
        self._async_engine_spec = AsyncDummyEngine(self._engine_spec)

    def copy(self, **kwargs: Any) -> ScriptedLM:
        copied: ScriptedLM = super().copy(**kwargs)
        copied._engine_spec = ScriptedEngine(copied)
        copied._async_engine_spec = AsyncDummyEngine(copied._engine_spec)
        return copied


@dataclass
class LmConfig:
    """How a worker builds its LMs, from the ``DSPEX_LM`` environment variable (JSON).

    ``{"kind": "scripted", "answers": [...], "rules": {...}, "settings": {...}}`` (the default)
    or ``{"kind": "model", "model": "openai/gpt-4o-mini", "settings": {...}}`` for any model
    string ``dspy.LM`` accepts.
    """

    kind: str = "scripted"
    model: str = "scripted"
    answers: list[dict[str, str]] = field(default_factory=list)
    rules: dict[str, dict[str, str]] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, text: str | None) -> LmConfig:
        if not text:
            return cls()
        data = json.loads(text)
        if not isinstance(data, dict):
            raise InvalidValueError("DSPEX_LM must be a JSON object")
        unknown = set(data) - {"kind", "model", "answers", "rules", "settings"}
        if unknown:
            raise InvalidValueError(f"DSPEX_LM has unknown keys {sorted(unknown)}")
        config = cls(**data)
        if config.kind not in ("scripted", "model"):
            raise InvalidValueError(f"DSPEX_LM kind must be 'scripted' or 'model', not {config.kind!r}")
        return config


class LmFactory:
    """Builds the LM for a model name, sharing one script across every scripted LM."""

    def __init__(self, config: LmConfig) -> None:
        self.config = config
        self._script = Script(deque(config.answers), dict(config.rules))

    def build(self, model: str | None = None) -> dspy.BaseLM:
        """A fresh LM for `model` (the configured default when None), with its own history."""
        name = model or self.config.model
        if self.config.kind == "scripted":
            return ScriptedLM(name, script=self._script, **self.config.settings)
        return dspy.LM(name, **self.config.settings)


def build_lm(config: LmConfig, model: str | None = None) -> dspy.BaseLM:
    """One LM from a config (a convenience for scripts and tests)."""
    return LmFactory(config).build(model)
