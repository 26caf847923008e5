"""SHOW and DESCRIBE results have the same typed columns whatever they hold: no rows, or a
segment never refreshed (all nulls: Arrow would type such a column `null`), in EQL's type names."""

from __future__ import annotations

import pyarrow as pa

from runtime import Session
from tests.audiences.helpers import run


def _columns(session: Session, text: str) -> list[tuple[str, str]]:
    rows = session.execute(text)
    return [(c.name, c.type) for c in rows.columns]  # type: ignore[union-attr]


def test_show_and_describe_columns_do_not_depend_on_the_rows(session: Session) -> None:
    empty = _columns(session, "SHOW CLUSTERS")  # nothing of the kind defined
    assert empty == [
        ("name", "string"),
        ("entity", "string"),
        ("definition", "int"),
        ("version", "int"),
        ("as_of", "timestamp"),
        ("refreshed_at", "timestamp"),
        ("k", "int"),
    ]
    run(session, "DEFINE SEGMENT t_never ON users WHERE DID purchase")
    shown = session.execute("SHOW SEGMENTS").table  # type: ignore[union-attr]
    assert shown.schema.field("as_of").type == pa.timestamp("us", tz="UTC")
    assert None in shown.column("as_of").to_pylist()  # t_never: a null, still a timestamp
    described = _columns(session, "DESCRIBE SEGMENT t_never")
    assert ("as_of", "timestamp") in described and ("size", "int") in described
    for _, type_name in described + _columns(session, "SHOW TAGS"):
        assert type_name in ("int", "string", "timestamp"), type_name  # never Arrow's names
