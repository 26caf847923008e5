"""JSON lines for requests and queries (`eql serve --access-log`), and the server's log setup.

With `access_log` on, every request is one line of JSON, written through the `eql.access` logger
(on stdout, by `configure`) when its answer has ended:

    {"time": "2026-11-01T09:15:00.123Z", "type": "request", "method": "GET",
     "route": "/v1/segments/{name}/members/{key:path}", "status": 200, "duration_ms": 0.412,
     "key_id": "3f9c0a1b2c3d"}

and every query (`/v1/query`, `/v1/explain`) one more, just before its request's line:

    {"time": ..., "type": "query", "kind": "query", "query": "FIND users WHERE ...",
     "params": ["city"], "outcome": "ok", "code": null, "rows": 10, "duration_ms": 12.5,
     "key_id": ...}

`time` is RFC 3339 in UTC (`Z`), at the end of the answer. `route` is the route's template, never
the path (which holds customers' keys); a path that matches no route is `unmatched`. `key_id` is
the id of the API key that was accepted (never its secret), absent when none was. A query's text
is logged (its first `MAX_TEXT` characters) but its parameters by name only, never their
values. `outcome` is the metrics' label (`server.metrics.outcome`), `code` the exact error code
(`E202`, `deadline_exceeded`, ...) or null.

`configure(level, access_log, formatter)` is what `eql serve` sets up for its process: the
server's own log (`eql.*`, and `asyncio`'s reports) at `level` on stderr, in uvicorn's format,
and the JSON lines on stdout, whatever the level.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Sequence
from typing import Any

import orjson

ACCESS = logging.getLogger("eql.access")
MAX_TEXT = 2000


def rfc3339(t: float) -> str:
    """`t` (seconds since the epoch) as RFC 3339 UTC with milliseconds: `...T09:15:00.123Z`."""
    whole = int(t)
    return (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{int((t - whole) * 1000):03d}Z"
    )


def _line(doc: dict[str, Any]) -> str:
    try:
        return orjson.dumps(doc).decode()
    except TypeError:  # text that is not Unicode (a lone surrogate in a query): escaped
        clean = {
            k: v.encode("utf-8", "backslashreplace").decode() if isinstance(v, str) else v
            for k, v in doc.items()
        }
        return orjson.dumps(clean).decode()


class AccessLog:
    """The JSON lines of one app; `on` is `settings.access_log` (off: nothing is built)."""

    def __init__(self, on: bool) -> None:
        self.on = on

    def request(
        self, method: str, route: str, status: int, seconds: float, key_id: str | None
    ) -> None:
        doc: dict[str, Any] = {
            "time": rfc3339(time.time()),
            "type": "request",
            "method": method,
            "route": route,
            "status": status,
            "duration_ms": round(seconds * 1000, 3),
        }
        if key_id is not None:
            doc["key_id"] = key_id
        ACCESS.info(_line(doc))

    def query(
        self,
        kind: str,
        text: str,
        params: Sequence[str],
        outcome: str,
        code: str | None,
        rows: int | None,
        seconds: float,
        key_id: str | None,
    ) -> None:
        doc: dict[str, Any] = {
            "time": rfc3339(time.time()),
            "type": "query",
            "kind": kind,
            "query": text[:MAX_TEXT],
            "params": list(params),
            "outcome": outcome,
            "code": code,
            "rows": rows,
            "duration_ms": round(seconds * 1000, 3),
        }
        if len(text) > MAX_TEXT:
            doc["query_chars"] = len(text)
        if key_id is not None:
            doc["key_id"] = key_id
        ACCESS.info(_line(doc))


def configure(level: str, access_log: bool, formatter: logging.Formatter) -> None:
    """The log of an `eql serve` process: `eql.*` and `asyncio` at `level` on stderr with
    `formatter`; with `access_log`, the JSON lines on stdout (bare, one per line)."""
    numeric = logging.getLevelNamesMapping()[level.upper()]
    text = logging.StreamHandler(sys.stderr)
    text.setFormatter(formatter)
    for name in ("eql", "asyncio"):
        logger = logging.getLogger(name)
        logger.handlers = [text]
        logger.setLevel(numeric)
        logger.propagate = False
    ACCESS.handlers = []
    ACCESS.propagate = False
    if access_log:
        lines = logging.StreamHandler(sys.stdout)
        lines.setFormatter(logging.Formatter("%(message)s"))
        ACCESS.addHandler(lines)
        ACCESS.setLevel(logging.INFO)
