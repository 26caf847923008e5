"""Transport on a real uvicorn: NDJSON and Arrow streams, disconnects and deadlines (EQL-6), and
lookups that never wait behind queries."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pyarrow as pa
import pyarrow.ipc as ipc
import pytest

from runtime.engine import Engine
from storage import Store
from tests.server.conftest import AppFactory, Keys, Live, live_server, slow
from tests.server.slow import SlowEngine

NDJSON = "application/x-ndjson"
ARROW = "application/vnd.apache.arrow.stream"


@pytest.fixture(scope="module")
def live(make_app: AppFactory) -> Iterator[Live]:
    app = make_app(rate_query=0, rate_lookup=0, query_workers=2, query_queue_timeout=5)
    with live_server(app) as server:
        yield server


@pytest.fixture
def engine(live: Live) -> Iterator[SlowEngine]:
    state = live.app.state.eql
    real = state.session.engine
    wrapper = slow(live.app)
    yield wrapper
    state.session.engine = real


def _wait(cond: Any, timeout: float = 30.0) -> None:
    """Until the server is in a state (`timeout` only bounds a broken server)."""
    t0 = time.monotonic()
    while not cond():
        assert time.monotonic() - t0 < timeout, "condition not reached"
        time.sleep(0.01)


def _stats(live: Live) -> Any:
    return live.app.state.eql.runner.stats


def test_ndjson_streams_in_chunks(live: Live, keys: Keys, demo_store: Store) -> None:
    body = {"query": "FIND EVENTS shift RETURN time, hours ORDER BY time", "limit": 100_000}
    chunks = 0
    data = b""
    with httpx.stream(
        "POST",
        f"{live.url}/v1/query",
        json=body,
        headers={**keys.header("query"), "Accept": NDJSON},
    ) as r:
        assert r.status_code == 200 and r.headers["content-type"] == NDJSON
        for chunk in r.iter_raw():
            chunks += 1
            data += chunk
    lines = data.splitlines()
    n = demo_store.event_count("shift")
    assert len(lines) == n + 1
    assert orjson.loads(lines[-1]) == {"@eql": {"rows": n, "truncated": False}}
    first = orjson.loads(lines[0])
    assert set(first) == {"time", "hours"} and first["time"].endswith("Z")
    assert chunks > 1


def test_arrow_stream_decodes(live: Live, keys: Keys, demo_store: Store) -> None:
    text = "FIND users RETURN id, name, gender, signup_date, sum(purchase.amount) AS s ORDER BY id"
    r = httpx.post(
        f"{live.url}/v1/query",
        json={"query": text, "limit": 100_000},
        headers={**keys.header("query"), "Accept": ARROW},
    )
    assert r.status_code == 200 and r.headers["content-type"] == ARROW
    reader = ipc.open_stream(r.content)
    batches = []
    last_meta = None
    while True:
        try:
            batch, meta = reader.read_next_batch_with_custom_metadata()
        except StopIteration:
            break
        batches.append(batch)
        last_meta = meta
    table = pa.Table.from_batches(batches)
    expected = Engine(demo_store).query(text)
    assert table.num_rows == expected.num_rows == 1000
    assert table.column("id").to_pylist() == expected.column("id").to_pylist()
    assert table.column("gender").to_pylist() == expected.column("gender").to_pylist()
    assert table.column("s").to_pylist() == expected.column("s").to_pylist()
    assert pa.types.is_dictionary(table.schema.field("gender").type)
    assert last_meta is not None
    assert last_meta[b"eql.rows"] == b"1000" and last_meta[b"eql.truncated"] == b"false"


def test_arrow_truncated_and_empty(live: Live, keys: Keys) -> None:
    h = {**keys.header("query"), "Accept": ARROW}
    r = httpx.post(f"{live.url}/v1/query", json={"query": "FIND users", "limit": 3}, headers=h)
    reader = ipc.open_stream(r.content)
    assert reader.read_all().num_rows == 3
    r = httpx.post(
        f"{live.url}/v1/query", json={"query": "FIND users WHERE id < 0 RETURN id"}, headers=h
    )
    table = ipc.open_stream(r.content).read_all()
    assert table.num_rows == 0 and table.column_names == ["id"]


def test_stream_errors_before_the_first_byte_have_a_status(live: Live, keys: Keys) -> None:
    for accept in (NDJSON, ARROW):
        r = httpx.post(
            f"{live.url}/v1/query",
            json={"query": "FIND users WERE"},
            headers={**keys.header("query"), "Accept": accept},
        )
        assert r.status_code == 400 and r.json()["errors"][0]["code"] == "E101"


@pytest.mark.parametrize("accept", [NDJSON, ARROW])
def test_disconnect_mid_stream_stops_the_query(
    live: Live, keys: Keys, engine: SlowEngine, accept: str
) -> None:
    before = dict(_stats(live).outcomes)
    body = {"query": "FIND users RETURN id -- slow 0.02", "limit": 100_000}
    with (
        httpx.Client() as c,
        c.stream(
            "POST",
            f"{live.url}/v1/query",
            json=body,
            headers={**keys.header("query"), "Accept": accept},
        ) as r,
    ):
        assert r.status_code == 200
        got = 0
        for chunk in r.iter_raw():
            got += len(chunk)
            if got > 20_000:
                break
    gone = time.monotonic()
    _wait(lambda: len(engine.closed) == 1)
    assert engine.closed[0] - gone < 1.0  # EQL-6: stops within 1 s
    yielded = engine.yielded
    time.sleep(0.2)
    assert engine.yielded == yielded
    _wait(lambda: _stats(live).outcomes["cancelled"] == before["cancelled"] + 1)
    _wait(lambda: _stats(live).running == 0)
    assert max(_stats(live).stop_latency) < 1.0


def test_disconnect_while_building_json_stops_the_query(
    live: Live, keys: Keys, engine: SlowEngine
) -> None:
    body = {"query": "FIND users RETURN id -- slow 0.02", "limit": 100_000}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{live.url}/v1/query", json=body, headers=keys.header("query"), timeout=0.5)
    gone = time.monotonic()
    _wait(lambda: len(engine.closed) == 1)
    assert engine.closed[0] - gone < 1.0
    _wait(lambda: _stats(live).running == 0)


def test_deadline_mid_stream_ends_with_an_error_trailer(
    live: Live, keys: Keys, engine: SlowEngine
) -> None:
    body = {"query": "FIND users RETURN id -- slow 0.02", "limit": 100_000, "timeout": 0.5}
    t0 = time.monotonic()
    r = httpx.post(
        f"{live.url}/v1/query", json=body, headers={**keys.header("query"), "Accept": NDJSON}
    )
    # the stream is endless: only the deadline (0.5 s) ends it; 5 s leaves a loaded machine room
    assert r.status_code == 200 and time.monotonic() - t0 < 5
    last = orjson.loads(r.content.splitlines()[-1])
    assert last["@eql"]["error"]["code"] == "deadline_exceeded"
    _wait(lambda: len(engine.closed) == 1)

    r = httpx.post(
        f"{live.url}/v1/query", json=body, headers={**keys.header("query"), "Accept": ARROW}
    )
    reader = ipc.open_stream(r.content)
    meta = None
    rows = 0
    while True:
        try:
            batch, meta = reader.read_next_batch_with_custom_metadata()
        except StopIteration:
            break
        rows += batch.num_rows
    assert rows > 0 and meta is not None
    assert orjson.loads(meta[b"eql.error"])["code"] == "deadline_exceeded"


def test_lookups_never_wait_behind_queries(make_app: AppFactory, keys: Keys) -> None:
    """Every query worker busy with a step that blocks it (held at the test's gate until the
    lookups are done, however long they take) and one more query queued: profiles and health
    answer at once. (A server of its own: the queued query waits as long as the test holds.)"""
    app = make_app(rate_query=0, rate_lookup=0, query_workers=2, query_queue_timeout=60)
    with live_server(app) as live:
        _lookups_beside_held_queries(live, keys, slow(app))


def _lookups_beside_held_queries(live: Live, keys: Keys, engine: SlowEngine) -> None:
    results: list[int] = []

    def heavy() -> None:
        r = httpx.post(
            f"{live.url}/v1/query",
            json={"query": "FIND users RETURN id -- hold"},
            headers=keys.header("query"),
            timeout=60,
        )
        results.append(r.status_code)

    threads = [threading.Thread(target=heavy) for _ in range(3)]  # 2 workers: one waits
    worst = 0.0
    try:
        for t in threads:
            t.start()
        _wait(lambda: engine.gate.waiting == 2 and _stats(live).queued == 1)
        with httpx.Client(base_url=live.url, headers=keys.header("lookup")) as c:
            for i in range(200):
                t0 = time.monotonic()
                r = c.get(f"/v1/entities/users/{i % 1000 + 1}")
                worst = max(worst, time.monotonic() - t0)
                assert r.status_code == 200
            t0 = time.monotonic()
            assert c.get("/v1/health").status_code == 200
            worst = max(worst, time.monotonic() - t0)
        assert _stats(live).running == 2  # the queries were still running throughout
        assert engine.gate.waiting == 2
    finally:
        engine.gate.open()
        for t in threads:
            t.join()
    assert worst < 0.25, worst
    assert results == [200, 200, 200]
