"""Thin routers, one per resource, all under /v1. `ROUTERS` is what `create_app` mounts.

Segments (`segments.py`: list/define/refresh/get, membership, batch membership, the SSE feed) and
tags (`tags.py`) come with their own issue: add their modules here, and register their lookup
routes (single membership) on the raw path in `server.fastpath` next to the profile.
"""

from __future__ import annotations

from fastapi import APIRouter

from server.routers import admin, entities, health, query, schema

ROUTERS: tuple[APIRouter, ...] = (
    health.router,
    schema.router,
    query.router,
    entities.router,
    # segments.router,  -- segments and tags: not yet (see the docstring)
    # tags.router,
    admin.router,
)
