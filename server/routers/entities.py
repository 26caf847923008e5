"""`GET /v1/entities/{entity}/{key}` (a profile) and `.../{key}/segments` (scope `lookup`).

Answered from in-process structures without DataFusion (`server.lookups`). With `fast_lookups`
(the default) the same handlers are served on the raw ASGI path (`server.fastpath`) in front of
FastAPI's router; these routes are then what OpenAPI documents and what answers when the fast
path is off.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from server.auth import require
from server.errors import responses
from server.models import KeySegments, Profile
from server.state import AppState

router = APIRouter(prefix="/v1", tags=["entities"])


def profile(state: AppState, entity: str, key: str) -> bytes:
    return state.lookups.profile(entity, key)


def segments_of(state: AppState, entity: str, key: str) -> bytes:
    return state.lookups.segments_of(entity, key)


_LOOKUP = [Depends(require("lookup", limit="lookup"))]


# registered first: `{key:path}` of the profile would otherwise take ".../segments" as a key
@router.get(
    "/entities/{entity}/{key:path}/segments",
    summary="The segments one key is in",
    response_model=KeySegments,
    responses=responses(401, 403, 404, 422, 429),
    dependencies=_LOOKUP,
)
async def get_segments_of(entity: str, key: str, request: Request) -> Response:
    body = segments_of(request.app.state.eql, entity, key)
    return Response(body, media_type="application/json")


@router.get(
    "/entities/{entity}/{key:path}",
    summary="An entity's profile: attributes, tags, segments",
    response_model=Profile,
    responses=responses(401, 403, 404, 422, 429),
    dependencies=_LOOKUP,
)
async def get_profile(entity: str, key: str, request: Request) -> Response:
    return Response(profile(request.app.state.eql, entity, key), media_type="application/json")
