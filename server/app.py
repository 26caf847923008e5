"""`create_app(settings)`: the FastAPI app, its lifespan (session, keys, runner), middleware.

The lifespan opens a `runtime.Session` on the store (`Session.open(data_dir)`; or uses the one
given, which it then does not close) with the configured DataFusion memory pool, runs a trivial
query so that the first request does not pay for loading the grammar, and puts an `AppState` on
`app.state.eql`. Routers are thin (`server.routers`); limits live in `server.settings`.

Every HTTP request is counted in the app's metrics (`server.metrics`: by route template, method
and status, with its latency) and, with `access_log`, written as a JSON line (`server.logs`):
lookups by the fast path itself, everything else by `EqlApp.__call__` around FastAPI (a request
that no route matches is counted as `unmatched`, never by its path).

The server imports `runtime` (the one door to the store and EQL), `entities` (the schema it
documents) and `eql.diagnostics` (the errors it maps); never the compiler's stages or `storage`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import Match
from starlette.types import Message, Receive, Scope, Send

from runtime import Session, live
from server import errors, replication
from server.auth import KEY_ID
from server.fastpath import BodyLimit, FastPath
from server.follow import follow
from server.keys import KeyFile
from server.logs import AccessLog
from server.lookups import Lookups
from server.metrics import UNMATCHED, Metrics
from server.openapi import per_entity
from server.priority import lower_engine_threads
from server.ratelimit import RateLimiter
from server.routers import ROUTERS, ingest
from server.runner import QueryRunner
from server.settings import Settings
from server.state import AppState
from server.version import VERSION

log = logging.getLogger("eql.server")
ROUTES = tuple(r for router in ROUTERS for r in router.routes if isinstance(r, APIRoute))

DESCRIPTION = """\
EQL over HTTP: queries (JSON, NDJSON, Arrow IPC stream), explain, entity profiles, segments
(membership of one key or many, the segments of a key, define, refresh, a change feed) and tags.

Every route but `/v1/health` needs an API key (`eql keys create`), sent as
`Authorization: Bearer <key>` or `X-API-Key: <key>`. Errors are `{"errors": [...]}`; EQL
diagnostics keep their codes (E1xx, E2xx) and positions.
"""


def _build_state(settings: Settings, session: Session) -> AppState:
    schema = session.store.schema
    if not session.store.kv.read_only:
        live.clear_uploads(session)  # bodies a stopped server was importing: never committed
    if schema.entities:  # load the grammar, warm the planner, start DataFusion's runtime
        session.query(f"FIND `{schema.entities[0].name}` RETURN count() AS n")
        lower_engine_threads(settings.query_nice)
    metrics = Metrics()
    state = AppState(
        settings=settings,
        session=session,
        keys=KeyFile(settings.keys_path, settings.keys_recheck),
        limits={
            "query": RateLimiter(settings.rate_query, settings.rate_query_burst),
            "lookup": RateLimiter(settings.rate_lookup, settings.rate_lookup_burst),
        },
        runner=QueryRunner(
            settings.query_workers,
            settings.query_queue_timeout,
            settings.query_nice,
            held_limit=settings.memory_limit,
        ),
        lookups=Lookups(session, settings.max_key_chars, settings.max_batch_keys, metrics.lookups),
        metrics=metrics,
        access=AccessLog(settings.access_log),
    )
    metrics.watch(state.runner, lambda: state.open_feeds)
    return state


class EqlApp(FastAPI):
    """FastAPI, with lookups answered on a raw ASGI path in front of it (`server.fastpath`)."""

    fast_path: FastPath | None = None
    _started_spec: dict[str, Any] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        fast = self.fast_path
        if fast is not None and await fast.handle(scope, send):
            return  # counted by the fast path
        state: AppState | None = self.state.eql if scope["type"] == "http" else None
        if state is None:
            await super().__call__(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await super().__call__(scope, receive, sending)
        finally:
            seconds = time.perf_counter() - started
            route = self._template(scope)
            method: str = scope["method"]
            status = status or 499  # the client went away before an answer began
            state.metrics.http.observe(route, method, status, seconds)
            if state.access.on:
                state.access.request(method, route, status, seconds, scope.get(KEY_ID))

    def _template(self, scope: Scope) -> str:
        """The template of the route that answered; for a request refused before routing (a body
        limit), the route it was for; `unmatched` when none matches."""
        path = getattr(scope.get("route"), "path", None)
        if isinstance(path, str):
            return path
        for route in ROUTES:  # our routers' own routes (FastAPI wraps them once included)
            match, _ = route.matches(scope)
            if match is not Match.NONE:
                return route.path
        return UNMATCHED

    def openapi(self) -> dict[str, Any]:
        """The generic document; once started, with each entity's routes (`server.openapi`)."""
        spec = super().openapi()
        state = self.state.eql
        if state is None:
            return spec
        if self._started_spec is None:
            schema = state.session.store.schema
            self._started_spec = per_entity(spec, schema, state.settings.max_key_chars)
        return self._started_spec


def create_app(
    settings: Settings | None = None,
    *,
    session: Session | None = None,
    follow_interval: float | None = None,
) -> FastAPI:
    """The app. `session`: a session over an open store to serve (the caller keeps owning it;
    `Session(store, settings.engine())`); else the lifespan opens `settings.data_dir` and closes
    it at shutdown. `follow_interval`: the app is a reader worker over a read-only session and
    follows the writer every that many seconds (`server.follow`)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        own = session is None
        opened = Session.open(settings.data_dir, settings=settings.engine()) if own else session
        assert opened is not None
        try:
            state = await asyncio.to_thread(_build_state, settings, opened)
            # what startup built lives as long as the server: keep the cyclic GC from scanning
            # it again and again (a full collection of it takes tens of ms, a p99 spike)
            gc.collect()
            gc.freeze()
            # query threads hold the GIL while they encode results; a shorter switch interval
            # bounds how long a lookup on the event loop waits for it (5 ms by default)
            switch = sys.getswitchinterval()
            sys.setswitchinterval(min(switch, settings.gil_switch_interval))
            app.state.eql = state
            if app.fast_path is not None:
                app.fast_path.attach(state)
            following = None
            if follow_interval is not None:  # a reader worker
                following = asyncio.create_task(follow(state, follow_interval))
            try:
                if following is None:  # the writer runs the CDC connectors
                    await replication.start(
                        state, settings.cdc, settings.cdc_max_failures, settings.cdc_reader
                    )
                yield
            finally:
                await replication.stop(state, settings.cdc_stop_timeout)
                if following is not None:
                    following.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await following
                if app.fast_path is not None:
                    app.fast_path.attach(None)
                state.runner.shutdown()
                app.state.eql = None
                gc.unfreeze()  # collectable again (matters where apps come and go: tests)
                sys.setswitchinterval(switch)
        finally:
            if own:
                opened.close()

    app = EqlApp(
        title="EQL query server",
        version=VERSION,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs" if settings.docs else None,
        redoc_url=None,
        openapi_url="/openapi.json" if settings.docs else None,
    )
    app.state.eql = None
    app.state.settings = settings  # what `server.protocol.config` runs it with
    errors.install(app)
    for router in ROUTERS:
        app.include_router(router)
    app.add_middleware(
        BodyLimit,
        max_bytes=settings.max_body_bytes,
        max_header_bytes=settings.max_header_bytes,
        streamed=(ingest.PREFIX + "/",),  # file imports: streamed under max_ingest_bytes
    )
    if settings.fast_lookups:
        app.fast_path = FastPath(settings.max_header_bytes)
    return app
