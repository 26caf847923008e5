"""`GET /v1/schema`: the store's entities, relations and event streams."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from entities import Attribute, Schema
from server.auth import require
from server.errors import responses
from server.models import (
    AttributeInfo,
    EntityInfo,
    ReferenceInfo,
    RelationInfo,
    SchemaInfo,
    StreamInfo,
)

router = APIRouter(prefix="/v1", tags=["schema"])


def _attr(a: Attribute) -> AttributeInfo:
    values = list(a.type.values) if a.type.values else None
    return AttributeInfo(name=a.name, type=str(a.type), required=a.required, values=values)


def describe(schema: Schema) -> SchemaInfo:
    return SchemaInfo(
        entities=[
            EntityInfo(
                name=e.name,
                key=_attr(e.key),
                attributes=[_attr(a) for a in e.attributes],
                relations=[
                    RelationInfo(
                        name=r.name, target=r.target, cardinality=r.cardinality.value, via=r.via
                    )
                    for r in e.relations
                ],
                streams=[st.name for st, _ in schema.streams_of(e.name)],
            )
            for e in schema.entities
        ],
        streams=[
            StreamInfo(
                name=st.name,
                time=st.time,
                references=[
                    ReferenceInfo(name=r.name, entity=r.entity, column=r.column)
                    for r in st.references
                ],
                fields=[_attr(f) for f in st.fields],
            )
            for st in schema.streams
        ],
    )


@router.get(
    "/schema",
    response_model=SchemaInfo,
    summary="The schema: entities, relations, event streams",
    dependencies=[Depends(require("lookup", "query", limit="lookup"))],
    responses=responses(401, 403, 429),
)
async def get_schema(request: Request) -> SchemaInfo:
    return describe(request.app.state.eql.session.store.schema)
