"""`GET /metrics`: the app's metrics in the Prometheus text format (`server.metrics`).

No key needed by default: the metrics hold counts and durations by route template, never a
customer's key, a query's text or an API key. With `metrics_require_admin`
(`EQL_METRICS_REQUIRE_ADMIN=1`, `eql serve --metrics-admin`) it needs a key with scope `admin`,
sent as on every other route, and charged to the key's lookup bucket. OpenMetrics when `Accept`
asks for it.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from server.auth import KEY_ID, authorize, bearer_token
from server.errors import responses
from server.state import AppState

router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    summary="Metrics in the Prometheus text format (scope admin with EQL_METRICS_REQUIRE_ADMIN)",
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus text format (OpenMetrics by `Accept`); see docs/server.md",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
        **responses(401, 403, 429),
    },
)
async def metrics(request: Request) -> Response:
    state: AppState = request.app.state.eql
    if state.settings.metrics_require_admin:
        headers = request.headers
        token = bearer_token(headers.get("authorization"), headers.get("x-api-key"))
        request.scope[KEY_ID] = authorize(state, token, ("admin",), "lookup").id
    body, media = state.metrics.render(request.headers.get("accept"))
    return Response(body, media_type=media)
