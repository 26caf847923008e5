"""`Connection`: what `eql.connect` gives, the same over a store directory and over HTTP; and the
handles of definitions it hands out, `Segment` and `Tag`.

    db.query(text, params={...}, as_of="2026-11-01", limit=None) -> Result   (lazy, see result)
    db.execute(text, ...) -> Result        any statement (SHOW, DESCRIBE, DEFINE, REFRESH, DROP),
                                           run at once; its answer table
    db.explain(text, stage="plan")         how a query compiles
    db.define("DEFINE SEGMENT ...", refresh=True, as_of=...) -> Segment | Tag
    db.segment("vip").members(version=None), .is_member(42), .versions(), .changes(1, 3),
                     .describe(), .refresh(as_of=None), .drop()
    db.tag("tier").describe(), .versions(), .refresh(), .drop()
    db.segments(), db.tags(), db.schema()  plain data (the server's JSON shapes; times as datetimes)
    db.refresh()                           a read-only store connection reopens the store, to see
                                           what other processes committed since it was opened
    with eql.connect(...) as db: ...       closes the store (or the HTTP client) at the end

A subclass (`eql.client.local`, `eql.client.remote`) implements the underscored primitives.
Writes (define, refresh, drop, and statements that change definitions) need a writable store
connection or, over HTTP, a key of scope `define`; a read-only connection refuses them with
E230 before anything runs. A segment's members and changes are sorted by key in both modes.

The arguments are checked here, the same way for both modes: `limit` is a whole number of at
least 1 and a segment version a whole number (not a bool), else `invalid_request`; NumPy scalars
(a key or a parameter value from a DataFrame: `np.int64(2)`, `np.str_`) are taken as Python's.

May import pyarrow, eql.client.{errors, result}.
"""

from __future__ import annotations

import abc
import datetime as dt
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import pyarrow as pa

from eql.client.errors import Error, error
from eql.client.result import Explanation, Result

Kind = Literal["segment", "tag"]
AsOf = dt.datetime | dt.date | str | None
Params = Mapping[str, Any] | None
HISTORY = 1000  # versions a description lists at most (the server's maximum)

__all__ = [
    "AsOf",
    "Changes",
    "Connection",
    "Segment",
    "Tag",
    "check_limit",
    "plain",
    "plain_params",
    "time_text",
]


def time_text(as_of: AsOf) -> str | None:
    """A reference time as EQL reads it: an ISO date or timestamp (a naive one is UTC)."""
    if as_of is None or isinstance(as_of, str):
        return as_of
    return as_of.isoformat()


def plain(value: Any) -> Any:
    """Python's own value for a NumPy scalar of a number, a bool or a text (`np.int64(2)` -> 2,
    `np.str_("a")` -> "a"); a list, tuple or set of values as a list of them; anything else
    as it is."""
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v) for v in value]
    if type(value).__module__ == "numpy" and getattr(value, "ndim", None) == 0:
        kind = getattr(getattr(value, "dtype", None), "kind", None)
        if kind in ("b", "i", "u", "f", "U"):
            return value.item()
    return value


def plain_params(params: Params) -> dict[str, Any]:
    """`params` with NumPy scalars as Python's (`plain`)."""
    return {name: plain(value) for name, value in (params or {}).items()}


def _whole(value: Any) -> int | None:
    """`value` as an int when it is a whole number (an int or NumPy integer, not a bool)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        return None  # NumPy's bool is no Integral; its integers are
    return int(value)


def check_limit(limit: Any) -> int | None:
    """`limit` (rows at most) checked: None, or a whole number of at least 1."""
    if limit is None:
        return None
    n = _whole(limit)
    if n is None or n < 1:
        raise error(
            "invalid_request",
            f"limit must be a whole number of rows, at least 1, not {limit!r}",
            "leave limit out for every row (over HTTP: the server's default row limit)",
        )
    return n


def check_version(version: Any) -> int | None:
    """A segment version checked: None (the latest) or a whole number (not a bool)."""
    if version is None:
        return None
    n = _whole(version)
    if n is None:
        raise error(
            "invalid_request",
            f"a segment version is a whole number (1, 2, ...), not {version!r} "
            f"({type(version).__name__})",
            "db.segment(name).versions() lists its versions",
        )
    return n


def read_only_error() -> Error:
    return error(
        "E230",
        "this connection is read-only: it cannot define, refresh or drop",
        "connect with eql.connect(path, read_only=False) (no other process may hold the store "
        "for writing), or over HTTP with a key of scope define",
    )


@dataclass(frozen=True, slots=True)
class Changes:
    """Who entered and who exited a segment from version `since` to version `to`."""

    segment: str
    since: int
    to: int
    entered: pa.Array  # keys, sorted
    exited: pa.Array


class Connection(abc.ABC):
    """The library's door to EQL, over a store or a server (see the module docstring)."""

    read_only: bool = False
    _closed = False

    # ---- running EQL -------------------------------------------------------------------------
    @abc.abstractmethod
    def query(
        self, text: str, params: Params = None, as_of: AsOf = None, limit: int | None = None
    ) -> Result:
        """A query's rows (FIND, FIND EVENTS; also SHOW and DESCRIBE), read when asked for:
        nothing runs yet. `limit`: rows at most (`Result.truncated` says whether more exist);
        over HTTP without it the server's default applies and a cut warns (`Truncated`). A
        statement that changes definitions is refused here by a store connection (E230: use
        `execute` or `define`); over HTTP the server decides, by the key's scopes."""

    @abc.abstractmethod
    def execute(self, text: str, params: Params = None, as_of: AsOf = None) -> Result:
        """Any EQL text, run now: a statement's answer table, or a query's rows."""

    @abc.abstractmethod
    def explain(
        self, text: str, params: Params = None, as_of: AsOf = None, stage: str | None = None
    ) -> Explanation:
        """How a query compiles at `stage` (ast, bound, plan, datafusion, all)."""

    # ---- definitions -------------------------------------------------------------------------
    def define(self, text: str, *, refresh: bool = False, as_of: AsOf = None) -> Segment | Tag:
        """Store a DEFINE SEGMENT / TAG / CLUSTERS (a new definition version when the name
        exists) and, with `refresh`, its first version at `as_of` (default now) in the same
        commit; the handle of what was defined."""
        self._live()
        if self.read_only:
            raise read_only_error()
        detail = self._define(text, refresh, as_of)
        name = str(detail["name"])
        return Segment(self, name) if detail["kind"] == "segment" else Tag(self, name)

    def segment(self, name: str) -> Segment:
        """A handle of the segment called `name` (checked when it is used)."""
        return Segment(self, name)

    def tag(self, name: str) -> Tag:
        """A handle of the tag (or clusters) called `name` (checked when it is used)."""
        return Tag(self, name)

    def segments(self) -> list[dict[str, Any]]:
        """Every segment: its definition and latest version (size, as_of, ...), by name."""
        self._live()
        return self._listing("segment")

    def tags(self) -> list[dict[str, Any]]:
        """Every tag and clusters: definition, latest version, type."""
        self._live()
        return self._listing("tag")

    def schema(self) -> dict[str, Any]:
        """The store's entities (key, attributes, relations, streams) and event streams, in the
        shape of the server's `GET /v1/schema`."""
        self._live()
        return self._schema()

    # ---- seeing newer commits ----------------------------------------------------------------
    def refresh(self) -> None:
        """See what was committed since the connection was opened (or last refreshed). A
        read-only store connection sees the store as it was when it was opened: this reopens it
        (read-only again; results not yet read then read the reopened store). A writable store
        connection holds the store, so no other process commits to it, and a server answers
        from its latest state: for them there is nothing to do. This is not REFRESH SEGMENT
        (that is `db.segment(name).refresh()`)."""
        self._live()

    # ---- closing -----------------------------------------------------------------------------
    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _live(self) -> None:
        if self._closed:
            raise error("closed", "this connection is closed", "open another with eql.connect")

    # ---- what a backend implements -----------------------------------------------------------
    @abc.abstractmethod
    def _close(self) -> None: ...

    @abc.abstractmethod
    def _schema(self) -> dict[str, Any]: ...

    @abc.abstractmethod
    def _listing(self, kind: Kind) -> list[dict[str, Any]]: ...

    @abc.abstractmethod
    def _detail(self, kind: Kind, name: str, history: int) -> dict[str, Any]: ...

    @abc.abstractmethod
    def _define(self, text: str, refresh: bool, as_of: AsOf) -> dict[str, Any]:
        """The definition's description (with `refreshed` facts), as the server answers."""

    @abc.abstractmethod
    def _refresh(self, kind: Kind, name: str, as_of: AsOf) -> dict[str, Any]: ...

    @abc.abstractmethod
    def _drop(self, kind: Kind, name: str) -> None: ...

    @abc.abstractmethod
    def _members(self, name: str, version: int | None) -> pa.Table: ...

    @abc.abstractmethod
    def _is_member(self, name: str, key: Any) -> bool: ...

    @abc.abstractmethod
    def _changes(self, name: str, since: int, to: int) -> Changes: ...


class _Handle:
    kind: Kind

    def __init__(self, db: Connection, name: str) -> None:
        self.db = db
        self.name = name

    def describe(self, history: int = 20) -> dict[str, Any]:
        """The definition, its history and its latest `history` versions (newest first)."""
        self.db._live()
        return self.db._detail(self.kind, self.name, history)

    def versions(self) -> list[dict[str, Any]]:
        """Every refreshed version (at most the latest 1,000), oldest first: number, the
        definition version it ran, reference time (`as_of`), wall time, and its facts."""
        self.db._live()
        detail = self.db._detail(self.kind, self.name, HISTORY)
        return list(reversed(detail["versions"]))

    def refresh(self, as_of: AsOf = None) -> dict[str, Any]:
        """Materialise the latest definition at `as_of` (default now): the new version's facts."""
        self.db._live()
        if self.db.read_only:
            raise read_only_error()
        return self.db._refresh(self.kind, self.name, as_of)

    def drop(self) -> None:
        """Drop it with all its versions."""
        self.db._live()
        if self.db.read_only:
            raise read_only_error()
        self.db._drop(self.kind, self.name)

    def __repr__(self) -> str:
        return f"<eql.{type(self).__name__} {self.name!r}>"


class Segment(_Handle):
    kind: Kind = "segment"

    def members(self, version: int | None = None) -> pa.Table:
        """The members' keys at `version` (None: the latest), sorted: one column named as the
        entity's key. An unknown segment, one never refreshed and a version it does not have
        are errors (`unknown_segment`, `not_refreshed`, `unknown_version`)."""
        self.db._live()
        return self.db._members(self.name, check_version(version))

    def is_member(self, key: Any) -> bool:
        """Whether `key` is in the latest version (an unknown key is not). A key of the
        entity's key type: an int (or NumPy integer) or a str (or NumPy str)."""
        self.db._live()
        return self.db._is_member(self.name, plain(key))

    def changes(self, since: int, to: int) -> Changes:
        """The keys that entered and exited from version `since` to version `to`."""
        self.db._live()
        a, b = check_version(since), check_version(to)
        if a is None or b is None:
            raise error("invalid_request", "changes(since, to) needs two version numbers")
        return self.db._changes(self.name, a, b)


class Tag(_Handle):
    kind: Kind = "tag"
