"""A reader worker follows the writer (`eql serve --workers N`).

Every `follow_interval` seconds (default 0.1) a reader brings its store to the writer's last
commit (`Store.follow`, on a thread: it may reopen RocksDB and patch snapshots) and, when that
or the tags and segments changed, reloads its lookup structures and wakes its change feeds, as
the writer does after its own writes. Queries follow by themselves too (`Session.prepare`), so
a query is never older than the commits made before it; lookups are at most one interval
behind. A failed follow is logged and tried again at the next tick (the reader keeps serving
what it has).
"""

from __future__ import annotations

import asyncio
import logging

from server.state import AppState

log = logging.getLogger("eql.server")


def follow_once(state: AppState, seen: list[int]) -> bool:
    """One step: whether anything changed (`seen` holds the audiences' counter last seen)."""
    changed = state.session.store.follow()
    counter = state.session.audiences.counter()
    if changed or counter != seen[0]:
        seen[0] = counter
        state.lookups.reload()
        return True
    return False


async def follow(state: AppState, interval: float) -> None:
    """Run until cancelled (the app's shutdown)."""
    seen = [state.session.audiences.counter()]
    while True:
        try:
            if await asyncio.to_thread(follow_once, state, seen):
                state.changed.fire()
        except asyncio.CancelledError:
            raise
        except Exception:  # keep serving what we have; try again at the next tick
            log.exception("following the writer failed; trying again")
        await asyncio.sleep(interval)
