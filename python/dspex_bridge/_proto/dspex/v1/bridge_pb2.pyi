import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class VariableType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VARIABLE_TYPE_UNSPECIFIED: _ClassVar[VariableType]
    VARIABLE_TYPE_FLOAT: _ClassVar[VariableType]
    VARIABLE_TYPE_INTEGER: _ClassVar[VariableType]
    VARIABLE_TYPE_STRING: _ClassVar[VariableType]
    VARIABLE_TYPE_BOOLEAN: _ClassVar[VariableType]
    VARIABLE_TYPE_CHOICE: _ClassVar[VariableType]
    VARIABLE_TYPE_MODULE: _ClassVar[VariableType]
    VARIABLE_TYPE_EMBEDDING: _ClassVar[VariableType]

class Source(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SOURCE_UNSPECIFIED: _ClassVar[Source]
    SOURCE_RUST: _ClassVar[Source]
    SOURCE_PYTHON: _ClassVar[Source]

class ErrorKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ERROR_KIND_UNSPECIFIED: _ClassVar[ErrorKind]
    ERROR_KIND_NOT_FOUND: _ClassVar[ErrorKind]
    ERROR_KIND_ALREADY_EXISTS: _ClassVar[ErrorKind]
    ERROR_KIND_DUPLICATE_WRITE: _ClassVar[ErrorKind]
    ERROR_KIND_TYPE: _ClassVar[ErrorKind]
    ERROR_KIND_CONSTRAINT: _ClassVar[ErrorKind]
    ERROR_KIND_SPEC: _ClassVar[ErrorKind]
    ERROR_KIND_PATTERN: _ClassVar[ErrorKind]
    ERROR_KIND_INVALID_REQUEST: _ClassVar[ErrorKind]
    ERROR_KIND_LIMIT: _ClassVar[ErrorKind]
    ERROR_KIND_CONFLICT: _ClassVar[ErrorKind]
    ERROR_KIND_UNAUTHENTICATED: _ClassVar[ErrorKind]
    ERROR_KIND_PERMISSION_DENIED: _ClassVar[ErrorKind]
    ERROR_KIND_SESSION_OWNED: _ClassVar[ErrorKind]
    ERROR_KIND_INTERNAL: _ClassVar[ErrorKind]
    ERROR_KIND_PYTHON: _ClassVar[ErrorKind]
    ERROR_KIND_OUTPUT_TYPE: _ClassVar[ErrorKind]
    ERROR_KIND_INPUT_TYPE: _ClassVar[ErrorKind]
    ERROR_KIND_MODULE: _ClassVar[ErrorKind]
    ERROR_KIND_READ_ONLY: _ClassVar[ErrorKind]
    ERROR_KIND_VERSION_NOT_FOUND: _ClassVar[ErrorKind]
    ERROR_KIND_UNAVAILABLE: _ClassVar[ErrorKind]

class UpdateKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    UPDATE_KIND_UNSPECIFIED: _ClassVar[UpdateKind]
    UPDATE_KIND_INITIAL: _ClassVar[UpdateKind]
    UPDATE_KIND_REGISTERED: _ClassVar[UpdateKind]
    UPDATE_KIND_UPDATED: _ClassVar[UpdateKind]
    UPDATE_KIND_DELETED: _ClassVar[UpdateKind]
    UPDATE_KIND_LAGGED: _ClassVar[UpdateKind]
VARIABLE_TYPE_UNSPECIFIED: VariableType
VARIABLE_TYPE_FLOAT: VariableType
VARIABLE_TYPE_INTEGER: VariableType
VARIABLE_TYPE_STRING: VariableType
VARIABLE_TYPE_BOOLEAN: VariableType
VARIABLE_TYPE_CHOICE: VariableType
VARIABLE_TYPE_MODULE: VariableType
VARIABLE_TYPE_EMBEDDING: VariableType
SOURCE_UNSPECIFIED: Source
SOURCE_RUST: Source
SOURCE_PYTHON: Source
ERROR_KIND_UNSPECIFIED: ErrorKind
ERROR_KIND_NOT_FOUND: ErrorKind
ERROR_KIND_ALREADY_EXISTS: ErrorKind
ERROR_KIND_DUPLICATE_WRITE: ErrorKind
ERROR_KIND_TYPE: ErrorKind
ERROR_KIND_CONSTRAINT: ErrorKind
ERROR_KIND_SPEC: ErrorKind
ERROR_KIND_PATTERN: ErrorKind
ERROR_KIND_INVALID_REQUEST: ErrorKind
ERROR_KIND_LIMIT: ErrorKind
ERROR_KIND_CONFLICT: ErrorKind
ERROR_KIND_UNAUTHENTICATED: ErrorKind
ERROR_KIND_PERMISSION_DENIED: ErrorKind
ERROR_KIND_SESSION_OWNED: ErrorKind
ERROR_KIND_INTERNAL: ErrorKind
ERROR_KIND_PYTHON: ErrorKind
ERROR_KIND_OUTPUT_TYPE: ErrorKind
ERROR_KIND_INPUT_TYPE: ErrorKind
ERROR_KIND_MODULE: ErrorKind
ERROR_KIND_READ_ONLY: ErrorKind
ERROR_KIND_VERSION_NOT_FOUND: ErrorKind
ERROR_KIND_UNAVAILABLE: ErrorKind
UPDATE_KIND_UNSPECIFIED: UpdateKind
UPDATE_KIND_INITIAL: UpdateKind
UPDATE_KIND_REGISTERED: UpdateKind
UPDATE_KIND_UPDATED: UpdateKind
UPDATE_KIND_DELETED: UpdateKind
UPDATE_KIND_LAGGED: UpdateKind

class Value(_message.Message):
    __slots__ = ("float_value", "integer_value", "string_value", "boolean_value", "embedding_value")
    FLOAT_VALUE_FIELD_NUMBER: _ClassVar[int]
    INTEGER_VALUE_FIELD_NUMBER: _ClassVar[int]
    STRING_VALUE_FIELD_NUMBER: _ClassVar[int]
    BOOLEAN_VALUE_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_VALUE_FIELD_NUMBER: _ClassVar[int]
    float_value: float
    integer_value: int
    string_value: str
    boolean_value: bool
    embedding_value: Embedding
    def __init__(self, float_value: _Optional[float] = ..., integer_value: _Optional[int] = ..., string_value: _Optional[str] = ..., boolean_value: _Optional[bool] = ..., embedding_value: _Optional[_Union[Embedding, _Mapping]] = ...) -> None: ...

class Embedding(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, values: _Optional[_Iterable[float]] = ...) -> None: ...

class Number(_message.Message):
    __slots__ = ("integer", "float")
    INTEGER_FIELD_NUMBER: _ClassVar[int]
    FLOAT_FIELD_NUMBER: _ClassVar[int]
    integer: int
    float: float
    def __init__(self, integer: _Optional[int] = ..., float: _Optional[float] = ...) -> None: ...

class StringList(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, values: _Optional[_Iterable[str]] = ...) -> None: ...

class Constraints(_message.Message):
    __slots__ = ("min", "max", "min_length", "max_length", "pattern", "choices", "dimensions")
    MIN_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    MIN_LENGTH_FIELD_NUMBER: _ClassVar[int]
    MAX_LENGTH_FIELD_NUMBER: _ClassVar[int]
    PATTERN_FIELD_NUMBER: _ClassVar[int]
    CHOICES_FIELD_NUMBER: _ClassVar[int]
    DIMENSIONS_FIELD_NUMBER: _ClassVar[int]
    min: Number
    max: Number
    min_length: int
    max_length: int
    pattern: str
    choices: StringList
    dimensions: int
    def __init__(self, min: _Optional[_Union[Number, _Mapping]] = ..., max: _Optional[_Union[Number, _Mapping]] = ..., min_length: _Optional[int] = ..., max_length: _Optional[int] = ..., pattern: _Optional[str] = ..., choices: _Optional[_Union[StringList, _Mapping]] = ..., dimensions: _Optional[int] = ...) -> None: ...

class Variable(_message.Message):
    __slots__ = ("id", "name", "type", "value", "constraints", "description", "metadata", "version", "created_at", "updated_at", "source", "readonly")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    CONSTRAINTS_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    READONLY_FIELD_NUMBER: _ClassVar[int]
    id: int
    name: str
    type: VariableType
    value: Value
    constraints: Constraints
    description: str
    metadata: _containers.ScalarMap[str, str]
    version: int
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    source: Source
    readonly: bool
    def __init__(self, id: _Optional[int] = ..., name: _Optional[str] = ..., type: _Optional[_Union[VariableType, str]] = ..., value: _Optional[_Union[Value, _Mapping]] = ..., constraints: _Optional[_Union[Constraints, _Mapping]] = ..., description: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ..., version: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., source: _Optional[_Union[Source, str]] = ..., readonly: _Optional[bool] = ...) -> None: ...

class PingRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PingResponse(_message.Message):
    __slots__ = ("server_version",)
    SERVER_VERSION_FIELD_NUMBER: _ClassVar[int]
    server_version: str
    def __init__(self, server_version: _Optional[str] = ...) -> None: ...

class InitializeSessionRequest(_message.Message):
    __slots__ = ("ttl_seconds", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    ttl_seconds: int
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, ttl_seconds: _Optional[int] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class InitializeSessionResponse(_message.Message):
    __slots__ = ("session_id", "token", "ttl_seconds")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    token: str
    ttl_seconds: int
    def __init__(self, session_id: _Optional[str] = ..., token: _Optional[str] = ..., ttl_seconds: _Optional[int] = ...) -> None: ...

class CleanupSessionRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class CleanupSessionResponse(_message.Message):
    __slots__ = ("variables_dropped",)
    VARIABLES_DROPPED_FIELD_NUMBER: _ClassVar[int]
    variables_dropped: int
    def __init__(self, variables_dropped: _Optional[int] = ...) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class HeartbeatResponse(_message.Message):
    __slots__ = ("expires_at",)
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    expires_at: _timestamp_pb2.Timestamp
    def __init__(self, expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RegisterVariableRequest(_message.Message):
    __slots__ = ("session_id", "name", "type", "initial", "constraints", "description", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    INITIAL_FIELD_NUMBER: _ClassVar[int]
    CONSTRAINTS_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    name: str
    type: VariableType
    initial: Value
    constraints: Constraints
    description: str
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, session_id: _Optional[str] = ..., name: _Optional[str] = ..., type: _Optional[_Union[VariableType, str]] = ..., initial: _Optional[_Union[Value, _Mapping]] = ..., constraints: _Optional[_Union[Constraints, _Mapping]] = ..., description: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class RegisterVariableResponse(_message.Message):
    __slots__ = ("variable",)
    VARIABLE_FIELD_NUMBER: _ClassVar[int]
    variable: Variable
    def __init__(self, variable: _Optional[_Union[Variable, _Mapping]] = ...) -> None: ...

class GetVariableRequest(_message.Message):
    __slots__ = ("session_id", "name")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    name: str
    def __init__(self, session_id: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class GetVariableResponse(_message.Message):
    __slots__ = ("variable",)
    VARIABLE_FIELD_NUMBER: _ClassVar[int]
    variable: Variable
    def __init__(self, variable: _Optional[_Union[Variable, _Mapping]] = ...) -> None: ...

class GetVariablesRequest(_message.Message):
    __slots__ = ("session_id", "names")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    NAMES_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    names: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, session_id: _Optional[str] = ..., names: _Optional[_Iterable[str]] = ...) -> None: ...

class GetVariablesResponse(_message.Message):
    __slots__ = ("variables", "missing")
    VARIABLES_FIELD_NUMBER: _ClassVar[int]
    MISSING_FIELD_NUMBER: _ClassVar[int]
    variables: _containers.RepeatedCompositeFieldContainer[Variable]
    missing: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, variables: _Optional[_Iterable[_Union[Variable, _Mapping]]] = ..., missing: _Optional[_Iterable[str]] = ...) -> None: ...

class SetVariableRequest(_message.Message):
    __slots__ = ("session_id", "name", "value", "expected_version", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    name: str
    value: Value
    expected_version: int
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, session_id: _Optional[str] = ..., name: _Optional[str] = ..., value: _Optional[_Union[Value, _Mapping]] = ..., expected_version: _Optional[int] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class SetVariableResponse(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: int
    def __init__(self, version: _Optional[int] = ...) -> None: ...

class VariableWrite(_message.Message):
    __slots__ = ("name", "value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: Value
    def __init__(self, name: _Optional[str] = ..., value: _Optional[_Union[Value, _Mapping]] = ...) -> None: ...

class SetVariablesRequest(_message.Message):
    __slots__ = ("session_id", "writes")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    WRITES_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    writes: _containers.RepeatedCompositeFieldContainer[VariableWrite]
    def __init__(self, session_id: _Optional[str] = ..., writes: _Optional[_Iterable[_Union[VariableWrite, _Mapping]]] = ...) -> None: ...

class SetVariablesResponse(_message.Message):
    __slots__ = ("versions",)
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    versions: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, versions: _Optional[_Iterable[int]] = ...) -> None: ...

class ListVariablesRequest(_message.Message):
    __slots__ = ("session_id", "pattern", "page_size", "page_token")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    PATTERN_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    pattern: str
    page_size: int
    page_token: str
    def __init__(self, session_id: _Optional[str] = ..., pattern: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListVariablesResponse(_message.Message):
    __slots__ = ("variables", "next_page_token")
    VARIABLES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    variables: _containers.RepeatedCompositeFieldContainer[Variable]
    next_page_token: str
    def __init__(self, variables: _Optional[_Iterable[_Union[Variable, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeleteVariableRequest(_message.Message):
    __slots__ = ("session_id", "name")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    name: str
    def __init__(self, session_id: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class DeleteVariableResponse(_message.Message):
    __slots__ = ("variable",)
    VARIABLE_FIELD_NUMBER: _ClassVar[int]
    variable: Variable
    def __init__(self, variable: _Optional[_Union[Variable, _Mapping]] = ...) -> None: ...

class WatchVariablesRequest(_message.Message):
    __slots__ = ("session_id", "names", "include_initial")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    NAMES_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_INITIAL_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    names: _containers.RepeatedScalarFieldContainer[str]
    include_initial: bool
    def __init__(self, session_id: _Optional[str] = ..., names: _Optional[_Iterable[str]] = ..., include_initial: _Optional[bool] = ...) -> None: ...

class VariableUpdate(_message.Message):
    __slots__ = ("kind", "id", "name", "old_value", "new_value", "version", "source", "missed", "at")
    KIND_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    OLD_VALUE_FIELD_NUMBER: _ClassVar[int]
    NEW_VALUE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    MISSED_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    kind: UpdateKind
    id: int
    name: str
    old_value: Value
    new_value: Value
    version: int
    source: Source
    missed: int
    at: _timestamp_pb2.Timestamp
    def __init__(self, kind: _Optional[_Union[UpdateKind, str]] = ..., id: _Optional[int] = ..., name: _Optional[str] = ..., old_value: _Optional[_Union[Value, _Mapping]] = ..., new_value: _Optional[_Union[Value, _Mapping]] = ..., version: _Optional[int] = ..., source: _Optional[_Union[Source, str]] = ..., missed: _Optional[int] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ScoreMetricRequest(_message.Message):
    __slots__ = ("metric_path", "example_json", "prediction_json", "trace_json", "check_only", "call_id")
    METRIC_PATH_FIELD_NUMBER: _ClassVar[int]
    EXAMPLE_JSON_FIELD_NUMBER: _ClassVar[int]
    PREDICTION_JSON_FIELD_NUMBER: _ClassVar[int]
    TRACE_JSON_FIELD_NUMBER: _ClassVar[int]
    CHECK_ONLY_FIELD_NUMBER: _ClassVar[int]
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    metric_path: str
    example_json: str
    prediction_json: str
    trace_json: str
    check_only: bool
    call_id: str
    def __init__(self, metric_path: _Optional[str] = ..., example_json: _Optional[str] = ..., prediction_json: _Optional[str] = ..., trace_json: _Optional[str] = ..., check_only: _Optional[bool] = ..., call_id: _Optional[str] = ...) -> None: ...

class ScoreMetricResponse(_message.Message):
    __slots__ = ("score",)
    SCORE_FIELD_NUMBER: _ClassVar[int]
    score: float
    def __init__(self, score: _Optional[float] = ...) -> None: ...

class OutputChunk(_message.Message):
    __slots__ = ("field", "text")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    field: str
    text: str
    def __init__(self, field: _Optional[str] = ..., text: _Optional[str] = ...) -> None: ...

class ExecuteModuleEvent(_message.Message):
    __slots__ = ("chunk", "finished")
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    FINISHED_FIELD_NUMBER: _ClassVar[int]
    chunk: OutputChunk
    finished: ExecuteModuleResponse
    def __init__(self, chunk: _Optional[_Union[OutputChunk, _Mapping]] = ..., finished: _Optional[_Union[ExecuteModuleResponse, _Mapping]] = ...) -> None: ...

class CancelCallRequest(_message.Message):
    __slots__ = ("call_id", "wait_ms")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    WAIT_MS_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    wait_ms: int
    def __init__(self, call_id: _Optional[str] = ..., wait_ms: _Optional[int] = ...) -> None: ...

class CancelCallResponse(_message.Message):
    __slots__ = ("running", "calls_in_flight")
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    CALLS_IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    running: bool
    calls_in_flight: int
    def __init__(self, running: _Optional[bool] = ..., calls_in_flight: _Optional[int] = ...) -> None: ...

class HealthRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class HealthResponse(_message.Message):
    __slots__ = ("ready", "dspy_version", "modules", "pid", "calls_in_flight", "max_concurrent_calls", "calls_served", "threads", "rss_bytes", "calls_cancelled")
    READY_FIELD_NUMBER: _ClassVar[int]
    DSPY_VERSION_FIELD_NUMBER: _ClassVar[int]
    MODULES_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    CALLS_IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    MAX_CONCURRENT_CALLS_FIELD_NUMBER: _ClassVar[int]
    CALLS_SERVED_FIELD_NUMBER: _ClassVar[int]
    THREADS_FIELD_NUMBER: _ClassVar[int]
    RSS_BYTES_FIELD_NUMBER: _ClassVar[int]
    CALLS_CANCELLED_FIELD_NUMBER: _ClassVar[int]
    ready: bool
    dspy_version: str
    modules: int
    pid: int
    calls_in_flight: int
    max_concurrent_calls: int
    calls_served: int
    threads: int
    rss_bytes: int
    calls_cancelled: int
    def __init__(self, ready: _Optional[bool] = ..., dspy_version: _Optional[str] = ..., modules: _Optional[int] = ..., pid: _Optional[int] = ..., calls_in_flight: _Optional[int] = ..., max_concurrent_calls: _Optional[int] = ..., calls_served: _Optional[int] = ..., threads: _Optional[int] = ..., rss_bytes: _Optional[int] = ..., calls_cancelled: _Optional[int] = ...) -> None: ...

class IntegerList(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, values: _Optional[_Iterable[int]] = ...) -> None: ...

class FloatList(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, values: _Optional[_Iterable[float]] = ...) -> None: ...

class FieldValue(_message.Message):
    __slots__ = ("text", "integer", "float", "boolean", "strings", "integers", "floats", "json_object")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    INTEGER_FIELD_NUMBER: _ClassVar[int]
    FLOAT_FIELD_NUMBER: _ClassVar[int]
    BOOLEAN_FIELD_NUMBER: _ClassVar[int]
    STRINGS_FIELD_NUMBER: _ClassVar[int]
    INTEGERS_FIELD_NUMBER: _ClassVar[int]
    FLOATS_FIELD_NUMBER: _ClassVar[int]
    JSON_OBJECT_FIELD_NUMBER: _ClassVar[int]
    text: str
    integer: int
    float: float
    boolean: bool
    strings: StringList
    integers: IntegerList
    floats: FloatList
    json_object: str
    def __init__(self, text: _Optional[str] = ..., integer: _Optional[int] = ..., float: _Optional[float] = ..., boolean: _Optional[bool] = ..., strings: _Optional[_Union[StringList, _Mapping]] = ..., integers: _Optional[_Union[IntegerList, _Mapping]] = ..., floats: _Optional[_Union[FloatList, _Mapping]] = ..., json_object: _Optional[str] = ...) -> None: ...

class ConfigValue(_message.Message):
    __slots__ = ("float", "integer", "string", "boolean", "strings")
    FLOAT_FIELD_NUMBER: _ClassVar[int]
    INTEGER_FIELD_NUMBER: _ClassVar[int]
    STRING_FIELD_NUMBER: _ClassVar[int]
    BOOLEAN_FIELD_NUMBER: _ClassVar[int]
    STRINGS_FIELD_NUMBER: _ClassVar[int]
    float: float
    integer: int
    string: str
    boolean: bool
    strings: StringList
    def __init__(self, float: _Optional[float] = ..., integer: _Optional[int] = ..., string: _Optional[str] = ..., boolean: _Optional[bool] = ..., strings: _Optional[_Union[StringList, _Mapping]] = ...) -> None: ...

class CreateModuleRequest(_message.Message):
    __slots__ = ("session_id", "module_id", "module_class", "signature", "bindings", "config", "tools", "state_json")
    class BindingsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class ConfigEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: ConfigValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[ConfigValue, _Mapping]] = ...) -> None: ...
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    MODULE_ID_FIELD_NUMBER: _ClassVar[int]
    MODULE_CLASS_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    BINDINGS_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    TOOLS_FIELD_NUMBER: _ClassVar[int]
    STATE_JSON_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    module_id: str
    module_class: str
    signature: str
    bindings: _containers.ScalarMap[str, str]
    config: _containers.MessageMap[str, ConfigValue]
    tools: _containers.RepeatedCompositeFieldContainer[ToolSpec]
    state_json: str
    def __init__(self, session_id: _Optional[str] = ..., module_id: _Optional[str] = ..., module_class: _Optional[str] = ..., signature: _Optional[str] = ..., bindings: _Optional[_Mapping[str, str]] = ..., config: _Optional[_Mapping[str, ConfigValue]] = ..., tools: _Optional[_Iterable[_Union[ToolSpec, _Mapping]]] = ..., state_json: _Optional[str] = ...) -> None: ...

class ToolArgument(_message.Message):
    __slots__ = ("name", "type", "json_schema", "required")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    JSON_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: str
    json_schema: str
    required: bool
    def __init__(self, name: _Optional[str] = ..., type: _Optional[str] = ..., json_schema: _Optional[str] = ..., required: _Optional[bool] = ...) -> None: ...

class RustTool(_message.Message):
    __slots__ = ("name", "description", "arguments")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    arguments: _containers.RepeatedCompositeFieldContainer[ToolArgument]
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., arguments: _Optional[_Iterable[_Union[ToolArgument, _Mapping]]] = ...) -> None: ...

class ToolSpec(_message.Message):
    __slots__ = ("python", "rust")
    PYTHON_FIELD_NUMBER: _ClassVar[int]
    RUST_FIELD_NUMBER: _ClassVar[int]
    python: str
    rust: RustTool
    def __init__(self, python: _Optional[str] = ..., rust: _Optional[_Union[RustTool, _Mapping]] = ...) -> None: ...

class CreateModuleResponse(_message.Message):
    __slots__ = ("module_id", "resolved_class", "state_json")
    MODULE_ID_FIELD_NUMBER: _ClassVar[int]
    RESOLVED_CLASS_FIELD_NUMBER: _ClassVar[int]
    STATE_JSON_FIELD_NUMBER: _ClassVar[int]
    module_id: str
    resolved_class: str
    state_json: str
    def __init__(self, module_id: _Optional[str] = ..., resolved_class: _Optional[str] = ..., state_json: _Optional[str] = ...) -> None: ...

class BoundValue(_message.Message):
    __slots__ = ("param", "variable", "version", "value")
    PARAM_FIELD_NUMBER: _ClassVar[int]
    VARIABLE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    param: str
    variable: str
    version: int
    value: Value
    def __init__(self, param: _Optional[str] = ..., variable: _Optional[str] = ..., version: _Optional[int] = ..., value: _Optional[_Union[Value, _Mapping]] = ...) -> None: ...

class ExecuteModuleRequest(_message.Message):
    __slots__ = ("module_id", "inputs", "bindings", "call_id", "demos_json", "rollout_id")
    class InputsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: FieldValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[FieldValue, _Mapping]] = ...) -> None: ...
    MODULE_ID_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    BINDINGS_FIELD_NUMBER: _ClassVar[int]
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    DEMOS_JSON_FIELD_NUMBER: _ClassVar[int]
    ROLLOUT_ID_FIELD_NUMBER: _ClassVar[int]
    module_id: str
    inputs: _containers.MessageMap[str, FieldValue]
    bindings: _containers.RepeatedCompositeFieldContainer[BoundValue]
    call_id: str
    demos_json: str
    rollout_id: int
    def __init__(self, module_id: _Optional[str] = ..., inputs: _Optional[_Mapping[str, FieldValue]] = ..., bindings: _Optional[_Iterable[_Union[BoundValue, _Mapping]]] = ..., call_id: _Optional[str] = ..., demos_json: _Optional[str] = ..., rollout_id: _Optional[int] = ...) -> None: ...

class LmCall(_message.Message):
    __slots__ = ("model", "temperature", "max_tokens", "top_p", "n", "prompt_tokens", "completion_tokens", "start_unix_nano", "end_unix_nano", "exchange", "exchange_left_out")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TOP_P_FIELD_NUMBER: _ClassVar[int]
    N_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    START_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    END_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    EXCHANGE_FIELD_NUMBER: _ClassVar[int]
    EXCHANGE_LEFT_OUT_FIELD_NUMBER: _ClassVar[int]
    model: str
    temperature: float
    max_tokens: int
    top_p: float
    n: int
    prompt_tokens: int
    completion_tokens: int
    start_unix_nano: int
    end_unix_nano: int
    exchange: LmExchange
    exchange_left_out: bool
    def __init__(self, model: _Optional[str] = ..., temperature: _Optional[float] = ..., max_tokens: _Optional[int] = ..., top_p: _Optional[float] = ..., n: _Optional[int] = ..., prompt_tokens: _Optional[int] = ..., completion_tokens: _Optional[int] = ..., start_unix_nano: _Optional[int] = ..., end_unix_nano: _Optional[int] = ..., exchange: _Optional[_Union[LmExchange, _Mapping]] = ..., exchange_left_out: _Optional[bool] = ...) -> None: ...

class LmMessage(_message.Message):
    __slots__ = ("role", "content")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    role: str
    content: str
    def __init__(self, role: _Optional[str] = ..., content: _Optional[str] = ...) -> None: ...

class LmExchange(_message.Message):
    __slots__ = ("messages", "reply")
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    REPLY_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[LmMessage]
    reply: str
    def __init__(self, messages: _Optional[_Iterable[_Union[LmMessage, _Mapping]]] = ..., reply: _Optional[str] = ...) -> None: ...

class ExecuteModuleResponse(_message.Message):
    __slots__ = ("outputs", "lm_calls", "duration_micros")
    class OutputsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: FieldValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[FieldValue, _Mapping]] = ...) -> None: ...
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    LM_CALLS_FIELD_NUMBER: _ClassVar[int]
    DURATION_MICROS_FIELD_NUMBER: _ClassVar[int]
    outputs: _containers.MessageMap[str, FieldValue]
    lm_calls: _containers.RepeatedCompositeFieldContainer[LmCall]
    duration_micros: int
    def __init__(self, outputs: _Optional[_Mapping[str, FieldValue]] = ..., lm_calls: _Optional[_Iterable[_Union[LmCall, _Mapping]]] = ..., duration_micros: _Optional[int] = ...) -> None: ...

class TrainExample(_message.Message):
    __slots__ = ("inputs", "labels")
    class InputsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: FieldValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[FieldValue, _Mapping]] = ...) -> None: ...
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: FieldValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[FieldValue, _Mapping]] = ...) -> None: ...
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    inputs: _containers.MessageMap[str, FieldValue]
    labels: _containers.MessageMap[str, FieldValue]
    def __init__(self, inputs: _Optional[_Mapping[str, FieldValue]] = ..., labels: _Optional[_Mapping[str, FieldValue]] = ...) -> None: ...

class CompileModuleRequest(_message.Message):
    __slots__ = ("module_id", "optimizer", "settings", "trainset", "valset", "metric_path", "metric_callback", "bindings", "call_id", "reflection_lm")
    class SettingsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: ConfigValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[ConfigValue, _Mapping]] = ...) -> None: ...
    MODULE_ID_FIELD_NUMBER: _ClassVar[int]
    OPTIMIZER_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    TRAINSET_FIELD_NUMBER: _ClassVar[int]
    VALSET_FIELD_NUMBER: _ClassVar[int]
    METRIC_PATH_FIELD_NUMBER: _ClassVar[int]
    METRIC_CALLBACK_FIELD_NUMBER: _ClassVar[int]
    BINDINGS_FIELD_NUMBER: _ClassVar[int]
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    REFLECTION_LM_FIELD_NUMBER: _ClassVar[int]
    module_id: str
    optimizer: str
    settings: _containers.MessageMap[str, ConfigValue]
    trainset: _containers.RepeatedCompositeFieldContainer[TrainExample]
    valset: _containers.RepeatedCompositeFieldContainer[TrainExample]
    metric_path: str
    metric_callback: str
    bindings: _containers.RepeatedCompositeFieldContainer[BoundValue]
    call_id: str
    reflection_lm: LmConfig
    def __init__(self, module_id: _Optional[str] = ..., optimizer: _Optional[str] = ..., settings: _Optional[_Mapping[str, ConfigValue]] = ..., trainset: _Optional[_Iterable[_Union[TrainExample, _Mapping]]] = ..., valset: _Optional[_Iterable[_Union[TrainExample, _Mapping]]] = ..., metric_path: _Optional[str] = ..., metric_callback: _Optional[str] = ..., bindings: _Optional[_Iterable[_Union[BoundValue, _Mapping]]] = ..., call_id: _Optional[str] = ..., reflection_lm: _Optional[_Union[LmConfig, _Mapping]] = ...) -> None: ...

class CompileModuleResponse(_message.Message):
    __slots__ = ("state_json", "demos", "lm_requests", "prompt_tokens", "completion_tokens", "duration_micros")
    class DemosEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    STATE_JSON_FIELD_NUMBER: _ClassVar[int]
    DEMOS_FIELD_NUMBER: _ClassVar[int]
    LM_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    DURATION_MICROS_FIELD_NUMBER: _ClassVar[int]
    state_json: str
    demos: _containers.ScalarMap[str, int]
    lm_requests: int
    prompt_tokens: int
    completion_tokens: int
    duration_micros: int
    def __init__(self, state_json: _Optional[str] = ..., demos: _Optional[_Mapping[str, int]] = ..., lm_requests: _Optional[int] = ..., prompt_tokens: _Optional[int] = ..., completion_tokens: _Optional[int] = ..., duration_micros: _Optional[int] = ...) -> None: ...

class DropModuleRequest(_message.Message):
    __slots__ = ("module_id",)
    MODULE_ID_FIELD_NUMBER: _ClassVar[int]
    module_id: str
    def __init__(self, module_id: _Optional[str] = ...) -> None: ...

class DropModuleResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ShutdownRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ShutdownResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetHistoryRequest(_message.Message):
    __slots__ = ("session_id", "name", "limit")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    name: str
    limit: int
    def __init__(self, session_id: _Optional[str] = ..., name: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class HistoryEntry(_message.Message):
    __slots__ = ("version", "value", "source", "metadata", "at")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    VERSION_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    version: int
    value: Value
    source: Source
    metadata: _containers.ScalarMap[str, str]
    at: _timestamp_pb2.Timestamp
    def __init__(self, version: _Optional[int] = ..., value: _Optional[_Union[Value, _Mapping]] = ..., source: _Optional[_Union[Source, str]] = ..., metadata: _Optional[_Mapping[str, str]] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetHistoryResponse(_message.Message):
    __slots__ = ("entries",)
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[HistoryEntry]
    def __init__(self, entries: _Optional[_Iterable[_Union[HistoryEntry, _Mapping]]] = ...) -> None: ...

class RollbackRequest(_message.Message):
    __slots__ = ("session_id", "name", "version")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    name: str
    version: int
    def __init__(self, session_id: _Optional[str] = ..., name: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class RollbackResponse(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: int
    def __init__(self, version: _Optional[int] = ...) -> None: ...

class CallbackRequest(_message.Message):
    __slots__ = ("session_id", "name", "arguments_json", "call_id")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_JSON_FIELD_NUMBER: _ClassVar[int]
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    name: str
    arguments_json: bytes
    call_id: str
    def __init__(self, session_id: _Optional[str] = ..., name: _Optional[str] = ..., arguments_json: _Optional[bytes] = ..., call_id: _Optional[str] = ...) -> None: ...

class CallbackResponse(_message.Message):
    __slots__ = ("result_json", "error", "duration_micros")
    RESULT_JSON_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    DURATION_MICROS_FIELD_NUMBER: _ClassVar[int]
    result_json: str
    error: str
    duration_micros: int
    def __init__(self, result_json: _Optional[str] = ..., error: _Optional[str] = ..., duration_micros: _Optional[int] = ...) -> None: ...

class ScriptedAnswer(_message.Message):
    __slots__ = ("fields",)
    class FieldsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    fields: _containers.ScalarMap[str, str]
    def __init__(self, fields: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ScriptedRule(_message.Message):
    __slots__ = ("needle", "fields")
    class FieldsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NEEDLE_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    needle: str
    fields: _containers.ScalarMap[str, str]
    def __init__(self, needle: _Optional[str] = ..., fields: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ScriptedLm(_message.Message):
    __slots__ = ("default_model", "answers", "rules", "settings", "delay_ms")
    class SettingsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: ConfigValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[ConfigValue, _Mapping]] = ...) -> None: ...
    DEFAULT_MODEL_FIELD_NUMBER: _ClassVar[int]
    ANSWERS_FIELD_NUMBER: _ClassVar[int]
    RULES_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    DELAY_MS_FIELD_NUMBER: _ClassVar[int]
    default_model: str
    answers: _containers.RepeatedCompositeFieldContainer[ScriptedAnswer]
    rules: _containers.RepeatedCompositeFieldContainer[ScriptedRule]
    settings: _containers.MessageMap[str, ConfigValue]
    delay_ms: int
    def __init__(self, default_model: _Optional[str] = ..., answers: _Optional[_Iterable[_Union[ScriptedAnswer, _Mapping]]] = ..., rules: _Optional[_Iterable[_Union[ScriptedRule, _Mapping]]] = ..., settings: _Optional[_Mapping[str, ConfigValue]] = ..., delay_ms: _Optional[int] = ...) -> None: ...

class ModelLm(_message.Message):
    __slots__ = ("model", "settings")
    class SettingsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: ConfigValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[ConfigValue, _Mapping]] = ...) -> None: ...
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    model: str
    settings: _containers.MessageMap[str, ConfigValue]
    def __init__(self, model: _Optional[str] = ..., settings: _Optional[_Mapping[str, ConfigValue]] = ...) -> None: ...

class OpenAiLm(_message.Message):
    __slots__ = ("base_url", "model", "api_key_env", "settings", "timeout_ms", "max_retries", "retry_backoff_ms", "max_backoff_ms")
    class SettingsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: ConfigValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[ConfigValue, _Mapping]] = ...) -> None: ...
    BASE_URL_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    API_KEY_ENV_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_RETRIES_FIELD_NUMBER: _ClassVar[int]
    RETRY_BACKOFF_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_BACKOFF_MS_FIELD_NUMBER: _ClassVar[int]
    base_url: str
    model: str
    api_key_env: str
    settings: _containers.MessageMap[str, ConfigValue]
    timeout_ms: int
    max_retries: int
    retry_backoff_ms: int
    max_backoff_ms: int
    def __init__(self, base_url: _Optional[str] = ..., model: _Optional[str] = ..., api_key_env: _Optional[str] = ..., settings: _Optional[_Mapping[str, ConfigValue]] = ..., timeout_ms: _Optional[int] = ..., max_retries: _Optional[int] = ..., retry_backoff_ms: _Optional[int] = ..., max_backoff_ms: _Optional[int] = ...) -> None: ...

class LmCache(_message.Message):
    __slots__ = ("memory_entries", "disk_dir")
    MEMORY_ENTRIES_FIELD_NUMBER: _ClassVar[int]
    DISK_DIR_FIELD_NUMBER: _ClassVar[int]
    memory_entries: int
    disk_dir: str
    def __init__(self, memory_entries: _Optional[int] = ..., disk_dir: _Optional[str] = ...) -> None: ...

class LmConfig(_message.Message):
    __slots__ = ("scripted", "model", "openai", "record_path", "replay_path", "cache", "capture")
    SCRIPTED_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    OPENAI_FIELD_NUMBER: _ClassVar[int]
    RECORD_PATH_FIELD_NUMBER: _ClassVar[int]
    REPLAY_PATH_FIELD_NUMBER: _ClassVar[int]
    CACHE_FIELD_NUMBER: _ClassVar[int]
    CAPTURE_FIELD_NUMBER: _ClassVar[int]
    scripted: ScriptedLm
    model: ModelLm
    openai: OpenAiLm
    record_path: str
    replay_path: str
    cache: LmCache
    capture: LmCapture
    def __init__(self, scripted: _Optional[_Union[ScriptedLm, _Mapping]] = ..., model: _Optional[_Union[ModelLm, _Mapping]] = ..., openai: _Optional[_Union[OpenAiLm, _Mapping]] = ..., record_path: _Optional[str] = ..., replay_path: _Optional[str] = ..., cache: _Optional[_Union[LmCache, _Mapping]] = ..., capture: _Optional[_Union[LmCapture, _Mapping]] = ...) -> None: ...

class LmCapture(_message.Message):
    __slots__ = ("max_calls", "max_bytes")
    MAX_CALLS_FIELD_NUMBER: _ClassVar[int]
    MAX_BYTES_FIELD_NUMBER: _ClassVar[int]
    max_calls: int
    max_bytes: int
    def __init__(self, max_calls: _Optional[int] = ..., max_bytes: _Optional[int] = ...) -> None: ...

class WorkerConfig(_message.Message):
    __slots__ = ("lm", "max_concurrent_calls")
    LM_FIELD_NUMBER: _ClassVar[int]
    MAX_CONCURRENT_CALLS_FIELD_NUMBER: _ClassVar[int]
    lm: LmConfig
    max_concurrent_calls: int
    def __init__(self, lm: _Optional[_Union[LmConfig, _Mapping]] = ..., max_concurrent_calls: _Optional[int] = ...) -> None: ...

class WorkerReady(_message.Message):
    __slots__ = ("port", "pid", "dspy_version", "python_version", "max_concurrent_calls")
    PORT_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    DSPY_VERSION_FIELD_NUMBER: _ClassVar[int]
    PYTHON_VERSION_FIELD_NUMBER: _ClassVar[int]
    MAX_CONCURRENT_CALLS_FIELD_NUMBER: _ClassVar[int]
    port: int
    pid: int
    dspy_version: str
    python_version: str
    max_concurrent_calls: int
    def __init__(self, port: _Optional[int] = ..., pid: _Optional[int] = ..., dspy_version: _Optional[str] = ..., python_version: _Optional[str] = ..., max_concurrent_calls: _Optional[int] = ...) -> None: ...
