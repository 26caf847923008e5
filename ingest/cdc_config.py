"""The CDC config file (YAML): the source server, how to authenticate, and which source table feeds
which entity or event stream, with column renames and the policy for changes to event rows.

The password is never part of the config text: it is read from an environment variable or a file
named in the config, kept out of every repr, and never logged. Every problem in a config file is
reported with its line and key path; all problems are collected before raising one `ConfigError`.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from entities.model import Attribute, Schema

OnUpdate = Literal["error", "append", "ignore"]
OnDelete = Literal["error", "ignore"]
SnapshotMode = Literal["initial", "never"]
ON_UPDATE: tuple[OnUpdate, ...] = ("error", "append", "ignore")
ON_DELETE: tuple[OnDelete, ...] = ("error", "ignore")
SNAPSHOT_MODES: tuple[SnapshotMode, ...] = ("initial", "never")


class ConfigError(Exception):
    """One or more problems in a CDC config file."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(problems))


@dataclass(frozen=True, slots=True)
class Source:
    """Where the MariaDB/MySQL server is and who we are to it. `password` is resolved, not shown."""

    host: str
    port: int
    user: str
    server_id: int
    password: str = field(default="", repr=False, compare=False)
    password_from: str = ""  # "env:NAME" or "file:PATH", for messages; never the value
    connect_timeout: float = 10.0

    def connect_args(self) -> dict[str, Any]:
        """Keyword arguments for pymysql.connect. Never print or log this dictionary."""
        return {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "connect_timeout": self.connect_timeout,
            "charset": "utf8mb4",
        }

    @property
    def address(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class TableMap:
    """One source table `db.table` feeding one entity (upsert/delete by key) or one stream."""

    table: str  # "db.table" as written in the config
    kind: Literal["entity", "events"]
    target: str
    columns: tuple[tuple[str, str], ...]  # (attribute, source column), every mapped attribute
    key_attr: str | None = None  # entities: the key attribute
    explicit: tuple[str, ...] = ()  # source columns named in the config (must exist)
    on_update: OnUpdate = "error"
    on_delete: OnDelete = "error"

    @property
    def db(self) -> str:
        return self.table.split(".", 1)[0]

    @property
    def name(self) -> str:
        return self.table.split(".", 1)[1]

    def source_of(self, attr: str) -> str | None:
        for a, col in self.columns:
            if a == attr:
                return col
        return None


@dataclass(frozen=True, slots=True)
class CdcConfig:
    name: str
    source: Source
    tables: tuple[TableMap, ...]
    snapshot_mode: SnapshotMode = "initial"
    chunk_rows: int = 5000
    max_batch_rows: int = 20_000
    heartbeat_seconds: float = 0.1
    file: str = "<config>"

    def table(self, name: str) -> TableMap | None:
        for t in self.tables:
            if t.table == name:
                return t
        return None


# ---- loading ---------------------------------------------------------------------------------
class _Problems:
    def __init__(self, file: str) -> None:
        self.file = file
        self.items: list[str] = []

    def add(self, node: yaml.Node | None, key: str, message: str) -> None:
        line = node.start_mark.line + 1 if node is not None else 1
        self.items.append(f"{self.file}:{line}: {key}: {message}")


def _hint(name: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(name, candidates, n=1)
    return f" (did you mean `{close[0]}`?)" if close else ""


def _map(p: _Problems, node: yaml.Node, key: str) -> dict[str, tuple[yaml.Node, yaml.Node]]:
    if not isinstance(node, yaml.MappingNode):
        p.add(node, key, "expected a mapping (key: value lines)")
        return {}
    out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
    for k, v in node.value:
        name = str(k.value)
        if name in out:
            p.add(k, f"{key}.{name}", "duplicate key")
        out[name] = (k, v)
    return out


def _keys(
    p: _Problems, m: dict[str, tuple[yaml.Node, yaml.Node]], key: str, allowed: list[str]
) -> None:
    for name, (knode, _) in m.items():
        if name not in allowed:
            p.add(
                knode,
                f"{key}.{name}",
                f"unknown key{_hint(name, allowed)}; expected one of: {', '.join(allowed)}",
            )


def _str(p: _Problems, node: yaml.Node, key: str) -> str | None:
    if not isinstance(node, yaml.ScalarNode) or node.tag.endswith(":null"):
        p.add(node, key, "expected a single value")
        return None
    return str(node.value)


def _num(
    p: _Problems, node: yaml.Node, key: str, lo: float, hi: float, *, integer: bool = True
) -> float | None:
    text = _str(p, node, key)
    if text is None:
        return None
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        p.add(node, key, f"expected a number from {lo:g} to {hi:g}, found `{text}`")
        return None
    if not lo <= value <= hi:
        p.add(node, key, f"expected a number from {lo:g} to {hi:g}, found {value:g}")
        return None
    return value


def _choice(p: _Problems, node: yaml.Node, key: str, choices: tuple[str, ...]) -> str | None:
    text = _str(p, node, key)
    if text is not None and text not in choices:
        p.add(node, key, f"expected one of: {', '.join(choices)}, found `{text}`")
        return None
    return text


def _password(
    p: _Problems, src: dict[str, tuple[yaml.Node, yaml.Node]], base: Path | None
) -> tuple[str, str]:
    if "password" in src:
        p.add(
            src["password"][0],
            "source.password",
            "a password may not be written in the config; use password_env: VAR or "
            "password_file: PATH",
        )
        return "", ""
    if "password_env" in src and "password_file" in src:
        p.add(src["password_file"][0], "source", "give password_env or password_file, not both")
        return "", ""
    if "password_env" in src:
        node = src["password_env"][1]
        var = _str(p, node, "source.password_env")
        if var is None:
            return "", ""
        value = os.environ.get(var)
        if value is None:
            p.add(node, "source.password_env", f"the environment variable {var} is not set")
            return "", ""
        return value, f"env:{var}"
    if "password_file" in src:
        node = src["password_file"][1]
        text = _str(p, node, "source.password_file")
        if text is None:
            return "", ""
        path = Path(text)
        if not path.is_absolute() and base is not None:
            path = base / path
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
            return (lines[0] if lines else ""), f"file:{path}"
        except OSError as exc:
            p.add(node, "source.password_file", f"cannot read the password file: {exc.strerror}")
            return "", ""
    return "", ""


def _source(p: _Problems, node: yaml.Node, base: Path | None) -> Source | None:
    src = _map(p, node, "source")
    _keys(
        p,
        src,
        "source",
        [
            "host",
            "port",
            "user",
            "password",
            "password_env",
            "password_file",
            "server_id",
            "connect_timeout",
        ],
    )
    for need in ("user", "server_id"):
        if need not in src:
            p.add(node, "source", f"missing `{need}`")
    host = _str(p, src["host"][1], "source.host") if "host" in src else "127.0.0.1"
    port = _num(p, src["port"][1], "source.port", 1, 65535) if "port" in src else 3306
    user = _str(p, src["user"][1], "source.user") if "user" in src else None
    sid = (
        _num(p, src["server_id"][1], "source.server_id", 1, 2**32 - 1)
        if "server_id" in src
        else None
    )
    timeout = (
        _num(p, src["connect_timeout"][1], "source.connect_timeout", 0.1, 600, integer=False)
        if "connect_timeout" in src
        else 10.0
    )
    password, origin = _password(p, src, base)
    if host is None or port is None or user is None or sid is None or timeout is None:
        return None
    return Source(host, int(port), user, int(sid), password, origin, float(timeout))


def _target_columns(schema: Schema, kind: str, target: str) -> tuple[Attribute, ...]:
    if kind == "entity":
        return schema.require_entity(target).columns
    return schema.stream_columns(target)


def _table(
    p: _Problems, schema: Schema, name: str, knode: yaml.Node, node: yaml.Node
) -> TableMap | None:
    key = f"tables.{name}"
    if name.count(".") != 1 or not all(name.split(".")):
        p.add(knode, key, "name a source table as `database.table`")
        return None
    spec = _map(p, node, key)
    _keys(p, spec, key, ["entity", "events", "key", "columns", "on_update", "on_delete"])
    if ("entity" in spec) == ("events" in spec):
        p.add(node, key, "give exactly one of `entity: NAME` or `events: STREAM`")
        return None
    kind: Literal["entity", "events"] = "entity" if "entity" in spec else "events"
    target = _str(p, spec[kind][1], f"{key}.{kind}")
    if target is None:
        return None
    known = (
        [e.name for e in schema.entities] if kind == "entity" else [s.name for s in schema.streams]
    )
    if target not in known:
        what = "entity" if kind == "entity" else "event stream"
        p.add(spec[kind][1], f"{key}.{kind}", f"unknown {what} `{target}`{_hint(target, known)}")
        return None
    attrs = _target_columns(schema, kind, target)
    names = [a.name for a in attrs]
    renames: dict[str, str] = {}  # source column -> attribute
    if "columns" in spec:
        cols = _map(p, spec["columns"][1], f"{key}.columns")
        for src_col, (ck, cv) in cols.items():
            attr = _str(p, cv, f"{key}.columns.{src_col}")
            if attr is None:
                continue
            if attr not in names:
                p.add(
                    ck,
                    f"{key}.columns.{src_col}",
                    f"`{attr}` is not a column of {target}{_hint(attr, names)}",
                )
                continue
            if attr in renames.values():
                p.add(ck, f"{key}.columns.{src_col}", f"two source columns map to `{attr}`")
                continue
            renames[src_col] = attr
    by_attr = {a: s for s, a in renames.items()}
    columns = tuple((n, by_attr.get(n, n)) for n in names)
    key_attr: str | None = None
    if kind == "entity":
        key_attr = attrs[0].name
        if "key" in spec:
            kcol = _str(p, spec["key"][1], f"{key}.key")
            if kcol is not None and kcol != by_attr.get(key_attr, key_attr):
                if kcol in renames and renames[kcol] != key_attr:
                    p.add(spec["key"][0], f"{key}.key", f"`{kcol}` is mapped to another column")
                else:
                    columns = tuple((a, kcol if a == key_attr else s) for a, s in columns)
    on_update: OnUpdate = "error"
    on_delete: OnDelete = "error"
    for pol, choices in (("on_update", ON_UPDATE), ("on_delete", ON_DELETE)):
        if pol in spec:
            if kind == "entity":
                p.add(
                    spec[pol][0],
                    f"{key}.{pol}",
                    "applies only to event tables; entity rows are upserted and deleted by key",
                )
                continue
            val = _choice(p, spec[pol][1], f"{key}.{pol}", choices)
            if val is not None and pol == "on_update":
                on_update = val  # type: ignore[assignment]
            elif val is not None:
                on_delete = val  # type: ignore[assignment]
    explicit = tuple(s for a, s in columns if s != a)
    return TableMap(name, kind, target, columns, key_attr, explicit, on_update, on_delete)


def parse_config(text: str, schema: Schema, file: str = "<config>") -> CdcConfig:
    """Parse and validate a config against the store's schema; raise ConfigError on problems."""
    p = _Problems(file)
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        raise ConfigError(
            [f"{file}:{line}: not valid YAML: {getattr(exc, 'problem', exc)}"]
        ) from None
    if root is None:
        raise ConfigError([f"{file}:1: the config is empty"])
    base = Path(file).parent if file != "<config>" else None
    top = _map(p, root, "config")
    _keys(
        p,
        top,
        "config",
        ["version", "name", "source", "tables", "snapshot", "batch", "heartbeat_seconds"],
    )
    name = _str(p, top["name"][1], "name") if "name" in top else "default"
    if name is not None and (not name or not name.replace("_", "").replace("-", "").isalnum()):
        p.add(top["name"][1], "name", "use letters, digits, - and _")
    source = _source(p, top["source"][1], base) if "source" in top else None
    if "source" not in top:
        p.add(root, "config", "missing `source`")
    tables: list[TableMap] = []
    if "tables" not in top:
        p.add(root, "config", "missing `tables`")
    else:
        for tname, (tk, tv) in _map(p, top["tables"][1], "tables").items():
            t = _table(p, schema, tname, tk, tv)
            if t is not None:
                if t.kind == "entity" and any(
                    o.kind == "entity" and o.target == t.target for o in tables
                ):
                    p.add(tk, f"tables.{tname}", f"entity {t.target} is already fed by a table")
                    continue
                tables.append(t)
    mode: str | None = "initial"
    chunk: float | None = 5000
    if "snapshot" in top:
        snap = _map(p, top["snapshot"][1], "snapshot")
        _keys(p, snap, "snapshot", ["mode", "chunk_rows"])
        if "mode" in snap:
            mode = _choice(p, snap["mode"][1], "snapshot.mode", SNAPSHOT_MODES)
        if "chunk_rows" in snap:
            chunk = _num(p, snap["chunk_rows"][1], "snapshot.chunk_rows", 1, 10_000_000)
    max_rows: float | None = 20_000
    if "batch" in top:
        batch = _map(p, top["batch"][1], "batch")
        _keys(p, batch, "batch", ["max_rows"])
        if "max_rows" in batch:
            max_rows = _num(p, batch["max_rows"][1], "batch.max_rows", 1, 10_000_000)
    hb: float | None = 0.1
    if "heartbeat_seconds" in top:
        hb = _num(p, top["heartbeat_seconds"][1], "heartbeat_seconds", 0.01, 60, integer=False)
    if p.items or source is None or name is None:
        raise ConfigError(p.items or [f"{file}:1: invalid config"])
    assert mode is not None and chunk is not None and max_rows is not None and hb is not None
    return CdcConfig(
        name,
        source,
        tuple(tables),
        "never" if mode == "never" else "initial",
        int(chunk),
        int(max_rows),
        float(hb),
        file,
    )


def load_config(path: str | Path, schema: Schema) -> CdcConfig:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{p}: cannot read the config file: {exc.strerror}"]) from None
    return parse_config(text, schema, str(p))
