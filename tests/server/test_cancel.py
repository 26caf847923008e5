"""A deadline or a disconnect stops DataFusion in the middle of a step (EQL-6), on a real uvicorn.

The store is built here, big enough that one aggregate (whose only batch is the whole work) takes
seconds on two cores. After the stop the slot must be free at once, `stop_latency_ms_max` small,
and the process's CPU quiet (DataFusion's threads stopped, not just the answer sent).
"""

from __future__ import annotations

import resource
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pytest

from runtime import Session
from server.app import create_app
from server.keys import KeyFile
from server.settings import Settings
from storage import ChangeSet, Store
from tests.server.conftest import Live, live_server

SCHEMA = """
version: 1
entities:
  things:
    key: {name: id, type: int}
    attributes:
      name: string
events:
  ping:
    time: ts
    references:
      thing: {entity: things, column: thing_id}
    fields:
      v: int
"""
EVENTS = 2_000_000
THINGS = 100_000
# about a million groups, two DISTINCT aggregates each, then the top 5: the first (and only)
# batch is the whole work, seconds of it
HEAVY = (
    "FIND EVENTS ping GROUP BY v RETURN v, count() AS n, count(DISTINCT thing) AS d, "
    "count(DISTINCT time) AS t ORDER BY n DESC, d DESC LIMIT 5"
)
LIGHT = "FIND things WHERE id < 3 RETURN id"


@pytest.fixture(scope="module")
def big_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    store = Store.create(tmp_path_factory.mktemp("cancel") / "store", SCHEMA, "big.yaml")
    rng = np.random.default_rng(7)
    change = ChangeSet()
    ids = np.arange(THINGS)
    change.upsert("things", pa.table({"id": ids, "name": pa.array([f"t{i}" for i in ids])}))
    times = np.sort(rng.integers(1_700_000_000_000_000, 1_760_000_000_000_000, EVENTS))
    events = {
        "ts": pa.array(times, pa.timestamp("us", tz="UTC")),
        "thing_id": rng.integers(0, THINGS, EVENTS),
        "v": rng.integers(0, EVENTS, EVENTS),
    }
    change.append("ping", pa.table(events))
    store.commit(change)
    yield store
    store.close()


@pytest.fixture(scope="module")
def headers(big_store: Store) -> dict[str, str]:
    key = KeyFile(big_store.data_dir / "keys.json").create(["query", "admin"], "cancel")[1]
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def live(big_store: Store) -> Iterator[Live]:
    """A fresh app per test (its stop latencies are its own): one worker, no queue."""
    settings = Settings(
        data_dir=big_store.data_dir,
        rate_query=0,
        query_workers=1,
        query_queue_timeout=0,
        memory_limit=None,
    )
    with live_server(create_app(settings, session=Session(big_store, settings.engine()))) as server:
        yield server


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # every thread: uvicorn's, DataFusion's
    return usage.ru_utime + usage.ru_stime


def _stats(live: Live, headers: dict[str, str]) -> dict[str, Any]:
    r = httpx.get(f"{live.url}/v1/admin/stats", headers=headers)
    assert r.status_code == 200
    out: dict[str, Any] = r.json()
    return out


def _wait_free(live: Live, headers: dict[str, str], within: float) -> float:
    t0 = time.monotonic()
    while _stats(live, headers)["running"]:
        assert time.monotonic() - t0 < within, "the slot was not given back"
        time.sleep(0.01)
    return time.monotonic() - t0


def _assert_stopped(live: Live, headers: dict[str, str], outcome: str) -> None:
    stats = _stats(live, headers)
    assert stats["running"] == 0 and stats["queries"][outcome] == 1, stats
    assert stats["stop_latency_ms_max"] is not None and stats["stop_latency_ms_max"] < 500, stats
    cpu = _cpu()
    time.sleep(1.0)
    assert _cpu() - cpu < 0.5  # two cores still busy would be ~2 s of CPU in 1 s
    ok = httpx.post(f"{live.url}/v1/query", json={"query": LIGHT}, headers=headers)
    assert ok.status_code == 200, ok.text  # the only worker is free


def test_the_heavy_query_is_one_long_step(big_store: Store) -> None:
    """What the other tests rely on: one batch, after seconds of work in one DataFusion step."""
    from runtime.engine import Engine

    engine = Engine(big_store)
    compiled = engine.compile(HEAVY)
    batches = iter(engine.stream(compiled))
    t0 = time.monotonic()
    first = next(batches)
    took = time.monotonic() - t0
    assert first.num_rows == 5 and next(batches, None) is None
    assert took > 2.0, took


def test_deadline_stops_datafusion_mid_step(live: Live, headers: dict[str, str]) -> None:
    t0 = time.monotonic()
    r = httpx.post(
        f"{live.url}/v1/query", json={"query": HEAVY, "timeout": 0.8}, headers=headers, timeout=30
    )
    answered = time.monotonic() - t0
    assert r.status_code == 408 and r.json()["errors"][0]["code"] == "deadline_exceeded"
    assert answered < 1.5
    assert _wait_free(live, headers, 2.0) < 0.5
    _assert_stopped(live, headers, "timed_out")


def test_slot_is_held_while_datafusion_runs(live: Live, headers: dict[str, str]) -> None:
    """The cap on concurrent queries stays true: the running query holds the only slot."""
    t0 = time.monotonic()
    with httpx.Client(base_url=live.url, headers=headers, timeout=30) as c:
        results: list[int] = []
        heavy = threading.Thread(
            target=lambda: results.append(
                c.post("/v1/query", json={"query": HEAVY, "timeout": 1.5}).status_code
            )
        )
        heavy.start()
        while _stats(live, headers)["running"] == 0:
            assert time.monotonic() - t0 < 2
            time.sleep(0.01)
        busy = httpx.post(f"{live.url}/v1/query", json={"query": LIGHT}, headers=headers)
        assert busy.status_code == 429
        heavy.join()
    assert results == [408]
    _wait_free(live, headers, 2.0)
    _assert_stopped(live, headers, "timed_out")


@pytest.mark.parametrize("accept", ["application/json", "application/x-ndjson"])
def test_disconnect_stops_datafusion_mid_step(
    live: Live, headers: dict[str, str], accept: str
) -> None:
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{live.url}/v1/query",
            json={"query": HEAVY},
            headers={**headers, "Accept": accept},
            timeout=0.8,  # then the client closes the connection
        )
    gone = time.monotonic()
    _wait_free(live, headers, 2.0)
    assert time.monotonic() - gone < 1.0  # EQL-6: stops within 1 s
    _assert_stopped(live, headers, "cancelled")
