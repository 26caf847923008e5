"""The change feed of a segment: Server-Sent Events of who entered and who exited, per version.

`GET /v1/segments/{name}/changes` answers `text/event-stream`. Each refresh of the segment is one
or more `change` events (entered keys first, then exited, at most `feed_chunk` keys an event):

    id: g4.3
    event: change
    data: {"segment": "lapsed_vip", "generation": 4, "version": 3, "as_of": "...",
           "refreshed_at": "...", "entered": [...], "exited": [...], "final": true}

An event's `id` is where a reader stands: `g4.3` when version 3 of generation 4 is complete,
`g4.3:10000` when its first 10,000 keys were sent. The generation is the segment's identity: a
segment dropped and defined again under the same name is a new generation whose versions start
at 1 again. A reader that reconnects with `Last-Event-ID` (browsers' EventSource do this by
themselves) resumes right after it; when its id names an older generation, the feed first sends
`event: reset` (forget the members held) and then the new generation from version 1. An id
without a generation (`3`, `3:10000`) means the current one. `?since=N` starts after version N
(`0`, the default: from version 1, so replaying the feed rebuilds the members; `latest`: only
new versions). The first version's `entered` are all its members. Versions are sent as the store
has them; after the last one the feed waits for the next refresh, sending a `: keep-alive`
comment every `feed_keepalive` seconds, and ends after `feed_max_seconds` (the reader reconnects
and resumes; `retry:` says after how long). When the segment is dropped (or dropped and defined
again) the feed sends `event: dropped` and ends. The feed also ends when the client disconnects
(at once, not at the next event).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import numpy as np
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from runtime.definitions import Definition, Refresh
from server.encoding import dumps
from server.errors import ApiError

if TYPE_CHECKING:
    from server.state import AppState

MEDIA = "text/event-stream"


def position(
    last_event_id: str | None, since: str | None, latest: int, generation: int
) -> tuple[int, int, bool]:
    """Where to start: (the next version to send, keys of it already sent, whether the reader
    holds another generation's members and must start over: a `reset` event first)."""
    text = last_event_id if last_event_id else since
    if text is None or text == "":
        return 1, 0, False
    text = text.strip()
    if text == "latest" and not last_event_id:
        return latest + 1, 0, False
    bad = ApiError(
        422, "invalid_position", "Last-Event-ID / since is gG.N, gG.N:offset, N, N:offset or latest"
    )
    held = generation
    if text.startswith("g") and last_event_id:
        gen_text, dot, text = text[1:].partition(".")
        if not dot or not gen_text.isdigit():
            raise bad
        held = int(gen_text)
    version, _, offset = text.partition(":")
    if not version.isdigit() or (offset and not offset.isdigit()) or len(text) > 40:
        raise bad
    v, o = int(version), int(offset) if offset else 0
    if o and v == 0:
        raise bad
    if held != generation:  # dropped and defined again since: replay the new one from the start
        return 1, 0, True
    return (v, o, False) if offset else (v + 1, 0, False)


def _event(event: str, data: object, event_id: str | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return head.encode() + b"event: " + event.encode() + b"\ndata: " + dumps(data) + b"\n\n"


def event_id(generation: int, version: int, offset: int | None = None) -> str:
    return f"g{generation}.{version}" + ("" if offset is None else f":{offset}")


async def changes(
    state: AppState, d: Definition, start: tuple[int, int, bool]
) -> AsyncIterator[bytes]:
    settings = state.settings
    audiences = state.lookups.audiences
    chunk = settings.feed_chunk
    version, offset, reset = start
    ends = time.monotonic() + settings.feed_max_seconds
    yield f"retry: {int(settings.feed_retry * 1000)}\n\n".encode()
    if reset:
        yield _event("reset", {"segment": d.name, "generation": d.generation})
    while time.monotonic() < ends:
        current = audiences.segment_definition(d.name)
        if current is None or current.generation != d.generation:
            yield _event("dropped", {"segment": d.name, "generation": d.generation})
            return
        pending = audiences.versions(d, version)
        for r in pending:
            async for event in _version_events(state, d, r, offset, chunk):
                yield event
            version, offset = r.version + 1, 0
        if pending:
            continue
        wait = min(settings.feed_keepalive, max(0.0, ends - time.monotonic()))
        if not await state.changed.wait(wait):
            yield b": keep-alive\n\n"


async def _version_events(
    state: AppState, d: Definition, r: Refresh, offset: int, chunk: int
) -> AsyncIterator[bytes]:
    moves = state.lookups.audiences.moves(d, r.version)
    if moves is None:  # dropped meanwhile: the loop in `changes` says so next
        return
    entered, exited = moves
    ids = np.concatenate([entered, exited])
    n_entered = len(entered)
    head = {
        "segment": d.name,
        "generation": d.generation,
        "version": r.version,
        "as_of": r.as_of,
        "refreshed_at": r.refreshed_at,
    }
    total = len(ids)
    while True:
        end = min(total, offset + chunk)
        part = ids[offset:end]
        keys = await asyncio.to_thread(state.lookups.audiences.keys_of, d.entity, part.tolist())
        split = max(0, min(len(part), n_entered - offset))
        listed = keys.to_pylist()
        data = {**head, "entered": listed[:split], "exited": listed[split:], "final": end >= total}
        final = end >= total
        yield _event("change", data, event_id(d.generation, r.version, None if final else end))
        offset = end
        if final:
            return


class EventStream(Response):
    """Streams a feed; stops it when the client disconnects (not only at the next write)."""

    def __init__(self, state: AppState, events: AsyncIterator[bytes]) -> None:
        super().__init__(None, 200, media_type=MEDIA)
        self.state = state
        self.events = events

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [
            (b"content-type", MEDIA.encode()),
            (b"cache-control", b"no-store"),
            (b"x-accel-buffering", b"no"),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})

        async def pump() -> None:
            async for data in self.events:
                await send({"type": "http.response.body", "body": data, "more_body": True})

        async def gone() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        tasks = [asyncio.ensure_future(pump()), asyncio.ensure_future(gone())]
        self.state.open_feeds += 1
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                exc = None if t.cancelled() else t.exception()
                if isinstance(exc, Exception) and not isinstance(exc, OSError):
                    raise exc  # a bug; a closed socket (OSError) is the client leaving
        finally:
            self.state.open_feeds -= 1
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)  # ours only: never raises
            with contextlib.suppress(Exception):
                aclose = getattr(self.events, "aclose", None)
                if aclose is not None:
                    await aclose()
        with contextlib.suppress(OSError):
            await send({"type": "http.response.body", "body": b"", "more_body": False})
