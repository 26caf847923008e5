"""`/v1/tags`: tags and clusters (read as a tag of their name): list, define, describe,
refresh, drop (`server.routers.audiences`). A key's tag values are in its profile
(`GET /v1/entities/{entity}/{key}`)."""

from __future__ import annotations

from fastapi import APIRouter

from server import definitions
from server.routers.audiences import add_definition_routes

router = APIRouter(prefix="/v1/tags", tags=["tags"])
add_definition_routes(
    router, definitions.TAGS, "tag", "tag and clusters", "DEFINE TAG or DEFINE CLUSTERS"
)
