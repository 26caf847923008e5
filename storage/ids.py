"""Dense ids: every entity key gets a u32 the first time it is stored, kept forever.

`i:<entity>\0<key>` -> id, `r:<entity>\0<id>` -> key, `n:<entity>` -> how many ids are given.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from storage import codec
from storage.kv import KV


class IdsExhausted(Exception):
    """An entity has used all 2^32 dense ids."""


def ensure_ids(
    kv: KV, entity: str, enc_keys: Sequence[bytes], puts: dict[bytes, bytes]
) -> tuple[np.ndarray, int]:
    """Dense ids for keys: existing ones are kept forever, new keys get the next numbers."""
    prefix = codec.family_prefix("i", entity)
    id_keys = [prefix + k for k in enc_keys]
    raw = kv.get(codec.family_key("n", entity))
    start = 0 if raw is None else codec.unpack_u32(raw)
    # no id given yet (`n:` is written with every id): every key is new
    existing = kv.multi_get(id_keys) if start else [None] * len(id_keys)
    ids = np.empty(len(enc_keys), dtype=np.uint32)
    fresh = [i for i, raw in enumerate(existing) if raw is None]
    if len(fresh) < len(existing):
        known = b"".join([raw for raw in existing if raw is not None])
        mask = np.ones(len(existing), dtype=bool)
        mask[fresh] = False
        ids[mask] = np.frombuffer(known, dtype=">u4")
    if fresh:
        if start + len(fresh) > 0xFFFFFFFF:
            raise IdsExhausted(f"entity {entity} has exhausted its 2^32 dense ids")
        new = np.arange(start, start + len(fresh), dtype=np.uint32)
        ids[fresh] = new
        packed = new.astype(">u4").view("V4").tolist()  # one 4-byte big-endian value each
        puts.update(zip([id_keys[i] for i in fresh], packed, strict=True))
        rev = codec.family_prefix("r", entity)
        puts.update(zip([rev + v for v in packed], [enc_keys[i] for i in fresh], strict=True))
        puts[codec.family_key("n", entity)] = codec.pack_u32(start + len(fresh))
    return ids, len(fresh)
