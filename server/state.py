"""What one app holds while it runs: settings, the session (store and engine), keys, limits, the
runner, the lookup structures, the metrics and the access log, the write lock, the signal that
wakes the change feeds and the CDC supervisor (`runtime.cdc_supervisor`)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from runtime import Session
from server.keys import KeyFile
from server.logs import AccessLog
from server.lookups import Lookups
from server.metrics import Metrics
from server.ratelimit import RateLimiter
from server.runner import QueryRunner
from server.settings import Settings

if TYPE_CHECKING:  # the supervisor (and the binlog reader) load when the server makes one
    from runtime.cdc_supervisor import Supervisor


class Signal:
    """Wakes every waiter when something was written (the feeds wait on it)."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def fire(self) -> None:
        event, self._event = self._event, asyncio.Event()
        event.set()

    async def wait(self, timeout: float) -> bool:
        """True when fired within `timeout` seconds."""
        try:
            await asyncio.wait_for(self._event.wait(), timeout)
        except TimeoutError:
            return False
        return True


@dataclass
class AppState:
    settings: Settings
    session: Session
    keys: KeyFile
    limits: dict[str, RateLimiter]  # "query" (query, explain, writes), "lookup" (the rest)
    runner: QueryRunner
    lookups: Lookups
    metrics: Metrics
    access: AccessLog
    writes: asyncio.Lock = field(
        default_factory=asyncio.Lock
    )  # define, refresh, drop: one at a time
    changed: Signal = field(default_factory=Signal)  # fired after every write
    open_feeds: int = 0  # change feeds being streamed
    cdc: Supervisor | None = None  # the CDC connectors this server runs (`/v1/admin/cdc`)
