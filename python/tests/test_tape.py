"""The worker's lane of LM record and replay: a call of a real DSPy module is recorded as the
program made it and answered from the recording, requests held several times come back in
order, a request never recorded fails naming the file and the request, and bad files fail
naming the line; every bound holds at and over its limit."""

from __future__ import annotations

import json
from pathlib import Path

import dspy
import pytest

from dspex_bridge.contract import LIMITS
from dspex_bridge.errors import InvalidValueError
from dspex_bridge.worker.lm import LmConfig, LmFactory
from dspex_bridge.worker.tape import Player, Recorder, recorded_request


def ask(factory: LmFactory, question: str, temperature: float = 0.3) -> str:
    lm = factory.for_call(None, {"temperature": temperature})
    with dspy.context(lm=lm):
        answer: str = dspy.Predict("question -> answer")(question=question).answer
    return answer


def test_a_recorded_call_replays_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "lm.jsonl"
    recording = LmFactory(
        LmConfig(answers=[{"answer": "Paris"}, {"answer": "Rome"}], record_path=str(path))
    )
    assert ask(recording, "Capital of France?") == "Paris"
    assert ask(recording, "Capital of France?", temperature=0.9) == "Rome"
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["lane"] for line in lines] == ["python", "python"]
    assert lines[0]["request"]["model"] is None
    assert lines[0]["request"]["settings"] == {"temperature": 0.3}
    assert lines[1]["request"]["settings"] == {"temperature": 0.9}
    assert lines[0]["request"]["messages"][-1]["content"].startswith("[[ ## question ## ]]\nCapital of France?")
    assert isinstance(lines[0]["reply"]["prompt_tokens"], int)

    replaying = LmFactory(LmConfig(answers=[{"answer": "never used"}], replay_path=str(path)))
    assert ask(replaying, "Capital of France?", temperature=0.9) == "Rome"
    assert ask(replaying, "Capital of France?") == "Paris"
    with pytest.raises(Exception) as failed:
        ask(replaying, "Capital of Spain?")
    message = str(failed.value)
    assert str(path) in message and "holds no reply to the request" in message, message
    assert "temperature" in message


def test_equal_requests_get_their_replies_in_order_then_the_last(tmp_path: Path) -> None:
    path = tmp_path / "lm.jsonl"
    recorder = Recorder(str(path))
    request = recorded_request(None, [{"role": "user", "content": "q"}], {})
    for text in ("1", "2"):
        recorder.append(request, {"text": text})
    player = Player(str(path))
    assert [player.reply(request)["text"] for _ in range(3)] == ["1", "2", "2"]


def test_a_bad_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "lm.jsonl"
    good = json.dumps({"lane": "native", "request": {}, "reply": {"text": "x"}})
    path.write_text(f"{good}\n{good[:10]}")
    with pytest.raises(InvalidValueError, match=r"line 2: truncated"):
        Player(str(path))
    path.write_text(f"{good}\n\n{{\"lane\": 1}}\n")
    with pytest.raises(InvalidValueError, match=r"line 3: no recorded exchange"):
        Player(str(path))
    with pytest.raises(InvalidValueError, match=r"cannot read the LM recording"):
        Player(str(tmp_path / "missing.jsonl"))


def test_the_line_bound_holds_at_and_over_its_limit(tmp_path: Path) -> None:
    path = tmp_path / "lm.jsonl"
    limit = LIMITS["MAX_LM_TAPE_LINE_BYTES"]
    request = recorded_request(None, [], {})
    frame = len(json.dumps({"lane": "python", "request": request, "reply": {"text": ""}}).encode())
    recorder = Recorder(str(path))
    recorder.append(request, {"text": "x" * (limit - frame)})
    with pytest.raises(InvalidValueError, match="MAX_LM_TAPE_LINE_BYTES"):
        recorder.append(request, {"text": "x" * (limit - frame + 1)})
    assert len(Player(str(path)).reply(request)["text"]) == limit - frame
    path.write_bytes(path.read_bytes()[:-1] + b" \n")
    with pytest.raises(InvalidValueError, match=r"line 1: longer than"):
        Player(str(path))


def test_the_entry_and_size_bounds_hold_at_and_over_their_limits(tmp_path: Path) -> None:
    path = tmp_path / "lm.jsonl"
    line = json.dumps({"lane": "native", "request": {}, "reply": {"text": "x"}}) + "\n"
    entries = LIMITS["MAX_LM_TAPE_ENTRIES"]
    path.write_text(line * entries)
    Player(str(path))
    path.write_text(line * (entries + 1))
    with pytest.raises(InvalidValueError, match=rf"line {entries + 1}: more than"):
        Player(str(path))
    with path.open("wb") as f:
        f.truncate(LIMITS["MAX_LM_TAPE_BYTES"] + 1)
    with pytest.raises(InvalidValueError, match="MAX_LM_TAPE_BYTES"):
        Player(str(path))
