"""API-2: schemathesis against our own OpenAPI on a real uvicorn: no 5xx, responses conform.

A bounded run (at most 50 examples per operation). Generated bodies are valid or invalid by the
schema; EQL text is random, so an answer of 400 (diagnostics) to schema-valid data is expected and
the `positive_data_acceptance` check is left out.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.specs.openapi.checks import positive_data_acceptance

from entities import parse_schema
from server.app import create_app
from server.openapi import per_entity
from server.settings import Settings
from tests.server.conftest import RETAIL_SCHEMA, AppFactory, Keys, Live, live_server, open_client


@pytest.fixture(scope="module")
def fuzz_client(make_app: AppFactory) -> Iterator[TestClient]:
    with open_client(make_app(rate_query=0, query_deadline=5.0)) as c:
        yield c


@pytest.fixture(scope="module")
def fuzz_live(make_app: AppFactory) -> Iterator[Live]:
    app = make_app(
        rate_query=0, rate_lookup=0, query_deadline=5.0, feed_max_seconds=0.5, feed_keepalive=0.2
    )
    with live_server(app) as live:
        yield live


# The generic spec, from an app that is never started (building it needs no store), and what a
# server on the retail schema documents: each entity's routes spelled out with its key's type.
# The test checks that the running server serves exactly that.
GENERIC = create_app(Settings(data_dir=Path("/nonexistent"))).openapi()
RETAIL = parse_schema(RETAIL_SCHEMA.read_text(encoding="utf-8"), "retail.yaml")
SPEC = per_entity(GENERIC, RETAIL, Settings().max_key_chars)
schema = schemathesis.openapi.from_dict(SPEC)


def test_served_spec_is_the_tested_one(fuzz_live: Live) -> None:
    assert httpx.get(f"{fuzz_live.url}/openapi.json").json() == SPEC


def test_each_entity_documents_its_key_type() -> None:
    assert "/v1/entities/{entity}/{key}" in GENERIC["paths"]
    assert "/v1/entities/{entity}/{key}" not in SPEC["paths"]
    for ent in RETAIL.entities:
        for path in (
            f"/v1/entities/{ent.name}/{{key}}",
            f"/v1/entities/{ent.name}/{{key}}/segments",
        ):
            (param,) = SPEC["paths"][path]["get"]["parameters"][:1]
            assert param["name"] == "key"
            kind = ent.key.type.kind.value
            assert param["schema"]["type"] == ("integer" if kind == "int" else "string"), path
    others = {p: v for p, v in SPEC["paths"].items() if not p.startswith("/v1/entities/")}
    assert others == {
        p: v for p, v in GENERIC["paths"].items() if not p.startswith("/v1/entities/")
    }


@schema.parametrize()
@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_api(case: Any, fuzz_live: Live, keys: Keys) -> None:
    response = case.call_and_validate(
        base_url=fuzz_live.url,
        headers=keys.header("admin"),
        excluded_checks=[positive_data_acceptance],
        timeout=30,
    )
    assert response.status_code < 500, response.text


FRAGMENTS = [
    "FIND",
    "FIND EVENTS",
    "users",
    "stores",
    "purchase",
    "shift",
    "WHERE",
    "RETURN",
    "GROUP BY",
    "ORDER BY",
    "LIMIT",
    "AS OF",
    "DURING LAST 30 DAYS",
    "id",
    "name",
    "count()",
    "sum(",
    "purchase.amount",
    ")",
    "(",
    ",",
    "=",
    ">=",
    "%",
    "/",
    "0",
    "1",
    "-9223372036854775808",
    "9223372036854775807",
    "'x'",
    "$p",
    "NULL",
    "AND",
    "OR",
    "NOT",
    "DID",
    "IN",
    "LIKE",
    "'%'",
    "CASE WHEN",
    "THEN",
    "ELSE",
    "END",
    "home_store.city",
    "days_since(",
    "EXPLAIN",
    "'2026-11-01'",
    "DESC",
    "DISTINCT",
    "avg(",
    "members",
    "`",
    ";",
    "--",
    "1e308",
    "abs(",
]


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    words=st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=14),
    param=st.one_of(
        st.none(),
        st.integers(),
        st.text(max_size=5),
        st.floats(allow_nan=False, allow_infinity=False),
        st.booleans(),
    ),
    accept=st.sampled_from(
        ["application/json", "application/x-ndjson", "application/vnd.apache.arrow.stream"]
    ),
)
def test_eql_like_text_never_5xx(
    fuzz_client: TestClient, keys: Keys, words: list[str], param: Any, accept: str
) -> None:
    body = {"query": " ".join(words), "params": {"p": param}, "limit": 50}
    r = fuzz_client.post("/v1/query", json=body, headers={**keys.header("query"), "Accept": accept})
    assert r.status_code < 500, (body, r.text)
    if r.status_code >= 400:
        assert r.json()["errors"]
