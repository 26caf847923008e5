"""The routes segments and tags share: list, define, describe, drop, refresh.

`add_definition_routes(router, kinds, noun, forms)` registers them on a router whose prefix is
the resource (`/v1/segments`, `/v1/tags`); the work is in `server.definitions`. Reads need
`lookup` or `query`, writes `define` (charged to the key's query bucket).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from server import definitions
from server.auth import require
from server.encoding import dumps
from server.errors import responses
from server.models import AudienceDetail, AudienceList, DefineRequest, RefreshRequest, RefreshResult
from server.state import AppState

READ = [Depends(require("lookup", "query", limit="lookup"))]
WRITE = [Depends(require("define", limit="query"))]
LOOKUP = [Depends(require("lookup", limit="lookup"))]


def json_response(obj: Any, status: int = 200) -> Response:
    return Response(dumps(obj), status, media_type="application/json")


def add_definition_routes(
    router: APIRouter, kinds: tuple[str, ...], noun: str, listed: str, forms: str
) -> None:
    """`noun`: "segment"; `listed`: what the listing holds; `forms`: the DEFINE statements."""

    @router.get(
        "",
        summary=f"Every {listed}: definition, latest version, "
        + ("size" if kinds == definitions.SEGMENTS else "type"),
        response_model=AudienceList,
        responses=responses(401, 403, 429),
        dependencies=READ,
    )
    async def list_all(request: Request) -> Response:
        state: AppState = request.app.state.eql
        return json_response({"items": definitions.listing(state, kinds)})

    @router.post(
        "",
        summary=f"Define a {noun} ({forms}; a new definition version if it exists), optionally "
        "refresh it",
        status_code=201,
        response_model=AudienceDetail,
        responses={
            **responses(400, 401, 403, 408, 413, 422, 429),
            200: {"description": "a new version of an existing definition"},
        },
        dependencies=WRITE,
    )
    async def define(body: DefineRequest, request: Request) -> Response:
        state: AppState = request.app.state.eql
        status, out = await definitions.define(
            state, kinds, body.eql, body.refresh, body.reference_time()
        )
        return json_response(out, status)

    @router.get(
        "/{name}",
        summary=f"A {noun}: definition history and versions"
        + (
            " (size, entered, exited)"
            if kinds == definitions.SEGMENTS
            else ", top values, centroids"
        ),
        response_model=AudienceDetail,
        responses=responses(401, 403, 404, 429),
        dependencies=READ,
    )
    async def describe(
        name: str,
        request: Request,
        history: Annotated[int, Query(ge=1, le=1000, description="Versions to list")] = 20,
    ) -> Response:
        state: AppState = request.app.state.eql
        return json_response(definitions.detail(state, kinds, name, history))

    @router.delete(
        "/{name}",
        summary=f"Drop a {noun} with all its versions",
        status_code=204,
        responses=responses(401, 403, 404, 429),
        dependencies=WRITE,
    )
    async def drop(name: str, request: Request) -> Response:
        await definitions.drop(request.app.state.eql, kinds, name)
        return Response(status_code=204)

    @router.post(
        "/{name}/refresh",
        summary=f"Materialise a {noun}'s latest definition as a new version",
        response_model=RefreshResult,
        responses=responses(400, 401, 403, 404, 408, 413, 422, 429),
        dependencies=WRITE,
    )
    async def refresh(name: str, request: Request, body: RefreshRequest | None = None) -> Response:
        as_of = body.reference_time() if body is not None else None
        return json_response(await definitions.refresh(request.app.state.eql, kinds, name, as_of))
