"""The per-entity indexes of one store's streams (`Store.indexes`): what the engine asks for the
answer of a plan's `RollupRef` (`answer`), by the dense path when the keys allow it
(`storage.rollups_dense`), else by the stream's sorted index (`storage.rollups`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pyarrow as pa

from storage import rollups, rollups_dense


class Indexes:
    """The per-entity indexes of one store's streams: built on first use, extended by the
    events committed since at the next (a reader process's too: its stream tables follow the
    writer). `events(stream)` is the stream's table in append order, `version(stream)` what
    changes whenever it grows. The caller serialises calls (the store's lock)."""

    def __init__(
        self,
        events: Callable[[str], pa.Table],
        version: Callable[[str], object],
        parts: Callable[[str], list[tuple[str, pa.Table, int | None, int | None]]] | None = None,
    ) -> None:
        self._events = events
        self._version = version
        self._parts_of = parts
        self._built: dict[tuple[str, str], tuple[object, rollups.EventIndex, pa.Table]] = {}
        # per stream: its version and its parts, with their int64 columns (rollups_dense)
        self._parts: dict[str, tuple[object, dict[str, rollups_dense.Part]]] = {}

    def parts(self, stream: str) -> list[rollups_dense.Part]:
        """The stream's parts (`storage.rollups_dense.Part`), a segment's kept while it exists
        (its columns converted once), the tail's anew when it changed."""
        if self._parts_of is None:
            raise ValueError("these indexes were made without the stream's parts")
        version = self._version(stream)
        found = self._parts.get(stream)
        if found is not None and found[0] == version:
            return list(found[1].values())
        old = {} if found is None else found[1]
        parts = {
            part_id: old.get(part_id) or rollups_dense.Part(table, lo, hi)
            for part_id, table, lo, hi in self._parts_of(stream)
        }
        self._parts[stream] = (version, parts)
        return list(parts.values())

    def answer(
        self,
        stream: str,
        by: str,
        time: str | None,
        start: int | None,
        end: int | None,
        measures: Sequence[rollups.Measure],
        where: rollups.Where = (),
    ) -> pa.Table:
        """The per-key aggregates: from the stream's parts with accumulators indexed by key when
        its keys are dense (`storage.rollups_dense`), else from the sorted index."""
        if self._parts_of is not None:
            found = rollups_dense.aggregate(
                self.parts(stream), by, time, start, end, measures, where=where
            )
            if found is not None:
                return found
        index, table = self.get(stream, by)
        return rollups.aggregate(index, table, time, start, end, measures, where=where)

    def get(self, stream: str, by: str) -> tuple[rollups.EventIndex, pa.Table]:
        version = self._version(stream)
        found = self._built.get((stream, by))
        if found is not None and found[0] == version:
            return found[1], found[2]
        table = self._events(stream)
        if found is None or table.num_rows < found[1].covered:
            index = rollups.EventIndex(stream, by, table)
        else:
            index = found[1]
            index.extend(table)
        self._built[(stream, by)] = (version, index, table)
        return index, table

    def clear(self) -> None:
        self._built.clear()
        self._parts.clear()
