"""The segment change feed (SSE) on a real uvicorn over loopback: replaying it rebuilds the
members of every version, a reader resumes with Last-Event-ID without gaps or repeats, new
refreshes arrive live, a drop ends the feed, and a disconnect ends the server's side."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from tests.server.conftest import AppFactory, Keys, Live, live_server

NAME = "feed_seg"
COND = "sum(purchase.amount DURING LAST 120 DAYS) > 200"
AS_OF = ["2026-05-01", "2026-08-01", "2026-11-01"]
CHUNK = 40


@pytest.fixture(scope="module")
def live(make_app: AppFactory, keys: Keys) -> Iterator[Live]:
    app = make_app(
        rate_query=0, rate_lookup=0, feed_chunk=CHUNK, feed_keepalive=0.2, feed_max_seconds=20
    )
    with live_server(app) as server:
        h = keys.header("define")
        text = f"DEFINE SEGMENT {NAME} ON users WHERE {COND}"
        r = httpx.post(f"{server.url}/v1/segments", json={"eql": text}, headers=h, timeout=60)
        assert r.status_code in (200, 201), r.text
        for as_of in AS_OF:
            r = httpx.post(
                f"{server.url}/v1/segments/{NAME}/refresh",
                json={"as_of": as_of},
                headers=h,
                timeout=60,
            )
            assert r.status_code == 200, r.text
        yield server


def _events(response: httpx.Response) -> Iterator[dict[str, Any]]:
    """Parse an SSE stream: one dict per event (comments are yielded as {"comment": ...})."""
    event: dict[str, Any] = {}
    for line in response.iter_lines():
        if line == "":
            if "data" in event or "event" in event:  # a `retry:` alone is not an event
                yield event
            event = {}
        elif line.startswith(":"):
            yield {"comment": line[1:].strip()}
        else:
            field, _, value = line.partition(":")
            event[field] = value.removeprefix(" ")


def _read(
    live: Live,
    keys: Keys,
    headers: dict[str, str] | None = None,
    query: str = "",
    until: Any = None,
    limit: int = 10_000,
) -> list[dict[str, Any]]:
    """Change events until `until(events)` holds or a keep-alive says the feed caught up."""
    import orjson

    out: list[dict[str, Any]] = []
    h = {**keys.header("lookup"), **(headers or {})}
    url = f"{live.url}/v1/segments/{NAME}/changes{query}"
    with httpx.stream("GET", url, headers=h, timeout=30) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        for ev in _events(r):
            if "comment" in ev:
                if until is None:
                    break
                continue
            if "data" in ev:
                ev["json"] = orjson.loads(ev["data"])
                out.append(ev)
            if (until is not None and until(out)) or len(out) >= limit:
                break
    return out


def _members(live: Live, keys: Keys) -> set[int]:
    text = f"FIND users WHERE in segment {NAME} RETURN id"
    r = httpx.post(
        f"{live.url}/v1/query",
        json={"query": text, "limit": 100_000},
        headers=keys.header("query"),
        timeout=30,
    )
    return {row["id"] for row in r.json()["rows"]}


def _oracle(live: Live, keys: Keys, as_of: str) -> set[int]:
    r = httpx.post(
        f"{live.url}/v1/query",
        json={"query": f"FIND users WHERE {COND} RETURN id", "as_of": as_of, "limit": 100_000},
        headers=keys.header("query"),
        timeout=30,
    )
    return {row["id"] for row in r.json()["rows"]}


def _replay(events: list[dict[str, Any]]) -> dict[int, set[int]]:
    """Members after each version, rebuilt from entered/exited."""
    members: set[int] = set()
    after: dict[int, set[int]] = {}
    for ev in events:
        data = ev["json"]
        assert not (set(data["entered"]) & members)  # entering twice would be a duplicate
        assert set(data["exited"]) <= members
        members |= set(data["entered"])
        members -= set(data["exited"])
        if data["final"]:
            after[data["version"]] = set(members)
    return after


def test_replay_rebuilds_every_version(live: Live, keys: Keys) -> None:
    events = _read(live, keys)
    after = _replay(events)
    assert sorted(after) == [1, 2, 3]
    for version, as_of in enumerate(AS_OF, start=1):
        assert after[version] == _oracle(live, keys, as_of), version
    assert after[3] == _members(live, keys)
    assert len(events) > 3  # chunked: CHUNK keys an event at most
    for ev in events:
        data = ev["json"]
        assert len(data["entered"]) + len(data["exited"]) <= CHUNK
        assert ev["event"] == "change"
        generation, version = data["generation"], data["version"]
        assert ev["id"].startswith(f"g{generation}.{version}")
        assert (ev["id"] == f"g{generation}.{version}") == data["final"]  # else `...:offset`


@pytest.mark.parametrize("cut", [1, 2, 5, 9])
def test_resume_with_last_event_id(live: Live, keys: Keys, cut: int) -> None:
    full = _read(live, keys)
    assert len(full) > cut
    first = _read(live, keys, limit=cut)
    rest = _read(live, keys, headers={"Last-Event-ID": first[-1]["id"]})
    assert [e["data"] for e in first + rest] == [e["data"] for e in full]


def test_since(live: Live, keys: Keys) -> None:
    after_two = _read(live, keys, query="?since=2")
    assert {e["json"]["version"] for e in after_two} == {3}
    assert _read(live, keys, query="?since=latest") == []
    h = keys.header("lookup")
    for bad in ("x", "-1", "1:x", "0:5", "g1.2", "1e3", "1" * 50):
        r = httpx.get(f"{live.url}/v1/segments/{NAME}/changes?since={bad}", headers=h)
        assert r.status_code == 422, bad


def test_live_refresh_arrives_and_drop_ends(live: Live, keys: Keys) -> None:
    h = keys.header("define")
    text = "DEFINE SEGMENT feed_live ON users WHERE birth_year > 1990"
    assert httpx.post(f"{live.url}/v1/segments", json={"eql": text}, headers=h).is_success
    url = f"{live.url}/v1/segments/feed_live/changes"
    seen: list[dict[str, Any]] = []
    with httpx.stream("GET", url, headers=keys.header("lookup"), timeout=30) as r:
        events = _events(r)
        first = next(events)  # nothing yet: a keep-alive
        assert "comment" in first
        t0 = time.monotonic()
        r2 = httpx.post(f"{live.url}/v1/segments/feed_live/refresh", headers=h, timeout=30)
        assert r2.status_code == 200
        for ev in events:
            if ev.get("event") == "change":
                seen.append(ev)
                if ev["data"] and '"final":true' in ev["data"]:
                    break
        assert time.monotonic() - t0 < 5
        assert httpx.delete(f"{live.url}/v1/segments/feed_live", headers=h).status_code == 204
        kinds = [ev.get("event") for ev in events if "comment" not in ev]
        assert kinds[-1] == "dropped"
    assert seen and seen[-1]["id"].endswith(".1")


def test_disconnect_ends_the_feed(live: Live, keys: Keys) -> None:
    def feeds() -> int:
        r = httpx.get(f"{live.url}/v1/admin/stats", headers=keys.header("admin"))
        return int(r.json()["feeds"])

    url = f"{live.url}/v1/segments/{NAME}/changes?since=latest"
    with httpx.stream("GET", url, headers=keys.header("lookup"), timeout=30) as r:
        events = _events(r)  # kept: a dropped generator closes the response
        next(events)
        assert feeds() == 1
    deadline = time.monotonic() + 30  # a bound for a broken server: the loop ends at 0 feeds
    while feeds() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert feeds() == 0


def test_lookups_answer_during_refreshes(live: Live, keys: Keys) -> None:
    """Refreshes run on the query pool; meanwhile lookups keep answering, and the version they
    answer from only moves forward and ends at the last refresh."""
    import threading

    h = keys.header("lookup")
    name = "feed_hammer"
    text = f"DEFINE SEGMENT {name} ON users WHERE {COND}"
    r = httpx.post(
        f"{live.url}/v1/segments",
        json={"eql": text, "refresh": True, "as_of": "2026-05-15"},
        headers=keys.header("define"),
        timeout=60,
    )
    assert r.status_code in (200, 201), r.text
    stop = threading.Event()
    seen: list[tuple[int, int]] = []

    def hammer() -> None:
        with httpx.Client(base_url=live.url, headers=h, timeout=10) as c:
            i = 0
            while not stop.is_set():
                r = c.get(f"/v1/segments/{name}/members/{i % 1000 + 1}")
                seen.append((r.status_code, r.json().get("version", -1)))
                i += 1

    thread = threading.Thread(target=hammer)
    thread.start()
    try:
        last = 0
        for as_of in ["2026-06-15", "2026-07-15", "2026-10-15"]:
            r = httpx.post(
                f"{live.url}/v1/segments/{name}/refresh",
                json={"as_of": as_of},
                headers=keys.header("define"),
                timeout=60,
            )
            assert r.status_code == 200, r.text
            last = r.json()["version"]
            # answered after the refresh returned: the new version at once
            m = httpx.get(f"{live.url}/v1/segments/{name}/members/1", headers=h).json()
            assert m["version"] == last
    finally:
        stop.set()
        thread.join(10)
    assert len(seen) > 20 and all(status == 200 for status, _ in seen)
    versions = [v for _, v in seen]
    assert versions == sorted(versions) and versions[-1] == last


def test_a_position_beyond_the_latest_version_is_refused(live: Live, keys: Keys) -> None:
    """A reader cannot stand past the last version (its id comes from another store, or was
    made up): accepting it would idle, and skip versions up to it as they came. The answer is a
    400 naming the versions there are and the latest (tests/server/test_segments.py has the
    plain ids and `since`; these are the ids with their generation, as the feed gives them)."""
    last = _read(live, keys)[-1]["id"]  # gG.3: the latest version, complete
    generation = last[1:].partition(".")[0]
    url = f"{live.url}/v1/segments/{NAME}/changes"
    h = keys.header("lookup")
    for resume in (f"g{generation}.4", f"g{generation}.9:40", f"g{generation}.1000000"):
        with httpx.stream("GET", url, headers={**h, "Last-Event-ID": resume}, timeout=30) as r:
            assert r.status_code == 400, (resume, r.read())
            error = orjson.loads(r.read())["errors"][0]
        assert error["code"] == "unknown_version", error
        assert error["latest"] == 3, error
        assert error["message"].endswith("it has versions 1-3"), error
    # the latest version itself, or a place inside it, is where a caught-up reader stands
    assert _read(live, keys, headers={"Last-Event-ID": last}) == []
    inside = _read(live, keys, headers={"Last-Event-ID": f"{last}:1"})
    assert inside and inside[0]["json"]["version"] == 3
