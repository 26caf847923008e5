"""What one app holds while it runs: settings, the store, the engine, keys, limits, the runner."""

from __future__ import annotations

from dataclasses import dataclass

from eql.engine import Engine
from server.auth import RateLimiter
from server.keys import KeyFile
from server.profiles import Profiles
from server.runner import QueryRunner
from server.settings import Settings
from storage import Store


@dataclass
class AppState:
    settings: Settings
    store: Store
    engine: Engine
    keys: KeyFile
    limits: dict[str, RateLimiter]  # "query" (query, explain), "lookup" (profile, schema)
    runner: QueryRunner
    profiles: Profiles
