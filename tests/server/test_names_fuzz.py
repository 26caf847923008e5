"""NAME-1: arbitrary unicode in every name a user gives, through every route and the CLI.

Names are drawn by hypothesis from all of Unicode plus the characters that broke things before
(NUL, lone surrogates, bidi overrides, zero-width and control characters, newlines), very long
ones, and case-only variants of names that exist. Each one goes through DEFINE (segments, tags,
clusters; the resource routes and /v1/query), the routes that take a name in their path
(describe, refresh, membership, batch, feed, drop), EQL statements that name it, an API key's
name and a schema's entity and attribute names. Asserted: never a 5xx, every 4xx has a code,
what is stored obeys the name rule and aliases nothing, and the store still opens.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from entities import parse_schema
from entities.loader import SchemaError
from entities.names import fold, label_problem, name_problem
from eql.cli.main import app as cli
from runtime import Session
from storage import Store
from storage.audiences import KINDS, AudienceStore
from tests.server.conftest import RETAIL_SCHEMA, AppFactory, Keys, open_client

SPECIAL = [
    "\x00",
    "\ud800",
    "\udfff",
    "\u202e",
    "\u2066",
    "\u200b",
    "\ufeff",
    "\n",
    "\r",
    "\t",
    "`",
]
NAMES = st.one_of(
    st.text(min_size=0, max_size=20),
    st.text(alphabet=st.sampled_from([*SPECIAL, "a", "B", "_", "1", "é", "客"]), max_size=12),
    st.sampled_from(["vip", "VIP", "Vip", "ß", "SS", "x" * 64, "x" * 65, "y" * 10_000]),
    st.builds(
        lambda a, s, b: a + s + b,
        st.text(max_size=5),
        st.sampled_from(SPECIAL),
        st.text(max_size=5),
    ),
)
SETTINGS = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)


@pytest.fixture(scope="module")
def api(make_app: AppFactory, keys: Keys) -> Iterator[TestClient]:
    app = make_app(rate_query=0, rate_lookup=0, feed_max_seconds=0.2, feed_keepalive=0.1)
    with open_client(app) as c:
        text = "DEFINE SEGMENT keep_me_1 ON users WHERE id < 10"  # must survive the fuzzing
        r = c.post("/v1/segments", json={"eql": text, "refresh": True}, headers=_h(keys))
        assert r.status_code in (200, 201), r.text
        yield c


def _h(keys: Keys) -> dict[str, str]:
    return {"Authorization": f"Bearer {keys.admin}", "content-type": "application/json"}


def _quoted(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _body(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc).encode()  # ASCII escapes: lone surrogates travel as `\ud800`


def _check(r: Any, what: str) -> None:
    assert r.status_code < 500, (what, r.status_code, r.text)
    if r.status_code >= 400:
        errors = r.json()["errors"]
        assert errors and all(e.get("code") for e in errors), (what, r.text)


def _segment(name: str) -> str:
    return urllib.parse.quote(name.encode("utf-8", "surrogatepass"), safe="")


@SETTINGS
@given(name=NAMES)
def test_every_route_takes_any_name(api: TestClient, keys: Keys, name: str) -> None:
    q = _quoted(name)
    h = _h(keys)
    statements = {
        "/v1/segments": f"DEFINE SEGMENT {q} ON users WHERE id < 5",
        "/v1/tags": f"DEFINE TAG {q} ON users AS 'x'",
    }
    for route, text in statements.items():
        r = api.post(route, content=_body({"eql": text, "refresh": True}), headers=h)
        _check(r, f"POST {route}")
        if r.status_code in (200, 201):
            assert name_problem(name) is None, name  # stored names obey the rule
    clusters = f"DEFINE CLUSTERS {q} ON users K 2 SEED 1 FEATURES (a = count(purchase))"
    for text in (
        clusters,
        f"REFRESH SEGMENT {q}",
        f"DESCRIBE SEGMENT {q}",
        f"EXPLAIN MEMBERSHIP {q} FOR 1",
        f"FIND users WHERE in segment {q} RETURN count() AS n",
        f"FIND users RETURN {q}",
        f"DROP TAG {q}",
        f"DROP CLUSTERS {q}",
    ):
        _check(api.post("/v1/query", content=_body({"query": text}), headers=h), text)
    path = _segment(name)
    if not path or path in (".", ".."):
        return
    for method, url, body in (
        ("GET", f"/v1/segments/{path}", None),
        ("POST", f"/v1/segments/{path}/refresh", None),
        ("GET", f"/v1/segments/{path}/members/1", None),
        ("POST", f"/v1/segments/{path}/members", {"keys": [1, 2]}),
        ("GET", f"/v1/segments/{path}/changes?since=latest", None),
        ("GET", f"/v1/tags/{path}", None),
        ("DELETE", f"/v1/segments/{path}", None),
        ("DELETE", f"/v1/tags/{path}", None),
    ):
        content = None if body is None else _body(body)
        _check(api.request(method, url, content=content, headers=h), f"{method} {url}")


def test_the_store_holds_only_names_that_obey_the_rule(
    api: TestClient, keys: Keys, demo_store: Store
) -> None:
    r = api.get("/v1/segments/keep_me_1/members/3", headers=_h(keys))
    assert r.status_code == 200 and r.json()["member"] is True  # untouched by the fuzzing
    with Store.open(demo_store.data_dir, read_only=True) as again:
        aud = AudienceStore(again)
        for kind in KINDS:
            names = aud.names(kind)
            assert len({fold(n) for n in names}) == len(names), names  # no case-only twins
            for n in names:
                assert name_problem(n) is None, n
                d = aud.definition(kind, n)
                assert d is not None and d.name == n
        for kind in ("SEGMENTS", "TAGS", "CLUSTERS"):
            Session(again).execute(f"SHOW {kind}")


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(name=NAMES)
def test_key_names(keys: Keys, name: str) -> None:
    if label_problem(name) is None:
        return  # a fine label: creating keys for every example would only grow the file
    try:
        keys.file.create(["query"], name)
    except ValueError as exc:
        assert "--name" in str(exc)
    else:
        raise AssertionError(f"created a key named {name!r}")


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(name=NAMES)
def test_schema_names(name: str) -> None:
    for text in (
        f"version: 1\nentities:\n  {json.dumps(name)}:\n    key: {{name: id, type: int}}\n",
        "version: 1\nentities:\n  users:\n    key: {name: id, type: int}\n"
        f"    attributes:\n      {json.dumps(name)}: string\n",
    ):
        try:
            parse_schema(text, "fuzz.yaml")
        except SchemaError as exc:
            assert "fuzz.yaml" in str(exc)


NASTY_CLI = ["victim\x00evil", "\u202eevil", "a b", "x" * 65, "tab\there"]


@pytest.mark.parametrize("name", NASTY_CLI)
def test_the_cli_refuses_bad_names(tmp_path: Path, name: str) -> None:
    store = Store.create(tmp_path / "s", RETAIL_SCHEMA.read_text(encoding="utf-8"), "r")
    store.close()
    runner = CliRunner()
    text = f"DEFINE SEGMENT {_quoted(name)} ON users WHERE id < 3"
    r = runner.invoke(cli, ["query", "--data-dir", str(tmp_path / "s"), text])
    assert r.exit_code == 2, r.output
    assert "E233" in r.output
    r = runner.invoke(
        cli,
        ["keys", "create", "--data-dir", str(tmp_path / "s"), "--scope", "query", "--name", name],
    )
    assert r.exit_code == (0 if label_problem(name) is None else 2), r.output
    with Store.open(tmp_path / "s", read_only=True) as again:
        assert AudienceStore(again).names("SEGMENT") == []
