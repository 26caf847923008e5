"""`POST /v1/query` and `POST /v1/explain`: the work behind the thin router.

A query is compiled and opened on the query pool, its batches pulled on the event loop and
encoded on the pool (`server.runner`). Rows are cut at the request's `limit` (default
`default_rows`, at most `max_rows`): one row past the cut is read to tell whether the result was
`truncated`, then the stream is closed, which stops the engine. A JSON answer is built whole
(every error has its own status). NDJSON and Arrow answers wait for the first chunk (so early
errors have their own status too), then stream; a later error, the deadline or the end is said by
the stream's trailer (see `server.encoding`).

Each query's end is said once (`QueryRecord`): when its answer is complete (a stream's last
byte) or refused, with its error code, to the metrics (`eql_queries_total`, its duration) and,
with the access log on, as a JSON line (its text, its parameters' names, never their values).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import pyarrow as pa
from starlette.responses import JSONResponse, Response
from starlette.types import Message, Receive, Scope, Send

from runtime import Explanation, NotPermitted, Permissions, Query, Statement
from server import definitions, encoding, metrics
from server.errors import ApiError
from server.models import ExplainRequest, QueryRequest
from server.runner import Run, retrieve
from server.state import AppState

log = logging.getLogger("eql.server")


class ClientGone(Exception):
    """The client disconnected; the query was stopped."""


def code_of(exc: BaseException) -> str:
    return "cancelled" if isinstance(exc, ClientGone) else metrics.code_of(exc)


class QueryRecord:
    """One query's end, said once: to the metrics and, when on, to the access log."""

    def __init__(self, state: AppState, kind: str, body: QueryRequest, key_id: str | None) -> None:
        self.state = state
        self.kind = kind  # query, explain or statement (known once prepared)
        self.body = body
        self.key_id = key_id
        self.rows: int | None = None
        self.started = time.perf_counter()
        self._said = False

    def end(self, code: str | None) -> None:
        if self._said:
            return
        self._said = True
        seconds = time.perf_counter() - self.started
        self.state.metrics.query(self.kind, code, seconds)
        access = self.state.access
        if access.on:
            text, params = self.body.query, list(self.body.params or ())
            label = metrics.outcome(code)
            access.query(self.kind, text, params, label, code, self.rows, seconds, self.key_id)


class Cursor:
    """Pulls batches (on the loop), cuts them at the row limit, encodes them (on the pool), in
    slices that stop at the deadline or a stop and at the result's byte limit (`encoding.Pace`)."""

    def __init__(
        self,
        run: Run,
        query: Query,
        encoder: encoding.Encoder,
        limit: int,
        gone: asyncio.Future[Any],
        max_bytes: int,
    ) -> None:
        self.run = run
        self.query = query
        self.encoder = encoder
        self.limit = limit
        self.gone = gone
        self.rows = 0
        self.pace = encoding.Pace(max_bytes, run.check)
        self._started = False
        # a JSON document is kept whole until its end: its bytes are held against the server's
        # memory for results until the query finishes
        self._holds = encoder.media_type == encoding.JSON

    def open(self) -> None:
        """On the pool: refresh, emission and physical planning; execution starts."""
        self.run.open(self.query.astream())

    async def pull(self) -> tuple[list[bytes], bool]:
        """The next pieces and whether they were the last (they then end with the trailer)."""
        pieces, done = await self._next()
        if not self._started:
            self._started = True
            pieces.insert(0, self.encoder.head())
        size = sum(len(p) for p in pieces)
        self.run.encoded += size
        if self._holds:
            self.run.hold(size)
        return pieces, done

    async def _next(self) -> tuple[list[bytes], bool]:
        while True:
            try:
                batch = await self.run.pull(self.gone)
            except asyncio.CancelledError:
                if self.gone.done() or self.run.batches is None:
                    raise ClientGone() from None
                raise
            if batch is None:
                return [await self._encode(self.encoder.end, self.rows, False)], True
            self.run.pulled += batch.nbytes
            if batch.num_rows == 0:
                continue
            room = self.limit - self.rows
            if room <= 0:  # a row past the cut exists
                return [await self._encode(self.encoder.end, self.rows, True)], True
            if batch.num_rows > room:
                self.rows += room
                return await self._encode(self._last, batch.slice(0, room)), True
            self.rows += batch.num_rows
            return await self._encode(self.encoder.batch, batch, self.pace), False

    def _last(self, batch: pa.RecordBatch) -> list[bytes]:
        return [*self.encoder.batch(batch, self.pace), self.encoder.end(self.rows, True)]

    async def _encode(self, fn: Any, *args: Any) -> Any:
        return await _raced(self.run, self.gone, fn, *args)


async def _wait_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


def _limits(state: AppState, body: QueryRequest) -> tuple[float, int]:
    s = state.settings
    if len(body.query) > s.max_query_chars:
        raise ApiError(
            422,
            "query_too_large",
            f"the query has {len(body.query)} characters; the limit is {s.max_query_chars}",
        )
    limit = body.limit if body.limit is not None else s.default_rows
    if limit > s.max_rows:
        raise ApiError(422, "limit_too_large", f"limit {limit} exceeds the maximum {s.max_rows}")
    timeout = s.query_deadline if body.timeout is None else min(s.query_deadline, body.timeout)
    return time.monotonic() + timeout, limit


def _outcome(exc: BaseException) -> str:
    if isinstance(exc, ApiError) and exc.code == "deadline_exceeded":
        return "timed_out"
    if isinstance(exc, ClientGone | asyncio.CancelledError):
        return "cancelled"
    return "failed"


def _encode_table(table: Any, media: str, started: float) -> bytes:
    """A statement's (small) answer table, whole, in the negotiated format."""
    encoder: encoding.Encoder
    if media == encoding.JSON:
        columns = [{"name": f.name, "type": str(f.type)} for f in table.schema]
        encoder = encoding.JsonEncoder(columns, started)
    elif media == encoding.NDJSON:
        encoder = encoding.NdjsonEncoder()
    else:
        encoder = encoding.ArrowEncoder(lambda: table.schema)
    pace = encoding.Pace(1 << 62)  # a statement's answer is a few rows
    parts = [p for b in table.to_batches() if b.num_rows for p in encoder.batch(b, pace)]
    return b"".join([encoder.head(), *parts, encoder.end(table.num_rows, False)])


async def run_query(
    state: AppState,
    body: QueryRequest,
    accept: str | None,
    receive: Receive,
    can_write: bool,
    key_id: str | None = None,
) -> Response:
    """Any EQL text: a query's rows, an explanation, or a statement's answer table. Statements
    that change definitions need scope define (403) and run one at a time, like the segment and
    tag routes."""
    record = QueryRecord(state, "query", body, key_id)
    try:
        response = await _run_query(state, body, accept, receive, can_write, record)
    except BaseException as exc:
        record.end(code_of(exc))
        raise
    if not isinstance(response, QueryStream):  # a stream says its end itself
        record.end("cancelled" if response.status_code == 499 else None)
    return response


async def _run_query(
    state: AppState,
    body: QueryRequest,
    accept: str | None,
    receive: Receive,
    can_write: bool,
    record: QueryRecord,
) -> Response:
    media = encoding.negotiate(accept)
    if media is None:
        raise ApiError(406, "not_acceptable", "answers are " + ", ".join(encoding.MEDIA_TYPES))
    started = time.monotonic()
    deadline, limit = _limits(state, body)
    permissions = Permissions(writes=can_write)
    run = await state.runner.start(deadline, state.settings.memory_limit)
    gone = asyncio.ensure_future(_wait_disconnect(receive))
    gone.add_done_callback(retrieve)  # a receive that failed is a disconnect like any other
    streaming = False
    try:
        try:
            prepared = await _raced(
                run,
                gone,
                state.session.prepare,
                body.query,
                body.params,
                body.reference_time(),
                permissions,
            )
        except NotPermitted:
            raise ApiError(
                403, "forbidden", "this statement changes definitions: scope define"
            ) from None
        if isinstance(prepared, Explanation):
            record.kind = "explain"
            run.finish("completed")
            return JSONResponse({"explain": {"stage": prepared.stage, "text": prepared.text}})
        if isinstance(prepared, Statement):
            record.kind = "statement"
            if prepared.writes:
                run.finish("completed")  # a write takes a slot of its own, one at a time
                table = await definitions.write(state, prepared.run)
                definitions.count_refresh(state, table)
            else:
                table = await run.call(prepared.run)
                run.finish("completed")
            record.rows = table.num_rows
            return Response(_encode_table(table, media, started), media_type=media)
        encoder: encoding.Encoder
        if media == encoding.JSON:
            columns = [{"name": c.name, "type": c.type} for c in prepared.columns]
            encoder = encoding.JsonEncoder(columns, started)
        elif media == encoding.NDJSON:
            encoder = encoding.NdjsonEncoder()
        else:
            encoder = encoding.ArrowEncoder(prepared.schema, [c.type for c in prepared.columns])
        max_bytes = state.settings.max_result_bytes
        cursor = Cursor(run, prepared, encoder, limit, gone, max_bytes)
        await _raced(run, gone, cursor.open)
        pieces, done = await cursor.pull()
        if media != encoding.JSON:
            streaming = True
            return QueryStream(run, cursor, pieces, done, gone, record)
        parts = pieces
        while not done:
            pieces, done = await cursor.pull()
            parts += pieces
        run.finish("completed")
        record.rows = cursor.rows
        return Parts(parts, encoding.JSON)
    except ClientGone:
        run.finish("cancelled")
        return Response(status_code=499)  # nobody is listening any more
    except BaseException as exc:
        run.finish(_outcome(exc))
        raise
    finally:
        if not streaming:
            gone.cancel()


async def _raced(run: Run, gone: asyncio.Future[Any], fn: Any, *args: Any) -> Any:
    try:
        return await run.call_raced(gone, fn, *args)
    except asyncio.CancelledError:
        if gone.done():
            raise ClientGone() from None
        raise


async def run_explain(
    state: AppState, body: ExplainRequest, key_id: str | None = None
) -> dict[str, Any]:
    record = QueryRecord(state, "explain", body, key_id)
    try:
        deadline, _ = _limits(state, body)
        run = await state.runner.start(deadline, state.settings.memory_limit)
        try:
            args = (body.query, body.params, body.reference_time(), body.stage)
            explained = await run.call(state.session.explain, *args)
        except BaseException as exc:
            run.finish(_outcome(exc))
            raise
        run.finish("completed")
    except BaseException as exc:
        record.end(code_of(exc))
        raise
    record.end(None)
    return {"explain": {"stage": explained.stage, "text": explained.text}}


class Parts(Response):
    """A whole answer made of pieces, sent as they are (never joined into one buffer) with its
    length up front."""

    def __init__(self, parts: list[bytes], media_type: str) -> None:
        super().__init__(None, 200, media_type=media_type)
        self.parts = parts
        self.media = media_type

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        size = sum(len(p) for p in self.parts)
        headers = [
            (b"content-type", self.media.encode()),
            (b"content-length", str(size).encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        parts, self.parts = self.parts, []
        last = len(parts) - 1
        for i, part in enumerate(parts):
            await send({"type": "http.response.body", "body": part, "more_body": i < last})
            parts[i] = b""  # sent: let go of it now
        if not parts:
            await send({"type": "http.response.body", "body": b"", "more_body": False})


class QueryStream(Response):
    """The streamed rest of an NDJSON or Arrow answer."""

    def __init__(
        self,
        run: Run,
        cursor: Cursor,
        first: list[bytes],
        done: bool,
        gone: asyncio.Future[Any],
        record: QueryRecord,
    ) -> None:
        super().__init__(None, 200, media_type=cursor.encoder.media_type)
        self.run = run
        self.cursor = cursor
        self.first = first
        self.done = done
        self.gone = gone
        self.record = record

    async def _send(self, send: Send, message: Message) -> None:
        # a reader that stops reading holds a worker; the deadline bounds that too
        await asyncio.wait_for(send(message), max(0.05, self.run.remaining))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        encoder = self.cursor.encoder
        headers = [
            (b"content-type", encoder.media_type.encode()),
            (b"cache-control", b"no-store"),
            (b"x-content-type-options", b"nosniff"),
        ]
        outcome = "completed"
        code: str | None = None  # what the query ended with (the record's code)
        try:
            start = {"type": "http.response.start", "status": 200, "headers": headers}
            await self._send(send, start)
            await self._body(send, self.first, more=not self.done)
            done = self.done
            while not done:
                try:
                    pieces, done = await self.cursor.pull()
                except ApiError as exc:
                    outcome, code = _outcome(exc), exc.code
                    await self._body(send, [encoder.error_trailer(exc.items())], more=False)
                    return
                await self._body(send, pieces, more=not done)
        except (ClientGone, OSError):  # uvicorn raises an OSError when sending to a closed peer
            outcome, code = "cancelled", "cancelled"
        except TimeoutError:  # a send blocked past the deadline: give up on this client
            outcome, code = "timed_out", "deadline_exceeded"
        except Exception:
            outcome, code = "failed", "internal"
            log.exception("a streamed query failed")
            item = {"code": "internal", "message": "internal error while streaming; this is a bug"}
            with contextlib.suppress(Exception):
                await self._body(send, [encoder.error_trailer([item])], more=False)
        except BaseException:
            outcome, code = "cancelled", "cancelled"
            raise
        finally:
            self.gone.cancel()
            self.run.finish(outcome)
            self.record.rows = self.cursor.rows
            self.record.end(code)

    async def _body(self, send: Send, pieces: list[bytes], *, more: bool) -> None:
        """Each piece as one body message (the last says whether more follows)."""
        last = len(pieces) - 1
        for i, piece in enumerate(pieces):
            message = {"type": "http.response.body", "body": piece, "more_body": more or i < last}
            await self._send(send, message)
        if not pieces:
            await self._send(send, {"type": "http.response.body", "body": b"", "more_body": more})
