"""A reader worker sends what writes to the writer (`eql serve --workers N`).

N processes answer on one port (`server.workers`): the writer, which holds the store, and N-1
readers, which follow it (`server.follow`). The kernel gives each connection to any of them, so
a reader answers what reads (lookups, queries, EXPLAIN, listings, the change feed) itself and
passes every request that writes, as it came (method, path, query, headers, body), to the writer
over the writer's private unix socket, streaming the writer's answer back unchanged. What writes:
- every POST, PUT, PATCH and DELETE but the reading POSTs (`/v1/explain`, a batch membership
  lookup `/v1/segments/{name}/members`, and `/v1/query` of a query or an EXPLAIN: for
  `/v1/query` the body is read first and its statement's kind decided, `runtime.kind_of`);
- the writer's own resources: the CDC supervisor (`/v1/admin/cdc...`).
A body the reader cannot parse is answered by the reader itself (the same 4xx the writer would
give). The writer unreachable is a 503 with `Retry-After` (never a hang: bounded connect time).
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from eql.diagnostics import EqlError
from runtime import kind_of
from server.errors import error_bytes

READING_POSTS = (re.compile(r"^/v1/explain$"), re.compile(r"^/v1/segments/[^/]+/members$"))
WRITER_ONLY = re.compile(r"^/v1/admin/cdc(/|$)")
HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"transfer-encoding", b"upgrade", b"te", b"trailer"}
)
CONNECT_SECONDS = 5.0


def writes(method: str, path: str, body: bytes | None) -> bool | None:
    """Whether a request writes; None when only its body can tell (`/v1/query`, body not read)."""
    if WRITER_ONLY.match(path):
        return True
    if method in ("GET", "HEAD", "OPTIONS"):
        return False
    if any(p.match(path) for p in READING_POSTS):
        return False
    if path == "/v1/query" and method == "POST":
        if body is None:
            return None
        try:
            text = json.loads(body).get("query")
            return isinstance(text, str) and kind_of(text) == "write"
        except (ValueError, AttributeError, EqlError):
            return False  # the reader answers it: the same error the writer would give
    return True


class ForwardWrites:
    """The ASGI app of a reader worker, around the app: requests that write go to the writer's
    socket; what this reader answers itself is marked `x-eql-worker: reader`."""

    def __init__(self, app: ASGIApp, writer_socket: str, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        transport = httpx.AsyncHTTPTransport(uds=writer_socket)
        timeout = httpx.Timeout(None, connect=CONNECT_SECONDS)
        self._client = httpx.AsyncClient(transport=transport, timeout=timeout)

    @property
    def state(self) -> Any:  # what uvicorn and the tests find on an app
        return getattr(self.app, "state", None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        decided = writes(method, path, None)
        answer = _marked(send)
        if decided is False:
            await self.app(scope, receive, answer)
            return
        body: bytes | None = None
        if decided is None:  # /v1/query: read the (small, limited) body to decide
            body = await _read_body(receive, self.max_body_bytes)
            if body is None:
                await _answer(answer, 413, "body_too_large", "the request body is too large")
                return
            if not writes(method, path, body):
                await self.app(scope, _replay(body, receive), answer)
                return
        await self._forward(scope, receive, send, body)

    async def _forward(
        self, scope: Scope, receive: Receive, send: Send, body: bytes | None
    ) -> None:
        headers = [
            (k.decode("latin-1"), v.decode("latin-1"))
            for k, v in scope["headers"]
            if k.lower() not in HOP_BY_HOP and k.lower() != b"host"
        ]
        url = httpx.URL(
            "http://writer" + scope.get("root_path", "") + scope["path"],
            query=scope.get("query_string", b""),
        )
        content: Any = body if body is not None else _stream(receive)
        request = self._client.build_request(scope["method"], url, headers=headers, content=content)
        try:
            response = await self._client.send(request, stream=True)
        except httpx.TransportError:
            await _answer(send, 503, "writer_unavailable", "the writer worker does not answer")
            return
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status_code,
                    "headers": [
                        (k, v)
                        for k, v in response.headers.raw
                        if k.lower() not in HOP_BY_HOP and k.lower() != b"content-length"
                    ],
                }
            )
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await response.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()


def _marked(send: Send) -> Send:
    """`send` adding `x-eql-worker: reader` to a response this reader answers itself."""

    async def marked(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [*message.get("headers", ()), (b"x-eql-worker", b"reader")]
            message = {**message, "headers": headers}
        await send(message)

    return marked


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None past `limit` (the reader's own body limit then answers it)."""
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(parts)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        parts.append(chunk)
        if not message.get("more_body", False):
            return b"".join(parts)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body read already, then the connection's own messages (a disconnect when it comes)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


async def _stream(receive: Receive) -> Any:
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return
        chunk = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return


async def _answer(send: Send, status: int, code: str, message: str) -> None:
    headers = [(b"content-type", b"application/json")]
    if status == 503:
        headers.append((b"retry-after", b"1"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send(
        {"type": "http.response.body", "body": error_bytes([{"code": code, "message": message}])}
    )
