"""k-means over EQL-computed features (scikit-learn), deterministic for a seed.

Features are standardised (mean 0, unit variance; a constant feature stays 0); a null feature is
replaced by that feature's mean. Rows are fitted in dense-id order with `random_state=seed`, so
the same data and seed give the same clusters. Labels are renumbered 0..k-1 by size (largest
first, ties by centroid), and centroids are reported in the features' original units.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from entities.arrow import ID_COLUMN
from eql.syntax import ast
from runtime.audiences.compute import fail


def check(text: str, stmt: ast.DefineClusters, max_k: int) -> None:
    if not 2 <= stmt.k.value <= max_k:
        raise fail(text, "E231", f"K must be from 2 to {max_k}", stmt.k.span)
    names = [f.name.name.lower() for f in stmt.features]
    for f in stmt.features:
        if names.count(f.name.name.lower()) > 1:
            raise fail(text, "E231", f"two features are named `{f.name.name}`", f.name.span)


def matrix(data: pa.Table) -> tuple[list[str], np.ndarray]:
    names = [n for n in data.column_names if n != ID_COLUMN]
    cols = []
    for n in names:
        col = data.column(n).cast(pa.float64()).to_numpy(zero_copy_only=False)
        col = np.asarray(col, dtype=np.float64)
        if np.isnan(col).all():
            col = np.zeros_like(col)
        else:
            col = np.where(np.isnan(col), np.nanmean(col), col)
        cols.append(col)
    x = np.column_stack(cols) if cols else np.zeros((data.num_rows, 0))
    return names, x


def fit(data: pa.Table, k: int, seed: int) -> tuple[np.ndarray, dict[str, Any]]:
    from sklearn.cluster import KMeans

    names, x = matrix(data)
    n = x.shape[0]
    if n < k:
        raise ValueError(f"{n} entities cannot make {k} clusters")
    mean = x.mean(axis=0)
    std = x.std(axis=0)
    std[std == 0] = 1.0
    z = (x - mean) / std
    model = KMeans(n_clusters=k, random_state=seed, n_init=10).fit(z)
    raw = np.asarray(model.labels_, dtype=np.int64)
    centers = model.cluster_centers_ * std + mean
    sizes = np.bincount(raw, minlength=k)
    # largest first; ties by the centroid (lexicographic), so numbering is deterministic
    keys = [(-int(sizes[c]), *map(float, centers[c])) for c in range(k)]
    order = sorted(range(k), key=lambda c: keys[c])
    relabel = np.empty(k, dtype=np.int64)
    relabel[order] = np.arange(k)
    labels = relabel[raw]
    info: dict[str, Any] = {
        "k": k,
        "seed": seed,
        "features": names,
        "sizes": [int(sizes[c]) for c in order],
        "centroids": [[float(v) for v in centers[c]] for c in order],
        "inertia": float(model.inertia_),
    }
    return labels, info
