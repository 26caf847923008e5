"""A connection to an EQL server (`eql serve`, docs/server.md) over HTTP, with httpx: the same
interface as a store connection, results as Arrow.

- `query`/`execute` post `/v1/query` asking for the Arrow IPC stream
  (`application/vnd.apache.arrow.stream`) and read it batch by batch as the body arrives; the
  stream's last, empty batch says the row count and whether the server cut the result
  (`eql.truncated`), or carries the error that stopped it (`eql.error`). Without `limit` the
  server's default row limit applies; a result it cut warns (`eql.client.errors.Truncated`).
- Column types: a field's `eql.type` metadata when the server sends one, else named from the
  Arrow type (`eql.client.result.eql_type`).
- `explain` posts `/v1/explain`; `schema`, `segments`, `tags` and descriptions are the GET routes;
  `define` posts `/v1/segments` (or `/v1/tags` for a DEFINE TAG / CLUSTERS), refresh and drop
  their routes; `is_member` the batch membership route (keys typed as JSON, checked so).
- A segment's members at a version, and its changes between two, are rebuilt from the change
  feed (`GET /v1/segments/{name}/changes`, Server-Sent Events: version 1's `entered` are all
  its members, each later version what entered and exited), read up to the version asked for;
  the version is first checked against the segment's description.

Parameter values go as JSON: a `date` as `YYYY-MM-DD`, a `datetime` in UTC (a naive one is
UTC), as `YYYY-MM-DD` when it is midnight, else as an ISO timestamp: the server then reads them as
a store connection does (a midnight datetime is a date; one with a time of day is no date, E211).

Errors: a response's `{"errors": [...]}` becomes an `Error` with the same codes, spans (into the
text sent), notes and helps (`eql.client.errors.from_items`); a server that cannot be reached
is `unreachable`. An unknown segment is said as a store connection says it, naming the defined
segments (from `GET /v1/segments`). Times in descriptions (`as_of`, `refreshed_at`,
`defined_at`) are datetimes.

The only importer of httpx. May import httpx, pyarrow, entities.names, eql.client.
"""

from __future__ import annotations

import datetime as dt
import decimal
import io
import json
from collections.abc import Iterator, Mapping
from typing import Any, NoReturn
from urllib.parse import quote

import httpx
import pyarrow as pa
import pyarrow.ipc as ipc

from entities.names import not_defined, versions_text
from eql.client.connection import (
    HISTORY,
    AsOf,
    Changes,
    Connection,
    Kind,
    Params,
    check_limit,
    plain_params,
    time_text,
)
from eql.client.errors import Error, error, from_items
from eql.client.result import Column, Explanation, Result, Run, Source, eql_type

ARROW = "application/vnd.apache.arrow.stream"
_TIMES = ("as_of", "refreshed_at", "defined_at")
_KEY_TYPES = {"int": pa.int64(), "string": pa.string()}
_PATHS: dict[Kind, str] = {"segment": "/v1/segments", "tag": "/v1/tags"}
_SEGMENT_HINT = "db.segments() lists the segments"


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        utc = value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
        if utc.time() == dt.time(0):
            return utc.date().isoformat()  # a date too, as the binder takes a midnight datetime
        return utc.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not a parameter value")


def _dumps(body: Any) -> str:
    """A request body as JSON (a parameter value JSON cannot hold is the caller's error)."""
    try:
        return json.dumps(body, default=_json_default)
    except (TypeError, ValueError) as exc:
        raise error(
            "invalid_request",
            str(exc),
            "parameters are str, int, float, bool, None, "
            "dates, datetimes, decimals, or lists of them",
        ) from None


def _times(value: Any) -> Any:
    """`value` with the times of a description as datetimes."""
    if isinstance(value, list):
        return [_times(v) for v in value]
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k in _TIMES and isinstance(v, str):
                out[k] = dt.datetime.fromisoformat(v)
            else:
                out[k] = _times(v)
        return out
    return value


class Remote(Connection):
    def __init__(self, url: str, *, key: str | None, timeout: float = 60.0) -> None:
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)
        try:
            self._request("GET", "/v1/health")
        except BaseException:
            self._http.close()
            raise

    def __repr__(self) -> str:
        return f"<eql.Connection {self.url!r}>"

    # ---- HTTP --------------------------------------------------------------------------------
    def _unreachable(self, exc: httpx.HTTPError) -> NoReturn:
        if isinstance(exc, httpx.TimeoutException):
            raise error(
                "timeout", f"{self.url} did not answer in time ({exc})", "eql.connect(timeout=...)"
            ) from None
        raise error(
            "unreachable",
            f"cannot reach {self.url}: {exc}",
            "is the server running? (eql serve --data-dir DIR)",
        ) from None

    def _failed(self, response: httpx.Response, source: str) -> Error:
        """The error a response carries (its body read)."""
        try:
            body = response.json()
            items = body["errors"] if isinstance(body, dict) else None
        except ValueError:
            items = None
        if not isinstance(items, list):
            text = response.text[:200]
            return error(
                "http_error", f"{response.status_code}: {text}", status=response.status_code
            )
        return from_items(items, source, response.status_code, response.headers)

    def _request(
        self, method: str, path: str, body: Any = None, source: str = "", **params: Any
    ) -> Any:
        """The JSON of a successful answer (None for an empty one); else its error raised."""
        self._live()
        content = None if body is None else _dumps(body)
        headers = {"content-type": "application/json"} if content is not None else {}
        try:
            response = self._http.request(
                method, path, content=content, headers=headers, params=params or None
            )
        except httpx.HTTPError as exc:
            self._unreachable(exc)
        if response.status_code >= 400:
            raise self._failed(response, source)
        return response.json() if response.content else None

    def _body(
        self, text: str, params: Params, as_of: AsOf, limit: int | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"query": text, "params": plain_params(params)}
        if as_of is not None:
            body["as_of"] = time_text(as_of)
        if limit is not None:
            body["limit"] = limit
        return body

    # ---- running EQL -------------------------------------------------------------------------
    def query(
        self, text: str, params: Params = None, as_of: AsOf = None, limit: int | None = None
    ) -> Result:
        self._live()
        limit = check_limit(limit)
        return Result(_RemoteSource(self, text, self._body(text, params, as_of, limit), params))

    def execute(self, text: str, params: Params = None, as_of: AsOf = None) -> Result:
        result = self.query(text, params, as_of)
        result.to_arrow()
        return result

    def explain(
        self, text: str, params: Params = None, as_of: AsOf = None, stage: str | None = None
    ) -> Explanation:
        body = self._body(text, params, as_of)
        if stage is not None:
            body["stage"] = stage
        answer = self._request("POST", "/v1/explain", body, source=text)["explain"]
        return Explanation(str(answer["stage"]), str(answer["text"]))

    # ---- definitions -------------------------------------------------------------------------
    def _path(self, kind: Kind, name: str, *rest: str) -> str:
        return "/".join([_PATHS[kind], quote(name, safe=""), *rest])

    def _schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = self._request("GET", "/v1/schema")
        return schema

    def _listing(self, kind: Kind) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = _times(self._request("GET", _PATHS[kind])["items"])
        return items

    def _named(
        self, kind: Kind, name: str, method: str, path: str, body: Any = None, **q: Any
    ) -> Any:
        """`_request` about the definition `name`; an unknown segment said as a store connection
        says it (the defined segments named, when the key may list them)."""
        try:
            return self._request(method, path, body, **q)
        except Error as exc:
            if kind != "segment" or exc.code != "unknown_segment":
                raise
            try:
                defined = [str(item["name"]) for item in self._listing("segment")]
            except Error:
                raise exc from None
            raise error(
                "unknown_segment", not_defined("segment", name, defined), _SEGMENT_HINT, exc.status
            ) from None

    def _detail(self, kind: Kind, name: str, history: int) -> dict[str, Any]:
        detail: dict[str, Any] = _times(
            self._named(kind, name, "GET", self._path(kind, name), history=history)
        )
        return detail

    def _define(self, text: str, refresh: bool, as_of: AsOf) -> dict[str, Any]:
        body: dict[str, Any] = {"eql": text, "refresh": refresh}
        if as_of is not None:
            body["as_of"] = time_text(as_of)
        for kind in ("segment", "tag"):
            try:
                detail: dict[str, Any] = self._request("POST", _PATHS[kind], body, source=text)
            except Error as exc:
                if exc.code == "wrong_statement":
                    continue
                raise
            return _times(detail)  # type: ignore[no-any-return]
        raise error(
            "wrong_statement",
            "db.define() takes DEFINE SEGMENT, DEFINE TAG or DEFINE CLUSTERS",
            "run other statements with db.execute()",
        )

    def _refresh(self, kind: Kind, name: str, as_of: AsOf) -> dict[str, Any]:
        body = {} if as_of is None else {"as_of": time_text(as_of)}
        facts: dict[str, Any] = _times(
            self._named(kind, name, "POST", self._path(kind, name, "refresh"), body)
        )
        return facts

    def _drop(self, kind: Kind, name: str) -> None:
        self._named(kind, name, "DELETE", self._path(kind, name))

    # ---- segments ----------------------------------------------------------------------------
    def _is_member(self, name: str, key: Any) -> bool:
        path = self._path("segment", name, "members")
        answer = self._named("segment", name, "POST", path, {"keys": [key]})
        return bool(answer["members"][0])

    def _versions(self, name: str, *wanted: int | None) -> tuple[dict[str, Any], list[int]]:
        """The segment's description, and each wanted version (None: the latest) as a number
        it has (`not_refreshed`, `unknown_version` otherwise)."""
        detail = self._detail("segment", name, HISTORY)
        have = [int(v["version"]) for v in detail["versions"]]
        shown = detail["name"]
        if not have:
            raise error(
                "not_refreshed",
                f"segment {shown} is defined but was never refreshed",
                "refresh it first: db.segment(name).refresh(as_of=...)",
            )
        out = []
        for v in wanted:
            if v is None:
                v = max(have)
            if v not in have:
                raise error(
                    "unknown_version",
                    f"segment {shown} has no version {v}: it has {versions_text(have)}",
                    "db.segment(name).versions() lists its versions",
                )
            out.append(v)
        return detail, out

    def _key(self, entity: str) -> tuple[str, pa.DataType | None]:
        for e in self._schema()["entities"]:
            if e["name"] == entity:
                return str(e["key"]["name"]), _KEY_TYPES.get(str(e["key"]["type"]))
        raise error("unknown_entity", f"no entity {entity} in the server's schema")

    def _feed(self, name: str, since: int, to: int) -> Iterator[dict[str, Any]]:
        """The change events after version `since` up to version `to`'s last one."""
        path = self._path("segment", name, "changes")
        try:
            with self._http.stream("GET", path, params={"since": since}) as response:
                if response.status_code >= 400:
                    response.read()
                    raise self._failed(response, "")
                for event, data in _events(response.iter_lines()):
                    if event in ("dropped", "reset"):
                        raise error(
                            "unknown_segment",
                            f"segment {name} was dropped while its changes were read",
                        )
                    if event != "change":
                        continue
                    if int(data["version"]) > to:
                        break
                    yield data
                    if int(data["version"]) == to and data.get("final"):
                        return
        except httpx.HTTPError as exc:
            self._unreachable(exc)
        raise error("feed_ended", f"the change feed of {name} ended before version {to}")

    def _members(self, name: str, version: int | None) -> pa.Table:
        detail, (target,) = self._versions(name, version)
        key, key_type = self._key(str(detail["entity"]))
        members: set[Any] = set()
        for change in self._feed(name, 0, target):
            members.update(change["entered"])
            members.difference_update(change["exited"])
        return pa.table({key: pa.array(sorted(members), type=key_type)})

    def _changes(self, name: str, since: int, to: int) -> Changes:
        detail, (a, b) = self._versions(name, since, to)
        _, key_type = self._key(str(detail["entity"]))
        lo, hi = min(a, b), max(a, b)
        entered: set[Any] = set()
        exited: set[Any] = set()
        if lo != hi:
            for change in self._feed(name, lo, hi):
                for k in change["entered"]:
                    if k in exited:
                        exited.discard(k)
                    else:
                        entered.add(k)
                for k in change["exited"]:
                    if k in entered:
                        entered.discard(k)
                    else:
                        exited.add(k)
        if a > b:
            entered, exited = exited, entered
        return Changes(
            str(detail["name"]),
            since,
            to,
            pa.array(sorted(entered), type=key_type),
            pa.array(sorted(exited), type=key_type),
        )

    def _close(self) -> None:
        self._http.close()


def _events(lines: Iterator[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Server-Sent Events as (event, data as JSON); comments and `retry:` skipped."""
    event = "message"
    data: list[str] = []
    for line in lines:
        if line == "":
            if data:
                yield event, json.loads("\n".join(data))
            event, data = "message", []
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                event = value
            elif field == "data":
                data.append(value)


class _RemoteSource(Source):
    def __init__(self, db: Remote, text: str, body: dict[str, Any], params: Params) -> None:
        self.text = text
        self._db = db
        self._body = body
        self._params = params

    def open(self) -> Run:
        return _ArrowRun(self._db, self.text, self._body)

    def explain(self, stage: str | None) -> Explanation:
        return self._db.explain(self.text, self._params, self._body.get("as_of"), stage)


class _Chunks(io.RawIOBase):
    """A response body as a readable file, for pyarrow's stream reader."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        while not self._buffer:
            try:
                self._buffer = next(self._chunks)
            except StopIteration:
                return 0
        n = min(len(target), len(self._buffer))
        target[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n


class _ArrowRun(Run):
    """One POST /v1/query, its Arrow stream read as the body arrives."""

    def __init__(self, db: Remote, text: str, body: dict[str, Any]) -> None:
        db._live()
        self._db = db
        self._text = text
        self.limited = "limit" not in body
        content = _dumps(body)
        headers = {"accept": ARROW, "content-type": "application/json"}
        try:
            request = db._http.build_request("POST", "/v1/query", content=content, headers=headers)
            self._response = db._http.send(request, stream=True)
        except httpx.HTTPError as exc:
            db._unreachable(exc)
        self._kept: list[pa.RecordBatch] | None = None
        try:
            self._start()
        except BaseException:
            self._response.close()
            raise

    def _start(self) -> None:
        response = self._response
        if response.status_code >= 400:
            response.read()
            raise self._db._failed(response, self._text)
        if response.headers.get("content-type", "").startswith("application/json"):
            response.read()  # an EXPLAIN text: its explanation, as a one-column table
            answer = response.json()["explain"]
            table = pa.table({"explain": [str(answer["text"])]})
            self.schema, self._kept = table.schema, table.to_batches()
            self.columns = (Column("explain", "string"),)
            return
        self._reader = self._guard(lambda: ipc.open_stream(_Chunks(response.iter_bytes())))
        self.schema = self._reader.schema
        self.columns = tuple(Column(f.name, eql_type(f)) for f in self.schema)

    def _guard(self, fn: Any) -> Any:
        try:
            return fn()
        except httpx.HTTPError as exc:
            self._db._unreachable(exc)
        except (pa.ArrowException, OSError) as exc:
            raise error("bad_stream", f"the server's Arrow stream broke off: {exc}") from None

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        if self._kept is not None:
            yield from self._kept
            return
        while True:
            try:
                batch, meta = self._guard(self._reader.read_next_batch_with_custom_metadata)
            except StopIteration:
                return
            if meta is not None and len(meta):
                self._trailer(meta)
            if batch.num_rows:
                yield batch

    def _trailer(self, meta: Mapping[bytes, bytes]) -> None:
        failed = meta.get(b"eql.error")
        if failed is not None:
            raise from_items([json.loads(failed)], self._text, None)
        self.truncated = meta.get(b"eql.truncated") == b"true"

    def close(self) -> None:
        self._response.close()
