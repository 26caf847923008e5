"""RACE-1: DEFINE / REFRESH / DROP of one name from several clients while lookups, queries and
feeds run on a real uvicorn, for a bounded number of operations.

The two definitions the writers alternate between have disjoint members (`id < 100` and
`id >= 900`), so every answer says which version gave it: a batch check of keys 50, 500, 950 is
`[true, false, false]` or `[false, false, true]`, never a mix; a count is one of the two sizes;
key 500 is never a member. Asserted: no 5xx, every answer is one some version gave, and at the
end (after all writes) what is served equals the last definition, with nothing stale. The quick
run is part of `make test`; `make soak` runs it longer with more clients.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.server.conftest import AppFactory, Keys, live_server

NAME = "race_seg"
DEFS = {"low": "id < 100", "high": "id >= 900"}
PROBE = [50, 500, 950]
WANT = {"low": [True, False, False], "high": [False, False, True]}


@dataclass
class Seen:
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    wrong: list[Any] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, what: str, r: httpx.Response, ok: tuple[int, ...]) -> bool:
        with self.lock:
            self.statuses[(what, r.status_code)] += 1
            if r.status_code not in ok:
                self.wrong.append((what, r.status_code, r.text[:300]))
        return r.status_code == 200


def _count(c: httpx.Client, where: str) -> int:
    r = c.post("/v1/query", json={"query": f"FIND users WHERE {where} RETURN count() AS n"})
    assert r.status_code == 200, r.text
    return int(r.json()["rows"][0]["n"])


def _writer(c: httpx.Client, seen: Seen, ops: int, seed: int) -> None:
    rnd = random.Random(seed)
    for _ in range(ops):
        op = rnd.choice(["define", "define", "refresh", "drop"])
        if op == "define":
            which = rnd.choice(list(DEFS))
            text = f"DEFINE SEGMENT {NAME} ON users WHERE {DEFS[which]}"
            r = c.post("/v1/segments", json={"eql": text, "refresh": True})
            seen.add("define", r, (200, 201))
        elif op == "refresh":
            seen.add("refresh", c.post(f"/v1/segments/{NAME}/refresh"), (200, 400, 404))
        else:
            seen.add("drop", c.delete(f"/v1/segments/{NAME}"), (204, 404))


def _reader(c: httpx.Client, seen: Seen, sizes: set[int], stop: threading.Event) -> None:
    while not stop.is_set():
        r = c.post(f"/v1/segments/{NAME}/members", json={"keys": PROBE})
        if seen.add("batch", r, (200, 404, 409)) and r.json()["members"] not in WANT.values():
            seen.wrong.append(("batch answer", r.json()))
        r = c.get(f"/v1/segments/{NAME}/members/500")
        if seen.add("member", r, (200, 404, 409)) and r.json()["member"]:
            seen.wrong.append(("key 500 is never a member", r.json()))
        text = f"FIND users WHERE in segment {NAME} RETURN count() AS n"
        r = c.post("/v1/query", json={"query": text})
        # 400: the segment is unknown, not refreshed, or dropped while the query ran (E225/E227)
        if seen.add("query", r, (200, 400)) and r.json()["rows"][0]["n"] not in sizes:
            seen.wrong.append(("count", r.json()["rows"]))
        if r.status_code == 400:
            codes = {e["code"] for e in r.json()["errors"]}
            if not codes <= {"E225", "E227"}:
                seen.wrong.append(("query error", r.text[:300]))
        seen.add("describe", c.get(f"/v1/segments/{NAME}"), (200, 404))


def _feed(c: httpx.Client, seen: Seen, stop: threading.Event) -> None:
    while not stop.is_set():
        with c.stream("GET", f"/v1/segments/{NAME}/changes") as r:
            if r.status_code != 200:
                r.read()
                seen.add("feed", r, (200, 404))
                continue
            seen.add("feed", r, (200,))
            versions: dict[str, int] = {}
            for line in r.iter_lines():
                if not line.startswith("id: "):
                    continue
                generation, _, rest = line[len("id: g") :].partition(".")
                version = int(rest.partition(":")[0])
                if version < versions.get(generation, 0):
                    seen.wrong.append(("feed went back", line))
                versions[generation] = version


def _race(make_app: AppFactory, keys: Keys, writers: int, ops: int, readers: int) -> None:
    app = make_app(rate_query=0, rate_lookup=0, feed_max_seconds=0.5, feed_keepalive=0.1)
    with live_server(app) as live:
        clients = [
            httpx.Client(base_url=live.url, headers=keys.header("admin"), timeout=60)
            for _ in range(writers + readers + 1)
        ]
        sizes = {_count(clients[0], cond) for cond in DEFS.values()}
        seen = Seen()
        stop = threading.Event()
        write = [
            threading.Thread(target=_writer, args=(clients[i], seen, ops, i))
            for i in range(writers)
        ]
        read = [
            threading.Thread(target=_reader, args=(clients[writers + i], seen, sizes, stop))
            for i in range(readers)
        ]
        read.append(threading.Thread(target=_feed, args=(clients[-1], seen, stop)))
        for t in write + read:
            t.start()
        for t in write:
            t.join(300)
        stop.set()
        for t in read:
            t.join(60)
        total = sum(seen.statuses.values())
        fives = sum(n for (_, status), n in seen.statuses.items() if status >= 500)
        print(
            f"\nRACE-1: {writers} writers x {ops} ops, {readers} readers + a feed: "
            f"{total} answers, wrong {len(seen.wrong)}, 5xx {fives}"
        )
        assert not seen.wrong, seen.wrong[:5]
        assert not [k for k in seen.statuses if k[1] >= 500]
        assert seen.statuses[("batch", 200)] > 0 and seen.statuses[("define", 201)] > 0
        # quiet now: what is served is the last definition, exactly
        c = clients[0]
        text = f"DEFINE SEGMENT {NAME} ON users WHERE {DEFS['high']}"
        assert c.post("/v1/segments", json={"eql": text, "refresh": True}).is_success
        r = c.post(f"/v1/segments/{NAME}/members", json={"keys": PROBE})
        assert r.json()["members"] == WANT["high"]
        assert _count(c, f"in segment {NAME}") == _count(c, DEFS["high"])
        assert c.delete(f"/v1/segments/{NAME}").status_code == 204
        for client in clients:
            client.close()


def test_race_quick(make_app: AppFactory, keys: Keys) -> None:
    _race(make_app, keys, writers=2, ops=25, readers=3)


@pytest.mark.slow
def test_race_long(make_app: AppFactory, keys: Keys) -> None:
    _race(make_app, keys, writers=4, ops=250, readers=6)
