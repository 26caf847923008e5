"""The change feed of a segment: Server-Sent Events of who entered and who exited, per version.

`GET /v1/segments/{name}/changes` answers `text/event-stream`. Each refresh of the segment is one
or more `change` events (entered keys first, then exited, at most `feed_chunk` keys an event):

    id: 3
    event: change
    data: {"segment": "lapsed_vip", "version": 3, "as_of": "...", "refreshed_at": "...",
           "entered": [...], "exited": [...], "final": true}

An event's `id` is where a reader stands: `3` when version 3 is complete, `3:10000` when its first
10,000 keys were sent. A reader that reconnects with `Last-Event-ID` (browsers' EventSource do
this by themselves) resumes right after it; `?since=N` starts after version N (`0`, the default:
from version 1, so replaying the feed rebuilds the members; `latest`: only new versions). The
first version's `entered` are all its members. Versions are sent as the store has them; after the
last one the feed waits for the next refresh, sending a `: keep-alive` comment every
`feed_keepalive` seconds, and ends after `feed_max_seconds` (the reader reconnects and resumes;
`retry:` says after how long). When the segment is dropped the feed sends `event: dropped` and
ends. The feed also ends when the client disconnects (at once, not at the next event).
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

from server.encoding import dumps
from server.errors import ApiError
from storage.audiences import Refresh

if TYPE_CHECKING:
    from server.state import AppState

MEDIA = "text/event-stream"


def position(last_event_id: str | None, since: str | None, latest: int) -> tuple[int, int]:
    """Where to start: (the next version to send, keys of it already sent)."""
    text = last_event_id if last_event_id else since
    if text is None or text == "":
        return 1, 0
    if text == "latest" and not last_event_id:
        return latest + 1, 0
    version, _, offset = text.strip().partition(":")
    try:
        v = int(version)
        o = int(offset) if offset else 0
    except ValueError:
        raise ApiError(
            422, "invalid_position", "Last-Event-ID / since is N, N:offset or latest"
        ) from None
    if v < 0 or o < 0 or (o and v == 0):
        raise ApiError(422, "invalid_position", "versions and offsets are not negative")
    return (v, o) if offset else (v + 1, 0)


def _event(event: str, data: object, event_id: str | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return head.encode() + b"event: " + event.encode() + b"\ndata: " + dumps(data) + b"\n\n"


async def changes(
    state: AppState, name: str, entity: str, start: tuple[int, int]
) -> AsyncIterator[bytes]:
    settings = state.settings
    aud = state.lookups.audiences
    store = aud.aud
    chunk = settings.feed_chunk
    version, offset = start
    ends = time.monotonic() + settings.feed_max_seconds
    yield f"retry: {int(settings.feed_retry * 1000)}\n\n".encode()
    while time.monotonic() < ends:
        if store.definition("SEGMENT", name) is None:
            yield _event("dropped", {"segment": name})
            return
        pending = [r for r in store.refreshes("SEGMENT", name) if r.version >= version]
        for r in pending:
            async for event in _version_events(state, name, entity, r, offset, chunk):
                yield event
            version, offset = r.version + 1, 0
        if pending:
            continue
        wait = min(settings.feed_keepalive, max(0.0, ends - time.monotonic()))
        if not await state.changed.wait(wait):
            yield b": keep-alive\n\n"


async def _version_events(
    state: AppState, name: str, entity: str, r: Refresh, offset: int, chunk: int
) -> AsyncIterator[bytes]:
    store = state.lookups.audiences.aud
    entered, exited = (
        np.frombuffer(store.bitmap(name, r.version, part).to_array(), dtype=np.uint32)
        for part in ("+", "-")
    )
    ids = np.concatenate([entered, exited])
    n_entered = len(entered)
    head = {"segment": name, "version": r.version, "as_of": r.as_of, "refreshed_at": r.refreshed_at}
    total = len(ids)
    while True:
        end = min(total, offset + chunk)
        part = ids[offset:end]
        keys = await asyncio.to_thread(state.lookups.audiences.keys_of, entity, part.tolist())
        split = max(0, min(len(part), n_entered - offset))
        listed = keys.to_pylist()
        data = {**head, "entered": listed[:split], "exited": listed[split:], "final": end >= total}
        yield _event("change", data, str(r.version) if end >= total else f"{r.version}:{end}")
        offset = end
        if end >= total:
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
