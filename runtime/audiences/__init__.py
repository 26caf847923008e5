"""Tags, segments and clusters on any entity: checking and storing definitions, computing their
refreshes (segments, CASE tags, `rfm`, k-means clusters), and the answers about them (SHOW,
DESCRIBE, DROP, EXPLAIN MEMBERSHIP). Run through `runtime.statements`; the storage layout is
`storage.audiences`; reads for applications are `runtime.lookup`, and a segment's members and
changes at a version number, checked (`versions`: errors that say what exists), are here.
"""
