"""An engine wrapper that makes marked queries slow, to test deadlines, disconnects and slots.

A query whose text contains `-- slow D` streams its real result over and over, waiting D seconds
before each batch, forever (until the server stops pulling). `-- block D` waits D seconds before
its first batch (like an aggregate whose first batch is the whole work) and then streams the real
result once. Both wait like DataFusion does, on the event loop, so a stop cancels the wait.
`-- stall D` sleeps D seconds in compile: a step on the query pool that nothing can interrupt.

Where a test needs queries to be running while it looks (slots held, a queue, a 429), a clock
would decide the test on a slow machine: the engine's `gate` does instead. `-- gate` waits at the
gate before its first batch (on the event loop: a stop cancels the wait) and then streams the
real result once; `-- hold` waits at it in compile (on the query pool: nothing interrupts it).
They wait until the test calls `gate.open()`; `gate.waiting` says how many wait now.

Every other query goes straight to the real engine. The wrapper counts batches and records when
each slow stream was closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
import time
from collections.abc import AsyncGenerator
from typing import Any

import pyarrow as pa

from eql.compiler import Compiled
from runtime.engine import Engine

_MARK = re.compile(r"--\s*(slow|block|stall|gate|hold)\b(?:\s+([0-9.]+))?")
HOLD_AT_MOST = 120.0  # a test that fails before opening its gate must not hang the process


class Gate:
    """Closed until the test opens it, then open for good."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._opened = threading.Event()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
        self.waiting = 0

    def open(self) -> None:
        with self._lock:
            self._opened.set()
            waiters, self._waiters = self._waiters, []
        for loop, event in waiters:
            with contextlib.suppress(RuntimeError):  # that server's loop has ended
                loop.call_soon_threadsafe(event.set)

    async def wait(self) -> None:
        """On the event loop; a cancelled wait leaves at once."""
        with self._lock:
            if self._opened.is_set():
                return
            event = asyncio.Event()
            self._waiters.append((asyncio.get_running_loop(), event))
            self.waiting += 1
        try:
            await event.wait()
        finally:
            with self._lock:
                self.waiting -= 1

    def block(self) -> None:
        """On a thread (the query pool), uninterruptible."""
        with self._lock:
            self.waiting += 1
        try:
            self._opened.wait(HOLD_AT_MOST)
        finally:
            with self._lock:
                self.waiting -= 1


class SlowEngine:
    def __init__(self, inner: Engine) -> None:
        self.inner = inner
        self.gate = Gate()
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
        elif m is not None and m.group(1) == "hold":
            self.gate.block()
        return self.inner.compile(text, *args, **kwargs)

    def astream(self, compiled: Compiled) -> AsyncGenerator[pa.RecordBatch, None]:
        m = _MARK.search(compiled.text)
        if m is None or m.group(1) in ("stall", "hold"):
            return self.inner.astream(compiled)
        with self.lock:
            self.opened += 1
        batches = [b for b in self.inner.stream(compiled) if b.num_rows]  # on the pool
        return self._slow(batches, m.group(1), float(m.group(2) or 0))

    async def _slow(
        self, batches: list[pa.RecordBatch], mode: str, delay: float
    ) -> AsyncGenerator[pa.RecordBatch, None]:
        try:
            if mode in ("block", "gate"):
                await (asyncio.sleep(delay) if mode == "block" else self.gate.wait())
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
