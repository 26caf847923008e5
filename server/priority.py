"""Lookups before queries: heavy work runs at a lower CPU priority than the event loop.

On Linux every thread has its own nice value. `lower_engine_threads(nice)` lowers DataFusion's
runtime threads (`tokio-rt-*`, started by a first query) and `lower_this_thread(nice)` is the
query pool's thread initializer, so that when queries and lookups compete for the cores (2 here)
the scheduler runs the event loop first. Raising a nice value needs no privilege; anywhere this is
not possible (no /proc, another OS) the functions do nothing.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

log = logging.getLogger("eql.server")
ENGINE_THREADS = ("tokio-rt", "tokio-runtime")


def _renice(tid: int, nice: int) -> bool:
    try:
        current = os.getpriority(os.PRIO_PROCESS, tid)
        if current < nice:
            os.setpriority(os.PRIO_PROCESS, tid, nice)
        return True
    except (OSError, AttributeError):
        return False


def lower_this_thread(nice: int) -> None:
    if nice > 0:
        _renice(threading.get_native_id(), nice)


def lower_engine_threads(nice: int) -> int:
    """Renice the engine's runtime threads of this process; how many were."""
    if nice <= 0:
        return 0
    tasks = Path("/proc/self/task")
    done = 0
    try:
        tids = [int(t) for t in os.listdir(tasks)]
    except OSError:
        return 0
    for tid in tids:
        try:
            name = (tasks / str(tid) / "comm").read_text().strip()
        except OSError:
            continue
        if name.startswith(ENGINE_THREADS) and _renice(tid, nice):
            done += 1
    return done
