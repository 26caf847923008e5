"""Classify statements found in the binlog (QueryEvent text) by what they mean for mapped tables.

With binlog_row_metadata=FULL every row event carries its table's column names as of the moment it
was written, so ADD, DROP and MODIFY COLUMN need nothing from us: rows are mapped by name. What we
must follow is what names alone cannot tell: a column renamed (the attribute keeps being fed from
its new name), a table truncated (rows vanish without row events), a table renamed or dropped.
Anything that removes or replaces rows without row events, or that we cannot read, is reported as
unsupported so that the connector stops at that position instead of silently diverging.

This is a small tokenizer and a few recognisers, not a SQL parser: it only needs statement kinds,
table names and column renames.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

Kind = Literal[
    "none",  # nothing that concerns mapped tables
    "alter",  # ALTER TABLE on a mapped table; renames in `column_renames`
    "truncate",
    "rename_tables",  # RENAME TABLE / ALTER TABLE .. RENAME TO, all pairs in `table_renames`
    "create",
    "unsupported",  # stop: `reason` says why
]

_TOKEN = re.compile(
    r"""\s+|/\*.*?\*/|--[^\n]*|\#[^\n]*
    |(?P<bq>`(?:[^`]|``)*`)
    |(?P<sq>'(?:[^'\\]|\\.|'')*')
    |(?P<dq>"(?:[^"\\]|\\.|"")*")
    |(?P<word>[A-Za-z0-9_$@]+)
    |(?P<punct>.)""",
    re.S | re.X,
)
# ALTER TABLE clauses that cannot remove rows or change what a column name means
_HARMLESS_ALTER = {
    "ADD",
    "MODIFY",
    "ALTER",
    "ALGORITHM",
    "LOCK",
    "ENGINE",
    "AUTO_INCREMENT",
    "COMMENT",
    "DEFAULT",
    "CHARACTER",
    "CHARSET",
    "COLLATE",
    "CONVERT",
    "ROW_FORMAT",
    "FORCE",
    "ORDER",
    "KEY_BLOCK_SIZE",
    "STATS_PERSISTENT",
    "STATS_AUTO_RECALC",
    "STATS_SAMPLE_PAGES",
    "PACK_KEYS",
    "CHECKSUM",
    "ENABLE",
    "DISABLE",
    "PARTITION",
    "REMOVE",
    "COALESCE",
    "REORGANIZE",
    "ANALYZE",
    "CHECK",
    "OPTIMIZE",
    "REBUILD",
    "REPAIR",
    "PAGE_CHECKSUM",
    "TRANSACTIONAL",
    "ENCRYPTED",
    "ENCRYPTION_KEY_ID",
    "PAGE_COMPRESSED",
    "WITH",
    "WITHOUT",
    "MAX_ROWS",
    "MIN_ROWS",
    "AVG_ROW_LENGTH",
    "DATA",
    "INDEX",
    "INSERT_METHOD",
    "UNION",
    "DELAY_KEY_WRITE",
    "SEQUENCE",
    "IETF_QUOTES",
    "NOWAIT",
    "WAIT",
}
_UNSUPPORTED_ALTER = {
    ("DROP", "PARTITION"): "ALTER TABLE .. DROP PARTITION removes rows without row events",
    ("TRUNCATE", "PARTITION"): "ALTER TABLE .. TRUNCATE PARTITION removes rows without row events",
    ("EXCHANGE", "PARTITION"): "ALTER TABLE .. EXCHANGE PARTITION swaps rows without row events",
    ("DISCARD", "TABLESPACE"): "ALTER TABLE .. DISCARD TABLESPACE",
    ("IMPORT", "TABLESPACE"): "ALTER TABLE .. IMPORT TABLESPACE loads rows without row events",
}
_KEYWORDS = (
    _HARMLESS_ALTER
    | {w for pair in _UNSUPPORTED_ALTER for w in pair}
    | {
        "CHANGE",
        "RENAME",
        "DROP",
        "COLUMN",
        "IF",
        "EXISTS",
        "NOT",
        "TO",
        "AS",
        "INDEX",
        "KEY",
        "PRIMARY",
        "FOREIGN",
        "CONSTRAINT",
        "CHECK",
        "PERIOD",
        "SYSTEM",
        "FIRST",
        "AFTER",
    }
)
_DML = {"INSERT", "UPDATE", "DELETE", "REPLACE", "LOAD"}
_HARMLESS_STATEMENTS = {
    "GRANT",
    "REVOKE",
    "FLUSH",
    "ANALYZE",
    "OPTIMIZE",
    "REPAIR",
    "CHECK",
    "SET",
    "SAVEPOINT",
    "RELEASE",
    "INSTALL",
    "UNINSTALL",
    "USE",
    "DO",
    "RESET",
    "PURGE",
    "KILL",
    "SHUTDOWN",
}
_HARMLESS_CREATE_DROP = {
    "INDEX",
    "UNIQUE",
    "FULLTEXT",
    "SPATIAL",
    "VIEW",
    "TRIGGER",
    "PROCEDURE",
    "FUNCTION",
    "EVENT",
    "USER",
    "ROLE",
    "SERVER",
    "ALGORITHM",
    "DEFINER",
    "SQL",
    "AGGREGATE",
    "PACKAGE",
}


@dataclass(frozen=True, slots=True)
class DdlEffect:
    kind: Kind
    statement: str  # the statement's leading keywords, e.g. "ALTER TABLE" (never values)
    table: str | None = None  # the mapped table concerned (db.table)
    column_renames: tuple[tuple[str, str], ...] = ()
    dropped_columns: tuple[str, ...] = ()
    table_renames: tuple[tuple[str, str], ...] = ()
    reason: str = ""
    tables: tuple[str, ...] = field(default=())  # every table named


def _tokens(sql: str) -> list[tuple[str, str]]:
    """(kind, text) with kind in word/ident/str/punct; identifiers unquoted, words upper-case."""
    out: list[tuple[str, str]] = []
    for m in _TOKEN.finditer(sql):
        if m.group("bq"):
            out.append(("ident", m.group("bq")[1:-1].replace("``", "`")))
        elif m.group("word"):
            out.append(("word", m.group("word")))
        elif m.group("sq") or m.group("dq"):
            out.append(("str", ""))
        elif m.group("punct"):
            out.append(("punct", m.group("punct")))
    return out


class _Cursor:
    def __init__(self, tokens: list[tuple[str, str]], default_db: str) -> None:
        self.t = tokens
        self.i = 0
        self.db = default_db

    def peek(self, k: int = 0) -> str:
        j = self.i + k
        if j >= len(self.t):
            return ""
        kind, text = self.t[j]
        return text.upper() if kind == "word" else ("\0" + text if kind == "ident" else text)

    def accept(self, *words: str) -> bool:
        if self.peek() in words:
            self.i += 1
            return True
        return False

    def ident(self) -> str | None:
        if self.i >= len(self.t):
            return None
        kind, text = self.t[self.i]
        if kind not in ("word", "ident"):
            return None
        self.i += 1
        return text

    def table(self) -> str | None:
        first = self.ident()
        if first is None:
            return None
        if self.peek() == ".":
            self.i += 1
            second = self.ident()
            return f"{first}.{second}" if second is not None else None
        return f"{self.db}.{first}"

    def skip_if_exists(self) -> None:
        if self.peek() == "IF" and self.peek(1) in ("EXISTS", "NOT"):
            self.i += 3 if self.peek(1) == "NOT" else 2

    def clauses(self) -> list[list[str]]:
        """The rest split at top-level commas. In each clause, keywords are upper-cased and
        names keep their spelling behind a NUL (`\0name`), quoted or not."""
        out: list[list[str]] = [[]]
        depth = 0
        while self.i < len(self.t):
            kind, text = self.t[self.i]
            self.i += 1
            if kind == "punct" and text == "(":
                depth += 1
            elif kind == "punct" and text == ")":
                depth -= 1
            elif kind == "punct" and text == "," and depth == 0:
                out.append([])
            elif depth == 0 and kind == "word":
                out[-1].append(text.upper() if text.upper() in _KEYWORDS else "\0" + text)
            elif depth == 0 and kind == "ident":
                out[-1].append("\0" + text)
        return [c for c in out if c]


def _name(tok: str) -> str:
    return tok[1:] if tok.startswith("\0") else tok


def _leading(tokens: list[tuple[str, str]], n: int = 2) -> str:
    return " ".join(t.upper() for k, t in tokens[:n] if k == "word")


def classify(sql: str, default_db: str, mapped: set[str]) -> DdlEffect:
    """What a statement means for the mapped tables (`db.table` names)."""
    toks = _tokens(sql)
    c = _Cursor(toks, default_db)
    lead = _leading(toks)
    first = c.peek()
    if first == "ALTER":
        c.i += 1
        c.accept("ONLINE")
        c.accept("IGNORE")
        if not c.accept("TABLE"):
            return _mentions(toks, default_db, mapped, lead)
        c.skip_if_exists()
        table = c.table()
        if table is None:
            return DdlEffect("none", "ALTER TABLE")
        if table not in mapped:  # only a rename into a mapped name concerns us
            eff = _alter(c, table)
            if any(new in mapped for _, new in eff.table_renames):
                return _renames("ALTER TABLE", list(eff.table_renames), mapped)
            return DdlEffect("none", "ALTER TABLE", tables=(table,))
        return _alter(c, table)
    if first == "RENAME":
        c.i += 1
        if not c.accept("TABLE", "TABLES"):
            return _mentions(toks, default_db, mapped, lead)
        pairs: list[tuple[str, str]] = []
        while True:
            c.skip_if_exists()
            old = c.table()
            if c.accept("WAIT", "NOWAIT"):
                c.ident()
            if old is None or not c.accept("TO"):
                return DdlEffect("unsupported", "RENAME TABLE", reason="cannot read the statement")
            new = c.table()
            if new is None:
                return DdlEffect("unsupported", "RENAME TABLE", reason="cannot read the statement")
            pairs.append((old, new))
            if not c.accept(","):
                break
        return _renames("RENAME TABLE", pairs, mapped)
    if first == "TRUNCATE":
        c.i += 1
        c.accept("TABLE")
        table = c.table()
        if table in mapped:
            return DdlEffect("truncate", "TRUNCATE TABLE", table=table, tables=(table,))
        return DdlEffect("none", "TRUNCATE TABLE")
    if first == "DROP":
        c.i += 1
        c.accept("TEMPORARY")
        if c.accept("TABLE", "TABLES"):
            c.skip_if_exists()
            hit = []
            while True:
                t = c.table()
                if t is None:
                    break
                if t in mapped:
                    hit.append(t)
                if not c.accept(","):
                    break
            if hit:
                return DdlEffect(
                    "unsupported",
                    "DROP TABLE",
                    table=hit[0],
                    tables=tuple(hit),
                    reason=f"mapped table {hit[0]} was dropped",
                )
            return DdlEffect("none", "DROP TABLE")
        if c.accept("DATABASE", "SCHEMA"):
            c.skip_if_exists()
            db = c.ident()
            hit = sorted(t for t in mapped if t.split(".", 1)[0] == db)
            if hit:
                return DdlEffect(
                    "unsupported",
                    "DROP DATABASE",
                    table=hit[0],
                    tables=tuple(hit),
                    reason=f"database {db} holding mapped tables was dropped",
                )
            return DdlEffect("none", "DROP DATABASE")
        if c.peek() in _HARMLESS_CREATE_DROP or c.peek() in ("DATABASE", "SCHEMA", "SEQUENCE"):
            return DdlEffect("none", lead)
        return _mentions(toks, default_db, mapped, lead)
    if first == "CREATE":
        c.i += 1
        replace_ = c.accept("OR") and c.accept("REPLACE")
        c.accept("TEMPORARY")
        if c.accept("TABLE"):
            c.skip_if_exists()
            table = c.table()
            if table in mapped and replace_:
                return DdlEffect(
                    "unsupported",
                    "CREATE OR REPLACE TABLE",
                    table=table,
                    tables=(table,),
                    reason=f"mapped table {table} was replaced without row events",
                )
            if table in mapped:
                return DdlEffect("create", "CREATE TABLE", table=table, tables=(table,))
            return DdlEffect("none", "CREATE TABLE")
        return DdlEffect("none", lead)
    if first in ("BEGIN", "COMMIT", "ROLLBACK", "XA") or first in _HARMLESS_STATEMENTS:
        return DdlEffect("none", lead)
    if first in _DML or first == "WITH":
        hit = _mapped_names(toks, default_db, mapped)
        if hit:
            return DdlEffect(
                "unsupported",
                f"{first} statement",
                table=hit[0],
                tables=tuple(hit),
                reason=f"a statement-based change to {hit[0]} (the session that "
                "wrote it used binlog_format STATEMENT or MIXED; set it to ROW)",
            )
        return DdlEffect("none", lead)
    return _mentions(toks, default_db, mapped, lead)


def _alter(c: _Cursor, table: str) -> DdlEffect:
    renames: list[tuple[str, str]] = []
    dropped: list[str] = []
    new_table: str | None = None
    for clause in c.clauses():
        head = clause[0]
        nxt = clause[1] if len(clause) > 1 else ""
        if (head, nxt) in _UNSUPPORTED_ALTER:
            return DdlEffect(
                "unsupported",
                "ALTER TABLE",
                table=table,
                tables=(table,),
                reason=_UNSUPPORTED_ALTER[(head, nxt)],
            )
        words = [w for w in clause if w not in ("COLUMN", "IF", "EXISTS", "NOT")]
        if head == "CHANGE" and len(words) >= 3:
            old, new = _name(words[1]), _name(words[2])
            if old != new:
                renames.append((old, new))
        elif head == "RENAME" and nxt in ("COLUMN",) and len(words) >= 4 and words[2] == "TO":
            renames.append((_name(words[1]), _name(words[3])))
        elif head == "RENAME" and nxt in ("INDEX", "KEY"):
            continue
        elif head == "RENAME":
            rest = [w for w in clause[1:] if w not in ("TO", "AS")]
            if not rest:
                return DdlEffect(
                    "unsupported",
                    "ALTER TABLE",
                    table=table,
                    tables=(table,),
                    reason="cannot read the RENAME clause",
                )
            parts = [_name(w) for w in rest]
            new_table = parts[0] if len(parts) == 1 else f"{parts[0]}.{parts[-1]}"
            if "." not in new_table:
                new_table = f"{table.split('.', 1)[0]}.{new_table}"
        elif head == "DROP":
            if nxt in (
                "INDEX",
                "KEY",
                "PRIMARY",
                "FOREIGN",
                "CONSTRAINT",
                "CHECK",
                "PERIOD",
                "SYSTEM",
            ):
                continue
            if len(words) >= 2:
                dropped.append(_name(words[1]))
        elif head in _HARMLESS_ALTER:
            continue
        else:
            return DdlEffect(
                "unsupported",
                "ALTER TABLE",
                table=table,
                tables=(table,),
                reason=f"an ALTER TABLE clause this connector does not know ({head})",
            )
    if new_table is not None:
        eff = _renames("ALTER TABLE", [(table, new_table)], {table})
        return DdlEffect(
            eff.kind,
            "ALTER TABLE",
            table=table,
            tables=(table,),
            column_renames=tuple(renames),
            dropped_columns=tuple(dropped),
            table_renames=eff.table_renames,
            reason=eff.reason,
        )
    return DdlEffect(
        "alter",
        "ALTER TABLE",
        table=table,
        tables=(table,),
        column_renames=tuple(renames),
        dropped_columns=tuple(dropped),
    )


def _renames(statement: str, pairs: list[tuple[str, str]], mapped: set[str]) -> DdlEffect:
    names = {t for pair in pairs for t in pair}
    if not names & mapped:
        return DdlEffect("none", statement)
    # apply the renames in order to the set of existing names we care about
    exists = set(mapped)
    for old, new in pairs:
        if old in exists:
            exists.discard(old)
            exists.add(new)
        elif new in mapped:
            exists.add(new)
    gone = sorted(mapped - exists)
    hit = sorted(names & mapped)
    if gone:
        return DdlEffect(
            "unsupported",
            statement,
            table=gone[0],
            tables=tuple(hit),
            table_renames=tuple(pairs),
            reason=f"mapped table {gone[0]} was renamed away; map its new name in "
            "the config (the rows keep flowing under the new name) and restart",
        )
    return DdlEffect(
        "rename_tables", statement, table=hit[0], tables=tuple(hit), table_renames=tuple(pairs)
    )


def _mapped_names(toks: list[tuple[str, str]], default_db: str, mapped: set[str]) -> list[str]:
    hit: list[str] = []
    texts = [t for k, t in toks]
    for i, (kind, text) in enumerate(toks):
        if kind not in ("word", "ident"):
            continue
        if i + 2 < len(toks) and texts[i + 1] == "." and toks[i + 2][0] in ("word", "ident"):
            name = f"{text}.{texts[i + 2]}"
        elif i >= 2 and texts[i - 1] == ".":
            continue
        else:
            name = f"{default_db}.{text}"
        if name in mapped and name not in hit:
            hit.append(name)
    return hit


def _mentions(
    toks: list[tuple[str, str]], default_db: str, mapped: set[str], lead: str
) -> DdlEffect:
    """A statement kind we do not know: harmless unless it names a mapped table."""
    hit = _mapped_names(toks, default_db, mapped)
    if hit:
        return DdlEffect(
            "unsupported",
            lead or "statement",
            table=hit[0],
            tables=tuple(hit),
            reason=f"a `{lead}` statement on mapped table {hit[0]} that this "
            "connector does not know how to follow",
        )
    return DdlEffect("none", lead)
