"""An engine wrapper that makes marked queries slow, to test deadlines, disconnects and slots.

A query whose text contains `-- slow D` streams its real result over and over, waiting D seconds
before each batch, forever (until the server stops pulling). `-- block D` waits D seconds before
its first batch (like an aggregate whose first batch is the whole work) and then streams the real
result once. Both wait like DataFusion does, on the event loop, so a stop cancels the wait.
`-- stall D` sleeps D seconds in compile: a step on the query pool that nothing can interrupt.
Every other query goes straight to the real engine. The wrapper counts batches and records when
each slow stream was closed.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import AsyncGenerator
from typing import Any

import pyarrow as pa

from eql.compiler import Compiled
from runtime.engine import Engine

_MARK = re.compile(r"--\s*(slow|block|stall)\s+([0-9.]+)")


class SlowEngine:
    def __init__(self, inner: Engine) -> None:
        self.inner = inner
        self.lock = threading.Lock()
        self.yielded = 0
        self.opened = 0
        self.closed: list[float] = []  # monotonic times at which slow streams were closed

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def compile(self, text: str, *args: Any, **kwargs: Any) -> Compiled:
        m = _MARK.search(text)
        if m is not None and m.group(1) == "stall":
            time.sleep(float(m.group(2)))
        return self.inner.compile(text, *args, **kwargs)

    def astream(self, compiled: Compiled) -> AsyncGenerator[pa.RecordBatch, None]:
        m = _MARK.search(compiled.text)
        if m is None or m.group(1) == "stall":
            return self.inner.astream(compiled)
        with self.lock:
            self.opened += 1
        batches = [b for b in self.inner.stream(compiled) if b.num_rows]  # on the pool
        return self._slow(batches, m.group(1), float(m.group(2)))

    async def _slow(
        self, batches: list[pa.RecordBatch], mode: str, delay: float
    ) -> AsyncGenerator[pa.RecordBatch, None]:
        try:
            if mode == "block":
                await asyncio.sleep(delay)
                for b in batches:
                    yield b
                return
            while True:
                for b in batches:
                    await asyncio.sleep(delay)
                    with self.lock:
                        self.yielded += 1
                    yield b
        finally:
            with self.lock:
                self.closed.append(time.monotonic())
