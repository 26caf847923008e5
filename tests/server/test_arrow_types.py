"""An Arrow result says each column's EQL type in its field metadata (`eql.type`), the same
words as the JSON result's `columns` (Arrow alone cannot say `enum[...]` or keep a decimal's
meaning apart from its storage)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.ipc as ipc
from fastapi.testclient import TestClient

from tests.server.conftest import Keys

QUERY = (
    "FIND users RETURN id, gender, signup_date, sum(purchase.amount) AS spend, "
    "last(purchase.time) AS last_time ORDER BY id LIMIT 5"
)


def test_arrow_fields_carry_the_eql_types_of_the_json_columns(
    client: TestClient, keys: Keys
) -> None:
    body = {"query": QUERY, "as_of": "2026-11-01"}
    headers = keys.header("query")
    as_json = client.post("/v1/query", json=body, headers=headers).json()
    arrow = client.post(
        "/v1/query", json=body, headers={**headers, "Accept": "application/vnd.apache.arrow.stream"}
    )
    assert arrow.status_code == 200
    table = ipc.open_stream(pa.py_buffer(arrow.content)).read_all()
    types = [(f.name, (f.metadata or {}).get(b"eql.type", b"").decode()) for f in table.schema]
    assert types == [(c["name"], c["type"]) for c in as_json["columns"]]
    assert dict(types)["gender"].startswith("enum[")
    assert dict(types)["spend"].startswith("decimal(")
    assert table.num_rows == len(as_json["rows"]) == 5
