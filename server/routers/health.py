"""`GET /v1/health`: no key needed; never touches the engine."""

from __future__ import annotations

from fastapi import APIRouter

from server.models import Health
from server.version import VERSION

router = APIRouter(prefix="/v1", tags=["health"])


@router.get("/health", response_model=Health, summary="Liveness")
async def health() -> Health:
    return Health(status="ok", version=VERSION)
