"""`kill -9` of a serving writer while segment refreshes run (issue 13, LIVE-1): a refresh is one
commit, so after a restart every refresh the server answered is there, at most the one in flight
besides, the versions are numbered without a gap, and each version's members equal the
segment's condition evaluated by a plain query. A reader process that followed the server all
along saw only whole versions (each one it listed had its members). A real `eql serve` on a
small demo store; waits on conditions with deadlines."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import httpx

import eql
from tests.cli.test_served_cli import DEADLINE, _store, start_server, wait_for

CONDITION = "birth_year >= 1990"
SEGMENT = "crash_young"


def _refresh_loop(url: str, key: str, answered: list[int], stop: threading.Event) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(trust_env=False, timeout=DEADLINE) as client:
        while not stop.is_set():
            try:
                response = client.post(f"{url}/v1/segments/{SEGMENT}/refresh", headers=headers)
            except httpx.TransportError:
                return  # the server is gone
            if response.status_code == 200:
                answered.append(int(response.json()["version"]))


def test_kill_during_refreshes_loses_none_and_leaves_whole_versions(tmp_path: Path) -> None:
    data_dir = _store(tmp_path)
    serving = start_server(data_dir, tmp_path / "serve.log")
    key = serving.record["key"]
    defined = httpx.post(
        f"{serving.url}/v1/query",
        json={"query": f"DEFINE SEGMENT {SEGMENT} ON users WHERE {CONDITION}"},
        headers={"Authorization": f"Bearer {key}"},
        timeout=DEADLINE,
        trust_env=False,
    )
    assert defined.status_code == 200, defined.text
    reader = eql.connect(data_dir, read_only=True)
    answered: list[int] = []
    stop = threading.Event()
    loop = threading.Thread(target=_refresh_loop, args=(serving.url, key, answered, stop))
    loop.start()
    torn = 0
    try:

        def some_refreshed() -> bool:
            nonlocal torn
            segment = reader.segment(SEGMENT)
            for version in segment.versions():
                try:
                    segment.members(int(version["version"]))
                except eql.EqlError:
                    torn += 1  # a version listed without its members: half a commit
            return len(answered) >= 4

        wait_for("a few refreshes", some_refreshed)
        serving.stop(signal.SIGKILL)
    finally:
        stop.set()
        loop.join(timeout=DEADLINE)
        reader.close()
    assert torn == 0

    with eql.connect(data_dir) as db:  # the store after the crash, opened as the next writer
        segment = db.segment(SEGMENT)
        versions = sorted(int(v["version"]) for v in segment.versions())
        assert versions == list(range(1, len(versions) + 1)), "a gap in the versions"
        assert set(answered) <= set(versions), "a refresh the server answered was lost"
        assert len(versions) <= len(answered) + 1, "more versions than refreshes"
        expected = db.query(f"FIND users WHERE {CONDITION} RETURN id").to_arrow()
        want = sorted(expected.column("id").to_pylist())
        for version in versions:
            got = sorted(segment.members(version).column("id").to_pylist())
            assert got == want, f"version {version} is not the segment's members"
