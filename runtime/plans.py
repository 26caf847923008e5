"""Prepared plans: a query seen before skips parsing, binding, planning and building its
DataFusion DataFrame.

A compiled plan depends on the query text, the parameter values (the binder checks and converts
them, and the plan holds them as literals), the store's tags and segments (the catalog counter:
a REFRESH or DROP changes which version tables a plan reads) and, when the plan reads it, the
reference time. So `PlanCache` keeps each plan under (text, parameters, catalog counter) and,
only for a plan that read the caller's reference time (a `LAST 30 DAYS` window, `days_since`,
"events before now"), under that time too: such a plan is found again only for the same AS OF,
never for a later "now".

May import: `eql.compiler` (the `Compiled` it holds), the standard library.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from eql.compiler import Compiled

Key = tuple[str, tuple[tuple[str, str, str], ...], int, dt.datetime | None]


def parameters_key(params: Mapping[str, Any] | None) -> tuple[tuple[str, str, str], ...] | None:
    """The parameters as a key (name, type, value); None for a value that has no stable text."""
    if not params:
        return ()
    out = []
    for name in sorted(params):
        value = params[name]
        if not isinstance(value, str | int | float | bool | list | tuple | dt.date | None):
            return None
        out.append((name, type(value).__name__, repr(value)))
    return tuple(out)


class PlanCache:
    """At most `size` compiled plans, the least recently used dropped first; thread-safe."""

    def __init__(self, size: int = 512) -> None:
        self.size = size
        self._plans: OrderedDict[Key, Compiled] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(
        self,
        text: str,
        params: Mapping[str, Any] | None,
        now: dt.datetime,
        counter: int,
        compile_: Callable[[], Compiled],
        fixed_time: bool = True,
    ) -> Compiled:
        """The plan of `text` with `params` at `now`, compiled by `compile_` when not cached.
        `fixed_time` says that `now` is a time the caller chose (an as_of), not the clock: a
        plan that reads the reference time is kept only then (the clock never comes back)."""
        pkey = parameters_key(params)
        if pkey is None:
            return compile_()
        timeless: Key = (text, pkey, counter, None)
        at_now: Key = (text, pkey, counter, now)
        with self._lock:
            for key in (timeless, at_now):
                found = self._plans.get(key)
                if found is not None:
                    self._plans.move_to_end(key)
                    self.hits += 1
                    return found
            self.misses += 1
        compiled = compile_()  # raises EqlError for a text that does not compile: not kept
        if compiled.bound.reads_clock and not fixed_time:
            return compiled
        key = at_now if compiled.bound.reads_clock else timeless
        with self._lock:
            self._plans[key] = compiled
            while len(self._plans) > self.size:
                self._plans.popitem(last=False)
        return compiled

    def clear(self) -> None:
        with self._lock:
            self._plans.clear()
