"""Streamed calls (``ExecuteModuleStream``): a module run through DSPy's ``streamify`` with a
``StreamListener`` for each streamed output field, its chunks handed over as they come.

Streamed fields are the declared ``str`` outputs and DSPy's ``reasoning``. Each is listened to
on the last predictor of the module that outputs it (the one that writes the final value:
``ChainOfThought``'s, ``ReAct``'s extraction). The listeners' text is checked against the final
prediction: the chunks of a field, concatenated, equal its final text. What a listener did not
stream (an LM that does not stream, such as the scripted one, gives a whole reply at once; a
cached reply) comes as one chunk after the others, and chunks that do not lead to the final
text are an error naming the field.

The program runs in a worker thread of an event loop of the call's own, run by a thread of its
own (:class:`CallStream`): the loop is what ``streamify`` and DSPy's streaming LM requests
need. The worker thread is never abandoned: the loop, and with it the call, ends only once the
module's code returned (a cancelled call returns as soon as its LM request's socket is shut
down), so a call's place in the worker is free only when nothing of it runs any more.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import queue
import threading
from collections.abc import Callable, Generator, Mapping
from typing import Any, Generic, TypeVar, cast

import anyio
import dspy
from dspy.streaming import StreamListener, StreamResponse

from .fields import FieldType

__all__ = ["REASONING", "CallStream", "ChunkMismatchError", "run_streamed", "streamed_fields"]

#: DSPy's extra output of a chain of thought, streamed like a ``str`` output.
REASONING = "reasoning"

#: Emits text of an output field: ``emit(field, text)``.
Emit = Callable[[str, str], None]


class ChunkMismatchError(ValueError):
    """The chunks streamed for a field do not lead to its final text."""


def streamed_fields(outputs: Mapping[str, FieldType]) -> list[str]:
    """The fields of a call whose text streams: the ``str`` outputs, then ``reasoning``."""
    fields = [name for name, ftype in outputs.items() if ftype.kind == "str"]
    if REASONING not in outputs:
        fields.append(REASONING)
    return fields


def _listeners(module: dspy.Module, fields: list[str]) -> list[StreamListener]:
    """A listener per field some predictor of `module` outputs, on the last such predictor.
    A listener knows the markers of DSPy's own adapters by class name: the adapter in effect
    (the worker's, a subclass of ``ChatAdapter``) gets those of the adapter it derives from."""
    last: dict[str, tuple[str, Any]] = {}
    for name, predictor in module.named_predictors():
        for field in predictor.signature.output_fields:
            last[field] = (name, predictor)
    adapter = type(dspy.settings.adapter or dspy.ChatAdapter())
    listeners = []
    for field in fields:
        if field not in last:
            continue
        listener = StreamListener(signature_field_name=field, predict=last[field][1], predict_name=last[field][0])
        known = listener.adapter_identifiers
        base = next((cls.__name__ for cls in adapter.__mro__ if cls.__name__ in known), None)
        if base is not None:
            known.setdefault(adapter.__name__, known[base])
        listeners.append(listener)
    return listeners


class _Streamed(dspy.Module):  # type: ignore[misc]
    """The call as ``streamify`` runs it: `run` (the module under the call's LM and arguments)
    in a worker thread of the stream's loop, which waits for it (never abandons it)."""

    def __init__(self, module: dspy.Module, run: Callable[..., Any]) -> None:
        super().__init__()
        self.module = module
        self._run = run

    async def acall(self, *args: Any, **inputs: Any) -> Any:
        return await anyio.to_thread.run_sync(functools.partial(self._run, *args, **inputs))


def run_streamed(
    module: dspy.Module, run: Callable[..., Any], inputs: Mapping[str, Any], fields: list[str], emit: Emit
) -> Any:
    """Runs `run(**inputs)` (a call of `module`) through ``streamify``, emitting the text of
    `fields` as the LM writes it, then what of each field did not stream; returns the
    prediction. Runs an event loop: call it from a thread without one."""
    listeners = _listeners(module, fields)
    streamer = dspy.streamify(
        _Streamed(module, run),
        stream_listeners=listeners,
        include_final_prediction_in_output_stream=True,
        is_async_program=True,
    )
    sent: dict[str, list[str]] = {field: [] for field in fields}

    async def pump() -> Any:
        prediction = None
        async for item in streamer(**inputs):
            if isinstance(item, StreamResponse):
                if item.chunk and item.signature_field_name in sent:
                    sent[item.signature_field_name].append(item.chunk)
                    emit(item.signature_field_name, item.chunk)
            elif isinstance(item, dspy.Prediction):
                prediction = item
        return prediction

    prediction = asyncio.run(pump())
    if prediction is None:
        raise RuntimeError("the streamed module ended without a prediction")
    # In the prediction's order (`reasoning` first).
    for field in [name for name in prediction.keys() if name in sent]:
        final = prediction.get(field)
        if not isinstance(final, str):
            continue
        streamed = "".join(sent[field])
        if not final.startswith(streamed):
            raise ChunkMismatchError(
                f"the text streamed for output `{field}` does not lead to its final value "
                f"(streamed {streamed[:64]!r}, final {final[:64]!r})"
            )
        if len(final) > len(streamed):
            emit(field, final[len(streamed) :])
    return prediction


#: What :class:`CallStream` yields: an item the call emitted, or the call's end.
_END = object()

_R = TypeVar("_R")


class CallStream(Generic[_R]):
    """Runs `body(emit)` in a thread of its own (in a copy of the caller's context) and yields
    what it emits as it does, then returns what the body returned (or raises what it raised).
    Closing the iterator early calls `cancel` and waits for the body to return."""

    def __init__(self, body: Callable[[Callable[[Any], None]], _R], cancel: Callable[[], None]) -> None:
        self._body = body
        self._cancel = cancel
        self._items: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._result: _R | None = None
        self._error: BaseException | None = None
        context = contextvars.copy_context()
        self._thread = threading.Thread(target=context.run, args=(self._main,), name="dspex-stream", daemon=True)

    def _main(self) -> None:
        try:
            self._result = self._body(self._items.put)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            self._error = e
        finally:
            self._items.put(_END)

    def run(self) -> Generator[Any, None, _R]:
        """The emitted items; the generator's return value is the body's."""
        self._thread.start()
        ended = False
        try:
            while True:
                item = self._items.get()
                if item is _END:
                    ended = True
                    break
                yield item
        finally:
            if not ended:
                self._cancel()
            self._thread.join()
        if self._error is not None:
            raise self._error
        return cast(_R, self._result)
