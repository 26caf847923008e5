"""Crash points for fault tests: `EQL_CDC_CRASH_AT=after_batch_write:3` makes the process exit
with status 137 (as if killed with SIGKILL) the 3rd time it passes that point.

Several points may be given, comma separated. Unset (the normal case), every `hit` is a dictionary
lookup. The points are listed in `POINTS` and documented in docs/cdc.md.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import NoReturn

POINTS = (
    "after_table_map",  # reader: a table-map event of a mapped table was read
    "mid_transaction",  # reader: a row event inside a transaction was read, more may follow
    "at_rotate",  # reader: a binlog rotation was read
    "during_ddl",  # applier: a DDL on a mapped table was understood, not yet committed
    "before_batch_write",  # committer: the change set is built, not yet written
    "after_batch_write",  # committer: the batch (changes + offset) is durable
    "before_snapshot_chunk",  # snapshot: a chunk was read, not yet written
    "after_snapshot_chunk",  # snapshot: a chunk and its progress are durable
    "after_snapshot_position",  # snapshot: the consistent snapshot position was recorded
)


class CrashPoints:
    def __init__(self, spec: str | None) -> None:
        self.spec = spec or ""
        # the binlog reader process hands its crash to the applier process, which dies
        self.on_crash: Callable[[str], None] | None = None
        self._at: dict[str, int] = {}
        self._seen: dict[str, int] = {}
        for part in (spec or "").split(","):
            part = part.strip()
            if not part:
                continue
            name, _, n = part.partition(":")
            if name not in POINTS:
                raise ValueError(f"unknown crash point {name!r}; known: {', '.join(POINTS)}")
            self._at[name] = int(n or "1")

    def hit(self, name: str) -> None:
        if name not in self._at:
            return
        seen = self._seen.get(name, 0) + 1
        self._seen[name] = seen
        if seen == self._at[name]:
            if self.on_crash is not None:
                self.on_crash(name)
            die()


def die() -> NoReturn:
    """Exit now, as if killed: no cleanup, no flush of anything but the standard streams."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(137)


CRASH = CrashPoints(os.environ.get("EQL_CDC_CRASH_AT"))
