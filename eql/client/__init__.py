"""The Python library: `eql.connect` to a store directory or to a server, the same interface over
both (docs/python.md).

    import eql
    with eql.connect("./eql-data", read_only=True) as db:          # a store, in this process
        df = db.query("FIND users RETURN id, name LIMIT 5").to_pandas()
    db = eql.connect("http://127.0.0.1:8000", key="eql_...")      # a server (`eql serve`)

A top floor like `eql.cli`: nothing imports it but `eql/__init__.py`, lazily (`eql.connect` is
looked up on first use, so that `import eql` loads neither the runtime nor httpx). A store
connection loads the runtime (`eql.client.local`), a server connection httpx
(`eql.client.remote`), each only when one is made.

May import eql.client.{connection, errors, local, remote, result}.
"""

from __future__ import annotations

import os
from pathlib import Path

from eql.client.connection import Changes, Connection, Segment, Tag
from eql.client.errors import Error, Truncated
from eql.client.result import Column, Explanation, Result

__all__ = [
    "Changes",
    "Column",
    "Connection",
    "Error",
    "Explanation",
    "Result",
    "Segment",
    "Tag",
    "Truncated",
    "connect",
]


def connect(
    target: str | os.PathLike[str],
    *,
    key: str | None = None,
    read_only: bool | None = None,
    timeout: float = 60.0,
) -> Connection:
    """A connection to `target`: a store directory, or a server's URL (`http://...`,
    `https://...`) with an API key (`eql keys create`; its scopes decide what it may do, and
    `timeout` bounds each request in seconds).

    A store connection is writable by default, and then holds the store (no other process may
    write it meanwhile). `read_only=True` reads alongside a process that writes (a server, an
    `eql ingest`): it sees the store as committed when it was opened, and nothing committed
    later until `db.refresh()` reopens it (or a new connection is made)."""
    text = os.fspath(target)
    if text.startswith(("http://", "https://")):
        if read_only is not None:
            raise ValueError(
                "read_only= is for a store directory; over HTTP the key's scopes decide "
                "(writes need scope define)"
            )
        from eql.client.remote import Remote

        return Remote(text, key=key, timeout=timeout)
    if key is not None:
        raise ValueError("key= is for a server URL (http://...); a store directory needs none")
    from eql.client.local import Local

    return Local(Path(text), read_only=bool(read_only))
