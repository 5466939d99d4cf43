"""Python's view of the contract agrees with the Rust side's: ``contract.json`` is generated
from the Rust constants (a Rust test fails when it is stale), and these tests check that what
the Python package does matches it: the known DSPy modules, the LM parameters, the limits and
names it uses, the error kinds it maps."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from dspex_bridge import contract
from dspex_bridge._proto.dspex.v1 import bridge_pb2 as pb
from dspex_bridge.binding import LM_SETTINGS, PARAMS, ParamUse
from dspex_bridge.client import session
from dspex_bridge.client.dspy_integration import ModuleVariableResolver
from dspex_bridge.errors import ReadOnlyError, VersionNotFoundError, error_kind, kind_name, map_rpc_error
from dspex_bridge.worker.lm import LmConfig
from dspex_bridge.worker.module_service import BUILTIN_MODULES


def test_the_worker_knows_exactly_the_contracts_modules() -> None:
    assert set(BUILTIN_MODULES) == set(contract.MODULES)
    # The variable-aware variants for Python users cover the same table.
    assert set(ModuleVariableResolver().known()) == set(contract.MODULES)


def test_the_lm_settings_a_binding_carries_are_the_contracts() -> None:
    assert LM_SETTINGS == {"temperature": float, "max_tokens": int, "top_p": float, "n": int}
    for module, entry in contract.MODULES.items():
        for name, spec in entry["params"].items():
            assert PARAMS.use(module, name) == ParamUse(spec["applies"]), (module, name)
            assert (spec["applies"] == "lm_setting") == (name in LM_SETTINGS), (module, name)
    # Every LM setting is reported per LM request, in a field of its own.
    assert set(LM_SETTINGS) <= set(pb.LmCall.DESCRIPTOR.fields_by_name)


def test_the_names_and_limits_python_uses_come_from_the_contract() -> None:
    assert session.TOKEN_METADATA == contract.WIRE["TOKEN_METADATA"] == "x-dspex-token"
    assert session.MAX_RESPONSE_BYTES == contract.LIMITS["MAX_RESPONSE_BYTES"]
    assert (session.ENV_STORE_ADDR, session.ENV_SESSION_ID, session.ENV_SESSION_TOKEN) == (
        "DSPEX_STORE_ADDR",
        "DSPEX_SESSION_ID",
        "DSPEX_SESSION_TOKEN",
    )
    assert contract.READY_PREFIX.endswith(" ")
    # A binary trailer: a Python type name may be any identifier, not only ASCII.
    assert contract.EXCEPTION_TYPE_METADATA == "x-dspex-exception-type-bin"
    assert all(isinstance(v, int) and v > 0 for v in contract.LIMITS.values())


def test_echoes_and_messages_are_bounded_like_the_rust_side() -> None:
    limit = contract.LIMITS["MAX_ECHO_CHARS"]
    assert contract.echo("é" * limit) == repr("é" * limit)
    assert contract.echo("é" * (limit + 1)) == f"{'é' * limit!r}... ({2 * (limit + 1)} bytes)"
    bound = contract.LIMITS["MAX_STATUS_MESSAGE_BYTES"]
    assert contract.bounded_message("m" * bound) == "m" * bound
    cut = contract.bounded_message("é" * bound)
    assert len(cut.encode()) <= bound and cut.endswith("... (message cut)")


class _Error(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, kind: str) -> None:
        self._code, self._kind = code, kind

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return "message"

    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:
        return ((contract.ERROR_METADATA, self._kind),)


@pytest.mark.parametrize(
    ("kind", "code", "expected"),
    [
        ("ERROR_KIND_TYPE", grpc.StatusCode.INVALID_ARGUMENT, TypeError),
        ("ERROR_KIND_CONSTRAINT", grpc.StatusCode.INVALID_ARGUMENT, ValueError),
        ("ERROR_KIND_LIMIT", grpc.StatusCode.RESOURCE_EXHAUSTED, ValueError),
        ("ERROR_KIND_NOT_FOUND", grpc.StatusCode.NOT_FOUND, KeyError),
        ("ERROR_KIND_PERMISSION_DENIED", grpc.StatusCode.PERMISSION_DENIED, PermissionError),
    ],
)
def test_error_kinds_are_spelled_through_the_proto_enum(kind: str, code: grpc.StatusCode, expected: type) -> None:
    assert pb.ErrorKind.Name(error_kind(kind)) == kind
    exc = map_rpc_error(_Error(code, kind))
    assert isinstance(exc, expected)
    assert exc.kind == kind.removeprefix("ERROR_KIND_").lower()
    assert error_kind("not a kind") == pb.ERROR_KIND_UNSPECIFIED and kind_name(pb.ERROR_KIND_UNSPECIFIED) is None


def test_every_error_kind_of_the_proto_maps_to_a_dspex_error_with_its_short_name() -> None:
    for name, number in pb.ErrorKind.items():
        if number == pb.ERROR_KIND_UNSPECIFIED:
            continue
        exc = map_rpc_error(_Error(grpc.StatusCode.UNKNOWN, name))
        assert exc.kind == name.removeprefix("ERROR_KIND_").lower(), name
    read_only = map_rpc_error(_Error(grpc.StatusCode.PERMISSION_DENIED, "ERROR_KIND_READ_ONLY"))
    assert isinstance(read_only, ReadOnlyError)
    gone = map_rpc_error(_Error(grpc.StatusCode.NOT_FOUND, "ERROR_KIND_VERSION_NOT_FOUND"))
    assert isinstance(gone, VersionNotFoundError)


def test_the_lm_configuration_round_trips_through_its_message() -> None:
    config = LmConfig(
        model="gpt-4o-mini",
        answers=[{"answer": "42"}],
        rules=[("Italy", {"answer": "Rome"}), ("Spain", {"answer": "Madrid"})],
        settings={"temperature": 0.2, "max_tokens": 64, "cache": False, "stop": ["\n"]},
        delay_ms=5,
    )
    assert LmConfig.from_proto(config.to_proto()) == config
    model = LmConfig(kind="model", model="openai/gpt-4o-mini", settings={"api_base": "http://127.0.0.1:1/v1"})
    assert LmConfig.from_proto(model.to_proto()) == model
    assert LmConfig.from_proto(pb.LmConfig()) == LmConfig()
    endpoint = LmConfig(
        kind="openai",
        model="gpt-4o-mini",
        base_url="http://127.0.0.1:1/v1",
        api_key_env="MY_KEY",
        timeout_ms=1500,
        max_retries=2,
        settings={"temperature": 0.5},
    )
    assert LmConfig.from_proto(endpoint.to_proto()) == endpoint
    with pytest.raises(ValueError, match="base_url and a model"):
        LmConfig.from_proto(pb.LmConfig(openai=pb.OpenAiLm(model="m")))
    limit = contract.LIMITS["MAX_SCRIPTED_DELAY_MS"]
    assert LmConfig.from_proto(LmConfig(delay_ms=limit).to_proto()).delay_ms == limit
    with pytest.raises(ValueError, match="MAX_SCRIPTED_DELAY"):
        LmConfig.from_proto(LmConfig(delay_ms=limit + 1).to_proto())
    with pytest.raises(ValueError, match="needs a model string"):
        LmConfig.from_proto(pb.LmConfig(model=pb.ModelLm()))


def test_the_cache_setting_round_trips_within_its_limit() -> None:
    limit = contract.LIMITS["MAX_LM_CACHE_ENTRIES"]
    memory = LmConfig(cache_entries=limit)
    assert LmConfig.from_proto(memory.to_proto()) == memory
    disk = LmConfig(kind="openai", model="m", base_url="http://127.0.0.1:1/v1", cache_dir="/tmp/lm-cache")
    assert LmConfig.from_proto(disk.to_proto()) == disk
    with pytest.raises(ValueError, match="MAX_LM_CACHE_ENTRIES"):
        LmConfig.from_proto(LmConfig(cache_entries=limit + 1).to_proto())


def test_the_worker_sets_dspys_cache_from_the_configuration(tmp_path: Any) -> None:
    import dspy

    from dspex_bridge.worker.lm import configure_cache

    before = dspy.cache
    try:
        configure_cache(LmConfig())
        assert not dspy.cache.enable_disk_cache and not dspy.cache.enable_memory_cache
        configure_cache(LmConfig(cache_entries=3))
        assert dspy.cache.enable_memory_cache and not dspy.cache.enable_disk_cache
        configure_cache(LmConfig(cache_dir=str(tmp_path)))
        assert dspy.cache.enable_disk_cache and not dspy.cache.enable_memory_cache
        assert dspy.cache.disk_cache_dir == str(tmp_path / "dspy")
    finally:
        dspy.cache = before
