"""The raw lookup path, and the request body limit (ASGI).

`FastPath` answers the lookups (`_lookups`) before anything of FastAPI runs (its
middleware stack, router, dependency injection and response validation cost several times the
lookup itself): `EqlApp.__call__` offers each request to it first. It uses the same `authorize`
and the same handler as the FastAPI route, with the same bodies and statuses. Anything else (other
paths, other methods, malformed paths) goes on to FastAPI. The lookups served so: an entity's
profile, the segments of one key, and single membership (`GET /v1/segments/{name}/members/{key}`).
Each answer is counted in the app's metrics under its FastAPI route's template (the same labels
whether the fast path is on or off) and, with the access log on, logged (`server.logs`).

`BodyLimit` refuses requests whose headers together exceed `max_header_bytes` (431) or that carry
two `Authorization` or two `X-API-Key` headers (400; the fast path checks the same), reads a
request's body up front, at most `max_bytes` (413 beyond, by Content-Length or by counting a
chunked body), and replays it to the app; later `receive` calls (the disconnect a streaming
answer waits for) pass through. Requests whose path starts with one of `streamed` (the file
imports, `/v1/ingest/`) get the header checks only: their route streams the body to a file
under a limit of its own (`max_ingest_bytes`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import unquote_to_bytes

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.auth import authorize, bearer_token
from server.errors import ApiError, error_bytes
from server.metrics import RouteCounts

if TYPE_CHECKING:
    from server.state import AppState

log = logging.getLogger("eql.server")

# (path prefix, the path's segments after it: None where a value goes, else the literal
#  segment; scopes; rate bucket; handler(state, *values) -> JSON body; the route's template)
Lookup = tuple[bytes, tuple[bytes | None, ...], tuple[str, ...], str, Callable[..., bytes], str]

_JSON = (b"content-type", b"application/json")


def _lookups() -> tuple[Lookup, ...]:
    from server.routers import entities, segments

    scopes = ("lookup",)
    profile = "/v1/entities/{entity}/{key:path}"
    of_key = "/v1/entities/{entity}/{key:path}/segments"
    member = "/v1/segments/{name}/members/{key:path}"
    return (
        (b"/v1/entities/", (None, None), scopes, "lookup", entities.profile, profile),
        (
            b"/v1/entities/",
            (None, None, b"segments"),
            scopes,
            "lookup",
            entities.segments_of,
            of_key,
        ),
        (b"/v1/segments/", (None, b"members", None), scopes, "lookup", segments.membership, member),
    )


def _match(parts: list[bytes], pattern: tuple[bytes | None, ...]) -> bool:
    if len(parts) != len(pattern):
        return False
    for part, want in zip(parts, pattern, strict=True):
        if not part if want is None else part != want:
            return False
    return True


def _too_large_headers(max_header_bytes: int) -> tuple[int, bytes]:
    message = f"the request headers exceed {max_header_bytes} bytes"
    return 431, error_bytes([{"code": "headers_too_large", "message": message}])


def _twice() -> tuple[int, bytes]:
    """Two `Authorization` (or two `X-API-Key`) headers: which one counts would depend on who
    reads them, so neither does."""
    message = "the request has two Authorization (or X-API-Key) headers; send one"
    return 400, error_bytes([{"code": "duplicate_credentials", "message": message}])


# a lookup as served: the `Lookup` and its route's counts in the served app's metrics
_Served = tuple[
    bytes, tuple[bytes | None, ...], tuple[str, ...], str, Callable[..., bytes], str, RouteCounts
]


class FastPath:
    def __init__(self, max_header_bytes: int) -> None:
        self.state: AppState | None = None  # set by the app's lifespan (`attach`)
        self.max_header_bytes = max_header_bytes
        self.lookups = _lookups()
        self.served: tuple[_Served, ...] = ()

    def attach(self, state: AppState | None) -> None:
        """Serve `state` (None: nothing, at shutdown); its metrics count the lookups' routes."""
        self.state = state
        if state is not None:
            self.served = tuple((*lk, state.metrics.http.route(lk[5])) for lk in self.lookups)

    async def handle(self, scope: Scope, send: Send) -> bool:
        """Answer the request if it is a lookup; False: not ours, FastAPI answers it."""
        if scope["type"] != "http" or scope["method"] != "GET":
            return False
        raw: bytes = scope.get("raw_path") or scope["path"].encode()
        state = self.state
        if state is None:
            return False
        for prefix, pattern, scopes, limit, handler, template, counts in self.served:
            if raw.startswith(prefix):
                parts = raw[len(prefix) :].split(b"/")
                if _match(parts, pattern):
                    values = [p for p, want in zip(parts, pattern, strict=True) if want is None]
                    await self._answer(
                        state, scope, send, values, scopes, limit, handler, template, counts
                    )
                    return True
        return False

    async def _answer(
        self,
        state: AppState,
        scope: Scope,
        send: Send,
        parts: list[bytes],
        scopes: tuple[str, ...],
        limit: str,
        handler: Callable[..., bytes],
        template: str,
        counts: RouteCounts,
    ) -> None:
        started = time.perf_counter()
        headers: list[tuple[bytes, bytes]] = []
        key_id = None
        try:
            authorization = api_key = None
            size = 0
            twice = False
            for name, value in scope["headers"]:
                size += len(name) + len(value)
                if name == b"authorization":
                    twice = twice or authorization is not None
                    authorization = value.decode("latin-1")
                elif name == b"x-api-key":
                    twice = twice or api_key is not None
                    api_key = value.decode("latin-1")
            if size > self.max_header_bytes:
                status, body = _too_large_headers(self.max_header_bytes)
            elif twice:
                status, body = _twice()
            else:
                key_id = authorize(state, bearer_token(authorization, api_key), scopes, limit).id
                args = [(unquote_to_bytes(p) if b"%" in p else p).decode("utf-8") for p in parts]
                status, body = 200, handler(state, *args)
        except ApiError as exc:
            status, body = exc.status, error_bytes(exc.items())
            headers = [(k.lower().encode(), v.encode()) for k, v in exc.headers.items()]
        except UnicodeDecodeError:
            status = 422
            body = error_bytes([{"code": "invalid_key", "message": "the path is not UTF-8"}])
        except Exception:
            log.exception("internal error in a lookup")
            status = 500
            body = error_bytes([{"code": "internal", "message": "internal error; this is a bug"}])
        headers += [_JSON, (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        # counted once answered (a client gone in the middle of the answer raised above)
        seconds = time.perf_counter() - started
        counts.observe_get(status, seconds)
        if state.access.on:
            state.access.request("GET", template, status, seconds, key_id)


class BodyLimit:
    def __init__(
        self, app: ASGIApp, max_bytes: int, max_header_bytes: int, streamed: tuple[str, ...] = ()
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_header_bytes = max_header_bytes
        self.streamed = streamed  # path prefixes whose routes read (and limit) the body

    async def _reject(self, send: Send, status: int = 413, body: bytes = b"") -> None:
        body = body or error_bytes(
            [{"code": "too_large", "message": f"the body exceeds {self.max_bytes} bytes"}]
        )
        headers = [_JSON, (b"content-length", str(len(body)).encode()), (b"connection", b"close")]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        size = 0
        declared = 0
        credentials = {b"authorization": 0, b"x-api-key": 0}
        for name, value in scope["headers"]:
            size += len(name) + len(value)
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
            elif name in credentials:
                credentials[name] += 1
        if size > self.max_header_bytes:
            await self._reject(send, *_too_large_headers(self.max_header_bytes))
            return
        if max(credentials.values()) > 1:
            await self._reject(send, *_twice())
            return
        if self.streamed and scope["path"].startswith(self.streamed):
            await self.app(scope, receive, send)
            return
        if declared > self.max_bytes:
            await self._reject(send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                chunks = []
                early: Message | None = message  # a disconnect before the body ended
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._reject(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                early = None
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                if early is not None:
                    return early
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
