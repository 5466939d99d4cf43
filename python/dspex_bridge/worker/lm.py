"""Language models for the worker: the offline scripted LM (the default) and real ``dspy.LM``.

The scripted LM is DSPy's own ``DummyLM`` with a smarter answer source: it reads the output
fields DSPy's chat adapter asks for and answers each one, taking answers from a script first
(in order), then from rules (the first whose needle the last message contains, else the first
whose needle the system message, with the instructions, contains), and otherwise
generating a deterministic answer of the right type (``Literal`` picks ``finish`` or its first
option, ``int`` gives ``0``, ``list[str]`` a one-item list, ``generated_code`` a runnable
snippet). A request of DSPy's JSON adapter gets the answers as one JSON object. It reports token usage (words of the prompt and of the answer) and can take a fixed
time per request (``delay_ms``) to stand in for a real LM.

Per-call LMs. The worker builds one LM per model name (:meth:`LmFactory.lm`) and, for each call,
a light copy carrying that call's settings (:meth:`LmFactory.for_call`, made by
:func:`~dspex_bridge.binding.lm_for_call`), installed with ``dspy.context(lm=...)`` around the
call. A per-call copy keeps the history of its own requests only, and nowhere else: not in
``dspy.GLOBAL_HISTORY``, not in the calling modules' ``history``. That is what makes the LM calls
reported for a call exactly that call's, even with many calls of one module in flight, and what
keeps the worker's per-call cost and memory flat however many calls it serves. An LM used
directly (not through ``for_call``) records its history as DSPy does.

Captured messages. When the configuration captures them (``LmConfig.capture``), each reported
LM call also carries the messages its request sent and the reply's text (:func:`lm_calls`),
within the bounds the supervisor sent; otherwise nothing of them leaves the worker.
"""

from __future__ import annotations

import ast
import asyncio
import functools
import json
import os
import re
import threading
import weakref
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import dspy
from dspy.adapters.chat_adapter import ChatAdapter, FieldInfoWithName
from dspy.clients.base_lm import BaseLM
from dspy.clients.engines.base import validate_request
from dspy.clients.engines.dummy_engine import DummyEngine
from dspy.lm15 import Message, Response, TextPart, Usage, response_to_events
from dspy.signatures.field import OutputField
from dspy.utils.dummies import DummyLM

from .._proto.dspex.v1 import bridge_pb2 as pb
from ..binding import LM_SETTINGS, REQUEST_TIMES_KEY, lm_for_call
from ..contract import LIMITS
from ..errors import InvalidValueError
from .cancel import cancellable_sleep
from .endpoint import RetryPolicy, endpoint_engines
from .tape import Player, Recorder, chat_messages, recorded_request

__all__ = ["Capture", "LmConfig", "LmFactory", "ScriptedLM", "build_lm", "configure_cache", "lm_call", "lm_calls"]

_OUTPUTS = re.compile(r"Your output fields are:\n(?P<body>.*?)\n(?:All interactions|\Z)", re.S)
_FIELD = re.compile(r"^\d+\. `(?P<name>[A-Za-z_][A-Za-z0-9_]*)` \((?P<type>.*?)\)(?::|$)", re.M)
_INPUT_BLOCK = re.compile(r"\[\[ ## (?P<name>\w+) ## \]\]\n(?P<value>.*?)(?=\n\n\[\[ ## |\n\nRespond with|\Z)", re.S)
_EXCERPT = 60
#: What the last message of a request of DSPy's JSON adapter says.
_JSON_REQUEST = "Respond with a JSON object"

#: The attribute of an LM the worker built with a provider prefix (``openai/``) holding it.
MODEL_PREFIX_ATTR = "_dspex_model_prefix"

#: The API key sent to an OpenAI-compatible endpoint when no key variable is named.
NO_API_KEY = "dspex-no-key"
#: An endpoint's request timeout, first retry backoff and longest backoff, in seconds, when its
#: configuration gives none (the Rust client's defaults; a supervisor always sends its own).
DEFAULT_TIMEOUT = 60.0
DEFAULT_RETRY_BACKOFF = 0.5
DEFAULT_MAX_BACKOFF = 30.0

def lm_call(lm: Any, entry: dict[str, Any]) -> pb.LmCall:
    """One request of a call, from the history entry the LM recorded: the settings it really
    went out with (the LM's defaults under the request's own) and the token usage if reported."""
    used = {**(getattr(lm, "kwargs", None) or {}), **(entry.get("kwargs") or {})}
    model = str(entry.get("model") or getattr(lm, "model", ""))
    # The provider prefix the worker added for LiteLLM is not part of the model's name: a
    # trace names the model as the configuration and the native lane do.
    prefix = getattr(lm, MODEL_PREFIX_ATTR, "")
    if prefix and model.startswith(prefix):
        model = model[len(prefix) :]
    call = pb.LmCall(model=model)
    for key, cast in LM_SETTINGS.items():
        if used.get(key) is not None:
            setattr(call, key, cast(used[key]))
    usage = entry.get("usage") or {}
    for key in ("prompt_tokens", "completion_tokens"):
        if isinstance(usage.get(key), int):
            setattr(call, key, usage[key])
    times = entry.get(REQUEST_TIMES_KEY)
    if times is not None:
        call.start_unix_nano, call.end_unix_nano = times
    return call


def entry_messages(entry: dict[str, Any]) -> Any:
    """The messages of the request a history entry records (a bare prompt as one user
    message)."""
    messages = entry.get("messages")
    if messages is None and entry.get("prompt") is not None:
        messages = [{"role": "user", "content": entry["prompt"]}]
    return messages


def entry_reply(entry: dict[str, Any]) -> str:
    """The text of the first reply a history entry records."""
    outputs = entry.get("outputs") or [""]
    first = outputs[0]
    text = first.get("text") if isinstance(first, dict) else first
    return str(text or "")


@dataclass(frozen=True)
class Capture:
    """How much of a call's LM traffic is captured (the ``LmCapture`` message, whose bounds
    the supervisor sends): the exchanges of the call's first requests while there are at most
    `max_calls` of them and `max_bytes` bytes in all."""

    max_calls: int
    max_bytes: int

    def exchange(self, entry: dict[str, Any]) -> tuple[pb.LmExchange, int]:
        """The exchange a history entry records, and its size as the bounds count it: the
        UTF-8 bytes of every message's role and content and of the reply (as the Rust side's
        ``LmExchange::size``)."""
        messages = [pb.LmMessage(role=m["role"], content=m["content"]) for m in chat_messages(entry_messages(entry))]
        exchange = pb.LmExchange(messages=messages, reply=entry_reply(entry))
        size = len(exchange.reply.encode()) + sum(len(m.role.encode()) + len(m.content.encode()) for m in messages)
        return exchange, size


def lm_calls(lm: Any, capture: Capture | None) -> list[pb.LmCall]:
    """The requests of a call, from its per-call LM's history (:func:`lm_call`), each with its
    messages and reply when `capture` is set and its bounds leave room (else marked left out);
    with no `capture`, nothing of the messages is kept."""
    calls = []
    kept = size = 0
    for entry in lm.call_history:
        call = lm_call(lm, entry)
        if capture is not None:
            exchange, bytes_ = capture.exchange(entry)
            if kept < capture.max_calls and size + bytes_ <= capture.max_bytes:
                call.exchange.CopyFrom(exchange)
                kept += 1
                size += bytes_
            else:
                call.exchange_left_out = True
        calls.append(call)
    return calls


@dataclass
class Script:
    """Answers shared by every LM of a worker: a queue consumed in order, then rules."""

    answers: deque[dict[str, str]] = field(default_factory=deque)
    rules: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_for(self, last: str, system: str) -> dict[str, str]:
        with self.lock:
            if self.answers:
                return dict(self.answers.popleft())
        for text in (last, system):
            for needle, answer in self.rules:
                if needle in text:
                    return dict(answer)
        return {}


class ScriptedEngine(DummyEngine):
    """DummyLM's engine, answering exactly the fields each request asks for, after the
    configured delay (DSPy calls it through ``DummyEngine``'s own request paths).

    It reaches its LM through a weak reference: the LM holds its engine, and a strong reference
    back would make every per-call copy of the LM (and the history it holds) a reference cycle,
    left for the garbage collector instead of freed when its call ends."""

    def __init__(self, owner: Any, delay: float = 0.0) -> None:
        super().__init__(owner)
        self.delay = delay

    @property
    def owner(self) -> Any:
        return self._owner()

    @owner.setter
    def owner(self, lm: Any) -> None:
        self._owner = weakref.ref(lm)

    def _complete_messages(self, messages: list[dict[str, Any]]) -> Any:
        cancellable_sleep(self.delay)
        return self.answer(messages)

    def answer_request(self, request: Any) -> Any:
        """The answer to a canonical request, at once (what ``DummyEngine.complete`` does,
        without the delay)."""
        validate_request(request)
        messages = []
        if request.system is not None:
            system = request.system if isinstance(request.system, str) else "".join(p.text for p in request.system)
            messages.append({"role": "system", "content": system})
        messages.extend({"role": m.role, "content": m.text or ""} for m in request.messages)
        return self.answer(messages)

    def answer(self, messages: list[dict[str, Any]]) -> Any:
        """The answer to chat messages, at once."""
        owner: ScriptedLM = self.owner
        system = next((m["content"] for m in messages if m.get("role") == "system"), "")
        last = messages[-1]["content"] if messages else ""
        # A system message in parts (not text) is read as it always was.
        wanted, system_words = _read_system(system) if isinstance(system, str) else (_output_fields(system), None)
        answer = owner.script.next_for(last, system)
        first_input = _first_input(last)
        for name, annotation in wanted:
            answer.setdefault(name, _generated(name, annotation, first_input))
        # Keep the adapter's field order; drop fields the request did not ask for.
        if wanted:
            answer = {name: answer[name] for name, _ in wanted}
        if _JSON_REQUEST in last:
            # DSPy's JSON adapter asks for one object: the same answers, as strings in it.
            text = json.dumps(answer, ensure_ascii=False)
        else:
            text = owner._format_answer_fields(answer)
        prompt_words = sum(
            system_words
            if system_words is not None and m.get("content") is system
            else len(str(m.get("content") or "").split())
            for m in messages
        )
        answer_words = len(text.split())
        return Response(
            id=None,
            model="scripted",
            message=Message.assistant([TextPart(text)]),
            finish_reason="stop",
            usage=Usage(input_tokens=prompt_words, output_tokens=answer_words, total_tokens=prompt_words + answer_words),
        )


class ScriptedAsyncEngine:
    """The async engine of the scripted LM: the same answers, waiting without blocking."""

    def __init__(self, sync: ScriptedEngine) -> None:
        self.sync = sync

    async def complete(self, request: Any) -> Any:
        if self.sync.delay:
            await asyncio.sleep(self.sync.delay)
        return self.sync.answer_request(request)

    async def stream(self, request: Any) -> Any:
        for event in response_to_events(await self.complete(request)):
            yield event

    async def aclose(self) -> None:
        pass


#: How many system messages the scripted LM keeps read (what fields they ask for, how many words
#: they have): one per signature a worker's modules use, in practice.
MAX_SYSTEM_MESSAGES = 256


@functools.lru_cache(maxsize=MAX_SYSTEM_MESSAGES)
def _read_system(system: str) -> tuple[tuple[tuple[str, str], ...], int]:
    """The output fields a system message asks for, and its words (read once per message)."""
    return tuple(_output_fields(system)), len(system.split())


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
        return json.dumps({"field": name})
    if ann in ("list[str]", "List[str]"):
        return json.dumps([f"[scripted {name}] {first_input}".strip()])
    if ann in ("list[int]", "List[int]"):
        return "[0]"
    if ann in ("list[float]", "List[float]"):
        return "[0.0]"
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
        model: The model name recorded in the history (a bound ``model`` selects it).
        answers: Answers consumed in order, one dict of output fields per request.
        rules: Answers chosen when the key occurs in the prompt (the first match wins).
        script: A script shared with other LMs (instead of ``answers`` and ``rules``).
        delay_ms: How long every request takes, in milliseconds.
        **kwargs: Default request settings (``temperature``, ``max_tokens``...).
    """

    def __init__(
        self,
        model: str = "scripted",
        answers: list[dict[str, str]] | None = None,
        rules: dict[str, dict[str, str]] | None = None,
        script: Script | None = None,
        delay_ms: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(answers=[])
        self.model = model
        self.kwargs.update(kwargs)
        self.script = script or Script(deque(answers or []), list((rules or {}).items()))
        self.delay_ms = delay_ms
        self._use_engines()

    def _use_engines(self) -> None:
        engine = ScriptedEngine(self, self.delay_ms / 1000)
        self._engine_spec = engine
        self._async_engine_spec = ScriptedAsyncEngine(engine)

    def copy(self, **kwargs: Any) -> ScriptedLM:
        # DSPy's copy of the LM with engines of its own: `DummyLM.copy` would first make
        # engines of DummyLM's, only for them to be replaced.
        copied: ScriptedLM = BaseLM.copy(self, **kwargs)
        copied._use_engines()
        return copied

    def _format_answer_fields(self, field_names_and_values: dict[str, Any]) -> Any:
        """The answer's text, as ``DummyLM`` writes it. Its ``ChatAdapter`` takes no ``role``:
        it is called as ``DummyLM`` calls it after trying one, with one output field
        description shared by every field (``ChatAdapter`` reads only its annotation, unset)."""
        if type(self.adapter) is not ChatAdapter:
            return super()._format_answer_fields(field_names_and_values)
        fields = {
            FieldInfoWithName(name=name, info=_ANSWER_FIELD): value
            for name, value in field_names_and_values.items()
        }
        return self.adapter.format_field_with_value(fields)


#: The description of every field of a scripted answer: a plain output field.
_ANSWER_FIELD = OutputField()


class ReplayEngine(ScriptedEngine):
    """The engine of :class:`ReplayLM`: answers each request with the recorded reply."""

    def answer(self, messages: list[dict[str, Any]]) -> Any:
        owner: ReplayLM = self.owner
        request = recorded_request(
            getattr(owner, "_tape_model", None), messages, getattr(owner, "_call_settings", {})
        )
        reply = owner.player.reply(request)
        prompt, completion = reply.get("prompt_tokens") or 0, reply.get("completion_tokens") or 0
        return Response(
            id=None,
            model=owner.model,
            message=Message.assistant([TextPart(reply["text"])]),
            finish_reason="stop",
            usage=Usage(input_tokens=prompt, output_tokens=completion, total_tokens=prompt + completion),
        )


class ReplayLM(ScriptedLM):
    """An LM that answers from a recording (``LmConfig::replay``), with no network; a request
    the recording holds no reply to fails naming the file and the request."""

    def __init__(self, model: str, player: Player, **kwargs: Any) -> None:
        self.player = player
        super().__init__(model, **kwargs)

    def _use_engines(self) -> None:
        engine = ReplayEngine(self)
        self._engine_spec = engine
        self._async_engine_spec = ScriptedAsyncEngine(engine)


@dataclass
class LmConfig:
    """How a worker builds its LMs (the ``LmConfig`` message of its ``WorkerConfig``).

    ``kind`` is ``"scripted"`` (the default: the offline scripted LM, whose answers, rules and
    delay apply), ``"model"`` (``model`` is any model string ``dspy.LM`` accepts) or
    ``"openai"`` (an OpenAI-compatible endpoint at ``base_url``, reached through
    ``dspy.LM("openai/<model>", api_base=base_url)`` with the key from the environment variable
    ``api_key_env``, the placeholder :data:`NO_API_KEY` when none is named). ``model`` is the model of calls that bind
    none; ``settings`` are default request settings (and, for a real LM, any other keyword
    argument of ``dspy.LM``).
    """

    kind: str = "scripted"
    model: str = "scripted"
    answers: list[dict[str, str]] = field(default_factory=list)
    rules: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    delay_ms: int = 0
    base_url: str = ""
    api_key_env: str = ""
    timeout_ms: int = 0
    max_retries: int = 3
    retry_backoff_ms: int = 0
    max_backoff_ms: int = 0
    #: When set, every request and reply is appended to this file (see :mod:`.tape`).
    record_path: str = ""
    #: When set, every request is answered from this file (see :mod:`.tape`).
    replay_path: str = ""
    #: The response cache (``LmConfig::cache`` in Rust): 0 entries and no directory is off
    #: (the default), entries only is memory, a directory is disk.
    cache_entries: int = 0
    cache_dir: str = ""
    #: What of each call's LM traffic goes back in its ``LmCall``s (``LmConfig::capture_messages``
    #: in Rust): nothing when None (the default).
    capture: Capture | None = None

    @classmethod
    def from_proto(cls, message: pb.LmConfig) -> LmConfig:
        """The configuration a worker received; ``ValueError`` if it is unusable."""
        config = cls._kind_from_proto(message)
        config.record_path = message.record_path
        config.replay_path = message.replay_path
        if message.HasField("capture"):
            config.capture = Capture(message.capture.max_calls, message.capture.max_bytes)
        return config

    @classmethod
    def _kind_from_proto(cls, message: pb.LmConfig) -> LmConfig:
        from ..values import from_config_value

        kind = message.WhichOneof("kind")
        entries, cache_dir = message.cache.memory_entries, message.cache.disk_dir
        if entries > LIMITS["MAX_LM_CACHE_ENTRIES"]:
            raise InvalidValueError(
                f"a memory cache of {entries} entries is over the limit of "
                f"{LIMITS['MAX_LM_CACHE_ENTRIES']} (MAX_LM_CACHE_ENTRIES)"
            )
        if kind is None:
            return cls(cache_entries=entries, cache_dir=cache_dir)
        if kind == "scripted":
            s = message.scripted
            if s.delay_ms > LIMITS["MAX_SCRIPTED_DELAY_MS"]:
                raise InvalidValueError(
                    f"the scripted LM's delay of {s.delay_ms} ms is over the limit of "
                    f"{LIMITS['MAX_SCRIPTED_DELAY_MS']} ms (MAX_SCRIPTED_DELAY)"
                )
            return cls(
                kind="scripted",
                model=s.default_model or "scripted",
                answers=[dict(a.fields) for a in s.answers],
                rules=[(r.needle, dict(r.fields)) for r in s.rules],
                settings={k: from_config_value(v) for k, v in s.settings.items()},
                delay_ms=s.delay_ms,
                cache_entries=entries,
                cache_dir=cache_dir,
            )
        if kind == "openai":
            o = message.openai
            if not o.base_url or not o.model:
                raise InvalidValueError("an OpenAI-compatible LM needs a base_url and a model")
            return cls(
                kind="openai",
                model=o.model,
                settings={k: from_config_value(v) for k, v in o.settings.items()},
                base_url=o.base_url,
                api_key_env=o.api_key_env,
                timeout_ms=o.timeout_ms,
                max_retries=o.max_retries,
                retry_backoff_ms=o.retry_backoff_ms,
                max_backoff_ms=o.max_backoff_ms,
                cache_entries=entries,
                cache_dir=cache_dir,
            )
        m = message.model
        if not m.model:
            raise InvalidValueError("a model LM needs a model string (like 'openai/gpt-4o-mini')")
        return cls(
            kind="model", model=m.model, settings={k: from_config_value(v) for k, v in m.settings.items()},
            cache_entries=entries,
            cache_dir=cache_dir,
        )

    def to_proto(self) -> pb.LmConfig:
        """The message a supervisor sends (used by tests and benchmarks that start a worker)."""
        from ..values import to_config_value

        message = self._kind_to_proto()
        message.record_path = self.record_path
        message.replay_path = self.replay_path
        if self.capture is not None:
            message.capture.CopyFrom(pb.LmCapture(max_calls=self.capture.max_calls, max_bytes=self.capture.max_bytes))
        return message

    def _kind_to_proto(self) -> pb.LmConfig:
        from ..values import to_config_value

        settings = {k: to_config_value(v, key=k) for k, v in self.settings.items()}
        cache = pb.LmCache(memory_entries=self.cache_entries, disk_dir=self.cache_dir)
        if self.kind == "model":
            return pb.LmConfig(model=pb.ModelLm(model=self.model, settings=settings), cache=cache)
        if self.kind == "openai":
            return pb.LmConfig(
                cache=cache,
                openai=pb.OpenAiLm(
                    base_url=self.base_url,
                    model=self.model,
                    api_key_env=self.api_key_env,
                    settings=settings,
                    timeout_ms=self.timeout_ms,
                    max_retries=self.max_retries,
                    retry_backoff_ms=self.retry_backoff_ms,
                    max_backoff_ms=self.max_backoff_ms,
                )
            )
        return pb.LmConfig(
            cache=cache,
            scripted=pb.ScriptedLm(
                default_model=self.model,
                answers=[pb.ScriptedAnswer(fields=a) for a in self.answers],
                rules=[pb.ScriptedRule(needle=n, fields=f) for n, f in self.rules],
                settings=settings,
                delay_ms=self.delay_ms,
            )
        )


class LmFactory:
    """Builds the LMs of a worker: one per model name, sharing one script across every scripted
    LM, and per-call copies of them."""

    def __init__(self, config: LmConfig) -> None:
        self.config = config
        self._cache = bool(config.cache_entries or config.cache_dir)
        self._script = Script(deque(config.answers), list(config.rules))
        self._lms: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._engines: tuple[Any, Any] | None = None
        self._engines_lock = threading.Lock()
        self._recorder = Recorder(config.record_path) if config.record_path else None
        self._player = Player(config.replay_path) if config.replay_path else None

    def build(self, model: str | None = None) -> Any:
        """A fresh LM for `model` (the configured default when None), with its own history."""
        name = model or self.config.model
        if self._player is not None:
            return ReplayLM(name, self._player, **self.config.settings)
        if self.config.kind == "scripted":
            return ScriptedLM(name, script=self._script, delay_ms=self.config.delay_ms, **self.config.settings)
        if self.config.kind == "openai":
            engine, async_engine = self._endpoint_engines()
            # The engines apply the timeout and retry policy: DSPy's own retries are off.
            lm = dspy.LM(
                f"openai/{name}",
                engine=engine,
                async_engine=async_engine,
                cache=self._cache,
                **{"num_retries": 0, **self.config.settings},
            )
            setattr(lm, MODEL_PREFIX_ATTR, "openai/")
            return lm
        return dspy.LM(name, cache=self._cache, **self.config.settings)

    def _endpoint_engines(self) -> tuple[Any, Any]:
        """The engines of the configured OpenAI-compatible endpoint, shared by its LMs."""
        with self._engines_lock:
            if self._engines is None:
                c = self.config
                # DSPy's OpenAI engine refuses an empty credential: without a named key variable
                # the endpoint gets this placeholder (a local server ignores it).
                key = NO_API_KEY
                if c.api_key_env:
                    if c.api_key_env not in os.environ:
                        raise InvalidValueError(f"the API key variable `{c.api_key_env}` (api_key_env) is not set")
                    key = os.environ[c.api_key_env]
                policy = RetryPolicy(
                    max_retries=c.max_retries,
                    backoff=c.retry_backoff_ms / 1000 if c.retry_backoff_ms else DEFAULT_RETRY_BACKOFF,
                    max_backoff=c.max_backoff_ms / 1000 if c.max_backoff_ms else DEFAULT_MAX_BACKOFF,
                )
                timeout = c.timeout_ms / 1000 if c.timeout_ms else DEFAULT_TIMEOUT
                self._engines = endpoint_engines(c.base_url, key, timeout, policy)
            return self._engines

    def lm(self, model: str | None = None) -> Any:
        """The worker's LM for `model`, built once and shared by every call."""
        name = model or self.config.model
        lm = self._lms.get(name)
        if lm is None:
            with self._lock:
                lm = self._lms.get(name)
                if lm is None:
                    lm = self._lms[name] = self.build(name)
        return lm

    def for_call(self, model: str | None, settings: Mapping[str, Any]) -> Any:
        """The LM of one call: a copy of the LM for `model` with `settings`, which keeps the
        history of the call's requests only (see :func:`~dspex_bridge.binding.lm_for_call`)."""
        copied = lm_for_call(self.lm(model), settings, own_history=True)
        copied._tape_model = model
        if self._recorder is not None:
            copied._on_request = self._record
        return copied

    def _record(self, lm: Any, entry: dict[str, Any]) -> None:
        """Appends one request of a per-call LM and its reply to the recording."""
        assert self._recorder is not None
        usage = entry.get("usage") or {}
        reply: dict[str, Any] = {"text": entry_reply(entry)}
        for key in ("prompt_tokens", "completion_tokens"):
            reply[key] = usage.get(key) if isinstance(usage.get(key), int) else None
        request = recorded_request(lm._tape_model, entry_messages(entry), lm._call_settings)
        self._recorder.append(request, reply)


def configure_cache(config: LmConfig) -> None:
    """Sets DSPy's response cache from the configuration, before any LM call: off (neither
    tier), memory (``cache_entries`` replies) or disk (under ``cache_dir``/``dspy``). DSPy
    builds its default cache, on disk in ``~/.dspy_cache``, only when nothing configured one
    first: this does, so a worker never writes there."""
    dspy.configure_cache(
        enable_disk_cache=bool(config.cache_dir),
        enable_memory_cache=config.cache_entries > 0,
        disk_cache_dir=os.path.join(config.cache_dir, "dspy") if config.cache_dir else None,
        memory_max_entries=max(config.cache_entries, 1),
    )


def build_lm(config: LmConfig, model: str | None = None) -> Any:
    """One LM from a config (a convenience for scripts and tests)."""
    return LmFactory(config).build(model)
