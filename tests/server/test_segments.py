"""Segments and tags over HTTP: define, refresh, describe, drop; membership of one key (fast path
and FastAPI route), of many keys, the segments of a key, profiles with tags and segments; the
change feed refuses, on a real uvicorn, a position naming a version the segment does not have.

Membership answers are checked against an independent answer: the segment's condition run as an
EQL query (`FIND users WHERE <condition> AS OF <as_of> RETURN id`), which plans and executes the
condition instead of reading the stored bitmap.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from storage import Store
from tests.server.conftest import AppFactory, Keys, live_server, open_client

COND = {
    "t_spenders": "sum(purchase.amount DURING LAST 180 DAYS) > 300",
    "t_lapsed": "DID purchase DURING LAST 365 DAYS AND NOT DID purchase DURING LAST 60 DAYS",
}
AS_OF = ["2026-06-01", "2026-09-01", "2026-11-01"]


@pytest.fixture(scope="module", params=[True, False], ids=["fast", "fastapi"])
def client(
    request: pytest.FixtureRequest, make_app: AppFactory, keys: Keys
) -> Iterator[TestClient]:
    app = make_app(fast_lookups=request.param, rate_query=0, rate_lookup=0, max_batch_keys=5000)
    with open_client(app) as c:
        h = keys.header("define")
        for name, cond in COND.items():
            text = f"DEFINE SEGMENT {name} ON users WHERE {cond}"
            r = c.post("/v1/segments", json={"eql": text}, headers=h)
            assert r.status_code in (200, 201), r.text
            for as_of in AS_OF:
                r = c.post(f"/v1/segments/{name}/refresh", json={"as_of": as_of}, headers=h)
                assert r.status_code == 200, r.text
        yield c


def _oracle(c: TestClient, keys: Keys, cond: str, as_of: str) -> set[int]:
    text = f"FIND users WHERE {cond} RETURN id"
    r = c.post(
        "/v1/query",
        json={"query": text, "as_of": as_of, "limit": 100_000},
        headers=keys.header("query"),
    )
    assert r.status_code == 200, r.text
    return {row["id"] for row in r.json()["rows"]}


def _user_ids(store: Store) -> list[int]:
    return sorted(store.entity_table("users").column("id").to_pylist())


def test_single_and_batch_membership_match_the_condition(
    client: TestClient, keys: Keys, demo_store: Store
) -> None:
    h = keys.header("lookup")
    users = _user_ids(demo_store)
    for name, cond in COND.items():
        expected = _oracle(client, keys, cond, AS_OF[-1])
        assert 0 < len(expected) < len(users)  # a test that can fail both ways
        latest = client.get(f"/v1/segments/{name}", headers=h).json()["version"]
        sample = [*random.Random(7).sample(users, 150), -1, 10**12]
        for key in sample:
            r = client.get(f"/v1/segments/{name}/members/{key}", headers=h)
            assert r.status_code == 200, r.text
            assert r.json() == {
                "segment": name,
                "key": key,
                "member": key in expected,
                "version": latest,
            }
        probe = [*users, -5, 10**15]
        r = client.post(f"/v1/segments/{name}/members", json={"keys": probe}, headers=h)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["members"] == [k in expected for k in probe]
        assert body["count"] == len(expected) and body["version"] == latest
        r = client.post(
            f"/v1/segments/{name}/members",
            json={"keys": probe[::-1] + probe[:10], "answer": "members"},
            headers=h,
        )
        members = r.json()["members"]
        assert members == [k for k in probe[::-1] + probe[:10] if k in expected]


def test_versions_sizes_and_entered_exited(client: TestClient, keys: Keys) -> None:
    name, cond = "t_spenders", COND["t_spenders"]
    r = client.get(f"/v1/segments/{name}", headers=keys.header("query"))
    assert r.status_code == 200
    body = r.json()
    assert body["kind"] == "segment" and body["entity"] == "users"
    assert body["versions_total"] >= len(AS_OF)
    versions = body["versions"][::-1][-len(AS_OF) :]  # oldest first, this module's refreshes
    sets = [_oracle(client, keys, cond, a) for a in AS_OF]
    for i, v in enumerate(versions):
        assert v["size"] == len(sets[i])
        assert v["as_of"].startswith(AS_OF[i])
        if i:
            assert v["entered"] == len(sets[i] - sets[i - 1])
            assert v["exited"] == len(sets[i - 1] - sets[i])
    assert body["size"] == len(sets[-1]) and body["version"] == versions[-1]["version"]
    r = client.get(f"/v1/segments/{name}?history=1", headers=keys.header("query"))
    assert len(r.json()["versions"]) == 1
    listed = client.get("/v1/segments", headers=keys.header("lookup")).json()["items"]
    assert {"t_spenders", "t_lapsed"} <= {s["name"] for s in listed}
    assert next(s for s in listed if s["name"] == name)["size"] == len(sets[-1])


def test_segments_of_a_key_and_profile(client: TestClient, keys: Keys, demo_store: Store) -> None:
    h = keys.header("lookup")
    sets = {n: _oracle(client, keys, c, AS_OF[-1]) for n, c in COND.items()}
    for key in random.Random(3).sample(_user_ids(demo_store), 40):
        r = client.get(f"/v1/entities/users/{key}/segments", headers=h)
        assert r.status_code == 200, r.text
        mine = {n for n, s in sets.items() if key in s}
        assert mine <= set(r.json()["segments"])
        assert not (set(COND) - mine) & set(r.json()["segments"])
        profile = client.get(f"/v1/entities/users/{key}", headers=h).json()
        assert profile["segments"] == r.json()["segments"]
    assert client.get("/v1/entities/users/999999999/segments", headers=h).json()["segments"] == []
    assert client.get("/v1/entities/nope/1/segments", headers=h).status_code == 404
    assert client.get("/v1/entities/users/abc/segments", headers=h).status_code == 422


def test_tags_in_profiles_follow_refreshes(client: TestClient, keys: Keys) -> None:
    d, h = keys.header("define"), keys.header("lookup")
    text = "DEFINE TAG t_orders ON users AS count(purchase DURING LAST 90 DAYS)"
    r = client.post("/v1/tags", json={"eql": text, "refresh": True, "as_of": AS_OF[0]}, headers=d)
    assert r.status_code in (200, 201), r.text
    assert r.json()["refreshed"]["version"] >= 1

    def orders(as_of: str) -> dict[int, int]:
        q = "FIND users RETURN id, count(purchase DURING LAST 90 DAYS) AS n"
        rows = client.post(
            "/v1/query",
            json={"query": q, "as_of": as_of, "limit": 100_000},
            headers=keys.header("query"),
        ).json()["rows"]
        return {row["id"]: row["n"] for row in rows}

    for as_of in (AS_OF[0], AS_OF[-1]):
        if as_of != AS_OF[0]:
            r = client.post("/v1/tags/t_orders/refresh", json={"as_of": as_of}, headers=d)
            assert r.status_code == 200 and r.json()["kind"] == "tag"
        expected = orders(as_of)
        changed = [k for k in expected if expected[k] != orders(AS_OF[0]).get(k)]
        for key in [*list(expected)[:20], *changed[:10]]:
            profile = client.get(f"/v1/entities/users/{key}", headers=h).json()
            assert profile["tags"]["t_orders"] == expected[key], (as_of, key)
    body = client.get("/v1/tags/t_orders", headers=h).json()
    assert body["kind"] == "tag" and body["type"] == "int" and body["top"]
    assert any(t["name"] == "t_orders" for t in client.get("/v1/tags", headers=h).json()["items"])


def test_clusters_are_tags(client: TestClient, keys: Keys) -> None:
    text = (
        "DEFINE CLUSTERS t_kc ON users K 3 SEED 1 FEATURES "
        "(spend = sum(purchase.amount), visits = count(purchase))"
    )
    r = client.post("/v1/tags", json={"eql": text, "refresh": True}, headers=keys.header("define"))
    assert r.status_code in (200, 201), r.text
    body = client.get("/v1/tags/t_kc", headers=keys.header("query")).json()
    assert body["kind"] == "clusters" and body["clusters"]["k"] == 3
    assert len(body["clusters"]["centroids"]) == 3


def test_bad_definitions_and_names(client: TestClient, keys: Keys) -> None:
    d = keys.header("define")
    r = client.post("/v1/segments", json={"eql": "DEFINE TAG x ON users AS 1"}, headers=d)
    assert r.status_code == 422 and r.json()["errors"][0]["code"] == "wrong_statement"
    r = client.post("/v1/tags", json={"eql": "FIND users RETURN id"}, headers=d)
    assert r.status_code == 422
    r = client.post("/v1/segments", json={"eql": "DEFINE SEGMENT x ON users WHERE"}, headers=d)
    assert r.status_code == 400 and r.json()["errors"][0]["code"].startswith("E1")
    text = "DEFINE SEGMENT x ON users WHERE nope > 1"
    r = client.post("/v1/segments", json={"eql": text}, headers=d)
    err = r.json()["errors"][0]
    assert r.status_code == 400 and err["code"].startswith("E2") and err["line"] == 1
    for path in ("/v1/segments/zzz", "/v1/segments/zzz/members/1", "/v1/tags/zzz"):
        r = client.get(path, headers=keys.header("admin"))
        assert r.status_code == 404, path
    r = client.post("/v1/segments/zzz/refresh", headers=d)
    assert r.status_code == 404
    # names resolve regardless of case, like in EQL
    r = client.get("/v1/segments/T_SPENDERS/members/1", headers=keys.header("lookup"))
    assert r.status_code == 200 and r.json()["segment"] == "t_spenders"


def test_never_refreshed_segment_is_409(client: TestClient, keys: Keys) -> None:
    text = "DEFINE SEGMENT t_fresh ON users WHERE birth_year > 2000"
    assert client.post("/v1/segments", json={"eql": text}, headers=keys.header("define")).is_success
    h = keys.header("lookup")
    r = client.get("/v1/segments/t_fresh/members/1", headers=h)
    assert r.status_code == 409 and r.json()["errors"][0]["code"] == "not_refreshed"
    assert (
        client.post("/v1/segments/t_fresh/members", json={"keys": [1]}, headers=h).status_code
        == 409
    )
    assert client.get("/v1/segments/t_fresh", headers=h).json()["version"] is None


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"not json", 400),
        (b"[1, 2]", 422),
        (b'{"keys": 5}', 422),
        (b'{"keys": [1], "extra": 1}', 422),
        (b'{"keys": [1], "answer": "all"}', 422),
        (b'{"keys": [1, "2"]}', 422),
        (b'{"keys": [1, true]}', 422),
        (b'{"keys": [1.5]}', 422),
        (b'{"keys": [[1]]}', 422),
        (b'{"keys": [99999999999999999999]}', 422),
        (b'{"keys": [1, null]}', 422),
        (b'{"keys": ' + str(list(range(5001))).encode() + b"}", 413),
        (b'{"keys": []}', 200),
    ],
)
def test_batch_bad_input(client: TestClient, keys: Keys, body: bytes, status: int) -> None:
    h = {**keys.header("lookup"), "Content-Type": "application/json"}
    r = client.post("/v1/segments/t_spenders/members", content=body, headers=h)
    assert r.status_code == status, r.text
    if status != 200:
        assert r.json()["errors"][0]["message"]
    if b"true" in body:
        assert r.json()["errors"][0]["location"] == ["keys", 1]


def test_string_keys(client: TestClient, keys: Keys, demo_store: Store) -> None:
    text = "DEFINE SEGMENT t_hot ON products WHERE count(purchase) >= 3"
    r = client.post(
        "/v1/segments", json={"eql": text, "refresh": True}, headers=keys.header("define")
    )
    assert r.status_code in (200, 201), r.text
    skus = demo_store.entity_table("products").column("sku").to_pylist()
    q = "FIND products WHERE count(purchase) >= 3 RETURN sku"
    rows = client.post(
        "/v1/query", json={"query": q, "limit": 100_000}, headers=keys.header("query")
    ).json()["rows"]
    hot = {row["sku"] for row in rows}
    assert 0 < len(hot) < len(skus)
    h = keys.header("lookup")
    r = client.post("/v1/segments/t_hot/members", json={"keys": [*skus, "nope"]}, headers=h)
    assert r.json()["members"] == [s in hot for s in [*skus, "nope"]]
    for sku in skus[:20]:
        r = client.get(f"/v1/segments/t_hot/members/{sku}", headers=h)
        assert r.json()["member"] is (sku in hot)
    bad = client.post("/v1/segments/t_hot/members", json={"keys": ["a", 3]}, headers=h)
    assert bad.status_code == 422


def test_drop(client: TestClient, keys: Keys) -> None:
    d = keys.header("define")
    text = "DEFINE SEGMENT t_gone ON users WHERE birth_year > 1990"
    assert client.post("/v1/segments", json={"eql": text, "refresh": True}, headers=d).is_success
    assert client.get("/v1/segments/t_gone/members/1", headers=d | keys.header("admin")).is_success
    assert client.delete("/v1/segments/t_gone", headers=d).status_code == 204
    assert (
        client.get("/v1/segments/t_gone/members/1", headers=keys.header("lookup")).status_code
        == 404
    )
    assert client.delete("/v1/segments/t_gone", headers=d).status_code == 404


def test_statements_through_query_need_define_for_writes(client: TestClient, keys: Keys) -> None:
    q = keys.header("query")
    text = "DEFINE SEGMENT t_q ON users WHERE birth_year > 1985"
    r = client.post("/v1/query", json={"query": text}, headers=q)
    assert r.status_code == 403 and "define" in r.json()["errors"][0]["message"]
    r = client.post("/v1/query", json={"query": "SHOW SEGMENTS"}, headers=q)
    assert r.status_code == 200 and "t_spenders" in {row["name"] for row in r.json()["rows"]}
    r = client.post("/v1/query", json={"query": text}, headers=keys.header("admin"))
    assert r.status_code == 200 and r.json()["rows"][0]["name"] == "t_q"
    r = client.post(
        "/v1/query", json={"query": "REFRESH SEGMENT t_q"}, headers=keys.header("admin")
    )
    assert r.status_code == 200
    # the lookups see what a statement wrote
    r = client.get("/v1/segments/t_q/members/1", headers=keys.header("lookup"))
    assert r.status_code == 200
    r = client.post(
        "/v1/query",
        json={"query": "DESCRIBE SEGMENT t_q"},
        headers={**q, "Accept": "application/x-ndjson"},
    )
    lines = r.text.strip().splitlines()
    assert (
        r.status_code == 200
        and lines[-1] == f'{{"@eql":{{"rows":{len(lines) - 1},"truncated":false}}}}'
    )
    assert len(lines) >= 2


def _assert_no_key_echo(body: dict[str, Any]) -> None:
    assert "Traceback" not in str(body)


def test_batch_agrees_with_single_lookups_property(client: TestClient) -> None:
    """Property: for any list of keys (known, unknown, negative, past 32 bits, repeated), the
    batch answer is the single answers in order."""
    import orjson
    from hypothesis import given, settings
    from hypothesis import strategies as st

    lookups = client.app.state.eql.lookups  # type: ignore[attr-defined]
    keys_st = st.lists(
        st.one_of(
            st.integers(0, 1200),
            st.integers(-(1 << 63), (1 << 63) - 1),
            st.sampled_from([0, 1, 2**32 - 1, 2**32, -1]),
        ),
        max_size=60,
    )

    @settings(max_examples=150, deadline=None)
    @given(keys=keys_st, name=st.sampled_from(sorted(COND)))
    def check(keys: list[int], name: str) -> None:
        got = orjson.loads(lookups.batch(name, orjson.dumps({"keys": keys})))
        single = [orjson.loads(lookups.membership(name, str(k)))["member"] for k in keys]
        assert got["members"] == single
        assert got["count"] == sum(single)
        members = orjson.loads(
            lookups.batch(name, orjson.dumps({"keys": keys, "answer": "members"}))
        )
        assert members["members"] == [k for k, m in zip(keys, single, strict=True) if m]

    check()


def test_feed_from_a_version_the_segment_does_not_have_is_404(
    make_app: AppFactory, keys: Keys
) -> None:
    app = make_app(rate_query=0, rate_lookup=0, feed_keepalive=0.2, feed_max_seconds=5)
    with live_server(app) as live:
        d = keys.header("define")
        for name, dates in (("t_versions", AS_OF), ("t_unrefreshed", [])):
            text = f"DEFINE SEGMENT {name} ON users WHERE {COND['t_spenders']}"
            r = httpx.post(f"{live.url}/v1/segments", json={"eql": text}, headers=d, timeout=60)
            assert r.status_code in (200, 201), r.text
            for as_of in dates:
                url = f"{live.url}/v1/segments/{name}/refresh"
                r = httpx.post(url, json={"as_of": as_of}, headers=d, timeout=60)
                assert r.status_code == 200, r.text

        def status(name: str, query: str = "", last: str | None = None) -> httpx.Response:
            h = keys.header("lookup") | ({"Last-Event-ID": last} if last else {})
            url = f"{live.url}/v1/segments/{name}/changes{query}"
            with httpx.stream("GET", url, headers=h, timeout=30) as r:
                if r.status_code != 200:  # an error: read it; a feed: leave it
                    r.read()
                return r

        for query, last in (("?since=9", None), ("?since=4", None), ("", "9"), ("", "7:20")):
            r = status("t_versions", query, last)
            assert r.status_code == 400, (query, last)
            err = r.json()["errors"][0]
            assert err["code"] == "unknown_version" and err["latest"] == 3, err
            assert err["message"].endswith("it has versions 1-3"), err
        r = status("t_unrefreshed", "?since=1")
        assert r.status_code == 400 and r.json()["errors"][0]["latest"] == 0
        assert r.json()["errors"][0]["message"].endswith("it was never refreshed")
        # the positions that exist still open the feed
        for name, query, last in (
            ("t_versions", "?since=3", None),
            ("t_versions", "?since=latest", None),
            ("t_versions", "", "3:5"),
            ("t_unrefreshed", "?since=0", None),
            ("t_unrefreshed", "?since=latest", None),
        ):
            assert status(name, query, last).status_code == 200, (name, query, last)
        assert status("t_nope", "?since=1").json()["errors"][0]["code"] == "unknown_segment"
        doc = httpx.get(f"{live.url}/openapi.json", timeout=30).json()
        described = doc["paths"]["/v1/segments/{name}/changes"]["get"]["responses"]["400"]
        assert "unknown_version" in described["description"]
