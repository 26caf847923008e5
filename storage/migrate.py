"""Upgrades of a store's on-disk format, run by `Store.open` (a writer) before anything reads it.

Format 1 -> 2: the audience families (tags, segments, clusters). Format 1 keyed them by name with
NUL separators (`d:<KIND>\\0<name>\\0<ver>`, `b:<name>\\0<ver>\\0<part>`, `g:<name>\\0<ver>`), so
a prefix scan for `victim` also matched `victim\\0evil`. Format 2 keys them by generation (see
`storage.audiences`). Every format-1 key ends in fixed-width parts, so each one is read back
exactly from the right, whatever its name holds; definitions become generations in the order
they were first defined; clusters' label versions (format 1 stored them as a tag of the same
name with its own version numbers) are matched to the clusters' versions in order; records left
behind by the old aliasing (values of no definition) are deleted. Two names that differ only by
case, which format 2 refuses, keep the older one's name; the newer gets a `_2` (`_3`, ...) suffix,
reported by `upgrade`. The whole conversion, `m:format` included, is one synced write batch.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from entities.names import fold
from storage import codec
from storage.kv import KV

CURRENT = 2


def upgrade(kv: KV, fmt: int) -> list[str]:
    """Bring a store of format `fmt` to `CURRENT`; notes on what was renamed."""
    notes: list[str] = []
    if fmt == 1:
        notes += _audiences_v2(kv)
    return notes


def _split(key: bytes, family: bytes, tail: int) -> tuple[bytes, bytes]:
    """(the name part, the fixed tail) of a format-1 key `family:<name>\\0<tail bytes>`."""
    return key[len(family) : -(tail + 1)], key[-tail:]


def _audiences_v2(kv: KV) -> list[str]:
    deletes: list[bytes] = []
    defs: dict[tuple[str, bytes], list[tuple[int, bytes]]] = defaultdict(list)
    refreshes: dict[tuple[str, bytes], list[tuple[int, bytes]]] = defaultdict(list)
    for family, rows in ((b"d:", defs), (b"a:", refreshes)):
        for key, value in kv.scan(family):
            deletes.append(key)
            kind_part, _, rest = key[len(family) :].partition(b"\x00")
            rows[(kind_part.decode(), rest[:-5])].append(
                (codec.unpack_u32(rest[-4:]), bytes(value))
            )
    bitmaps: dict[bytes, list[tuple[int, bytes, bytes]]] = defaultdict(list)
    for key, value in kv.scan(b"b:"):
        deletes.append(key)
        rest, part = _split(key, b"b:", 1)
        bitmaps[rest[:-5]].append((codec.unpack_u32(rest[-4:]), part, bytes(value)))
    values: dict[bytes, dict[int, bytes]] = defaultdict(dict)
    for key, value in kv.scan(b"g:"):
        deletes.append(key)
        owner, ver_part = _split(key, b"g:", 4)
        values[owner][codec.unpack_u32(ver_part)] = bytes(value)

    def first_defined(item: tuple[tuple[str, bytes], list[tuple[int, bytes]]]) -> Any:
        (kind, name), versions = item
        return min(int(codec.loads(v)["defined_at"]) for _, v in versions), kind, name

    puts: dict[bytes, bytes] = {}
    notes: list[str] = []
    taken: set[tuple[str, str]] = set()
    generation = 0
    for (kind, raw_name), versions in sorted(defs.items(), key=first_defined):
        generation += 1
        name = raw_name.decode("utf-8", "surrogateescape")
        group = "TAG" if kind == "CLUSTERS" else kind  # tags and clusters share names
        final, n = name, 1
        while (group, fold(final)) in taken:
            n += 1
            final = f"{name}_{n}"
        if final != name:
            notes.append(
                f"{kind.lower()} {name!r} differs from another only by case: now {final!r}"
            )
        taken.add((group, fold(final)))
        puts[codec.audience_name_key(kind, fold(final))] = codec.dumps(
            {"generation": generation, "name": final}
        )
        for ver, raw in versions:
            obj = codec.loads(raw)
            obj.update(kind=kind, name=final)
            puts[codec.generation_key(b"d", generation, ver)] = codec.dumps(obj)
        own = sorted(refreshes.get((kind, raw_name), []))
        for ver, raw in own:
            puts[codec.generation_key(b"a", generation, ver)] = raw
        if kind == "SEGMENT":
            for ver, part, data in bitmaps.get(raw_name, []):
                puts[codec.generation_key(b"b", generation, ver) + part] = data
        elif kind == "TAG":
            for ver, data in values.get(raw_name, {}).items():
                puts[codec.generation_key(b"g", generation, ver)] = data
        else:  # clusters: the i-th label version belongs to the i-th clusters version
            labels = sorted(refreshes.get(("TAG", raw_name), []))
            stored = values.get(raw_name, {})
            for (ver, _), (label_ver, _) in zip(own, labels, strict=False):
                if label_ver in stored:
                    puts[codec.generation_key(b"g", generation, ver)] = stored[label_ver]
    puts[b"u:generation"] = codec.pack_u64(generation)
    counter = kv.get(b"u:audiences")
    puts[b"u:audiences"] = codec.pack_u64((0 if counter is None else codec.unpack_u64(counter)) + 1)
    puts[b"m:format"] = str(CURRENT).encode()
    kv.commit(puts, deletes)
    return notes
