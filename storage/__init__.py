"""The embedded store: RocksDB for entity state and metadata, Arrow IPC segments for events.

The only package that imports rocksdict (in `storage.kv`). May import entities and pyarrow.
"""

from storage.store import ChangeSet, CommitResult, HistoryGone, Segment, Store, StoreError

__all__ = ["ChangeSet", "CommitResult", "HistoryGone", "Segment", "Store", "StoreError"]
