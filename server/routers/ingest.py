"""`POST /v1/ingest/entities/{entity}` and `POST /v1/ingest/streams/{stream}` (scope `ingest`):
load a file into the served store, as `eql ingest` does (the work is `runtime.live`'s).

The body is one file: CSV, Parquet or JSON lines, named by `Content-Type` (`MEDIA`) or by the
`format` query parameter (then `Content-Type` may be absent, `application/octet-stream`, or a type
that agrees); any other type is a 415 listing the accepted ones. An unknown entity or stream is a
404 before the body is read. The body is streamed to a file under the data directory
(`runtime.live.upload_path`), never held whole in memory, up to `max_ingest_bytes` (the general
body limit does not apply: `server.fastpath.BodyLimit` lets these paths through); past it, the
file is removed and the answer is 413 (once the rest of the body, up to `_DRAIN` bytes, has been
read and dropped, so that the client hears the answer rather than a reset). Then one import, on a
worker thread, one write at a time with the other writes (`AppState.writes`); lookups and
queries go on meanwhile. After it the lookups are reloaded, the change feeds woken, the rows and
rejects counted (`eql_ingest_rows_total`, `eql_ingest_rejects_total` by target), and the saved
body removed.

Answers: 200 with the import's summary (`runtime.live.Imported.to_json`: rows read, imported,
rejected, the first problems with their total, the reject file, the digest, `already_imported`
for bytes imported before) when rows were imported, or some were and some rejected, or the
bytes were imported before; 400 when nothing was imported: `empty_body`, `not_imported` (an
unreadable file, unknown or missing columns: the message and hint of `eql ingest`), `no_rows`,
`all_rejected` (with the summary in the error item); 507 `disk_full` when the disk filled up
(nothing of the body was imported).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from runtime import live
from server.auth import require
from server.encoding import dumps
from server.errors import ApiError, ErrorBody, responses
from server.state import AppState

PREFIX = "/v1/ingest"
router = APIRouter(prefix=PREFIX, tags=["ingest"])
INGEST = [Depends(require("ingest", limit="query"))]

# Content-Type -> format; `application/octet-stream` needs `?format=`
MEDIA = {
    "text/csv": "csv",
    "application/vnd.apache.parquet": "parquet",
    "application/x-parquet": "parquet",
    "application/x-ndjson": "jsonl",
    "application/jsonl": "jsonl",
}
OCTETS = "application/octet-stream"
_WRITE_AT = 1 << 20  # bytes gathered before a write to the file (on a thread)
_DRAIN = 8 << 20  # bytes of a body over the limit read (and dropped) before the 413


class Problem(BaseModel):
    row: int
    column: str
    value: str
    reason: str


class IngestResult(BaseModel):
    """What one import did (`before`: what the first import of the same bytes recorded)."""

    target: str
    name: str
    format: str
    digest: str
    rows_read: int
    rows_imported: int
    rows_rejected: int
    already_imported: bool
    reject_file: str | None
    problems: list[Problem]
    problems_total: int
    missing_columns: list[str]
    seconds: float
    before: dict[str, Any] | None = None


def _accepted() -> list[str]:
    return [*MEDIA, f"{OCTETS} with ?format=csv|parquet|jsonl"]


def _unsupported(message: str) -> ApiError:
    return ApiError(415, "unsupported_media_type", message, accepted=_accepted())


def format_of(content_type: str | None, fmt: str | None) -> str:
    """The body's format, from `?format=` or else `Content-Type`; a 415 when neither names one
    or they disagree."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    by_media = MEDIA.get(media)
    if fmt is not None:
        if fmt not in live.FORMATS:
            raise _unsupported(f"format must be one of {', '.join(live.FORMATS)}")
        if by_media is not None and by_media != fmt:
            raise _unsupported(f"Content-Type {media} is {by_media}, but format={fmt}")
        if by_media is None and media not in ("", OCTETS):
            raise _unsupported(f"Content-Type {media} is not a file format; send {OCTETS}")
        return fmt
    if by_media is not None:
        return by_media
    if not media:
        raise _unsupported("the body has no Content-Type; name its format")
    if media == OCTETS:
        raise _unsupported(f"{OCTETS} needs ?format=csv, parquet or jsonl")
    raise _unsupported(f"Content-Type {media} is not CSV, Parquet or JSON lines")


def _declared_length(request: Request) -> int | None:
    value = request.headers.get("content-length")
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise ApiError(400, "bad_request", "Content-Length is not a number") from None


def _too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        "too_large",
        f"the body exceeds {limit} bytes (EQL_MAX_INGEST_BYTES); nothing was imported",
        headers={"Connection": "close"},
    )


def _disk_full(message: str) -> ApiError:
    return ApiError(
        507, "disk_full", message, hint="free some space on the store's disk, then send it again"
    )


async def _save(request: Request, path: Path, limit: int) -> int:
    """Stream the body into `path`; its size. 413 past `limit` (the file removed by the
    caller), 507 when the disk fills up."""
    size = 0
    pending = bytearray()
    fh = await asyncio.to_thread(path.open, "wb")
    try:
        stream = request.stream()
        async for chunk in stream:
            size += len(chunk)
            if size > limit:
                await _drain(stream, _DRAIN)
                raise _too_large(limit)
            pending += chunk
            if len(pending) >= _WRITE_AT:
                data, pending = pending, bytearray()
                await asyncio.to_thread(fh.write, data)
        if pending:
            await asyncio.to_thread(fh.write, pending)
        await asyncio.to_thread(fh.flush)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise _disk_full(
                "the disk is full (No space left on device) while saving the body; "
                "nothing of it was imported"
            ) from None
        raise
    finally:
        await asyncio.to_thread(_close, fh)
    return size


def _close(fh: Any) -> None:
    with contextlib.suppress(OSError):  # a full disk's flush: the failed write reported it
        fh.close()


async def _drain(stream: Any, budget: int) -> None:
    """Read and drop up to `budget` bytes more of a body (its end, usually)."""
    dropped = 0
    async for chunk in stream:
        dropped += len(chunk)
        if dropped > budget:
            return


def _import_error(exc: live.NotImported) -> ApiError:
    if exc.disk_full:
        return _disk_full(exc.message)
    return ApiError(400, "not_imported", exc.message, hint=exc.hint)


async def _run(
    state: AppState, target: live.Target, name: str, path: Path, fmt: str, allow_extra: bool
) -> live.Imported:
    """One import on a worker thread, one write at a time; then reload and wake the feeds."""
    async with state.writes:
        try:
            done = await asyncio.to_thread(
                live.import_body,
                state.session,
                target,
                name,
                path,
                fmt,
                allow_extra_columns=allow_extra,
            )
        except live.NotImported as exc:
            raise _import_error(exc) from None
        if done.rows_imported:
            await asyncio.to_thread(state.lookups.reload)
    if done.rows_imported:
        # the reloaded dictionaries live long (see server.definitions.write)
        gc.collect()
        gc.freeze()
        state.changed.fire()
    state.metrics.ingest_rows.labels(name).inc(done.rows_imported)
    state.metrics.ingest_rejects.labels(name).inc(done.rows_rejected)
    return done


async def ingest(
    request: Request, target: live.Target, name: str, fmt: str | None, allow_extra: bool
) -> Response:
    state: AppState = request.app.state.eql
    try:
        live.check_target(state.session, target, name)
    except live.UnknownTarget as exc:
        code = "unknown_entity" if target == "entities" else "unknown_stream"
        raise ApiError(404, code, exc.message, hint=exc.hint) from None
    chosen = format_of(request.headers.get("content-type"), fmt)
    limit = state.settings.max_ingest_bytes
    declared = _declared_length(request)
    if declared is not None and declared > limit:
        if declared - limit <= _DRAIN:
            await _drain(request.stream(), _DRAIN)
        raise _too_large(limit)
    path = await asyncio.to_thread(live.upload_path, state.session, name, chosen)
    try:
        try:
            size = await _save(request, path, limit)
        except ClientDisconnect:
            message = "the client went away before the body ended"
            raise ApiError(400, "bad_request", message) from None
        if size == 0:
            raise ApiError(400, "empty_body", "the body is empty: send the file's bytes")
        done = await _run(state, target, name, path, chosen, allow_extra)
    finally:
        await asyncio.to_thread(live.discard, path)
    summary = done.to_json()
    if done.rows_imported == 0 and not done.already_imported:
        if done.rows_rejected:
            message = f"every row was rejected ({done.rows_rejected}); nothing was imported"
            raise ApiError(400, "all_rejected", message, **summary)
        raise ApiError(400, "no_rows", "the body holds no rows; nothing was imported", **summary)
    return Response(dumps(summary), media_type="application/json")


_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The file: CSV (with a header line), Parquet or JSON lines. Its format is "
        "`Content-Type`'s, or `format`'s; at most EQL_MAX_INGEST_BYTES.",
        "content": {
            "text/csv": {"schema": {"type": "string"}},
            "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
            "application/x-parquet": {"schema": {"type": "string", "format": "binary"}},
            "application/x-ndjson": {"schema": {"type": "string"}},
            "application/jsonl": {"schema": {"type": "string"}},
            OCTETS: {"schema": {"type": "string", "format": "binary"}},
        },
    }
}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    **responses(401, 403, 404, 413, 429),
    400: {
        "model": ErrorBody,
        "description": "nothing was imported: `empty_body`, `not_imported` (unreadable file, "
        "unknown or missing columns), `no_rows`, `all_rejected` (with the summary)",
    },
    415: {"model": ErrorBody, "description": "no format named (`accepted` lists them)"},
    507: {"model": ErrorBody, "description": "the disk is full; nothing was imported"},
}
_FORMAT = Query(
    alias="format",
    description="csv, parquet or jsonl (instead of, or agreeing with, Content-Type)",
)
_EXTRA = Query(description="ignore columns the schema lacks (else they refuse the file)")


@router.post(
    "/entities/{entity}",
    summary="Upsert a file's rows into an entity (by key), as `eql ingest --entity`",
    response_model=IngestResult,
    responses=_RESPONSES,
    dependencies=INGEST,
    openapi_extra=_BODY,
)
async def ingest_entity(
    entity: str,
    request: Request,
    fmt: Annotated[str | None, _FORMAT] = None,
    allow_extra_columns: Annotated[bool, _EXTRA] = False,
) -> Response:
    return await ingest(request, "entities", entity, fmt, allow_extra_columns)


@router.post(
    "/streams/{stream}",
    summary="Append a file's events to an event stream, as `eql ingest --events`",
    response_model=IngestResult,
    responses=_RESPONSES,
    dependencies=INGEST,
    openapi_extra=_BODY,
)
async def ingest_stream(
    stream: str,
    request: Request,
    fmt: Annotated[str | None, _FORMAT] = None,
    allow_extra_columns: Annotated[bool, _EXTRA] = False,
) -> Response:
    return await ingest(request, "streams", stream, fmt, allow_extra_columns)
