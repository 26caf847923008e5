"""API-1: every route x (no key, bad, revoked, wrong scope, valid) -> 401/401/401/403/2xx."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.server.conftest import AppFactory, Keys, open_client

SEG = "birth_year > 1980"
TAG = "count(purchase)"
# method, path, JSON body, a key that is valid but lacks the scope, a key that has it
ROUTES: list[tuple[str, str, dict[str, Any] | None, str, str]] = [
    ("GET", "/v1/schema", None, "ingest", "lookup"),
    ("POST", "/v1/query", {"query": "FIND stores RETURN id"}, "lookup", "query"),
    ("POST", "/v1/explain", {"query": "FIND stores RETURN id"}, "lookup", "query"),
    ("GET", "/v1/entities/users/1", None, "query", "lookup"),
    ("GET", "/v1/admin/stats", None, "query", "admin"),
    ("GET", "/v1/entities/users/1/segments", None, "query", "lookup"),
    # a started server documents each entity's routes on their own (typed keys)
    ("GET", "/v1/entities/stores/1", None, "query", "lookup"),
    ("GET", "/v1/entities/stores/1/segments", None, "define", "lookup"),
    ("GET", "/v1/entities/employees/1", None, "query", "lookup"),
    ("GET", "/v1/entities/employees/1/segments", None, "define", "lookup"),
    ("GET", "/v1/entities/products/SKU-000001", None, "query", "lookup"),
    ("GET", "/v1/entities/products/SKU-000001/segments", None, "define", "lookup"),
    ("GET", "/v1/segments", None, "ingest", "lookup"),
    ("GET", "/v1/segments/matrix_seg", None, "define", "query"),
    (
        "POST",
        "/v1/segments",
        {"eql": f"DEFINE SEGMENT matrix_seg ON users WHERE {SEG}"},
        "query",
        "define",
    ),
    ("POST", "/v1/segments/matrix_seg/refresh", {"as_of": "2026-11-01"}, "lookup", "define"),
    ("DELETE", "/v1/segments/matrix_doomed", None, "query", "define"),
    ("GET", "/v1/segments/matrix_seg/members/1", None, "query", "lookup"),
    ("POST", "/v1/segments/matrix_seg/members", {"keys": [1, 2, 3]}, "query", "lookup"),
    ("GET", "/v1/segments/matrix_seg/changes", None, "define", "lookup"),
    ("GET", "/v1/tags", None, "ingest", "query"),
    ("GET", "/v1/tags/matrix_tag", None, "define", "lookup"),
    ("POST", "/v1/tags", {"eql": f"DEFINE TAG matrix_tag ON users AS {TAG}"}, "lookup", "define"),
    ("POST", "/v1/tags/matrix_tag/refresh", None, "query", "define"),
    ("DELETE", "/v1/tags/matrix_doomed", None, "lookup", "define"),
    ("GET", "/v1/admin/cdc", None, "query", "admin"),
]
# Routes that write the shared store or need a running source: each one's keys (none, bad,
# wrong scope, right scope) are checked in its own file with a store of its own.
ELSEWHERE = [
    ("POST", "/v1/ingest/entities/{entity}"),  # tests/server/test_ingest_http.py
    ("POST", "/v1/ingest/streams/{stream}"),  # tests/server/test_ingest_http.py
    ("POST", "/v1/admin/cdc/connectors"),  # tests/server/test_cdc_routes.py
    ("DELETE", "/v1/admin/cdc/connectors/{name}"),  # tests/server/test_cdc_routes.py
]
RECHECK = 0.15  # a running server looks at the keys file every 0.1 s (keys_recheck)
PUBLIC = [("GET", "/v1/health"), ("GET", "/openapi.json"), ("GET", "/docs"), ("GET", "/metrics")]


def _define_doomed(c: TestClient, keys: Keys) -> None:
    """The DELETE routes drop these; each valid call needs them back."""
    h = keys.header("admin")
    for route, text in (
        ("/v1/segments", f"DEFINE SEGMENT matrix_doomed ON users WHERE {SEG}"),
        ("/v1/tags", f"DEFINE TAG matrix_doomed ON users AS {TAG}"),
    ):
        assert c.post(route, json={"eql": text}, headers=h).status_code in (200, 201)


@pytest.fixture(scope="module", params=[True, False], ids=["fast", "fastapi"])
def client(
    request: pytest.FixtureRequest, make_app: AppFactory, keys: Keys
) -> Iterator[TestClient]:
    app = make_app(
        fast_lookups=request.param,
        rate_query=0,
        rate_lookup=0,
        feed_max_seconds=0.3,
        feed_keepalive=0.1,
    )
    with open_client(app) as c:
        h = keys.header("admin")
        for route, text in (
            ("/v1/segments", f"DEFINE SEGMENT matrix_seg ON users WHERE {SEG}"),
            ("/v1/tags", f"DEFINE TAG matrix_tag ON users AS {TAG}"),
        ):
            r = c.post(route, json={"eql": text, "refresh": True, "as_of": "2026-11-01"}, headers=h)
            assert r.status_code in (200, 201), r.text
        yield c


def _template(path: str, templates: set[str]) -> str:
    for t in templates:
        if re.fullmatch(re.sub(r"\{[^}]+\}", "[^/]+", t), path):
            return t
    return path


def _call(
    c: TestClient, method: str, path: str, body: dict[str, Any] | None, headers: dict[str, str]
) -> Any:
    return c.request(method, path, json=body, headers=headers)


def test_matrix_covers_every_route(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    documented = {
        (m.upper(), p) for p, ops in spec["paths"].items() for m in ops if m != "parameters"
    }
    templates = {p for _, p in documented}
    covered = {(m, _template(p, templates)) for m, p, *_ in ROUTES} | set(PUBLIC) | set(ELSEWHERE)
    assert documented <= covered


@pytest.mark.parametrize(("method", "path", "body", "wrong", "right"), ROUTES)
def test_auth_matrix(
    client: TestClient,
    keys: Keys,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    wrong: str,
    right: str,
) -> None:
    cases = {
        "none": ({}, 401),
        "bad": ({"Authorization": f"Bearer {keys.bogus}"}, 401),
        "garbage": ({"Authorization": "Bearer not-a-key"}, 401),
        "basic": ({"Authorization": f"Basic {keys.admin}"}, 401),
        "revoked": ({"Authorization": f"Bearer {keys.revoked}"}, 401),
        "wrong-scope": (keys.header(wrong), 403),
        "valid": (keys.header(right), 200),
        "valid-x-api-key": ({"X-API-Key": getattr(keys, right)}, 200),
        "admin": (keys.header("admin"), 200),
    }
    for name, (headers, status) in cases.items():
        if method == "DELETE":
            _define_doomed(client, keys)
        r = _call(client, method, path, body, headers)
        if status == 200:
            assert 200 <= r.status_code < 300, (name, r.status_code, r.text)
            continue
        assert r.status_code == status, (name, r.status_code, r.text)
        if status == 401:
            assert r.headers["www-authenticate"].startswith("Bearer")
            assert r.json()["errors"][0]["code"] == "unauthorized"
        if status == 403:
            assert r.json()["errors"][0]["code"] == "forbidden"


@pytest.mark.parametrize(("method", "path"), PUBLIC)
def test_public_routes(client: TestClient, method: str, path: str) -> None:
    assert client.request(method, path).status_code == 200


def test_revocation_applies_to_a_running_server(client: TestClient, keys: Keys) -> None:
    record, token = keys.file.create(["lookup"], "short-lived")
    h = {"Authorization": f"Bearer {token}"}
    time.sleep(RECHECK)
    assert client.get("/v1/entities/users/1", headers=h).status_code == 200
    keys.file.revoke(record.id)
    time.sleep(RECHECK)
    assert client.get("/v1/entities/users/1", headers=h).status_code == 401
    assert client.get("/v1/schema", headers=h).status_code == 401


def test_key_created_while_running_works(client: TestClient, keys: Keys) -> None:
    _, token = keys.file.create(["query"], "new")
    time.sleep(RECHECK)
    r = client.post(
        "/v1/query", json={"query": "FIND stores RETURN id"}, headers={"X-API-Key": token}
    )
    assert r.status_code == 200


def test_secret_is_checked_not_just_the_id(client: TestClient, keys: Keys) -> None:
    forged = keys.lookup[:-1] + ("A" if keys.lookup[-1] != "A" else "B")
    r = client.get("/v1/entities/users/1", headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401
