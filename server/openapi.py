"""The OpenAPI document of a running server: the generic one, with each entity's routes spelled out.

A key's type depends on its entity (an int key is a 64-bit whole number, a string key 1 to
`max_key_chars` characters), which one templated path `/v1/entities/{entity}/{key}` cannot say:
a client generated from it (or schemathesis) would send `abc` to an int-keyed entity and get 422
for data the document allowed. So a started server documents `/v1/entities/users/{key}`,
`/v1/entities/stores/{key}`, ... each with its key's type and bounds; the routes themselves do
not change. Before startup (no store yet) the document is the generic one.
"""

from __future__ import annotations

import copy
from typing import Any

from entities import Schema, TypeKind

INT64 = {"type": "integer", "format": "int64", "minimum": -(1 << 63), "maximum": (1 << 63) - 1}
TEMPLATES = ("/v1/entities/{entity}/{key}", "/v1/entities/{entity}/{key}/segments")


def key_schema(kind: TypeKind, max_key_chars: int) -> dict[str, Any]:
    if kind is TypeKind.INT:
        return dict(INT64)
    return {"type": "string", "minLength": 1, "maxLength": max_key_chars}


def per_entity(spec: dict[str, Any], schema: Schema, max_key_chars: int) -> dict[str, Any]:
    """A copy of `spec` with the entity routes written out per entity of `schema`."""
    out = copy.deepcopy(spec)
    paths: dict[str, Any] = {}
    for path, item in out["paths"].items():
        if path not in TEMPLATES:
            paths[path] = item
            continue
        for ent in schema.entities:
            concrete = copy.deepcopy(item)
            for operation in concrete.values():
                operation["operationId"] = f"{operation['operationId']}_{ent.name}"
                params = [p for p in operation.get("parameters", []) if p["name"] != "entity"]
                for p in params:
                    if p["name"] == "key" and p["in"] == "path":
                        p["schema"] = key_schema(ent.key.type.kind, max_key_chars)
                operation["parameters"] = params
            paths[path.replace("{entity}", ent.name)] = concrete
    out["paths"] = paths
    return out
