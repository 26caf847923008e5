"""A segment's versions, checked: its members, changes and splits at a version number, with
errors that say what exists instead of an empty answer.

`runtime.lookup.Audiences` answers from what it loaded; these functions first check the name
and the version numbers against the store, then ask it:

    members(aud, "lapsed_vip", 2)          # the keys of version 2 (None: the latest)
    changes(aud, "lapsed_vip", 1, 3)       # who entered and exited from version 1 to 3
    split(aud, "lapsed_vip", {"a": 50, "b": 50}, "salt")

and raise, for the CLI, the server and Python callers alike:

- `NotDefined` (a `runtime.definitions.Unknown`, what "segment"): no segment has that name;
  the message names the defined ones;
- `NotRefreshed`: the segment is defined but has no version yet (REFRESH SEGMENT it);
- `UnknownVersion` (a `runtime.definitions.Unknown`, what "version"): the segment has no such
  version; the message names those it has ("segment lapsed_vip has versions 1-3");
- `TypeError`: a version that is not a whole number (`"1"`, `True`, `1.0`), which no segment has
  (rather than "no version 1: it has version 1").

`require(reader, d, version)` is the check alone, for a caller holding a definition (the
server's change feed checks the position a reader resumes from with it). Tags have no version
numbers a caller names (EQL reads the version refreshed as of its reference time), so only
segments are checked here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pyarrow as pa

from entities.names import not_defined, shown, versions_text
from runtime.definitions import Unknown
from runtime.lookup import Audiences, Changes
from storage.audiences import AudienceReader, Definition, Refresh


class NotDefined(Unknown):
    """No segment has this name."""

    def __init__(self, name: str, defined: Sequence[str]) -> None:
        LookupError.__init__(self, not_defined("segment", name, list(defined)))
        self.what = "segment"
        self.name = name
        self.defined = tuple(defined)


class NotRefreshed(LookupError):
    """The segment is defined but was never refreshed: it has no version."""

    def __init__(self, name: str) -> None:
        super().__init__(f"segment {shown(name)} is defined but was never refreshed")
        self.name = name


class UnknownVersion(Unknown):
    """The segment has no version of this number."""

    def __init__(self, name: str, version: int, versions: Sequence[int]) -> None:
        has = f"it has {versions_text(list(versions))}" if versions else "it was never refreshed"
        LookupError.__init__(self, f"segment {shown(name)} has no version {version}: {has}")
        self.what = "version"
        self.name = name
        self.version = version
        self.versions = tuple(versions)


def definition(reader: AudienceReader, name: str) -> Definition:
    """The segment called `name` (exactly, else regardless of case); `NotDefined` else."""
    d = reader.definition("SEGMENT", name)
    if d is None:
        raise NotDefined(name, reader.names("SEGMENT"))
    return d


def number(version: object) -> int:
    """`version` if it is a version number (an int, not a bool); TypeError saying so else."""
    if isinstance(version, bool) or not isinstance(version, int):
        raise TypeError(
            f"a segment version is a whole number (1, 2, ...), not {version!r} "
            f"({type(version).__name__})"
        )
    return version


def require(reader: AudienceReader, d: Definition, version: int) -> Refresh:
    """The refresh `version` of `d`; `UnknownVersion` when it has no such version (none at all
    included)."""
    number(version)
    refreshes = reader.refreshes(d)
    for r in refreshes:
        if r.version == version:
            return r
    raise UnknownVersion(d.name, version, [r.version for r in refreshes])


def check(reader: AudienceReader, name: str, *versions: int | None) -> Definition:
    """The segment `name`, refreshed at least once and holding each of `versions` (None: the
    latest, which any refreshed segment has); TypeError for a version that is no number."""
    return _refreshed(reader, name, *versions)[0]


def _refreshed(
    reader: AudienceReader, name: str, *versions: int | None
) -> tuple[Definition, list[Refresh]]:
    """`check`'s work: the segment and its refreshes, oldest first (at least one)."""
    for v in versions:
        if v is not None:
            number(v)
    d = definition(reader, name)
    refreshes = reader.refreshes(d)
    if not refreshes:
        raise NotRefreshed(d.name)
    have = [r.version for r in refreshes]
    for v in versions:
        if v is not None and v not in have:
            raise UnknownVersion(d.name, v, have)
    return d, refreshes


def _checked(aud: Audiences, name: str, *versions: int | None) -> Definition:
    """`check` against the store, then `aud` brought up to it when what it loaded of this
    segment is older (refreshed since, or dropped and defined again): the answer and the check
    see the same segment."""
    d, refreshes = _refreshed(aud.aud, name, *versions)
    seg = aud.segment(d.name)
    if seg is None or (seg.generation, seg.version) != (d.generation, refreshes[-1].version):
        aud.reload()
    return d


def members(aud: Audiences, name: str, version: int | None = None) -> pa.Table:
    """The members' keys at `version` (None: the latest), one column named as the entity key."""
    d = _checked(aud, name, version)
    return aud.members(d.name, version)


def changes(aud: Audiences, name: str, since: int, to: int) -> Changes:
    """The keys that entered and exited from version `since` to version `to`."""
    d = _checked(aud, name, since, to)
    return aud.changes(d.name, since, to)


def split(
    aud: Audiences,
    name: str,
    groups: Mapping[str, float],
    salt: str,
    version: int | None = None,
) -> tuple[Definition, dict[str, pa.Array]]:
    """The members at `version` in named groups (`runtime.lookup.Audiences.split`), with the
    segment's definition (its entity names the key column)."""
    d = _checked(aud, name, version)
    return d, aud.split(d.name, groups, salt, version)
