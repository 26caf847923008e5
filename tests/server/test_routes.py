"""Routes through the test client: health, schema, profiles, query (JSON), explain, errors."""

from __future__ import annotations

import datetime as dt
import re

import orjson
import pytest
from fastapi.testclient import TestClient

from storage import Store
from tests.server.conftest import AppFactory, Keys, open_client


def post(client: TestClient, keys: Keys, body: dict[str, object], **headers: str):  # type: ignore[no-untyped-def]
    return client.post("/v1/query", json=body, headers={**keys.header("query"), **headers})


def test_health_needs_no_key(client: TestClient) -> None:
    r = client.get("/v1/health")
    assert r.status_code == 200
    assert r.json()["status"] == "ok"


def test_openapi_and_docs_are_served(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    paths = set(spec["paths"])
    assert {"/v1/health", "/v1/schema", "/v1/query", "/v1/explain"} <= paths
    assert "/v1/entities/users/{key}" in paths  # a started server spells out each entity
    content = spec["paths"]["/v1/query"]["post"]["responses"]["200"]["content"]
    assert set(content) == {
        "application/json",
        "application/x-ndjson",
        "application/vnd.apache.arrow.stream",
    }
    assert client.get("/docs").status_code == 200


def test_schema(client: TestClient, keys: Keys, demo_store: Store) -> None:
    r = client.get("/v1/schema", headers=keys.header("lookup"))
    assert r.status_code == 200
    body = r.json()
    users = next(e for e in body["entities"] if e["name"] == "users")
    assert users["key"] == {"name": "id", "type": "int", "required": True, "values": None}
    gender = next(a for a in users["attributes"] if a["name"] == "gender")
    assert gender["values"] == ["female", "male", "other"]
    assert "purchase" in users["streams"]
    assert [s["name"] for s in body["streams"]] == [s.name for s in demo_store.schema.streams]


def test_profile_int_key(client: TestClient, keys: Keys, demo_store: Store) -> None:
    r = client.get("/v1/entities/users/5", headers=keys.header("lookup"))
    assert r.status_code == 200
    body = r.json()
    row = demo_store.get("users", 5)
    assert row is not None
    assert body["entity"] == "users" and body["key"] == 5
    from runtime.lookup import Audiences

    aud = Audiences(demo_store)  # other modules may have defined tags and segments
    assert body["tags"] == aud.tags_of("users", 5)
    assert body["segments"] == aud.segments_of("users", 5)
    ent = demo_store.schema.entity("users")
    assert ent is not None
    assert list(body["attributes"]) == [a.name for a in ent.attributes]
    assert body["attributes"]["name"] == row["name"]
    assert body["attributes"]["signup_date"] == row["signup_date"]


def test_profile_string_key_and_escaping(client: TestClient, keys: Keys, demo_store: Store) -> None:
    sku = demo_store.entity_table("products").column("sku")[0].as_py()
    r = client.get(f"/v1/entities/products/{sku}", headers=keys.header("lookup"))
    assert r.status_code == 200, r.text
    assert r.json()["key"] == sku
    assert r.json()["attributes"]["price"] == demo_store.get("products", sku)["price"]  # type: ignore[index]
    # a key with a slash, escaped, is one key (not found), never a different route
    r = client.get("/v1/entities/products/a%2Fb", headers=keys.header("lookup"))
    assert r.status_code == 404
    assert r.json()["errors"][0]["code"] == "not_found"


def test_profile_timestamps_are_iso(make_app: AppFactory, keys: Keys, demo_store: Store) -> None:
    # the retail schema has no timestamp attribute: check the conversion on its own
    from server.lookups import _timestamp

    assert _timestamp(0) == dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    assert orjson.dumps(_timestamp(1_500_000), option=orjson.OPT_UTC_Z) == (
        b'"1970-01-01T00:00:01.500000Z"'
    )


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/v1/entities/users/99999999", 404, "not_found"),
        ("/v1/entities/nobody/1", 404, "unknown_entity"),
        ("/v1/entities/users/abc", 422, "invalid_key"),
        ("/v1/entities/users/1.5", 422, "invalid_key"),
        ("/v1/entities/users/99999999999999999999", 422, "invalid_key"),
        ("/v1/entities/users/" + "9" * 600, 422, "invalid_key"),
        ("/v1/entities/users/%C3%28", 422, "invalid_key"),
    ],
)
def test_profile_errors(client: TestClient, keys: Keys, path: str, status: int, code: str) -> None:
    r = client.get(path, headers=keys.header("lookup"))
    assert r.status_code == status
    assert r.json()["errors"][0]["code"] == code


@pytest.mark.parametrize("fast", [True, False])
def test_profile_same_answer_on_both_paths(make_app: AppFactory, keys: Keys, fast: bool) -> None:
    with open_client(make_app(fast_lookups=fast)) as c:
        ok = c.get("/v1/entities/users/7", headers=keys.header("lookup"))
        missing = c.get("/v1/entities/users/99999999", headers=keys.header("lookup"))
        denied = c.get("/v1/entities/users/7", headers=keys.header("query"))
    assert ok.status_code == 200 and ok.json()["key"] == 7
    assert missing.status_code == 404 and denied.status_code == 403
    assert ok.headers["content-type"] == "application/json"


def test_query_json(client: TestClient, keys: Keys) -> None:
    r = post(
        client,
        keys,
        {
            "query": "FIND users WHERE id <= $n RETURN id, name, gender, signup_date, "
            "last(purchase.time) AS last_time, sum(purchase.amount) AS spend ORDER BY id",
            "params": {"n": 3},
            "as_of": "2026-11-01",
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert [c["name"] for c in body["columns"]] == [
        "id",
        "name",
        "gender",
        "signup_date",
        "last_time",
        "spend",
    ]
    assert body["row_count"] == 3 and body["truncated"] is False
    assert [row["id"] for row in body["rows"]] == [1, 2, 3]
    for row in body["rows"]:
        assert row["gender"] in ("female", "male", "other")
        assert re.fullmatch(r"\d{4}-\d\d-\d\d", row["signup_date"])
        assert isinstance(row["spend"], str)  # decimals stay exact
        if row["last_time"] is not None:
            assert row["last_time"].endswith("Z")


def test_query_matches_engine(client: TestClient, keys: Keys, demo_store: Store) -> None:
    from runtime.engine import Engine

    text = "FIND stores RETURN id, city, count(purchase) AS n ORDER BY id"
    expected = Engine(demo_store).query(text).to_pylist()
    r = post(client, keys, {"query": text})
    assert r.json()["rows"] == expected


def test_rows_are_cut_and_say_so(client: TestClient, keys: Keys) -> None:
    r = post(client, keys, {"query": "FIND users RETURN id", "limit": 7})
    body = r.json()
    assert body["row_count"] == 7 and len(body["rows"]) == 7 and body["truncated"] is True
    r = post(client, keys, {"query": "FIND stores RETURN id", "limit": 20})
    assert r.json()["truncated"] is False and r.json()["row_count"] == 20
    r = post(client, keys, {"query": "FIND stores RETURN id", "limit": 19})
    assert r.json()["truncated"] is True


def test_default_rows(make_app: AppFactory, keys: Keys) -> None:
    with open_client(make_app(default_rows=10, max_rows=50)) as c:
        r = c.post("/v1/query", json={"query": "FIND users"}, headers=keys.header("query"))
        assert r.json()["row_count"] == 10 and r.json()["truncated"] is True
        r = c.post(
            "/v1/query",
            json={"query": "FIND users", "limit": 51},
            headers=keys.header("query"),
        )
        assert r.status_code == 422
        assert r.json()["errors"][0]["code"] == "limit_too_large"


def test_empty_result(client: TestClient, keys: Keys) -> None:
    r = post(client, keys, {"query": "FIND users WHERE id < 0 RETURN id, name"})
    body = r.json()
    assert body["rows"] == [] and body["row_count"] == 0 and body["truncated"] is False
    assert [c["name"] for c in body["columns"]] == ["id", "name"]


def test_eql_error_is_400_with_diagnostics(client: TestClient, keys: Keys) -> None:
    r = post(client, keys, {"query": "FIND users WHERE home_store.citty = 'Shanghai'"})
    assert r.status_code == 400
    err = r.json()["errors"][0]
    assert err["code"] == "E202"
    assert err["line"] == 1 and err["column"] == 29
    assert any("city" in h for h in err["helps"])


def test_missing_parameter(client: TestClient, keys: Keys) -> None:
    r = post(client, keys, {"query": "FIND users WHERE birth_year >= $nowhere"})
    assert r.status_code == 400 and r.json()["errors"][0]["code"] == "E210"


def test_explain_text_via_query(client: TestClient, keys: Keys) -> None:
    r = post(client, keys, {"query": "EXPLAIN PLAN FIND users RETURN id"})
    assert r.status_code == 200
    assert r.json()["explain"]["stage"] == "plan"
    assert "Scan users" in r.json()["explain"]["text"]


@pytest.mark.parametrize("stage", ["ast", "bound", "plan", "datafusion", "all"])
def test_explain_route(client: TestClient, keys: Keys, stage: str) -> None:
    r = client.post(
        "/v1/explain",
        json={"query": "FIND users WHERE DID purchase RETURN id", "stage": stage},
        headers=keys.header("query"),
    )
    assert r.status_code == 200, r.text
    assert r.json()["explain"]["stage"] == stage
    assert r.json()["explain"]["text"]


def test_explain_error(client: TestClient, keys: Keys) -> None:
    r = client.post("/v1/explain", json={"query": "FIND"}, headers=keys.header("query"))
    assert r.status_code == 400 and r.json()["errors"][0]["code"].startswith("E1")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"query": "FIND users", "as_of": "yesterday"}, "invalid_request"),
        ({"query": "FIND users", "limit": 0}, "invalid_request"),
        ({"query": "FIND users", "extra": 1}, "invalid_request"),
        ({"params": {}}, "invalid_request"),
        ({"query": "FIND users", "params": {"a": {"b": 1}}}, "invalid_request"),
    ],
)
def test_invalid_bodies_are_422(
    client: TestClient, keys: Keys, body: dict[str, object], code: str
) -> None:
    r = post(client, keys, body)
    assert r.status_code == 422
    assert r.json()["errors"][0]["code"] == code
    assert "input" not in r.text.lower() or "yesterday" not in r.text


def test_malformed_json_is_422(client: TestClient, keys: Keys) -> None:
    r = client.post(
        "/v1/query",
        content=b"{not json",
        headers={**keys.header("query"), "content-type": "application/json"},
    )
    assert r.status_code == 422


def test_accept_negotiation(client: TestClient, keys: Keys) -> None:
    body = {"query": "FIND stores RETURN id", "limit": 2}
    r = post(client, keys, body, Accept="text/html")
    assert r.status_code == 406
    r = post(client, keys, body, Accept="text/html, application/x-ndjson;q=0.5")
    assert r.headers["content-type"] == "application/x-ndjson"
    r = post(client, keys, body, Accept="*/*")
    assert r.headers["content-type"] == "application/json"
    r = post(client, keys, body, Accept="application/json;q=0.1, application/x-ndjson")
    assert r.headers["content-type"] == "application/x-ndjson"


def test_ndjson_and_arrow_through_test_client(client: TestClient, keys: Keys) -> None:
    import pyarrow.ipc as ipc

    body = {"query": "FIND users RETURN id, gender ORDER BY id", "limit": 5}
    r = post(client, keys, body, Accept="application/x-ndjson")
    lines = [orjson.loads(x) for x in r.content.splitlines()]
    assert [x["id"] for x in lines[:-1]] == [1, 2, 3, 4, 5]
    assert lines[-1] == {"@eql": {"rows": 5, "truncated": True}}
    r = post(client, keys, body, Accept="application/vnd.apache.arrow.stream")
    table = ipc.open_stream(r.content).read_all()
    assert table.column("id").to_pylist() == [1, 2, 3, 4, 5]


@pytest.mark.parametrize(
    "text",
    [
        "FIND users WHERE id = 1 RETURN abs(-9223372036854775807 - 1) AS v",
        "FIND users WHERE id = 1 RETURN birth_year % 0 AS v",
        "FIND users WHERE id = 1 RETURN date_part('year', NULL) AS v",
    ],
)
def test_runtime_failures_are_not_500(client: TestClient, keys: Keys, text: str) -> None:
    """Failures while running are EQL errors (E3xx, 400) or the server's `query_failed`."""
    r = post(client, keys, {"query": text})
    assert r.status_code in (200, 400, 422), r.text
    if r.status_code != 200:
        code = r.json()["errors"][0]["code"]
        assert code == "query_failed" or code.startswith(("E2", "E3")), code


def test_long_and_chain_runs_and_deep_nesting_is_400(client: TestClient, keys: Keys) -> None:
    text = "FIND users WHERE " + " AND ".join(f"id != {10**6 + i}" for i in range(700))
    r = post(client, keys, {"query": text})
    assert r.status_code == 200, r.text  # conjunctions are balanced trees: no deep recursion
    assert r.json()["row_count"] > 0
    nested = "FIND users WHERE " + "(" * 300 + "id = 1" + ")" * 300
    r = post(client, keys, {"query": nested})
    assert r.status_code == 400, r.text
    assert r.json()["errors"][0]["code"] == "E107"


def test_error_bodies_leak_nothing(client: TestClient, keys: Keys, demo_store: Store) -> None:
    bodies = [
        post(client, keys, {"query": "FIND nowhere"}).text,
        post(client, keys, {"query": "FIND users RETURN abs(-9223372036854775807 - 1) AS v"}).text,
        client.get("/v1/entities/users/x", headers=keys.header("lookup")).text,
        client.get("/v1/schema", headers={"Authorization": f"Bearer {keys.bogus}"}).text,
        client.get("/v1/schema", headers={"Authorization": f"Bearer {keys.revoked}"}).text,
    ]
    for text in bodies:
        assert "Traceback" not in text and 'File "' not in text
        assert str(demo_store.data_dir) not in text and "/tmp" not in text
        assert keys.bogus not in text and keys.revoked not in text and "eql_" not in text
