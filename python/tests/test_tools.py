"""The worker's Rust tools against the real Rust bridge server: a ``dspy.Tool`` built from a
``RustTool`` spec calls ``CallbackService`` with the session's token; its observation is the
tool's result, or ``error: ...`` for a tool the session does not have, a wrong token, or
arguments over the limit; Python tools import by dotted path or fail naming the path."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from rust_server import RustServer

from dspex_bridge._proto.dspex.v1 import bridge_pb2 as pb
from dspex_bridge.contract import LIMITS
from dspex_bridge.errors import ModuleImportError
from dspex_bridge.worker.tools import CallbackClient, build_tools, rust_tool


@pytest.fixture(scope="module")
def server() -> Iterator[RustServer]:
    server = RustServer.start()
    yield server
    server.stop()


def echo_spec(name: str = "echo") -> pb.RustTool:
    return pb.RustTool(
        name=name,
        description="Returns text.",
        arguments=[
            pb.ToolArgument(name="text", type="str", json_schema=json.dumps({"type": "string"}), required=True),
            pb.ToolArgument(
                name="with_max_tokens", type="bool", json_schema=json.dumps({"type": "boolean"}), required=False
            ),
        ],
    )


def test_a_rust_tool_answers_and_reads_the_context_s_variables(server: RustServer) -> None:
    client = CallbackClient(server.address, server.session_id, server.token)
    tool = rust_tool(echo_spec(), client, lambda: None)
    assert tool.name == "echo"
    assert tool.desc == "Returns text."
    assert tool.args["text"] == {"type": "string"}
    assert tool.args["with_max_tokens"] == {"type": "boolean", "default": None}
    assert tool(text="hello") == "hello"
    server.rust_set("max_tokens", 512)
    assert tool(text="hello", with_max_tokens=True) == "hello 512"


def test_failures_are_error_observations(server: RustServer) -> None:
    client = CallbackClient(server.address, server.session_id, server.token)
    unknown = rust_tool(echo_spec("not_registered"), client, lambda: None)
    observation = unknown(text="x")
    assert observation.startswith("error: session ") and "has no callable `not_registered`" in observation
    wrong_token = rust_tool(echo_spec(), CallbackClient(server.address, server.session_id, "0" * 64), lambda: None)
    assert wrong_token(text="x") == "error: invalid or expired session token"
    stale = rust_tool(echo_spec(), client, lambda: "no-such-call")
    assert "has no module call `no-such-call` in flight" in stale(text="x")
    # Arguments at and over the limit: `{"text": "..."}` takes 12 bytes besides the text.
    limit = LIMITS["MAX_CALLBACK_ARGUMENT_BYTES"]
    tool = rust_tool(echo_spec(), client, lambda: None)
    assert tool(text="a" * (limit - 12)) == "a" * (limit - 12)
    over = tool(text="a" * (limit - 11))
    assert over.startswith("error: the arguments of `echo` take") and "MAX_CALLBACK_ARGUMENT_BYTES" in over
    # The Rust side checks the arguments too.
    assert client.call("echo", {"text": 3}, "").error == "argument `text` of `echo` must be str, found 3"


def test_the_rust_side_alone_checks_a_rust_tool_s_arguments(server: RustServer) -> None:
    client = CallbackClient(server.address, server.session_id, server.token)
    tool = rust_tool(echo_spec(), client, lambda: None)
    # What DSPy's own check would refuse goes to the Rust side, whose refusal, naming the
    # argument and the rule, is the agent's observation.
    assert tool(text=3) == "error: argument `text` of `echo` must be str, found 3"
    assert tool(text="x", colour="red") == (
        "error: `echo` takes no argument `colour`; it takes `text`, `with_max_tokens`"
    )
    assert tool() == "error: `echo` needs argument `text` (str)"


def test_python_tools_import_by_path_or_fail_naming_it() -> None:
    (tool,) = build_tools([pb.ToolSpec(python="sample_modules.word_count")], None, lambda: None)
    assert tool(text="one two") == 2
    with pytest.raises(ModuleImportError, match="cannot import tool 'sample_modules.nope'"):
        build_tools([pb.ToolSpec(python="sample_modules.nope")], None, lambda: None)
    with pytest.raises(RuntimeError, match="no bridge server address"):
        build_tools([pb.ToolSpec(rust=echo_spec())], None, lambda: None)
