"""Heavy work (EQL compile, explain, execution) under limits: the query pool, slots, deadlines.

- A query first takes one of `query_workers` slots (an asyncio semaphore); waiting longer than
  `query_queue_timeout` is a 429 with `Retry-After`.
- Compile, opening the result stream and encoding run on the query pool, never on the event loop
  and never on the default pool that lookups and FastAPI use. The batches of the result are pulled
  on the event loop (`Engine.astream`): DataFusion works on its own runtime and no thread waits.
- The deadline bounds every step; a client that disconnects stops the query. Stopping a query
  cancels a pending pull and closes the stream, which stops DataFusion in the middle of a step (an
  aggregate whose first batch is the whole work) at its next yield point, usually within
  milliseconds (see `eql.planner.to_datafusion.astream` for the exceptions). Encoding on the pool
  checks `Run.check` between slices (`server.encoding.Pace`), so it stops within a slice too; a
  compile cannot be interrupted, but the response is answered at the deadline anyway, and the
  slot is given back once the step has ended and the stream is closed. What a stopped step
  raised is retrieved then (`retrieve`): its query was answered already, and asyncio would
  otherwise log "Future exception was never retrieved" for every failed query.
- Result memory: a JSON document is kept whole until its last piece; the bytes of all documents
  being built are held against `memory_limit` (`Run.hold`; a query that would pass it fails with
  `memory_limit`). After a query that encoded more than `RELEASE_AFTER` bytes, the allocators
  are asked to give unused memory back to the system (`release_memory`).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures as cf
import ctypes
import logging
import threading
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pyarrow as pa

from eql.diagnostics import EqlError
from server.errors import ApiError
from server.priority import lower_this_thread

log = logging.getLogger("eql.server")
T = TypeVar("T")

OUTCOMES = ("completed", "failed", "timed_out", "cancelled", "rejected")


@dataclass
class Stats:
    """Counters of heavy work, shown by `GET /v1/admin/stats` and read by the tests."""

    outcomes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    started: int = 0
    running: int = 0  # slots held (including queries whose worker is still finishing a step)
    queued: int = 0  # queries waiting for a slot
    stop_latency: collections.deque[float] = field(
        default_factory=lambda: collections.deque(maxlen=256)
    )  # seconds from "stop" to the worker being free and the stream closed


RELEASE_AFTER = 16 << 20  # bytes a query held or encoded, after which memory is given back


def release_memory() -> None:
    """Give freed memory back to the system: Arrow's allocator, and glibc's malloc (Python
    objects and strings larger than 512 bytes live there)."""
    pa.default_memory_pool().release_unused()
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc
        return
    libc.malloc_trim(0)


def _memory_error(memory_limit: int | None) -> ApiError:
    limit = f" ({memory_limit / (1 << 20):.2f} MiB)" if memory_limit else ""
    return ApiError(
        422,
        "memory_limit",
        f"the query needs more memory than the server allows{limit}; narrow it "
        "(a LIMIT, a shorter window, fewer groups) or retry when the server is less busy",
    )


def classify(exc: BaseException, memory_limit: int | None) -> BaseException:
    """Map what a compile or execution step raised to what the client should get, by type.

    EQL errors stay as they are (400), run-time failures included (E3xx, typed by the engine),
    except that running out of the engine's memory pool (E302) is the server's `memory_limit`
    (422), and so is Arrow running out of memory while a result is encoded. Other Arrow failures
    are `query_failed` (422); anything else is a bug (500).
    """
    if isinstance(exc, EqlError):
        if "E302" in exc.codes:
            return _memory_error(memory_limit)
        return exc
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, RecursionError):
        return ApiError(
            400, "query_too_complex", "the query is nested too deeply; simplify or split it"
        )
    if isinstance(exc, OverflowError):  # a value that does not fit its column type
        return ApiError(
            400, "value_out_of_range", "a value does not fit its type (integers are 64-bit)"
        )
    if isinstance(exc, MemoryError | pa.ArrowMemoryError):
        return _memory_error(memory_limit)
    if not isinstance(exc, pa.ArrowException):
        return exc  # a bug: the caller answers 500 with a reference, never the details
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return ApiError(422, "query_failed", f"the query failed while running: {first[:300]}")


class QueryRunner:
    """The query pool, its slots and the counters. One per app."""

    def __init__(
        self, workers: int, queue_timeout: float, nice: int = 0, held_limit: int | None = None
    ) -> None:
        self.workers = workers
        self.queue_timeout = queue_timeout
        self.held_limit = held_limit  # bytes of results all queries may hold at once
        self.held = 0
        self._held_lock = threading.Lock()
        self.pool = cf.ThreadPoolExecutor(
            workers,
            thread_name_prefix="eql-query",
            initializer=lower_this_thread,  # lookups on the event loop go first
            initargs=(nice,),
        )
        self.slots = asyncio.Semaphore(workers)
        self.stats = Stats()
        self._stopping: set[asyncio.Task[None]] = set()  # stops under way (kept referenced)

    def shutdown(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)

    async def start(self, deadline: float, memory_limit: int | None) -> Run:
        """A run holding a slot; 429 if none frees up in time."""
        if self.slots.locked():
            wait = min(self.queue_timeout, deadline - time.monotonic())
            self.stats.queued += 1
            try:
                if wait <= 0:
                    raise TimeoutError
                await asyncio.wait_for(self.slots.acquire(), wait)
            except TimeoutError:
                self.stats.outcomes["rejected"] += 1
                raise ApiError(
                    429,
                    "busy",
                    f"all {self.workers} query workers are busy; retry shortly",
                    headers={"Retry-After": "1"},
                ) from None
            finally:
                self.stats.queued -= 1
        else:
            await self.slots.acquire()  # free: no waiting
        self.stats.started += 1
        self.stats.running += 1
        return Run(self, asyncio.get_running_loop(), deadline, memory_limit)

    def _hold(self, nbytes: int) -> bool:
        with self._held_lock:
            if self.held_limit is not None and self.held + nbytes > self.held_limit:
                return False
            self.held += nbytes
            return True

    def _unhold(self, nbytes: int) -> None:
        with self._held_lock:
            self.held -= nbytes

    def _release(self, latency: float | None) -> None:
        self.stats.running -= 1
        if latency is not None:
            self.stats.stop_latency.append(latency)
        self.slots.release()


class Run:
    """One query's work: steps on the query pool and pulls on the loop, bounded by the deadline."""

    def __init__(
        self,
        runner: QueryRunner,
        loop: asyncio.AbstractEventLoop,
        deadline: float,
        memory_limit: int | None,
    ) -> None:
        self.runner = runner
        self.loop = loop
        self.deadline = deadline
        self.memory_limit = memory_limit
        self.batches: AsyncGenerator[pa.RecordBatch, None] | None = None
        self._pending: cf.Future[Any] | asyncio.Future[Any] | None = None
        self._finished = False
        self.stopped = False  # set by `finish`: steps on the pool stop at their next `check`
        self.held = 0  # bytes of this query's result held against the runner's limit
        self.encoded = 0  # bytes of this query's result encoded so far
        self.pulled = 0  # bytes of the Arrow batches pulled from the engine

    @property
    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def check(self) -> None:
        """Called by long steps on the pool between two pieces of work: stop when the query was
        stopped or its deadline has passed (408)."""
        if self.stopped or self.remaining <= 0:
            raise deadline_error()

    def hold(self, nbytes: int) -> None:
        """Count `nbytes` more of this query's result as held in memory until it finishes;
        `memory_limit` (422) when all queries together would hold more than the server allows."""
        if not self.runner._hold(nbytes):
            raise _memory_error(self.runner.held_limit)
        self.held += nbytes

    def _mapped(self, exc: BaseException) -> BaseException:
        mapped = classify(exc, self.memory_limit)
        return exc if mapped is exc else mapped

    def _guarded(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            return fn(*args)
        except BaseException as exc:
            mapped = self._mapped(exc)
            if mapped is exc:
                raise
            raise mapped from None

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` on the query pool; 408 when the deadline passes first."""
        remaining = self.remaining
        if remaining <= 0:
            raise deadline_error()
        fut = self.runner.pool.submit(self._guarded, fn, *args)
        self._pending = fut
        try:
            return await asyncio.wait_for(asyncio.wrap_future(fut), remaining)
        except TimeoutError:
            raise deadline_error() from None

    async def call_raced(
        self, disconnected: asyncio.Future[Any], fn: Callable[..., T], *args: Any
    ) -> T:
        """Like `call`, but a client disconnect (the future resolving) stops it: CancelledError."""
        step = asyncio.ensure_future(self.call(fn, *args))
        await asyncio.wait({step, disconnected}, return_when=asyncio.FIRST_COMPLETED)
        if not step.done():
            step.cancel()
            raise asyncio.CancelledError("client disconnected")
        return step.result()

    def open(self, batches: AsyncGenerator[pa.RecordBatch, None]) -> None:
        self.batches = batches

    async def pull(self, disconnected: asyncio.Future[Any]) -> pa.RecordBatch | None:
        """The next batch of the open stream (None at its end), awaited on the loop: 408 when the
        deadline passes first, CancelledError when the client disconnects. The pull is left
        pending then; `finish` cancels it."""
        batches = self.batches
        if batches is None:
            raise asyncio.CancelledError("the query was stopped")
        remaining = self.remaining
        if remaining <= 0:
            raise deadline_error()
        step = asyncio.ensure_future(_next(batches))
        self._pending = step
        try:
            await asyncio.wait(
                {step, disconnected}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
            )
        except asyncio.CancelledError:
            step.cancel()
            raise
        if step.done():
            exc = step.exception()
            if exc is not None:
                mapped = self._mapped(exc)
                if mapped is exc:
                    raise exc
                raise mapped from None
            return step.result()
        if disconnected.done():
            raise asyncio.CancelledError("client disconnected")
        raise deadline_error()

    def finish(self, outcome: str) -> None:
        """Stop the query and give its slot back once nothing of it runs in Python and its
        DataFusion stream is dropped (idempotent): a pending pull is cancelled and the stream
        closed at once; a step on the pool is waited for first."""
        if self._finished:
            return
        self._finished = True
        self.stopped = True
        stats = self.runner.stats
        stats.outcomes[outcome] = stats.outcomes.get(outcome, 0) + 1
        measure = outcome in ("timed_out", "cancelled")
        pending, self._pending = self._pending, None
        if isinstance(pending, asyncio.Future):
            pending.cancel()  # the Rust future is dropped at DataFusion's next yield
        task = self.loop.create_task(self._stop(pending, time.monotonic(), measure))
        self.runner._stopping.add(task)
        task.add_done_callback(self.runner._stopping.discard)

    async def _stop(
        self, pending: cf.Future[Any] | asyncio.Future[Any] | None, asked: float, measure: bool
    ) -> None:
        try:
            if pending is not None:
                waited = (
                    pending if isinstance(pending, asyncio.Future) else asyncio.wrap_future(pending)
                )
                await asyncio.wait({waited})  # a pool step ends; a cancelled pull unwinds
                retrieve(waited)
            batches, self.batches = self.batches, None
            if batches is not None:
                await batches.aclose()  # drops DataFusion's stream: its tasks are aborted
        except Exception:  # stopping must never fail the response
            log.exception("closing a query stream failed")
        finally:
            held, self.held = self.held, 0
            self.runner._unhold(held)
            latency = time.monotonic() - asked if measure else None
            self.runner._release(latency)
        if max(self.encoded, self.pulled) >= RELEASE_AFTER:  # held is part of encoded
            await asyncio.to_thread(release_memory)


def retrieve(fut: asyncio.Future[Any]) -> None:
    """Mark a finished future's exception as seen. A stopped step's failure was answered already
    (or nobody listens any more); an exception never retrieved is logged by asyncio when the
    future is collected (`Future exception was never retrieved`), once per failed query."""
    if fut.done() and not fut.cancelled():
        fut.exception()


async def _next(batches: AsyncGenerator[pa.RecordBatch, None]) -> pa.RecordBatch | None:
    try:
        return await anext(batches)
    except StopAsyncIteration:
        return None


def deadline_error() -> ApiError:
    return ApiError(408, "deadline_exceeded", "the query did not finish before its deadline")
