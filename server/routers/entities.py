"""`GET /v1/entities/{entity}/{key}`: an entity's profile (scope `lookup`).

Answered from the store without DataFusion. With `fast_lookups` (the default) the same handler is
served on the raw ASGI path (`server.fastpath`) in front of FastAPI's router; this route is then
what OpenAPI documents and what answers when the fast path is off.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from server.auth import require
from server.errors import responses
from server.models import Profile
from server.state import AppState

router = APIRouter(prefix="/v1", tags=["entities"])

PREFIX = "/v1/entities/"


def profile(state: AppState, entity: str, key: str) -> bytes:
    return state.profiles.render(entity, key)


@router.get(
    "/entities/{entity}/{key:path}",
    summary="An entity's profile: attributes, tags, segments",
    response_model=Profile,
    responses=responses(401, 403, 404, 422, 429),
    dependencies=[Depends(require("lookup", limit="lookup"))],
)
async def get_profile(entity: str, key: str, request: Request) -> Response:
    return Response(profile(request.app.state.eql, entity, key), media_type="application/json")
