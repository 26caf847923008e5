"""What the compiler knows about a store's tags and segments, read from it: `catalog_of` builds the
`eql.catalog.Catalog` the binder reads (definitions with their generation and versions), and
`segment_arrow` turns a stored version's members into the table a plan joins."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from pyroaring import BitMap

from entities.arrow import ID_COLUMN
from entities.names import fold
from eql import types
from eql.catalog import Catalog, SegmentInfo, TagInfo, parse_type
from storage.audiences import AudienceReader


def catalog_of(audiences: AudienceReader) -> Catalog:
    """The tags (TAG and CLUSTERS labels) and segments defined in a store, with their versions."""
    tags: dict[str, TagInfo] = {}
    segments: dict[str, SegmentInfo] = {}
    for d in audiences.all_current():
        refreshes = audiences.refreshes(d)
        if d.kind == "SEGMENT":
            last = refreshes[-1].version if refreshes else None
            segments[fold(d.name)] = SegmentInfo(d.name, d.entity, d.generation, last)
            continue
        versions = tuple(
            (r.version, r.as_of, parse_type(str(r.info.get("type", "string")))) for r in refreshes
        )
        extras: tuple[tuple[str, types.Type], ...] = ()
        if refreshes:
            extras = tuple(
                (k, parse_type(v)) for k, v in dict(refreshes[-1].info.get("extras", {})).items()
            )
        latest = versions[-1][2] if versions else types.NULL
        tags[fold(d.name)] = TagInfo(
            d.name, d.entity, d.generation, latest, extras, versions, d.kind
        )
    return Catalog(tags, segments)


def segment_arrow(members: BitMap) -> pa.Table:
    ids = np.frombuffer(members.to_array(), dtype=np.uint32) if len(members) else np.array([])
    return pa.table(
        {
            ID_COLUMN: pa.array(ids, type=pa.uint32()),
            "member": pa.array(np.ones(len(ids), dtype=bool)),
        }
    )
