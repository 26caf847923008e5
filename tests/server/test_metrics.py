"""`GET /metrics`: scraped from a real uvicorn after known requests, parsed with prometheus_client's
own text parser, the counts are the requests made; labels hold route templates, never a key."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.server.conftest import AppFactory, Keys, live_server, open_client, slow

SEG = "metrics_seg"
MEMBER = "/v1/segments/{name}/members/{key:path}"
PROFILE = "/v1/entities/{entity}/{key:path}"
OF_KEY = "/v1/entities/{entity}/{key:path}/segments"
BATCH = "/v1/segments/{name}/members"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> tuple[Samples, set[str]]:
    """Every sample by (name, labels), and the names of the families (with or without samples)."""
    samples: Samples = {}
    families = set()
    for family in text_string_to_metric_families(text):
        families.add(family.name)
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples, families


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum over every sample of `name` whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def scrape(c: httpx.Client, headers: dict[str, str] | None = None) -> Samples:
    r = c.get("/metrics", headers=headers or {})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=")
    return parse(r.text)[0]


@pytest.fixture(scope="module", params=[True, False], ids=["fast", "fastapi"])
def server(request: pytest.FixtureRequest, make_app: AppFactory, keys: Keys) -> Iterator[str]:
    app = make_app(rate_query=0, rate_lookup=0, fast_lookups=request.param)
    with live_server(app) as live:
        yield live.url


def test_counts_are_the_requests_made(server: str, keys: Keys) -> None:
    admin, lookup, query = keys.header("admin"), keys.header("lookup"), keys.header("query")
    with httpx.Client(base_url=server, timeout=60) as c:
        before = scrape(c)
        text = f"DEFINE SEGMENT {SEG} ON users WHERE birth_year > 1985"
        body = {"eql": text, "refresh": True, "as_of": "2026-11-01"}
        assert c.post("/v1/segments", json=body, headers=admin).status_code in (200, 201)
        r = c.post(f"/v1/segments/{SEG}/refresh", json={"as_of": "2026-10-01"}, headers=admin)
        assert r.status_code == 200, r.text
        r = c.post("/v1/query", json={"query": f"REFRESH SEGMENT {SEG}"}, headers=admin)
        assert r.status_code == 200, r.text
        broken = {"eql": "DEFINE SEGMENT metrics_broken ON users WHERE nosuch > 1", "refresh": True}
        assert c.post("/v1/segments", json=broken, headers=admin).status_code == 400
        for key in range(1, 31):
            assert c.get(f"/v1/segments/{SEG}/members/{key}", headers=lookup).status_code == 200
        for key in range(1, 6):
            assert c.get(f"/v1/entities/users/{key}", headers=lookup).status_code == 200
        assert c.get("/v1/entities/users/424242", headers=lookup).status_code == 404
        assert c.get("/v1/entities/users/7/segments", headers=lookup).status_code == 200
        assert c.get(f"/v1/segments/{SEG}/members/1").status_code == 401
        keys_asked = list(range(1, 251))
        r = c.post(f"/v1/segments/{SEG}/members", json={"keys": keys_asked}, headers=lookup)
        assert r.status_code == 200
        assert c.get("/v1/no/such/secretpath").status_code == 404
        ok = {"query": "FIND stores RETURN id"}
        assert c.post("/v1/query", json=ok, headers=query).status_code == 200
        ndjson = {**query, "Accept": "application/x-ndjson"}
        assert c.post("/v1/query", json=ok, headers=ndjson).status_code == 200
        wrong_name = {"query": "FIND users WHERE citty = $p", "params": {"p": "hidden-value"}}
        assert c.post("/v1/query", json=wrong_name, headers=query).status_code == 400
        assert c.post("/v1/query", json={"query": "FIND"}, headers=query).status_code == 400
        assert c.post("/v1/explain", json=ok, headers=query).status_code == 200
        r = c.post("/v1/query", json=ok, headers={**query, "Accept": "image/png"})
        assert r.status_code == 406
        after = c.get("/metrics")
        assert after.status_code == 200
        text_after = after.text
        again = scrape(c)

    now = parse(text_after)[0]

    def delta(name: str, **labels: str) -> float:
        return value(now, name, **labels) - value(before, name, **labels)

    requests = "eql_http_requests_total"
    assert delta(requests, route=MEMBER, method="GET", status="200") == 30
    assert delta(requests, route=MEMBER, method="GET", status="401") == 1
    assert delta(requests, route=PROFILE, method="GET", status="200") == 5
    assert delta(requests, route=PROFILE, method="GET", status="404") == 1
    assert delta(requests, route=OF_KEY, method="GET", status="200") == 1
    assert delta(requests, route=BATCH, method="POST", status="200") == 1
    assert delta(requests, route="/v1/query", method="POST", status="200") == 3
    assert delta(requests, route="/v1/query", method="POST", status="400") == 2
    assert delta(requests, route="/v1/query", method="POST", status="406") == 1
    assert delta(requests, route="unmatched", method="GET", status="404") == 1
    # each request is in its route's latency histogram once
    latency = "eql_http_request_duration_seconds"
    for route, n in ((MEMBER, 31), (PROFILE, 6), ("/v1/query", 6)):
        assert delta(f"{latency}_count", route=route) == n
        assert delta(f"{latency}_bucket", route=route, le="+Inf") == n
        assert delta(f"{latency}_sum", route=route) > 0
    # the scrape before is counted by the scrape after (a scrape cannot count itself)
    assert (
        value(again, requests, route="/metrics", method="GET", status="200")
        == value(now, requests, route="/metrics", method="GET", status="200") + 1
    )

    lookups = "eql_lookups_total"
    assert delta(lookups, kind="membership") == 30  # answered lookups only (not the 401)
    assert delta(lookups, kind="profile") == 5
    assert delta(lookups, kind="segments_of") == 1
    assert delta(lookups, kind="batch_membership") == 1
    assert delta("eql_batch_membership_keys_total") == len(keys_asked)

    queries = "eql_queries_total"
    assert delta(queries, kind="query", outcome="ok") == 2
    assert delta(queries, kind="query", outcome="E2xx") == 1
    assert delta(queries, kind="query", outcome="E1xx") == 1
    assert delta(queries, kind="query", outcome="invalid") == 1  # 406
    assert delta(queries, kind="explain", outcome="ok") == 1
    assert delta(queries, kind="statement", outcome="ok") == 1
    assert delta("eql_query_duration_seconds_count", kind="query", outcome="ok") == 2

    # define with refresh, the refresh route and the REFRESH statement
    assert delta("eql_refreshes_total", kind="segment", outcome="ok") == 3
    assert delta("eql_refreshes_total", kind="segment", outcome="E2xx") == 1
    assert delta("eql_refresh_duration_seconds_count", kind="segment") == 3

    assert value(now, "eql_queries_running") == 0
    assert value(now, "eql_queries_queued") == 0
    assert value(now, "eql_query_workers") == 4
    assert total(now, "eql_build_info") == 1
    assert value(now, "process_resident_memory_bytes") > 0
    # no key of a customer, no path, no parameter value in any label
    for banned in ("424242", "secretpath", "hidden-value", keys.lookup, keys.admin):
        assert banned not in text_after


def test_ingest_and_cdc_families_are_declared_without_values(server: str) -> None:
    """The server ingests nothing itself yet: the families exist for the live-ingest work to
    feed, and show no sample meanwhile (no made-up zero)."""
    text = httpx.get(f"{server}/metrics", timeout=30).text
    samples, families = parse(text)
    for family in ("eql_ingest_rows", "eql_ingest_rejects", "eql_cdc_transactions"):
        assert family in families
    assert "eql_cdc_lag_seconds" in families
    assert not [name for name, _ in samples if name.startswith(("eql_ingest", "eql_cdc"))]


def test_metrics_can_require_the_admin_scope(make_app: AppFactory, keys: Keys) -> None:
    with open_client(make_app(metrics_require_admin=True)) as c:
        assert c.get("/metrics").status_code == 401
        assert c.get("/metrics", headers=keys.header("lookup")).status_code == 403
        r = c.get("/metrics", headers=keys.header("admin"))
        assert r.status_code == 200 and "eql_http_requests_total" in r.text
    with open_client(make_app()) as c:
        assert c.get("/metrics").status_code == 200  # the default: readable without a key


def test_openmetrics_when_asked(make_app: AppFactory) -> None:
    with open_client(make_app()) as c:
        r = c.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("application/openmetrics-text")
        assert r.text.rstrip().endswith("# EOF")


def test_each_app_counts_apart(make_app: AppFactory, keys: Keys) -> None:
    """Two apps in one process: each has its own registry (no clash, no shared count)."""
    with open_client(make_app(rate_lookup=0)) as one, open_client(make_app()) as two:
        for _ in range(3):
            assert one.get("/v1/entities/users/1", headers=keys.header("lookup")).status_code == 200
        first = parse(one.get("/metrics").text)[0]
        second = parse(two.get("/metrics").text)[0]
    assert value(first, "eql_lookups_total", kind="profile") == 3
    assert value(second, "eql_lookups_total", kind="profile") == 0


def test_query_outcomes(make_app: AppFactory, keys: Keys) -> None:
    """A deadline, a refused write and a key without the scope define, each with its outcome."""
    app = make_app(rate_query=0)
    with open_client(app) as c:
        slow(app)
        h = keys.header("query")
        r = c.post("/v1/query", json={"query": "FIND users -- block 5", "timeout": 0.2}, headers=h)
        assert r.status_code == 408
        define = {"query": "DEFINE SEGMENT metrics_never ON users WHERE birth_year > 1"}
        assert c.post("/v1/query", json=define, headers=h).status_code == 403
        samples = parse(c.get("/metrics").text)[0]
    assert value(samples, "eql_queries_total", kind="query", outcome="timed_out") == 1
    assert value(samples, "eql_queries_total", kind="query", outcome="forbidden") == 1
    assert total(samples, "eql_queries_total") == 2


def test_a_request_refused_before_routing_counts_under_its_route(
    make_app: AppFactory, keys: Keys
) -> None:
    """A body over the limit is refused before routing: counted once, under its route."""
    with open_client(make_app(max_body_bytes=1024, rate_query=0)) as c:
        big = {"query": "FIND users WHERE name = $n", "params": {"n": "x" * 5000}}
        assert c.post("/v1/query", json=big, headers=keys.header("query")).status_code == 413
        samples = parse(c.get("/metrics").text)[0]
    requests = "eql_http_requests_total"
    assert value(samples, requests, route="/v1/query", method="POST", status="413") == 1
    assert total(samples, requests) == 1
    assert total(samples, "eql_queries_total") == 0  # it never reached the query handler
