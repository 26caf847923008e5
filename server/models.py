"""Request and response bodies of the HTTP API (separate from the compiler's IR)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_validator

from runtime.session import parse_time

INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
Scalar = str | int | float | bool | None
ParamValue = Scalar | list[Scalar]
Stage = Literal["ast", "bound", "plan", "datafusion", "all"]
# an ISO date or timestamp (documented by format, so that generated clients send one)
TimeText = Annotated[
    str,
    WithJsonSchema(
        {
            "type": "string",
            "anyOf": [{"format": "date"}, {"format": "date-time"}],
            "examples": ["2026-11-01", "2026-11-01T10:00:00Z"],
        }
    ),
]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("query", "eql", check_fields=False)
    @classmethod
    def _text(cls, v: str) -> str:
        """EQL text is not empty. (Checked here rather than with `min_length`, which makes
        pydantic refuse text holding a lone surrogate with a message of its own: the compiler's
        E112 says where it is.)"""
        if not v.strip():
            raise ValueError("the EQL text is empty")
        return v


class _AsOf(_Body):
    """A body with an `as_of` reference time (each declares its own field and description)."""

    as_of: TimeText | None = None

    @field_validator("as_of", check_fields=False)
    @classmethod
    def _as_of(cls, v: str | None) -> str | None:
        if v is not None:
            parse_time(v)  # ValueError -> 422 with the parser's message
        return v

    def reference_time(self) -> dt.datetime | None:
        return None if self.as_of is None else parse_time(self.as_of)


class QueryRequest(_AsOf):
    query: Annotated[
        str,
        Field(
            description="EQL text, e.g. `FIND users RETURN count() AS n`",
            json_schema_extra={"minLength": 1},  # checked by `_text` (see there)
        ),
    ]
    params: Annotated[
        dict[str, ParamValue],
        Field(description="Values of `$name` parameters (typed where they are used)"),
    ] = {}
    as_of: Annotated[
        TimeText | None,
        Field(description="Reference time when the query has no AS OF (ISO date or timestamp)"),
    ] = None
    limit: Annotated[
        int | None,
        Field(ge=1, description="Rows to return at most (default and maximum: server settings)"),
    ] = None
    timeout: Annotated[
        float | None,
        Field(ge=0.001, le=86_400, description="Seconds; shortens (never extends) the deadline"),
    ] = None

    @field_validator("params", mode="before")
    @classmethod
    def _int64(cls, v: Any) -> Any:
        """EQL integers are 64-bit: a bigger JSON integer is refused here, not in the engine."""
        if isinstance(v, dict):
            for name, value in v.items():
                for item in value if isinstance(value, list) else [value]:
                    if type(item) is int and not INT64_MIN <= item <= INT64_MAX:
                        raise ValueError(f"parameter {name}: {item} is not a 64-bit integer")
        return v


class ExplainRequest(QueryRequest):
    stage: Annotated[
        Stage | None,
        Field(description="Which stage to show; default: the text's EXPLAIN stage, else all"),
    ] = None


class Column(BaseModel):
    name: str
    type: str


class QueryResult(BaseModel):
    columns: list[Column]
    rows: list[dict[str, Any]]
    row_count: int
    truncated: Annotated[bool, Field(description="More rows exist than were returned")]
    elapsed_ms: float


class ExplainText(BaseModel):
    stage: str
    text: str


class ExplainResult(BaseModel):
    explain: ExplainText


class Health(BaseModel):
    status: Literal["ok"]
    version: str


class Profile(BaseModel):
    entity: str
    key: int | str
    attributes: dict[str, Any]
    tags: Annotated[
        dict[str, Any], Field(description="Tag values (an RFM tag adds `<name>_r`, `_f`, `_m`)")
    ]
    segments: Annotated[list[str], Field(description="The segments the key is in")]


class KeySegments(BaseModel):
    entity: str
    key: int | str
    segments: list[str]


class Membership(BaseModel):
    segment: str
    key: int | str
    member: bool
    version: Annotated[int, Field(description="The segment version that answered")]


Key = Annotated[int | str, Field(description="Keys typed as the entity's key (int or string)")]


class BatchRequest(_Body):
    keys: Annotated[list[Key], Field(description="The keys to check (at most `max_batch_keys`)")]
    answer: Annotated[
        Literal["flags", "members"],
        Field(description="`flags`: one boolean per key, in order; `members`: the member keys"),
    ] = "flags"


class BatchResult(BaseModel):
    segment: str
    entity: str
    version: int
    count: Annotated[int, Field(description="How many of the keys are members")]
    members: list[bool] | list[int | str]


class DefineRequest(_AsOf):
    eql: Annotated[
        str,
        Field(
            description="A DEFINE SEGMENT (or DEFINE TAG / DEFINE CLUSTERS) statement",
            json_schema_extra={"minLength": 1},  # checked by `_text` (see there)
        ),
    ]
    refresh: Annotated[bool, Field(description="Also materialise it now")] = False
    as_of: Annotated[
        TimeText | None, Field(description="Reference time of that refresh (default: now)")
    ] = None


class RefreshRequest(_AsOf):
    as_of: Annotated[
        TimeText | None,
        Field(description="Reference time the windows are anchored at (default: now)"),
    ] = None


class RefreshResult(BaseModel):
    kind: str
    name: str
    version: int
    as_of: dt.datetime
    elapsed_ms: float
    size: int | None = None
    entered: int | None = None
    exited: int | None = None
    entities: int | None = None
    non_null: int | None = None


class AudienceSummary(BaseModel):
    name: str
    kind: Literal["segment", "tag", "clusters"]
    entity: str
    definition: Annotated[int, Field(description="The latest definition version")]
    text: str
    defined_at: dt.datetime
    version: Annotated[int | None, Field(description="The latest materialised version")]
    as_of: dt.datetime | None
    refreshed_at: dt.datetime | None
    size: int | None = None
    type: str | None = None
    non_null: int | None = None


class AudienceList(BaseModel):
    items: list[AudienceSummary]


class AudienceVersion(BaseModel):
    version: int
    definition: int
    as_of: dt.datetime
    refreshed_at: dt.datetime
    size: int | None = None
    entered: int | None = None
    exited: int | None = None
    type: str | None = None
    entities: int | None = None
    non_null: int | None = None


class DefinitionVersion(BaseModel):
    definition: int
    text: str
    defined_at: dt.datetime


class AudienceDetail(AudienceSummary):
    versions_total: int
    versions: Annotated[list[AudienceVersion], Field(description="Newest first")]
    definitions: list[DefinitionVersion]
    top: list[list[Any]] | None = None
    extras: list[str] | None = None
    clusters: dict[str, Any] | None = None
    refreshed: RefreshResult | None = None


class AttributeInfo(BaseModel):
    name: str
    type: str
    required: bool
    values: list[str] | None = None


class RelationInfo(BaseModel):
    name: str
    target: str
    cardinality: str
    via: str


class EntityInfo(BaseModel):
    name: str
    key: AttributeInfo
    attributes: list[AttributeInfo]
    relations: list[RelationInfo]
    streams: list[str]


class ReferenceInfo(BaseModel):
    name: str
    entity: str
    column: str


class StreamInfo(BaseModel):
    name: str
    time: str
    references: list[ReferenceInfo]
    fields: list[AttributeInfo]


class SchemaInfo(BaseModel):
    entities: list[EntityInfo]
    streams: list[StreamInfo]


class Stats(BaseModel):
    queries: dict[str, int]
    running: int
    workers: int
    stop_latency_ms_max: float | None
    feeds: Annotated[int, Field(description="Change feeds being streamed")] = 0
