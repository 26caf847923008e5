"""Tags, segments and clusters on any entity: definitions, refreshes and answers about them.

`statements.execute` runs DEFINE / REFRESH / DROP / SHOW / DESCRIBE / EXPLAIN MEMBERSHIP for
`Engine.execute`; `compute.catalog_of` gives the compiler the tags and segments to read; the
storage layout is `storage.audiences`. Reads for applications live in `eql.lookup`.
"""
