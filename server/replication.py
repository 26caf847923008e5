"""The writer's CDC connectors (`eql serve --cdc CONFIG`, `runtime.cdc_supervisor`).

`start(state, configs)` gives the app its supervisor (the writer always has one, so that
`eql cdc run` pointed at a served store can add a connector later through `/v1/admin/cdc`) and
adds the configured connectors. After each connector commit (on the connector's thread) the
metrics `eql_cdc_transactions_total{source}` and `eql_cdc_lag_seconds{source}` are fed and the
change feeds woken (on the event loop). Connectors decode the binlog in a child process by
default (`EQL_CDC_READER=process`): the decoding then does not hold the serving interpreter's
GIL, which lookups need (under 3k lookups/s the apply kept 0.83x of its unloaded rate, against
0.66x with the decoding on a thread; benchmarks/RESULTS.md). `stop(state, timeout)` stops them
all at shutdown, before the store closes: each ends between two transactions (a commit is one
write batch).
A reader worker has no supervisor: its `/v1/admin/cdc` requests go to the writer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path

from runtime.cdc_supervisor import Commit, Supervisor
from server.state import AppState

log = logging.getLogger("eql.server")


async def start(
    state: AppState, configs: Sequence[Path], max_failures: int | None, reader: str
) -> None:
    loop = asyncio.get_running_loop()
    metrics = state.metrics

    def on_commit(commit: Commit) -> None:
        metrics.cdc_transactions.labels(source=commit.connector).inc(commit.transactions)
        if commit.state.lag_seconds is not None:
            metrics.cdc_lag.labels(source=commit.connector).set(commit.state.lag_seconds)
        if commit.transactions or commit.rows:
            loop.call_soon_threadsafe(state.changed.fire)

    state.cdc = Supervisor(
        state.session, on_commit=on_commit, max_failures=max_failures, reader=reader
    )
    for path in configs:
        name = await asyncio.to_thread(state.cdc.add, str(path))
        log.info("CDC connector %s started from %s", name, path)


async def stop(state: AppState, timeout: float) -> None:
    if state.cdc is None:
        return
    late = await asyncio.to_thread(state.cdc.stop, timeout)
    if late:
        log.warning("CDC connectors still stopping after %.0f s: %s", timeout, ", ".join(late))
