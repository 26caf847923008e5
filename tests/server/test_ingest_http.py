"""File imports over HTTP into a served store (`POST /v1/ingest/...`, issue 13).

A store of its own (the session's demo store is shared by the other server tests), real RocksDB,
the app in process (the test client) and, where the transport matters (413 on the wire, an
import on a thread while lookups and queries are answered), a real uvicorn on loopback. Every
body's outcome is read back through the routes: `/v1/query`, profiles, `/metrics`.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime import Session, live
from server.app import create_app
from server.keys import KeyFile
from server.settings import Settings
from storage import Store
from tests.helpers_store import ALL_TYPES_SCHEMA
from tests.server.conftest import live_server, open_client

LIMIT = 64 << 10  # max_ingest_bytes of these apps
CSV = {"content-type": "text/csv"}
WAIT = 30.0  # bound of every wait on a condition


class Served:
    def __init__(self, store: Store, ingest: str, query: str, lookup: str) -> None:
        self.store = store
        self.keys = {"ingest": ingest, "query": query, "lookup": lookup}

    def h(self, scope: str = "ingest", **more: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[scope]}", **more}

    def app(self, **overrides: Any) -> FastAPI:
        options: dict[str, Any] = {"rate_query": 0, "rate_lookup": 0, "max_ingest_bytes": LIMIT}
        settings = Settings(data_dir=self.store.data_dir, **(options | overrides))
        return create_app(settings, session=Session(self.store, settings.engine()))


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    store = Store.create(tmp_path_factory.mktemp("ingest-http") / "store", ALL_TYPES_SCHEMA)
    kf = KeyFile(store.data_dir / "keys.json")
    made = {s: kf.create([s], f"test-{s}")[1] for s in ("ingest", "query", "lookup")}
    yield Served(store, **made)
    store.close()


@pytest.fixture(scope="module")
def client(served: Served) -> Iterator[TestClient]:
    with open_client(served.app()) as c:
        yield c


def rows(client: TestClient, served: Served, text: str) -> list[dict[str, Any]]:
    r = client.post("/v1/query", json={"query": text, "limit": 10_000}, headers=served.h("query"))
    assert r.status_code == 200, r.text
    found: list[dict[str, Any]] = r.json()["rows"]
    return found


def count_orders(client: TestClient, served: Served, note: str) -> int:
    found = rows(client, served, f"FIND EVENTS orders WHERE note = '{note}' RETURN count() AS n")
    return int(found[0]["n"])


def incoming(served: Served) -> list[Path]:
    folder = served.store.data_dir / live.INCOMING
    return sorted(folder.rglob("*")) if folder.exists() else []


def post(client: TestClient, served: Served, path: str, body: bytes, **headers: str) -> Any:
    return client.post(path, content=body, headers=served.h(**headers))


# ---- good bodies -----------------------------------------------------------------------------
def test_csv_into_an_entity_is_queried_and_looked_up(client: TestClient, served: Served) -> None:
    body = b"id,name,tier\n101,Ann,gold\n102,Bo,silver\n103,Cy,bronze\n"
    r = client.post("/v1/ingest/entities/customers", content=body, headers=served.h(**CSV))
    assert r.status_code == 200, r.text
    doc = r.json()
    assert (doc["rows_read"], doc["rows_imported"], doc["rows_rejected"]) == (3, 3, 0)
    assert doc["already_imported"] is False and doc["problems"] == [] and len(doc["digest"]) == 64
    assert "balance" in doc["missing_columns"]
    found = rows(client, served, "FIND customers WHERE id > 100 AND id < 200 RETURN id, name")
    assert sorted((x["id"], x["name"]) for x in found) == [(101, "Ann"), (102, "Bo"), (103, "Cy")]
    profile = client.get("/v1/entities/customers/102", headers=served.h("lookup"))
    assert profile.status_code == 200 and profile.json()["attributes"]["tier"] == "silver"
    assert incoming(served) == []  # the saved body is gone


def test_parquet_into_a_string_keyed_entity(client: TestClient, served: Served) -> None:
    buf = io.BytesIO()
    pq.write_table(pa.table({"sku": ["p-1", "p-2"], "title": ["Lamp", "Desk"]}), buf)
    for media in ("application/vnd.apache.parquet", "application/x-parquet"):
        r = client.post(
            "/v1/ingest/entities/products",
            content=buf.getvalue(),
            headers=served.h(**{"content-type": media}),
        )
        assert r.status_code == 200, r.text
        assert r.json()["format"] == "parquet"
    profile = client.get("/v1/entities/products/p-2", headers=served.h("lookup"))
    assert profile.status_code == 200 and profile.json()["attributes"]["title"] == "Desk"


def test_jsonl_into_a_stream_and_octets_with_format(client: TestClient, served: Served) -> None:
    lines = [
        f'{{"ts": "2026-10-0{i}T10:00:00Z", "customer_id": 101, "amount": "{i}.50", '
        f'"note": "jsonl"}}'
        for i in range(1, 6)
    ]
    body = ("\n".join(lines) + "\n").encode()
    r = post(
        client,
        served,
        "/v1/ingest/streams/orders",
        body,
        **{"content-type": "application/x-ndjson"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["rows_imported"] == 5
    assert count_orders(client, served, "jsonl") == 5
    more = b'{"ts": "2026-10-09T10:00:00Z", "customer_id": 102, "amount": 1, "note": "octets"}\n'
    r = client.post(
        "/v1/ingest/streams/orders?format=jsonl",
        content=more,
        headers=served.h(**{"content-type": "application/octet-stream"}),
    )
    assert r.status_code == 200, r.text
    assert count_orders(client, served, "octets") == 1
    spent = rows(client, served, "FIND customers WHERE id = 101 RETURN sum(orders.amount) AS s")
    assert float(spent[0]["s"]) == pytest.approx(sum(i + 0.5 for i in range(1, 6)))


def test_partial_rejects_answer_200_with_the_problems(client: TestClient, served: Served) -> None:
    body = (
        b"ts,customer_id,amount,note\n"
        b"2026-10-01T00:00:00Z,101,abc,partial\n"
        b"2026-10-02T00:00:00Z,101,2.00,partial\n"
        b"not a time,101,3.00,partial\n"
    )
    r = post(client, served, "/v1/ingest/streams/orders", body, **CSV)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert (doc["rows_read"], doc["rows_imported"], doc["rows_rejected"]) == (3, 1, 2)
    assert doc["problems_total"] == 2
    by_row = {p["row"]: p for p in doc["problems"]}
    assert by_row[1]["column"] == "amount" and by_row[1]["value"] == "abc" and by_row[1]["reason"]
    assert by_row[3]["column"] == "ts" and by_row[3]["value"] == "not a time"
    reject_file = served.store.data_dir / doc["reject_file"]
    text = reject_file.read_text(encoding="utf-8")
    assert text.splitlines()[0] == "file,row,column,value,reason"
    assert ",1,amount,abc," in text and ",3,ts,not a time," in text
    assert reject_file.name.startswith("orders.csv.")
    assert count_orders(client, served, "partial") == 1


def test_the_same_body_twice_is_imported_once(client: TestClient, served: Served) -> None:
    body = b"ts,customer_id,amount,note\n2026-10-03T00:00:00Z,103,7.00,twice\n"
    first = post(client, served, "/v1/ingest/streams/orders", body, **CSV)
    assert first.status_code == 200 and first.json()["rows_imported"] == 1
    again = post(client, served, "/v1/ingest/streams/orders", body, **CSV)
    assert again.status_code == 200, again.text
    doc = again.json()
    assert doc["already_imported"] is True and doc["rows_imported"] == 0
    assert doc["digest"] == first.json()["digest"] and doc["before"]["rows_imported"] == 1
    assert count_orders(client, served, "twice") == 1
    # the same bytes into another target are another import
    other = b"id,name\n104,twice\n"
    assert post(client, served, "/v1/ingest/entities/customers", other, **CSV).status_code == 200


# ---- bad bodies ------------------------------------------------------------------------------
PARQUET = {"content-type": "application/x-parquet"}
JSON = {"content-type": "application/json"}
OCTETS = {"content-type": "application/octet-stream"}
MEDIA_415 = "unsupported_media_type"
C, S = "entities/customers", "streams/orders"
BAD: list[tuple[str, str, bytes, dict[str, str], int, str]] = [
    ("empty", C, b"", CSV, 400, "empty_body"),
    ("garbage parquet", C, b"PAR1 not parquet at all", PARQUET, 400, "not_imported"),
    ("unknown columns", C, b"id,nmae\n1,x\n", CSV, 400, "not_imported"),
    ("no key column", C, b"name\nx\n", CSV, 400, "not_imported"),
    ("header only", C, b"id,name\n", CSV, 400, "no_rows"),
    ("every row rejected", S, b"ts,customer_id,amount\nnope,1,1\nnever,1,2\n", CSV, 400,
     "all_rejected"),
    ("wrong content type", C, b"id\n1\n", JSON, 415, MEDIA_415),
    ("no content type", C, b"id\n1\n", {}, 415, MEDIA_415),
    ("octets without format", C, b"id\n1\n", OCTETS, 415, MEDIA_415),
    ("disagreeing format", C, b"id\n1\n", {**CSV, "x-q": "format=parquet"}, 415, MEDIA_415),
    ("unknown format", C, b"id\n1\n", {"x-q": "format=xlsx"}, 415, MEDIA_415),
    ("unknown entity", "entities/customer", b"id\n1\n", CSV, 404, "unknown_entity"),
    ("unknown stream", "streams/order", b"id\n1\n", CSV, 404, "unknown_stream"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "code"),
    [b[1:] for b in BAD],
    ids=[b[0] for b in BAD],
)
def test_bad_bodies_are_4xx_and_import_nothing(
    client: TestClient,
    served: Served,
    path: str,
    body: bytes,
    headers: dict[str, str],
    status: int,
    code: str,
) -> None:
    headers = dict(headers)
    query = headers.pop("x-q", "")
    before = len(served.store.imports()), served.store.count("customers")
    r = client.post(
        f"/v1/ingest/{path}" + (f"?{query}" if query else ""),
        content=body,
        headers=served.h(**headers),
    )
    assert r.status_code == status, r.text
    errors = r.json()["errors"]
    assert errors[0]["code"] == code and errors[0]["message"]
    assert served.store.count("customers") == before[1]
    if code == "unsupported_media_type":
        assert "text/csv" in errors[0]["accepted"]
    if code == "unknown_entity":
        assert "customers" in errors[0]["hint"]  # did you mean
    if code == "not_imported" and b"nmae" in body:
        assert "nmae" in errors[0]["message"] and "name" in errors[0]["hint"]
    if code == "all_rejected":  # the summary and problems come with the error
        assert errors[0]["rows_rejected"] == 2 and len(errors[0]["problems"]) == 2
    if code in ("all_rejected", "no_rows"):  # as `eql ingest`: read, recorded, nothing added
        assert len(served.store.imports()) == before[0] + 1
        again = client.post(f"/v1/ingest/{path}", content=body, headers=served.h(**headers))
        assert again.status_code == 200 and again.json()["already_imported"] is True
    else:
        assert len(served.store.imports()) == before[0]  # nothing recorded
    assert str(served.store.data_dir) not in r.text  # no server path in an answer
    assert incoming(served) == []


def test_scopes(client: TestClient, served: Served) -> None:
    body = b"id,name\n9001,scoped\n"
    path = "/v1/ingest/entities/customers"
    assert client.post(path, content=body, headers=CSV).status_code == 401
    for scope in ("query", "lookup"):
        r = client.post(path, content=body, headers=served.h(scope, **CSV))
        assert r.status_code == 403 and r.json()["errors"][0]["code"] == "forbidden"
    assert client.get("/v1/entities/customers/9001", headers=served.h("lookup")).status_code == 404


def test_over_the_limit_is_413_and_leaves_no_file(client: TestClient, served: Served) -> None:
    big = b"id,name\n" + b"".join(b"%d,someone\n" % i for i in range(20_000, 30_000))
    assert len(big) > LIMIT
    r = post(client, served, "/v1/ingest/entities/customers", big, **CSV)
    assert r.status_code == 413 and r.json()["errors"][0]["code"] == "too_large"

    def chunks() -> Iterator[bytes]:  # chunked: no Content-Length to refuse it by
        for i in range(0, len(big), 4096):
            yield big[i : i + 4096]

    r = client.post("/v1/ingest/entities/customers", content=chunks(), headers=served.h(**CSV))
    assert r.status_code == 413
    assert incoming(served) == []
    assert client.get("/v1/entities/customers/20000", headers=served.h("lookup")).status_code == 404
    # the general body limit does not apply: a body between it and the ingest limit imports
    app = served.app(max_body_bytes=1024)
    with open_client(app) as small:
        body = b"id,name\n" + b"".join(b"%d,medium\n" % i for i in range(40_000, 42_000))
        assert 1024 < len(body) < LIMIT
        r = small.post("/v1/ingest/entities/customers", content=body, headers=served.h(**CSV))
        assert r.status_code == 200 and r.json()["rows_imported"] == 2000
        assert (
            small.post("/v1/query", content=b"x" * 2048, headers=served.h("query")).status_code
            == 413
        )


def test_413_on_the_wire(served: Served) -> None:
    big = b"id,name\n" + b"".join(b"%d,wire\n" % i for i in range(50_000, 70_000))
    assert LIMIT < len(big) < 8 << 20
    with live_server(served.app()) as srv:
        r = httpx.post(
            f"{srv.url}/v1/ingest/entities/customers",
            content=big,
            headers=served.h(**CSV),
            timeout=WAIT,
        )
        assert r.status_code == 413, r.text
        assert r.json()["errors"][0]["code"] == "too_large"
    assert incoming(served) == []


def test_metrics_count_rows_and_rejects(served: Served) -> None:
    with open_client(served.app()) as c:
        body = b"ts,customer_id,amount,note\n2026-10-05T00:00:00Z,1,1.00,m\nbad,1,1.00,m\n"
        assert post(c, served, "/v1/ingest/streams/orders", body, **CSV).status_code == 200
        text = c.get("/metrics").text
    assert 'eql_ingest_rows_total{target="orders"} 1.0' in text
    assert 'eql_ingest_rejects_total{target="orders"} 1.0' in text


def test_openapi_documents_the_routes(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    for path in ("/v1/ingest/entities/{entity}", "/v1/ingest/streams/{stream}"):
        op = spec["paths"][path]["post"]
        content = op["requestBody"]["content"]
        assert {"text/csv", "application/vnd.apache.parquet", "application/x-ndjson"} <= set(
            content
        )
        assert {"200", "400", "403", "413", "415", "507"} <= set(op["responses"])
        assert {p["name"] for p in op["parameters"]} >= {"format", "allow_extra_columns"}


def test_allow_extra_columns(client: TestClient, served: Served) -> None:
    body = b"id,name,colour\n105,Extra,red\n"
    path = "/v1/ingest/entities/customers"
    assert post(client, served, path, body, **CSV).status_code == 400
    r = client.post(f"{path}?allow_extra_columns=true", content=body, headers=served.h(**CSV))
    assert r.status_code == 200 and r.json()["rows_imported"] == 1


# ---- an import runs on a thread --------------------------------------------------------------
class Gate:
    """Holds `live.import_body` until the test opens it (bounded)."""

    def __init__(self, real: Callable[..., Any]) -> None:
        self.real = real
        self.opened = threading.Event()
        self.waiting = threading.Event()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.waiting.set()
        assert self.opened.wait(WAIT)
        return self.real(*args, **kwargs)


def test_lookups_and_queries_are_answered_while_an_import_runs(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open_client(served.app()) as c:  # a key to look up while the import is held
        r = post(c, served, "/v1/ingest/entities/customers", b"id,name\n79999,looked\n", **CSV)
        assert r.status_code == 200
    gate = Gate(live.import_body)
    monkeypatch.setattr(live, "import_body", gate)
    answers: list[httpx.Response] = []
    with live_server(served.app()) as srv:
        body = b"id,name\n" + b"".join(b"%d,held\n" % i for i in range(80_000, 80_500))

        def send() -> None:
            answers.append(
                httpx.post(
                    f"{srv.url}/v1/ingest/entities/customers",
                    content=body,
                    headers=served.h(**CSV),
                    timeout=WAIT,
                )
            )

        poster = threading.Thread(target=send)
        poster.start()
        try:
            assert gate.waiting.wait(WAIT)
            with httpx.Client(base_url=srv.url, timeout=WAIT) as http:
                profile = http.get("/v1/entities/customers/79999", headers=served.h("lookup"))
                assert profile.status_code == 200, profile.text
                assert profile.json()["attributes"]["name"] == "looked"
                q = {"query": "FIND customers WHERE id >= 80000 RETURN count() AS n"}
                r = http.post("/v1/query", json=q, headers=served.h("query"))
                assert r.status_code == 200 and r.json()["rows"] == [{"n": 0}]  # not yet
        finally:
            gate.opened.set()
            poster.join(WAIT)
        assert answers and answers[0].status_code == 200, answers
        with httpx.Client(base_url=srv.url, timeout=WAIT) as http:
            r = http.post("/v1/query", json=q, headers=served.h("query"))
            assert r.json()["rows"] == [{"n": 500}]
            assert (
                http.get("/v1/entities/customers/80499", headers=served.h("lookup")).status_code
                == 200
            )


# ---- fuzz --------------------------------------------------------------------------------------
MEDIA = ["text/csv", "application/x-parquet", "application/x-ndjson", "application/octet-stream"]
LINES = st.sampled_from(
    [b"id,name", b"ts,customer_id,amount", b"1,a", b"2026-10-01T00:00:00Z,1,1.5", b'{"id": 1}']
)
BODIES = st.one_of(
    st.binary(max_size=2048),
    st.lists(st.one_of(LINES, st.binary(max_size=40)), max_size=12).map(b"\n".join),
    st.just(b"PAR1").flatmap(lambda m: st.binary(max_size=600).map(lambda b: m + b + m)),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=BODIES,
    media=st.sampled_from(MEDIA),
    target=st.sampled_from(["entities/customers", "streams/orders", "entities/products"]),
    fmt=st.sampled_from(["", "csv", "parquet", "jsonl"]),
)
def test_random_bodies_never_answer_5xx(
    client: TestClient, served: Served, body: bytes, media: str, target: str, fmt: str
) -> None:
    url = f"/v1/ingest/{target}" + (f"?format={fmt}" if fmt else "")
    r = client.post(url, content=body, headers=served.h(**{"content-type": media}))
    assert r.status_code < 500, r.text
    doc = r.json()
    if r.status_code == 200:
        assert (
            doc["rows_imported"] + doc["rows_rejected"] <= doc["rows_read"]
            or doc["already_imported"]
        )
    else:
        assert doc["errors"][0]["code"] and doc["errors"][0]["message"]
    assert incoming(served) == []
