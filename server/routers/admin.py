"""`GET /v1/admin/stats` (scope `admin`): counters of the query workers, open feeds."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from server.auth import require
from server.errors import responses
from server.models import Stats

router = APIRouter(prefix="/v1/admin", tags=["admin"])


@router.get(
    "/stats",
    response_model=Stats,
    summary="Query counters: outcomes, running, stop latency",
    dependencies=[Depends(require("admin", limit="lookup"))],
    responses=responses(401, 403, 429),
)
async def stats(request: Request) -> Stats:
    runner = request.app.state.eql.runner
    s = runner.stats
    return Stats(
        queries={"started": s.started, **s.outcomes},
        running=s.running,
        workers=runner.workers,
        stop_latency_ms_max=round(max(s.stop_latency) * 1000, 3) if s.stop_latency else None,
        feeds=request.app.state.eql.open_feeds,
    )
