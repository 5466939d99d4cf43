"""The worker's lane of captured LM messages (``LmConfig::capture_messages``): a call's LM
requests carry their messages and reply only when the configuration captures them, the first
ones while they fit in the bounds the supervisor sent, the others marked left out; the bounds
travel in the configuration's message."""

from __future__ import annotations

import dspy

from dspex_bridge._proto.dspex.v1 import bridge_pb2 as pb
from dspex_bridge.worker.lm import Capture, LmConfig, LmFactory, lm_calls

#: Bounds that never stop a capture in these tests.
UNBOUNDED = Capture(max_calls=1_000, max_bytes=1_000_000)


def call_lm(questions: list[str]) -> object:
    """The per-call LM of one call that asked each question in turn, with a real DSPy Predict
    on the scripted LM."""
    lm = LmFactory(LmConfig(answers=[{"answer": f"answer {i}"} for i in range(len(questions))])).for_call(None, {})
    with dspy.context(lm=lm):
        for question in questions:
            dspy.Predict("question -> answer")(question=question)
    return lm


def sizes(calls: list[pb.LmCall]) -> list[int]:
    return [
        len(c.exchange.reply.encode()) + sum(len(m.role.encode()) + len(m.content.encode()) for m in c.exchange.messages)
        for c in calls
    ]


def test_nothing_is_captured_unless_asked() -> None:
    calls = lm_calls(call_lm(["Capital of France?"]), None)
    assert len(calls) == 1
    assert not calls[0].HasField("exchange")
    assert not calls[0].exchange_left_out
    assert LmConfig.from_proto(LmConfig().to_proto()).capture is None
    assert not LmConfig().to_proto().HasField("capture")


def test_a_captured_call_holds_the_messages_sent_and_the_reply() -> None:
    lm = call_lm(["Capital of France?"])
    (call,) = lm_calls(lm, UNBOUNDED)
    (entry,) = lm.call_history
    assert [(m.role, m.content) for m in call.exchange.messages] == [
        (m["role"], m["content"]) for m in entry["messages"]
    ]
    assert [m.role for m in call.exchange.messages] == ["system", "user"]
    assert call.exchange.messages[-1].content.startswith("[[ ## question ## ]]\nCapital of France?")
    assert call.exchange.reply == entry["outputs"][0]
    assert "answer 0" in call.exchange.reply
    assert not call.exchange_left_out


def test_the_bounds_travel_in_the_configuration() -> None:
    config = LmConfig(capture=Capture(max_calls=256, max_bytes=4 << 20))
    assert LmConfig.from_proto(config.to_proto()) == config
    assert config.to_proto().capture == pb.LmCapture(max_calls=256, max_bytes=4 << 20)


def test_calls_past_the_call_bound_are_left_out() -> None:
    lm = call_lm(["one?", "two?", "three?"])
    at = lm_calls(lm, Capture(max_calls=3, max_bytes=UNBOUNDED.max_bytes))
    assert [c.HasField("exchange") for c in at] == [True, True, True]
    over = lm_calls(lm, Capture(max_calls=2, max_bytes=UNBOUNDED.max_bytes))
    assert [c.HasField("exchange") for c in over] == [True, True, False]
    assert [c.exchange_left_out for c in over] == [False, False, True]
    # The call itself is reported: only its exchange is left out.
    assert over[2].model == at[2].model and over[2].prompt_tokens == at[2].prompt_tokens


def test_calls_past_the_byte_bound_are_left_out() -> None:
    lm = call_lm(["one?", "two, with a longer question?"])
    first, second = sizes(lm_calls(lm, UNBOUNDED))
    at = lm_calls(lm, Capture(max_calls=10, max_bytes=first + second))
    assert [c.HasField("exchange") for c in at] == [True, True]
    over = lm_calls(lm, Capture(max_calls=10, max_bytes=first + second - 1))
    assert [c.HasField("exchange") for c in over] == [True, False]
    assert [c.exchange_left_out for c in over] == [False, True]
    # Sizes are UTF-8 bytes, as the Rust side counts them.
    accented = call_lm(["Où est Zürich ?"])
    (size,) = sizes(lm_calls(accented, UNBOUNDED))
    assert lm_calls(accented, Capture(max_calls=1, max_bytes=size))[0].HasField("exchange")
    assert lm_calls(accented, Capture(max_calls=1, max_bytes=size - 1))[0].exchange_left_out
