"""Thin routers, one per resource, all under /v1 (but `/metrics`, where Prometheus looks).
`ROUTERS` is what `create_app` mounts; the lookups among their routes are also served on the raw
path (`server.fastpath`)."""

from __future__ import annotations

from fastapi import APIRouter

from server.routers import (
    admin,
    cdc,
    entities,
    health,
    ingest,
    metrics,
    query,
    schema,
    segments,
    tags,
)

ROUTERS: tuple[APIRouter, ...] = (
    health.router,
    schema.router,
    query.router,
    entities.router,
    segments.router,
    tags.router,
    admin.router,
    ingest.router,
    cdc.router,
    metrics.router,
)
