"""Binlog positions and the connector's error type: a module light enough for the binlog reader
process to import (no storage, no Arrow)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class CdcError(Exception):
    """The connector cannot go on; the message says why and what to change. No secrets in it."""


@dataclass(frozen=True, slots=True)
class Position:
    file: str
    pos: int
    gtid: str = ""  # MariaDB: the GTID state (domain-server-seq, comma separated) at this point

    def order(self) -> tuple[int, int]:
        return file_number(self.file), self.pos

    def __str__(self) -> str:
        return f"{self.file}:{self.pos}" + (f" (gtid {self.gtid})" if self.gtid else "")

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "pos": self.pos, "gtid": self.gtid}

    @staticmethod
    def from_json(d: dict[str, Any]) -> Position:
        return Position(str(d["file"]), int(d["pos"]), str(d.get("gtid", "")))


def file_number(name: str) -> int:
    """The sequence number of a binlog file name (`binlog.000012` -> 12)."""
    suffix = name.rsplit(".", 1)[-1]
    return int(suffix) if suffix.isdigit() else 0


def merge_gtid(state: str, gtid: str) -> str:
    """A MariaDB GTID state with one more transaction `domain-server-seq` applied."""
    domain = gtid.split("-", 1)[0]
    parts = {p.split("-", 1)[0]: p for p in state.split(",") if p}
    parts[domain] = gtid
    return ",".join(parts[d] for d in sorted(parts, key=int))


def gtid_covers(state: str, target: str) -> bool:
    """True if `state` includes every transaction of `target` (per domain, seq >=)."""
    have = {p.split("-")[0]: int(p.split("-")[2]) for p in state.split(",") if p}
    for p in target.split(","):
        if not p:
            continue
        d, _, seq = p.split("-")
        if have.get(d, -1) < int(seq):
            return False
    return True
