"""Findings of the adversarial run (issue 10) over HTTP, each as it was reported: a NUL in a
segment or tag name, stale members and values after DROP and DEFINE again, case-only variants,
lone UTF-16 surrogates, two Authorization headers, a define with its refresh as one commit, and
the OpenAPI mismatches."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from runtime import Session
from storage import Store
from storage.audiences import AudienceStore
from tests.server.conftest import AppFactory, Keys, live_server, open_client

JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module", params=[True, False], ids=["fast", "fastapi"])
def api(request: pytest.FixtureRequest, make_app: AppFactory) -> Iterator[TestClient]:
    with open_client(make_app(fast_lookups=request.param, rate_query=0, rate_lookup=0)) as c:
        yield c


def _define(c: TestClient, keys: Keys, route: str, text: str, **extra: Any) -> httpx.Response:
    return c.post(route, json={"eql": text, **extra}, headers=keys.header("define"))


def _query(c: TestClient, keys: Keys, text: str) -> httpx.Response:
    """Any statement through /v1/query (the admin key: scopes query and define)."""
    body = {"query": text, "limit": 100_000}
    return c.post("/v1/query", json=body, headers=keys.header("admin"))


def _count(c: TestClient, keys: Keys, where: str) -> int:
    r = _query(c, keys, f"FIND users WHERE {where} RETURN count() AS n")
    assert r.status_code == 200, r.text
    return int(r.json()["rows"][0]["n"])


@pytest.mark.parametrize("route,kind", [("/v1/segments", "SEGMENT"), ("/v1/tags", "TAG")])
def test_a_nul_in_a_name_is_refused_and_aliases_nothing(
    api: TestClient, keys: Keys, demo_store: Store, route: str, kind: str
) -> None:
    body = "WHERE id < 10" if kind == "SEGMENT" else "AS 'v'"
    victim = f"DEFINE {kind} victim ON users {body}"
    r = _define(api, keys, route, victim, refresh=True)
    assert r.status_code in (200, 201), r.text
    evil = f"DEFINE {kind} `victim\u0000evil` ON users {body.replace('10', '20')}"
    for attempt in (
        lambda: _define(api, keys, route, evil, refresh=True),
        lambda: _query(api, keys, evil),
    ):
        r = attempt()
        assert r.status_code == 400, r.text
        (err,) = r.json()["errors"]
        assert err["code"] == "E233" and err["column"] == len(f"DEFINE {kind} ") + 1
    # nothing of it was stored: every read of the store still answers, and victim is intact
    assert api.get(route, headers=keys.header("lookup")).status_code == 200
    described = api.get(f"{route}/victim", headers=keys.header("lookup"))
    assert described.status_code == 200 and described.json()["text"] == victim
    assert api.post(f"{route}/victim/refresh", headers=keys.header("define")).status_code == 200
    shown = _query(api, keys, f"SHOW {kind}S")
    assert shown.status_code == 200 and "victim\u0000evil" not in shown.text
    if kind == "SEGMENT":
        assert _count(api, keys, "in segment victim") == 9
    with Store.open(demo_store.data_dir, read_only=True) as again:  # the store still opens
        names = AudienceStore(again).names(kind)
        assert "victim" in names and not [n for n in names if "\x00" in n]
        Session(again).execute(f"SHOW {kind}S")
    assert api.delete(f"{route}/victim", headers=keys.header("define")).status_code == 204


def test_no_stale_members_after_drop_and_define_again(api: TestClient, keys: Keys) -> None:
    lookup = keys.header("lookup")
    r = _define(
        api, keys, "/v1/segments", "DEFINE SEGMENT cachetest ON users WHERE id < 100", refresh=True
    )
    assert r.status_code == 201, r.text
    assert _count(api, keys, "in segment cachetest") == 99
    assert api.get("/v1/segments/cachetest/members/400", headers=lookup).json()["member"] is False
    assert api.delete("/v1/segments/cachetest", headers=keys.header("define")).status_code == 204
    r = _define(
        api, keys, "/v1/segments", "DEFINE SEGMENT cachetest ON users WHERE id < 500", refresh=True
    )
    assert r.status_code == 201, r.text  # a new segment, not a new version of the old one
    assert r.json()["versions"][0]["version"] == 1
    assert _count(api, keys, "in segment cachetest") == _count(api, keys, "id < 500")
    assert api.get("/v1/segments/cachetest/members/400", headers=lookup).json()["member"] is True
    batch = api.post(
        "/v1/segments/cachetest/members", json={"keys": [50, 400, 700]}, headers=lookup
    )
    assert batch.json()["members"] == [True, True, False]
    assert api.delete("/v1/segments/cachetest", headers=keys.header("define")).status_code == 204


def test_no_stale_tag_values_after_drop_and_define_again(api: TestClient, keys: Keys) -> None:
    for value in ("old", "new"):
        text = f"DEFINE TAG cachetag ON users AS '{value}'"
        assert _define(api, keys, "/v1/tags", text, refresh=True).status_code == 201
        assert _count(api, keys, f"cachetag = '{value}'") == _count(api, keys, "id > 0")
        profile = api.get("/v1/entities/users/7", headers=keys.header("lookup")).json()
        assert profile["tags"]["cachetag"] == value
        assert api.delete("/v1/tags/cachetag", headers=keys.header("define")).status_code == 204


def test_case_only_variants_are_one_name(api: TestClient, keys: Keys) -> None:
    lookup = keys.header("lookup")
    assert (
        _define(
            api, keys, "/v1/segments", "DEFINE SEGMENT vip ON users WHERE id < 10", refresh=True
        ).status_code
        == 201
    )
    r = _define(api, keys, "/v1/segments", "DEFINE SEGMENT VIP ON stores WHERE id < 3")
    assert r.status_code == 400 and r.json()["errors"][0]["code"] == "E229"
    r = _define(
        api, keys, "/v1/segments", "DEFINE SEGMENT VIP ON users WHERE id < 20", refresh=True
    )
    assert r.status_code == 200 and r.json()["name"] == "vip" and r.json()["definition"] == 2
    for spelling in ("vip", "VIP", "Vip"):  # every route resolves every spelling to one segment
        assert api.get(f"/v1/segments/{spelling}", headers=lookup).json()["name"] == "vip"
        m = api.get(f"/v1/segments/{spelling}/members/15", headers=lookup).json()
        assert m == {"segment": "vip", "key": 15, "member": True, "version": 2}
        assert _count(api, keys, f"in segment {spelling}") == 19
    listed = [s["name"] for s in api.get("/v1/segments", headers=lookup).json()["items"]]
    assert [n for n in listed if n.lower() == "vip"] == ["vip"]
    assert api.delete("/v1/segments/VIP", headers=keys.header("define")).status_code == 204
    assert api.get("/v1/segments/vip", headers=lookup).status_code == 404


SURROGATE_BODIES = [
    ("/v1/query", b'{"query": "FIND users WHERE name = \'\\ud800\' RETURN id"}', "E112"),
    (
        "/v1/query",
        b'{"query": "FIND users WHERE name = $p RETURN id", "params": {"p": "\\ud800"}}',
        "E211",
    ),
    ("/v1/query", b'{"query": "FIND users RETURN id AS `\\udfff`"}', "E112"),
    (
        "/v1/query",
        b'{"query": "FIND users WHERE name IN $p", "params": {"p": ["a", "\\udc80"]}}',
        "E211",
    ),
    ("/v1/query", b'{"query": "DEFINE SEGMENT `s\\ud800` ON users WHERE id < 3"}', "E112"),
    ("/v1/explain", b'{"query": "FIND users WHERE name = \'\\ud800\'"}', "E112"),
    ("/v1/explain", b'{"query": "FIND users WHERE name = $p", "params": {"p": "\\ud800"}}', "E211"),
    ("/v1/segments", b'{"eql": "DEFINE SEGMENT `\\ud800` ON users WHERE id < 3"}', "E112"),
    ("/v1/segments", b'{"eql": "DEFINE SEGMENT s ON users WHERE name = \'\\ud800\'"}', "E112"),
    ("/v1/tags", b'{"eql": "DEFINE TAG `t\\udbff` ON users AS 1"}', "E112"),
    ("/v1/tags", b'{"eql": "DEFINE TAG t ON users AS \'\\ud800\'"}', "E112"),
    ("/v1/segments/x/refresh", b'{"as_of": "\\ud800"}', "invalid_request"),
]


def test_lone_surrogates_are_400_and_the_connection_lives(make_app: AppFactory, keys: Keys) -> None:
    app = make_app(rate_query=0, rate_lookup=0)
    with live_server(app) as live, httpx.Client(base_url=live.url, timeout=30) as c:
        h = {**keys.header("admin"), **JSON}
        for path, body, code in SURROGATE_BODIES:
            r = c.post(path, content=body, headers=h)
            assert r.status_code in (400, 422), (path, body, r.text)
            assert r.json()["errors"][0]["code"] == code, (path, body, r.text)
            # the same keep-alive connection goes on answering
            assert c.get("/v1/health").status_code == 200
        seg = {"eql": "DEFINE SEGMENT by_sku ON products WHERE sku IS NOT NULL", "refresh": True}
        assert c.post("/v1/segments", json=seg, headers=h).status_code in (200, 201)
        bad_keys = b'{"keys": ["a", "\\ud800"], "answer": "members"}'
        r = c.post("/v1/segments/by_sku/members", content=bad_keys, headers=h)
        assert r.status_code == 400 and r.json()["errors"][0]["code"] == "invalid_json"
        assert c.get("/v1/health").status_code == 200
        assert c.delete("/v1/segments/by_sku", headers=h).status_code == 204


@pytest.mark.parametrize("header", ["Authorization", "X-API-Key"])
def test_two_credentials_headers_are_refused(api: TestClient, keys: Keys, header: str) -> None:
    good = keys.header("admin")["Authorization"]
    value = good if header == "Authorization" else good.removeprefix("Bearer ")
    other = keys.header("lookup")["Authorization"]
    second = other if header == "Authorization" else other.removeprefix("Bearer ")
    for first, then in ((value, second), (value, value)):
        headers = [(header, first), (header, then)]
        for r in (
            api.get("/v1/entities/users/1", headers=headers),  # the fast path (when on)
            api.get("/v1/segments", headers=headers),
            api.post(
                "/v1/query", json={"query": "FIND users RETURN count() AS n"}, headers=headers
            ),
        ):
            assert r.status_code == 400, r.text
            assert r.json()["errors"][0]["code"] == "duplicate_credentials"


def test_define_with_refresh_is_all_or_nothing(
    api: TestClient, keys: Keys, demo_store: Store
) -> None:
    aud = AudienceStore(demo_store)
    before = aud.counter()
    r = _define(
        api, keys, "/v1/segments", "DEFINE SEGMENT atomic ON users WHERE id < 5", refresh=True
    )
    assert r.status_code == 201 and r.json()["refreshed"]["size"] == 4
    assert aud.counter() == before + 1  # one commit for the definition and its first version
    bad = "DEFINE CLUSTERS lonely ON stores K 64 SEED 1 FEATURES (a = count(purchase))"
    r = _define(api, keys, "/v1/tags", bad, refresh=True)
    assert r.status_code == 400 and r.json()["errors"][0]["code"] == "E231"
    assert api.get("/v1/tags/lonely", headers=keys.header("lookup")).status_code == 404
    assert aud.counter() == before + 1
    assert api.delete("/v1/segments/atomic", headers=keys.header("define")).status_code == 204


@pytest.mark.parametrize(
    "body",
    [
        {"query": ""},
        {"query": "FIND users", "timeout": 5e-324},
        {"query": "FIND users", "timeout": 0},
    ],
)
def test_bodies_the_schema_refuses_are_refused(
    api: TestClient, keys: Keys, body: dict[str, Any]
) -> None:
    r = api.post("/v1/query", json=body, headers=keys.header("query"))
    assert r.status_code == 422, r.text
    assert _define(api, keys, "/v1/segments", "").status_code == 422


def test_slow_request_headers_time_out(make_app: AppFactory) -> None:
    """A connection whose request head is not complete within `header_timeout` gets a 408 and is
    closed; a kept-alive connection that sends its next request in time is not."""
    import socket

    app = make_app(header_timeout=0.5)
    with live_server(app) as live:
        port = int(live.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as slow:
            slow.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n")  # never the blank line
            answer = b""
            while chunk := slow.recv(4096):  # ends when the server closes (within the timeout)
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 408") and b"request_timeout" in answer
        with socket.create_connection(("127.0.0.1", port), timeout=10) as silent:
            assert silent.recv(4096).startswith(b"HTTP/1.1 408")  # nothing sent at all
        with httpx.Client(base_url=live.url) as c:  # requests in time on one connection
            for _ in range(3):
                assert c.get("/v1/health").status_code == 200
