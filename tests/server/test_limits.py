"""Limits: sizes (API-4), rows, rate limits, memory pool, deadline, the concurrency cap."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.server.conftest import AppFactory, Keys, live_server, open_client, slow


@pytest.fixture(scope="module")
def small(make_app: AppFactory) -> Iterator[TestClient]:
    app = make_app(
        max_body_bytes=4096,
        max_query_chars=200,
        max_rows=100,
        default_rows=10,
        rate_query=0,
        rate_lookup=0,
        max_key_chars=40,
    )
    with open_client(app) as c:
        yield c


def test_oversized_body_by_content_length(small: TestClient, keys: Keys) -> None:
    r = small.post(
        "/v1/query",
        content=b'{"query": "' + b"x" * 10_000 + b'"}',
        headers={**keys.header("query"), "content-type": "application/json"},
    )
    assert r.status_code == 413
    assert r.json()["errors"][0]["code"] == "too_large"


def test_oversized_chunked_body(small: TestClient, keys: Keys) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"query": "'
        for _ in range(20):
            yield b"x" * 1000
        yield b'"}'

    r = small.post(
        "/v1/query",
        content=chunks(),
        headers={**keys.header("query"), "content-type": "application/json"},
    )
    assert r.status_code == 413


def test_oversized_query_text(small: TestClient, keys: Keys) -> None:
    text = "FIND users WHERE " + " OR ".join(f"id = {i}" for i in range(100))
    r = small.post("/v1/query", json={"query": text}, headers=keys.header("query"))
    assert r.status_code == 422 and r.json()["errors"][0]["code"] == "query_too_large"
    r = small.post("/v1/explain", json={"query": text}, headers=keys.header("query"))
    assert r.status_code == 422 and r.json()["errors"][0]["code"] == "query_too_large"


@pytest.mark.parametrize("limit", [101, 10**6, 2**63])
def test_oversized_page(small: TestClient, keys: Keys, limit: int) -> None:
    r = small.post(
        "/v1/query", json={"query": "FIND users", "limit": limit}, headers=keys.header("query")
    )
    assert r.status_code == 422


def test_oversized_key(small: TestClient, keys: Keys) -> None:
    r = small.get("/v1/entities/products/" + "k" * 41, headers=keys.header("lookup"))
    assert r.status_code == 422


def test_many_params_and_huge_in_list(small: TestClient, keys: Keys) -> None:
    r = small.post(
        "/v1/query",
        json={"query": "FIND users WHERE id IN $ids", "params": {"ids": list(range(5000))}},
        headers=keys.header("query"),
    )
    assert r.status_code == 413  # the body limit (4 KiB here)


@pytest.mark.parametrize("path", ["/v1/schema", "/v1/entities/users/1", "/v1/health"])
def test_oversized_headers_on_uvicorn(make_app: AppFactory, keys: Keys, path: str) -> None:
    with live_server(make_app()) as live:
        r = httpx.get(
            f"{live.url}{path}",
            headers={**keys.header("lookup"), "X-Padding": "p" * 200_000},
        )
        assert r.status_code == 431
        assert r.json()["errors"][0]["code"] == "headers_too_large"
        assert httpx.get(f"{live.url}/v1/health").status_code == 200


def test_rate_limit_per_key_with_retry_after(make_app: AppFactory, keys: Keys) -> None:
    with open_client(make_app(rate_query=0.5, rate_query_burst=2, rate_lookup=0)) as c:
        body = {"query": "FIND stores RETURN id"}
        codes = [c.post("/v1/query", json=body, headers=keys.header("query")) for _ in range(3)]
        assert [r.status_code for r in codes] == [200, 200, 429]
        assert codes[2].json()["errors"][0]["code"] == "rate_limited"
        assert int(codes[2].headers["retry-after"]) >= 1
        # another key has its own bucket; lookups have their own bucket
        assert c.post("/v1/query", json=body, headers=keys.header("admin")).status_code == 200
        assert c.get("/v1/entities/users/1", headers=keys.header("admin")).status_code == 200


def test_lookup_rate_limit_on_fast_path(make_app: AppFactory, keys: Keys) -> None:
    with open_client(make_app(rate_lookup=1, rate_lookup_burst=3)) as c:
        codes = [
            c.get("/v1/entities/users/1", headers=keys.header("lookup")).status_code
            for _ in range(5)
        ]
        assert codes[:3] == [200, 200, 200] and codes[3:] == [429, 429]
        r = c.get("/v1/entities/users/1", headers=keys.header("lookup"))
        assert r.headers["retry-after"] == "1"


@pytest.mark.parametrize(
    "text",
    [
        "FIND EVENTS shift ORDER BY hours DESC, time",
        "FIND EVENTS shift GROUP BY time, hours RETURN time, hours, count() AS n",
        "FIND employees RETURN id, count(DISTINCT shift.time) AS d",
    ],
)
def test_memory_pool_overflow_is_a_clean_error(make_app: AppFactory, keys: Keys, text: str) -> None:
    with open_client(make_app(memory_limit=64 * 1024, rate_query=0)) as c:
        r = c.post("/v1/query", json={"query": text}, headers=keys.header("query"))
        assert r.status_code == 422, r.text
        assert r.json()["errors"][0]["code"] == "memory_limit"
        # the server is fine afterwards
        ok = c.post(
            "/v1/query",
            json={"query": "FIND stores RETURN id"},
            headers=keys.header("query"),
        )
        assert ok.status_code == 200
        stats = c.get("/v1/admin/stats", headers=keys.header("admin")).json()
        assert stats["running"] == 0 and stats["queries"]["failed"] == 1


def test_deadline_while_streaming_rows(make_app: AppFactory, keys: Keys) -> None:
    app = make_app(rate_query=0, max_rows=100_000)
    with open_client(app) as c:
        engine = slow(app)
        t0 = time.monotonic()
        r = c.post(
            "/v1/query",
            json={"query": "FIND users RETURN id -- slow 0.05", "timeout": 0.5, "limit": 100_000},
            headers=keys.header("query"),
        )
        took = time.monotonic() - t0
        assert r.status_code == 408, r.text
        assert r.json()["errors"][0]["code"] == "deadline_exceeded"
        # the stream is endless: only the deadline ends it (the bounds leave a loaded machine
        # ten times the deadline)
        assert took < 5
        _wait(lambda: len(engine.closed) == 1)
        assert engine.closed[0] - t0 < 5  # the work stopped
        yielded = engine.yielded
        time.sleep(0.3)
        assert engine.yielded == yielded
        stats = app.state.eql.runner.stats
        assert stats.outcomes["timed_out"] == 1 and stats.running == 0


def test_deadline_during_one_long_step(make_app: AppFactory, keys: Keys) -> None:
    """A step on the query pool cannot be interrupted: the answer comes at the deadline anyway;
    the slot is held until the worker is really free (so the cap on concurrent queries stays
    true). DataFusion's own steps can be: see test_cancel.py. The step is held at the test's
    gate: it ends when the test says, however slow the machine."""
    app = make_app(rate_query=0, query_workers=1, query_queue_timeout=0.1)
    with open_client(app) as c:
        engine = slow(app)
        runner = app.state.eql.runner
        try:
            r = c.post(
                "/v1/query",
                json={"query": "FIND users RETURN id -- hold", "timeout": 0.3},
                headers=keys.header("query"),
            )
            assert r.status_code == 408  # answered while the step still runs
            assert engine.gate.waiting == 1 and runner.stats.running == 1
            h = keys.header("query")
            busy = c.post("/v1/query", json={"query": "FIND stores"}, headers=h)
            assert busy.status_code == 429 and busy.headers["retry-after"] == "1"
            assert busy.json()["errors"][0]["code"] == "busy"
            assert runner.stats.running == 1  # not freed before the step ended
        finally:
            engine.gate.open()
        _wait(lambda: runner.stats.running == 0)  # freed when it ended
        ok = c.post("/v1/query", json={"query": "FIND stores"}, headers=keys.header("query"))
        assert ok.status_code == 200


def test_deadline_while_waiting_for_the_first_batch(make_app: AppFactory, keys: Keys) -> None:
    """A wait for a batch is cancelled at the deadline: the stream is closed and the slot free.
    The batch waits at a gate the test never opens: only the stop can end that wait."""
    app = make_app(rate_query=0, query_workers=1, query_queue_timeout=0)
    with open_client(app) as c:
        engine = slow(app)
        runner = app.state.eql.runner
        try:
            r = c.post(
                "/v1/query",
                json={"query": "FIND users RETURN id -- gate", "timeout": 0.3},
                headers=keys.header("query"),
            )
            assert r.status_code == 408
            _wait(lambda: len(engine.closed) == 1 and runner.stats.running == 0)
            assert engine.gate.waiting == 0  # the wait was cancelled, the gate still closed
            # from the stop to the slot free: a cancelled wait and a closed stream
            assert max(runner.stats.stop_latency) < 0.5
            h = keys.header("query")
            ok = c.post("/v1/query", json={"query": "FIND stores"}, headers=h)
            assert ok.status_code == 200
        finally:
            engine.gate.open()


def test_concurrency_cap_queues_then_429(make_app: AppFactory, keys: Keys) -> None:
    """Both workers held by queries the test holds at its gate (not for a time): a third query
    waits its `query_queue_timeout` in the queue, then is a 429, while both still run; once the
    test lets them go, both complete."""
    app = make_app(rate_query=0, query_workers=2, query_queue_timeout=0.3)
    with live_server(app) as live:
        engine = slow(app)
        runner = app.state.eql.runner
        results: list[int] = []

        def heavy() -> None:
            r = httpx.post(
                f"{live.url}/v1/query",
                json={"query": "FIND users RETURN id -- gate"},
                headers=keys.header("query"),
                timeout=60,
            )
            results.append(r.status_code)

        threads = [threading.Thread(target=heavy) for _ in range(2)]
        try:
            for t in threads:
                t.start()
            _wait(lambda: engine.gate.waiting == 2)
            assert runner.stats.running == 2
            t0 = time.monotonic()
            r = httpx.post(
                f"{live.url}/v1/query",
                json={"query": "FIND stores"},
                headers=keys.header("query"),
                timeout=60,
            )
            waited = time.monotonic() - t0
            assert r.status_code == 429 and r.json()["errors"][0]["code"] == "busy"
            assert waited >= 0.29  # it queued for the queue timeout first (a lower bound)
            assert results == [] and runner.stats.running == 2  # both still held
            assert runner.stats.queued == 0
        finally:
            engine.gate.open()
            for t in threads:
                t.join()
        assert results == [200, 200]
        assert runner.stats.outcomes["rejected"] == 1


def test_a_queued_query_runs_when_a_worker_frees(make_app: AppFactory, keys: Keys) -> None:
    """The queue, deterministically: the one worker is held at the gate, a second query is seen
    waiting in the queue (`queued`), the test frees the worker, the queued query is answered."""
    app = make_app(rate_query=0, query_workers=1, query_queue_timeout=60)
    with live_server(app) as live:
        engine = slow(app)
        runner = app.state.eql.runner
        results: dict[str, int] = {}

        def post(name: str, text: str) -> None:
            r = httpx.post(
                f"{live.url}/v1/query",
                json={"query": text},
                headers=keys.header("query"),
                timeout=60,
            )
            results[name] = r.status_code

        held = threading.Thread(target=post, args=("held", "FIND users RETURN id -- gate"))
        queued = threading.Thread(target=post, args=("queued", "FIND stores RETURN id"))
        try:
            held.start()
            _wait(lambda: engine.gate.waiting == 1)
            queued.start()
            _wait(lambda: runner.stats.queued == 1)
            assert results == {} and runner.stats.running == 1
        finally:
            engine.gate.open()
            held.join()
            queued.join()
        assert results == {"held": 200, "queued": 200}
        assert runner.stats.queued == 0 and runner.stats.outcomes["rejected"] == 0


def _wait(cond: object, timeout: float = 30.0) -> None:
    """Until the server is in a state (`timeout` only bounds a broken server)."""
    assert callable(cond)
    t0 = time.monotonic()
    while not cond():
        assert time.monotonic() - t0 < timeout, "condition not reached"
        time.sleep(0.01)


EXPENSIVE = [
    # EQL-5: expensive shapes get a clean answer (a result or a limit error), never a crash
    pytest.param(
        {"query": "FIND users WHERE " + " AND ".join(f"id != {i}" for i in range(1400))},
        id="deep-and-chain",
    ),
    pytest.param(
        {"query": "FIND users WHERE id = " + "(" * 200 + "1" + ")" * 200}, id="deep-parens"
    ),
    pytest.param(
        {"query": "FIND users WHERE id IN $ids RETURN id", "params": {"ids": list(range(20_000))}},
        id="huge-in-list",
    ),
    pytest.param(
        {"query": "FIND users WHERE name LIKE $p RETURN id", "params": {"p": "%a" * 2000}},
        id="like-blowup",
    ),
    pytest.param(
        {
            "query": "FIND users RETURN " + ", ".join(f"id + {i} AS c{i}" for i in range(900)),
            "limit": 100_000,
        },
        id="wide-result",
    ),
    pytest.param(
        {
            "query": "FIND EVENTS shift GROUP BY time, hours RETURN time, hours, count() AS n",
            "limit": 100_000,
        },
        id="huge-group-cardinality",
    ),
    pytest.param(
        {
            "query": "FIND stores RETURN id, count(members WHERE count(purchase WHERE "
            "count(DISTINCT product) > 0) = 0) AS x"
        },
        id="nested-aggregates",
    ),
]


@pytest.mark.parametrize("body", EXPENSIVE)
def test_expensive_queries_answer_cleanly(
    make_app: AppFactory, keys: Keys, body: dict[str, object]
) -> None:
    app = make_app(rate_query=0, memory_limit=256 * 1024, query_deadline=3.0)
    with open_client(app) as c:
        t0 = time.monotonic()
        r = c.post("/v1/query", json=body, headers=keys.header("query"))
        assert r.status_code in (200, 400, 408, 413, 422), r.text[:300]
        assert time.monotonic() - t0 < 10
        if r.status_code != 200:
            assert r.json()["errors"][0]["code"]
        _wait(lambda: app.state.eql.runner.stats.running == 0, 10)
        ok = c.post("/v1/query", json={"query": "FIND stores"}, headers=keys.header("query"))
        assert ok.status_code == 200


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"p": 2**70}, 422),
        ({"p": [1, -(2**64)]}, 422),
        ({"p": 1e20}, 400),
        ({"p": 9223372036854775807}, 200),
    ],
)
def test_parameters_beyond_64_bits(
    client_default: TestClient, keys: Keys, params: dict[str, object], status: int
) -> None:
    text = (
        "FIND users WHERE id IN $p RETURN id"
        if isinstance(params["p"], list)
        else ("FIND users WHERE id = $p RETURN id")
    )
    r = client_default.post(
        "/v1/query", json={"query": text, "params": params}, headers=keys.header("query")
    )
    assert r.status_code == status, r.text


@pytest.fixture(scope="module")
def client_default(make_app: AppFactory) -> Iterator[TestClient]:
    with open_client(make_app(rate_query=0)) as c:
        yield c


def test_no_queue_wait(make_app: AppFactory, keys: Keys) -> None:
    """query_queue_timeout=0: a free worker is taken at once, a busy pool is a 429 at once."""
    app = make_app(rate_query=0, query_workers=1, query_queue_timeout=0)
    with live_server(app) as live:
        h = keys.header("query")
        assert httpx.post(f"{live.url}/v1/query", json={"query": "FIND stores"}, headers=h)
        engine = slow(app)
        t = threading.Thread(
            target=httpx.post,
            args=(f"{live.url}/v1/query",),
            kwargs={"json": {"query": "FIND users -- gate"}, "headers": h, "timeout": 60},
        )
        try:
            t.start()
            _wait(lambda: engine.gate.waiting == 1)
            r = httpx.post(f"{live.url}/v1/query", json={"query": "FIND stores"}, headers=h)
            assert r.status_code == 429
            assert app.state.eql.runner.stats.running == 1  # the held query has the worker
        finally:
            engine.gate.open()
            t.join()
        r = httpx.post(f"{live.url}/v1/query", json={"query": "FIND stores"}, headers=h)
        assert r.status_code == 200
