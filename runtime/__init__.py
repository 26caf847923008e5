"""The runtime around the compiler: a session over a store (`Session`, the one door to run EQL),
the engine that registers the store's tables and executes plans, the statements about tags,
segments and clusters, and the lookups applications make without DataFusion.

May import: `eql` (the compiler), `storage`, `ingest` (the doors of a served store: file imports,
`runtime.live`, and CDC connectors, `runtime.cdc_supervisor`), `entities`, pyarrow, pyroaring,
NumPy, scikit-learn.
Imported by: `server`, `eql.cli`.
"""

from runtime.session import (
    READ,
    WRITE,
    Column,
    Explanation,
    NotPermitted,
    Permissions,
    Query,
    Rows,
    Session,
    Statement,
    kind_of,
)

__all__ = [
    "READ",
    "WRITE",
    "Column",
    "Explanation",
    "NotPermitted",
    "Permissions",
    "Query",
    "Rows",
    "Session",
    "Statement",
    "kind_of",
]
