"""NAME-1 at the storage layer: the keys of tags, segments and clusters never alias, whatever a
name holds (even names the door refuses, written here straight into `AudienceStore`); a dropped
name's generation is never reused; a store of format 1, including one that the old NUL aliasing
corrupted, opens, is upgraded in one batch, and keeps every definition apart."""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyroaring import BitMap

from entities.names import fold
from storage import Store, codec
from storage.audiences import AudienceStore, Materialised
from storage.migrate import CURRENT
from tests.helpers_store import RETAIL_SCHEMA

T0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)

# names the HTTP and EQL doors refuse, stored here directly: the layout must hold anyway
NASTY = st.text(
    alphabet=st.characters(codec="utf-8") | st.sampled_from(["\x00", "\u202e", "\n", "\x01", "v"]),
    min_size=1,
    max_size=12,
)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store.create(tmp_path / "s", RETAIL_SCHEMA.read_text(encoding="utf-8"), "retail.yaml")
    yield s
    s.close()


def _segment(aud: AudienceStore, name: str, text: str, members: list[int]) -> None:
    refresh = (T0, Materialised({}, members=BitMap(members)))
    aud.define("SEGMENT", name, "users", text, T0, refresh)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(first=NASTY, second=NASTY)
def test_two_names_never_alias(store: Store, first: str, second: str) -> None:
    aud = AudienceStore(store)
    for d in list(aud.all_current()):
        aud.drop(d)
    _segment(aud, first, "first", [1, 2])
    _segment(aud, second, "second", [7])
    a, b = aud.definition("SEGMENT", first), aud.definition("SEGMENT", second)
    assert a is not None and b is not None
    if fold(first) == fold(second):  # one name regardless of case: a second version
        assert a == b and a.version == 2 and a.text == "second"
        assert [d.text for d in aud.definitions("SEGMENT", first)] == ["first", "second"]
        return
    assert a.generation != b.generation
    assert [d.text for d in aud.definitions("SEGMENT", first)] == ["first"]
    assert [d.text for d in aud.definitions("SEGMENT", second)] == ["second"]
    assert sorted(aud.names("SEGMENT")) == sorted([first, second])
    ra, rb = aud.latest(a), aud.latest(b)
    assert ra is not None and rb is not None
    assert aud.bitmap(a.generation, ra.version) == BitMap([1, 2])
    assert aud.bitmap(b.generation, rb.version) == BitMap([7])
    aud.drop(a)  # drops exactly one of them
    assert aud.definition("SEGMENT", first) is None
    kept = aud.definition("SEGMENT", second)
    assert kept is not None and kept.text == "second"
    assert aud.bitmap(b.generation, rb.version) == BitMap([7])


def test_generations_are_never_reused(store: Store) -> None:
    aud = AudienceStore(store)
    seen = []
    for i in range(3):
        _segment(aud, "cachetest", f"v{i}", list(range(i + 1)))
        d = aud.definition("SEGMENT", "cachetest")
        assert d is not None and d.version == 1  # a new object each time, versions from 1
        seen.append(d.generation)
        r = aud.latest(d)
        assert r is not None and r.version == 1
        aud.drop(d)
        assert aud.bitmap(d.generation, 1) is None  # its values went with it
    assert len(set(seen)) == 3 and seen == sorted(seen)


def test_define_with_refresh_is_one_commit(store: Store) -> None:
    aud = AudienceStore(store)
    before = aud.counter()
    _segment(aud, "both", "text", [1, 2, 3])
    assert aud.counter() == before + 1  # every commit of the module bumps the counter once
    d = aud.definition("SEGMENT", "both")
    assert d is not None
    r = aud.latest(d)
    assert r is not None and r.definition == d.version and r.info["size"] == 3


def test_a_view_is_one_moment(store: Store) -> None:
    aud = AudienceStore(store)
    _segment(aud, "seen", "text", [1])
    view = aud.view()
    d = aud.definition("SEGMENT", "seen")
    assert d is not None
    aud.drop(d)
    _segment(aud, "later", "text", [2])
    old = view.definition("SEGMENT", "seen")
    assert old is not None and old.generation == d.generation
    assert view.bitmap(d.generation, 1) == BitMap([1])
    assert view.names("SEGMENT") == ["seen"]
    assert aud.names("SEGMENT") == ["later"]


# ---- format 1 ------------------------------------------------------------------------------
def _v1(family: str, *parts: str | int) -> bytes:
    """A key as format 1 wrote it: parts joined by NUL, versions as big-endian uint32."""
    out = family.encode() + b":"
    for i, p in enumerate(parts):
        out += (b"\x00" if i else b"") + (codec.pack_u32(p) if isinstance(p, int) else p.encode())
    return out


def _ipc(table: pa.Table) -> bytes:
    return codec.ipc_write(table)


def _v1_store(path: Path) -> None:
    """A format-1 store holding what the old layout wrote for: `victim` and `victim\\0evil`
    (the aliasing pair), `VIP` and `vip` (case variants), a tag and clusters with labels."""
    s = Store.create(path, RETAIL_SCHEMA.read_text(encoding="utf-8"), "retail.yaml")
    us = int(codec.to_json_value(T0))
    puts: dict[bytes, bytes] = {b"m:format": b"1", b"u:audiences": codec.pack_u64(9)}

    def definition(kind: str, name: str, ver: int, text: str, entity: str, at: int) -> None:
        value = {"entity": entity, "text": text, "defined_at": us + at}
        puts[_v1("d", kind, name, ver)] = codec.dumps(value)

    def refresh(kind: str, name: str, ver: int, info: dict[str, object]) -> None:
        value = {"definition": 1, "as_of": us, "refreshed_at": us, "info": info}
        puts[_v1("a", kind, name, ver)] = codec.dumps(value)

    for i, (name, members) in enumerate(
        [("victim", [1, 2]), ("victim\x00evil", [9]), ("vip", [3]), ("VIP", [4])]
    ):
        definition("SEGMENT", name, 1, f"DEFINE SEGMENT x{i} ON users WHERE id < 10", "users", i)
        refresh("SEGMENT", name, 1, {"size": len(members), "entered": len(members), "exited": 0})
        for part, bm in (("m", BitMap(members)), ("+", BitMap(members)), ("-", BitMap())):
            puts[_v1("b", name, 1, part)] = bm.serialize()
    definition("TAG", "tier", 1, "DEFINE TAG tier ON users AS 'a'", "users", 10)
    refresh("TAG", "tier", 1, {"type": "string"})
    puts[_v1("g", "tier", 1)] = _ipc(pa.table({"__id": pa.array([1], pa.uint32()), "value": ["a"]}))
    definition("CLUSTERS", "shape", 1, "DEFINE CLUSTERS shape ...", "users", 11)
    for ver in (1, 2):  # clusters kept their labels as a tag of their name, numbered apart
        refresh("CLUSTERS", "shape", ver, {"k": 2, "type": "int"})
        refresh("TAG", "shape", ver + 4, {"type": "int", "from": "CLUSTERS"})
        labels = pa.table(
            {"__id": pa.array([1], pa.uint32()), "value": pa.array([ver], pa.int64())}
        )
        puts[_v1("g", "shape", ver + 4)] = _ipc(labels)
    puts[_v1("g", "ghost", 1)] = b"left behind by an old DROP"
    s.kv.commit(puts)
    s.close()


def test_format_1_store_is_upgraded(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _v1_store(tmp_path / "old")
    with Store.open(tmp_path / "old") as s:
        assert s.kv.get(b"m:format") == str(CURRENT).encode()
        aud = AudienceStore(s)
        victim = aud.definition("SEGMENT", "victim")
        evil = aud.definition("SEGMENT", "victim\x00evil")
        assert victim is not None and evil is not None
        assert "x0" in victim.text and "x1" in evil.text and victim.generation != evil.generation
        assert aud.bitmap(victim.generation, 1) == BitMap([1, 2])
        assert aud.bitmap(evil.generation, 1) == BitMap([9])
        # `vip` was first: it keeps its name; the later case variant is renamed, and said so
        assert sorted(aud.names("SEGMENT"), key=str) == sorted(
            ["victim", "victim\x00evil", "vip", "VIP_2"], key=str
        )
        vip2 = aud.definition("SEGMENT", "VIP_2")
        assert vip2 is not None and aud.bitmap(vip2.generation, 1) == BitMap([4])
        assert any("VIP_2" in r.getMessage() for r in caplog.records)
        tier = aud.definition("TAG", "tier")
        assert tier is not None
        values = aud.tag_values(tier.generation, 1)
        assert values is not None and values.column("value").to_pylist() == ["a"]
        shape = aud.definition("CLUSTERS", "shape")
        assert shape is not None
        for ver in (1, 2):
            labels = aud.tag_values(shape.generation, ver)
            assert labels is not None and labels.column("value").to_pylist() == [ver]
        # no key of the old layout is left, and the orphan is gone
        for family in (b"d:", b"a:", b"b:", b"g:"):
            for key, _ in s.kv.scan(family):
                assert key[2:3] == b"\x00", key  # generations (uint64) start with a zero byte
        aud.drop(victim)
        kept = aud.definition("SEGMENT", "victim\x00evil")
        assert kept is not None and aud.bitmap(kept.generation, 1) == BitMap([9])
    with Store.open(tmp_path / "old", read_only=True) as s:  # and it opens again, as it is
        assert len(AudienceStore(s).names("SEGMENT")) == 3


def test_format_1_store_opened_read_only_is_upgraded(tmp_path: Path) -> None:
    _v1_store(tmp_path / "old")
    with Store.open(tmp_path / "old", read_only=True) as s:
        assert s.kv.get(b"m:format") == str(CURRENT).encode()
        assert AudienceStore(s).definition("TAG", "tier") is not None


def test_every_segment_is_listed_once(store: Store) -> None:
    aud = AudienceStore(store)
    names = ["a", "a\x00b", "a\x00", "b", "ab"]
    for name, n in zip(names, itertools.count(1), strict=False):
        _segment(aud, name, f"t{n}", [n])
    assert sorted(aud.names("SEGMENT")) == sorted(names)
    for name, n in zip(names, itertools.count(1), strict=False):
        d = aud.definition("SEGMENT", name)
        assert d is not None and d.text == f"t{n}"
