"""An engine wrapper that makes marked queries slow, to test deadlines, disconnects and slots.

A query whose text contains `-- slow D` streams its real result over and over, sleeping D seconds
before each batch, forever (until the server stops pulling). `-- block D` sleeps D seconds before
its first batch (like an aggregate whose first batch is the whole work) and then streams the real
result once. Every other query goes straight to the real engine. The wrapper counts batches and
records when each slow stream was closed.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from eql.compiler import Compiled
from eql.engine import Engine

_MARK = re.compile(r"--\s*(slow|block)\s+([0-9.]+)")


class SlowEngine:
    def __init__(self, inner: Engine) -> None:
        self.inner = inner
        self.lock = threading.Lock()
        self.yielded = 0
        self.opened = 0
        self.closed: list[float] = []  # monotonic times at which slow streams were closed
        self.inner_states: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def compile(self, *args: Any, **kwargs: Any) -> Compiled:
        return self.inner.compile(*args, **kwargs)

    def stream(self, compiled: Compiled) -> Iterator[pa.RecordBatch]:
        m = _MARK.search(compiled.text)
        if m is None:
            return self.inner.stream(compiled)
        with self.lock:
            self.opened += 1
        return self._slow(compiled, m.group(1), float(m.group(2)))

    def _slow(self, compiled: Compiled, mode: str, delay: float) -> Iterator[pa.RecordBatch]:
        inner = self.inner.stream(compiled)
        batches = [b for b in inner if b.num_rows]
        try:
            if mode == "block":
                time.sleep(delay)
                yield from batches
                return
            while True:
                for b in batches:
                    time.sleep(delay)
                    with self.lock:
                        self.yielded += 1
                    yield b
        finally:
            with self.lock:
                self.closed.append(time.monotonic())
