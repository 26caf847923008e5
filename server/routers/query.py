"""`POST /v1/query` and `POST /v1/explain` (scope `query`); the work is in `server.queries`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from server import encoding, queries
from server.auth import require
from server.errors import responses
from server.keys import ApiKey
from server.models import ExplainRequest, ExplainResult, QueryRequest, QueryResult

router = APIRouter(prefix="/v1", tags=["query"])

_QUERY_200: dict[str, Any] = {
    "description": "The result. JSON by default; NDJSON and Arrow IPC stream by `Accept`. "
    "An `EXPLAIN ...` text answers an explain result (JSON).",
    "model": QueryResult | ExplainResult,
    "content": {
        encoding.NDJSON: {"schema": {"type": "string", "description": "one JSON object per line"}},
        encoding.ARROW: {"schema": {"type": "string", "format": "binary"}},
    },
}


@router.post(
    "/query",
    summary="Run an EQL query (or SHOW / DESCRIBE; DEFINE, REFRESH, DROP need scope define)",
    response_model=None,
    responses={200: _QUERY_200, **responses(400, 401, 403, 406, 408, 413, 422, 429)},
)
async def run_query(
    body: QueryRequest,
    request: Request,
    key: ApiKey = Depends(require("query", limit="query")),  # noqa: B008
) -> Response:
    return await queries.run_query(
        request.app.state.eql,
        body,
        request.headers.get("accept"),
        request.receive,
        key.allows("define"),
        key.id,
    )


@router.post(
    "/explain",
    summary="Show how an EQL query is compiled, stage by stage",
    response_model=ExplainResult,
    responses=responses(400, 401, 403, 408, 413, 422, 429),
)
async def explain(
    body: ExplainRequest,
    request: Request,
    key: ApiKey = Depends(require("query", limit="query")),  # noqa: B008
) -> dict[str, Any]:
    return await queries.run_explain(request.app.state.eql, body, key.id)
