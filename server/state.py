"""What one app holds while it runs: settings, the store, the engine, keys, limits, the runner,
the lookup structures, the write lock and the signal that wakes the change feeds."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from eql.engine import Engine
from server.auth import RateLimiter
from server.definitions import Signal
from server.keys import KeyFile
from server.lookups import Lookups
from server.runner import QueryRunner
from server.settings import Settings
from storage import Store


@dataclass
class AppState:
    settings: Settings
    store: Store
    engine: Engine
    keys: KeyFile
    limits: dict[str, RateLimiter]  # "query" (query, explain, writes), "lookup" (the rest)
    runner: QueryRunner
    lookups: Lookups
    writes: asyncio.Lock = field(
        default_factory=asyncio.Lock
    )  # define, refresh, drop: one at a time
    changed: Signal = field(default_factory=Signal)  # fired after every write
    open_feeds: int = 0  # change feeds being streamed
