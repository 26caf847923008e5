"""A full disk during an HTTP import (issue 13): 507 `disk_full`, nothing imported, no saved
body left, reads still answered; once space is freed the same body imports.

A real full disk: a small tmpfs holds the store (root and mount(8) only; skipped elsewhere), and
the app runs in process over it. An entity import whose RocksDB write (the WAL) hits the full
disk leaves RocksDB refusing writes until it is reopened: the store's next commit reopens it in
place (`storage.kv.KV.commit`), so that case imports once space is freed like the others.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime import Session, live
from server.app import create_app
from server.keys import KeyFile
from server.settings import Settings
from storage import Store
from tests.helpers_store import ALL_TYPES_SCHEMA
from tests.server.conftest import open_client

DISK = "4m"


class SmallDisk:
    def __init__(self, path: Path) -> None:
        self.path = path
        if os.geteuid() != 0 or shutil.which("mount") is None:
            pytest.skip("mounting a small tmpfs needs root and mount(8)")
        path.mkdir()
        proc = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={DISK}", "tmpfs", str(path)],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")

    def grow(self) -> None:
        subprocess.run(["mount", "-o", "remount,size=256m", str(self.path)], check=True)

    def unmount(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], capture_output=True)


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[SmallDisk]:
    small = SmallDisk(tmp_path / "small")
    try:
        yield small
    finally:
        small.unmount()


def orders(rows: int) -> bytes:
    lines = [b"ts,customer_id,amount,note"]
    lines += [b"2026-10-01T00:00:00Z,%d,%d.50,full" % (i, i % 90) for i in range(rows)]
    return b"\n".join(lines) + b"\n"


def customers(rows: int) -> bytes:
    lines = [b"id,name"] + [b"%d,customer number %d" % (i, i) for i in range(rows)]
    return b"\n".join(lines) + b"\n"


CASES = [
    pytest.param("streams/orders", orders(250_000), id="the body is larger than the disk"),
    pytest.param("streams/orders", orders(40_000), id="the stream's segment does not fit"),
    pytest.param(
        "entities/customers",
        customers(60_000),
        id="the entity's rows do not fit",
    ),
]


@pytest.mark.parametrize(("target", "body"), CASES)
def test_a_full_disk_is_507_then_the_same_body_imports(
    disk: SmallDisk, target: str, body: bytes
) -> None:
    store = Store.create(disk.path / "store", ALL_TYPES_SCHEMA)
    try:
        key = KeyFile(store.data_dir / "keys.json").create(["ingest", "query"], "full")[1]
        h = {"Authorization": f"Bearer {key}", "content-type": "text/csv"}
        settings = Settings(data_dir=store.data_dir, rate_query=0, rate_lookup=0)
        app = create_app(settings, session=Session(store, settings.engine()))
        with open_client(app) as c:
            r = c.post(f"/v1/ingest/{target}", content=body, headers=h)
            assert r.status_code == 507, r.text
            error = r.json()["errors"][0]
            assert error["code"] == "disk_full" and "disk is full" in error["message"]
            assert "free some space" in error["hint"]
            assert store.imports() == []
            folder = store.data_dir / live.INCOMING
            assert not folder.exists() or list(folder.iterdir()) == []
            q = {"query": "FIND EVENTS orders RETURN count() AS n"}
            auth = {"Authorization": h["Authorization"]}
            r = c.post("/v1/query", json=q, headers=auth)  # reads go on
            assert r.status_code == 200 and r.json()["rows"] == [{"n": 0}], r.text
            disk.grow()
            r = c.post(f"/v1/ingest/{target}", content=body, headers=h)
            assert r.status_code == 200, r.text
            rows = body.count(b"\n") - 1
            assert r.json()["rows_imported"] == rows and not r.json()["already_imported"]
    finally:
        store.close()
