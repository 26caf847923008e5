"""How uvicorn runs the app: its config, and an HTTP protocol that times out slow request heads.

uvicorn closes idle keep-alive connections (`timeout_keep_alive`) but waits forever for the
headers of a request that has begun: a client sending a header a minute holds a connection, and
1,500 such clients held 1,500 for as long as they liked. `HeaderTimeout` (uvicorn's httptools
protocol with one timer more) gives every request `header_timeout` seconds from the connection's
opening (or, on a kept-alive connection, from the request's first byte) to its last header; then
it answers 408 and closes. The body is
not timed here: the app reads it (`server.fastpath.BodyLimit`) under the request's own limits.

`Server(config, on_bound)` is uvicorn's server telling `on_bound(host, port)` once its socket
listens (the port the system chose for `--port 0`): `eql serve` then writes `DATA/server.json`
(`eql.cli.served`).

`config(app, settings)` is the one place that builds the uvicorn config, for `eql serve` and for
the tests' real servers alike: uvicorn's log at `settings.log_level`, and its access log off
(the app writes its own, as JSON lines: `server.logs`). `configure_logging(settings)` sets up
the log of a process that serves (`eql serve`): the server's messages in uvicorn's format on
stderr, the JSON lines on stdout.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Sequence
from typing import Any

import uvicorn
from uvicorn.logging import DefaultFormatter
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from server import logs
from server.errors import error_bytes
from server.settings import Settings


def _head_too_slow() -> bytes:
    body = error_bytes(
        [{"code": "request_timeout", "message": "the request headers did not arrive in time"}]
    )
    head = (
        b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
        b"connection: close\r\ncontent-length: " + str(len(body)).encode() + b"\r\n\r\n"
    )
    return head + body


class HeaderTimeout(HttpToolsProtocol):
    """uvicorn's httptools protocol; a request's head must be complete `header_timeout` seconds
    after the connection opened (the first request) or after its first byte (the next ones on a
    kept-alive connection, which uvicorn's keep-alive timeout closes while idle)."""

    header_timeout = 10.0  # set per server by `config`

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None

    def _arm(self) -> None:
        self._disarm()
        self._head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self.transport.write(_head_too_slow())
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._head_timer is None:  # a pipelined request: its own time from its first byte
            self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()


log = logging.getLogger("eql.server")


def bound_address(sockets: Sequence[Any]) -> tuple[str, int] | None:
    """The (host, port) the server listens on: an IPv4 socket's if there is one (`localhost`
    binds both families), else the first's; None for a Unix socket."""
    inet = [s for s in sockets if s.family in (socket.AF_INET, socket.AF_INET6)]
    if not inet:
        return None
    first = next((s for s in inet if s.family == socket.AF_INET), inet[0])
    host, port = first.getsockname()[:2]
    return str(host), int(port)


class Server(uvicorn.Server):
    """uvicorn's server; `on_bound(host, port)` is called once it listens (on the event loop,
    before the first request is read). Its failure is logged: the server serves without it."""

    def __init__(
        self, config: uvicorn.Config, on_bound: Callable[[str, int], None] | None = None
    ) -> None:
        super().__init__(config)
        self.on_bound = on_bound

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if not self.started or self.on_bound is None:
            return
        listening = [s for server in self.servers for s in (server.sockets or ())]
        address = bound_address(listening)
        if address is None:
            return
        try:
            self.on_bound(*address)
        except Exception:
            log.exception("could not leave the local credential (server.json)")


def protocol(header_timeout: float) -> type[HeaderTimeout]:
    return type("HeaderTimeout", (HeaderTimeout,), {"header_timeout": header_timeout})


def config(app: Any, settings: Settings, **overrides: Any) -> uvicorn.Config:
    """The uvicorn config `eql serve` runs with (`overrides`: log level, port, ... for tests)."""
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        "access_log": False,  # ours is the app's (server.logs), one JSON line per request
        "http": protocol(settings.header_timeout),
        "timeout_graceful_shutdown": 5,  # open change feeds end then; readers resume
    }
    options.update(overrides)
    return uvicorn.Config(app, **options)


def configure_logging(settings: Settings) -> None:
    """The log of a serving process: `eql.*` and asyncio's reports at `settings.log_level` on
    stderr, as uvicorn's own lines are; with `settings.access_log`, the JSON lines on stdout."""
    formatter = DefaultFormatter("%(levelprefix)s %(name)s: %(message)s")
    logs.configure(settings.log_level, settings.access_log, formatter)
