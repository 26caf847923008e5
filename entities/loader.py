"""Load and validate a schema file (YAML) into an `entities.model.Schema`.

Every problem is reported with the file, the line and the key path, and says what was expected;
all problems of a file are collected before raising one `SchemaError`.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from entities.model import (
    KEY_KINDS,
    Attribute,
    Cardinality,
    DataType,
    Entity,
    EventRef,
    EventStream,
    Relation,
    Schema,
    TypeKind,
    decimal_type,
    enum_type,
)

NAME_RE = re.compile(r"^[a-z_][a-z0-9_]*$")
TYPE_NAMES = [k.value for k in TypeKind]
HISTORY_RE = re.compile(r"^([0-9]{1,6}) days?$")
MAX_HISTORY_DAYS = 100_000  # about 270 years
# Names EQL gives meaning to inside an entity's scope; an attribute may not take them.
RESERVED = {"id", "time"} - {"id"}  # `id` is allowed as a key name; nothing else reserved yet.


@dataclass(frozen=True, slots=True)
class SchemaProblem:
    file: str
    line: int
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.key}: {self.message}"


class SchemaError(Exception):
    """One or more problems in a schema file."""

    def __init__(self, problems: list[SchemaProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in problems))


class _Collector:
    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[SchemaProblem] = []

    def add(self, node: yaml.Node | None, key: str, message: str) -> None:
        line = node.start_mark.line + 1 if node is not None else 1
        self.problems.append(SchemaProblem(self.file, line, key, message))


def _hint(name: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(name, candidates, n=1)
    return f" (did you mean `{close[0]}`?)" if close else ""


def _mapping(c: _Collector, node: yaml.Node, key: str) -> dict[str, tuple[yaml.Node, yaml.Node]]:
    """Map of key text -> (key node, value node); reports non-mappings and duplicate keys."""
    if not isinstance(node, yaml.MappingNode):
        c.add(node, key, f"expected a mapping (key: value lines), found {_kind(node)}")
        return {}
    out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
    for knode, vnode in node.value:
        if not isinstance(knode, yaml.ScalarNode):
            c.add(knode, key, "expected a plain name as key")
            continue
        name = str(knode.value)
        if name in out:
            c.add(knode, f"{key}.{name}", "duplicate key; each name may appear once")
            continue
        out[name] = (knode, vnode)
    return out


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if node.tag.endswith(":null"):
        return "nothing (null)"
    return f"`{node.value}`"


def _scalar(c: _Collector, node: yaml.Node, key: str) -> str | None:
    if not isinstance(node, yaml.ScalarNode) or node.tag.endswith(":null"):
        c.add(node, key, f"expected a single value, found {_kind(node)}")
        return None
    return str(node.value)


def _check_keys(
    c: _Collector, m: dict[str, tuple[yaml.Node, yaml.Node]], key: str, allowed: list[str]
) -> None:
    for name, (knode, _) in m.items():
        if name not in allowed:
            c.add(
                knode,
                f"{key}.{name}",
                f"unknown key{_hint(name, allowed)}; expected one of: {', '.join(allowed)}",
            )


def _name(c: _Collector, node: yaml.Node, key: str, text: str) -> bool:
    if not NAME_RE.match(text):
        c.add(node, key, f"`{text}` is not a valid name: use lower-case letters, digits and _")
        return False
    return True


def _int(c: _Collector, node: yaml.Node, key: str, lo: int, hi: int) -> int | None:
    text = _scalar(c, node, key)
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        c.add(node, key, f"expected a whole number from {lo} to {hi}, found `{text}`")
        return None
    if not lo <= value <= hi:
        c.add(node, key, f"expected a whole number from {lo} to {hi}, found {value}")
        return None
    return value


def _bool(c: _Collector, node: yaml.Node, key: str) -> bool:
    text = _scalar(c, node, key)
    if text is None or text.lower() not in ("true", "false"):
        c.add(node, key, "expected true or false")
        return False
    return text.lower() == "true"


def _type(c: _Collector, node: yaml.Node, key: str) -> tuple[DataType, bool, str] | None:
    """A column spec: `int` or `{type: decimal, precision: 12, scale: 2, required: true}`."""
    required, description = False, ""
    scalar_form = isinstance(node, yaml.ScalarNode) and not node.tag.endswith(":null")
    if scalar_form:
        spec = {"type": (node, node)}
    else:
        spec = _mapping(c, node, key)
        if not spec:
            if isinstance(node, yaml.MappingNode):
                c.add(node, key, "expected a type, e.g. `string` or {type: int}")
            return None
        _check_keys(
            c, spec, key, ["type", "precision", "scale", "values", "required", "description"]
        )
    if "type" not in spec:
        c.add(node, key, f"missing `type`; expected one of: {', '.join(TYPE_NAMES)}")
        return None
    tnode = spec["type"][1]
    tkey = key if scalar_form else f"{key}.type"
    tname = _scalar(c, tnode, tkey)
    if tname is None:
        return None
    if "required" in spec:
        required = _bool(c, spec["required"][1], f"{key}.required")
    if "description" in spec:
        description = _scalar(c, spec["description"][1], f"{key}.description") or ""
    if tname not in TYPE_NAMES:
        c.add(
            tnode,
            tkey,
            f"unknown type `{tname}`{_hint(tname, TYPE_NAMES)}; expected one of: "
            + ", ".join(TYPE_NAMES),
        )
        return None
    kind = TypeKind(tname)
    for extra, kinds in (("precision", "decimal"), ("scale", "decimal"), ("values", "enum")):
        if extra in spec and kind.value != kinds:
            c.add(spec[extra][0], f"{key}.{extra}", f"`{extra}` applies only to type {kinds}")
    if kind is TypeKind.DECIMAL:
        precision = scale = None
        if "precision" in spec:
            precision = _int(c, spec["precision"][1], f"{key}.precision", 1, 38)
        if "scale" in spec:
            scale = _int(c, spec["scale"][1], f"{key}.scale", 0, 38)
        p, s = precision or 18, 2 if scale is None else scale
        if s > p:
            c.add(node, key, f"scale {s} is larger than precision {p}")
            return None
        return decimal_type(p, s), required, description
    if kind is TypeKind.ENUM:
        vnode = spec.get("values", (None, None))[1]
        if not isinstance(vnode, yaml.SequenceNode) or not vnode.value:
            c.add(vnode or node, f"{key}.values", "an enum needs `values: [a, b, ...]`")
            return None
        values: list[str] = []
        for item in vnode.value:
            v = _scalar(c, item, f"{key}.values")
            if v is not None:
                if v in values:
                    c.add(item, f"{key}.values", f"duplicate enum value `{v}`")
                values.append(v)
        return enum_type(tuple(values)), required, description
    return DataType(kind), required, description


def _history(c: _Collector, node: yaml.Node, key: str) -> int | None:
    """An entity's history retention: `400 days` (`1 day`), or `keep` (forever, the default)."""
    text = _scalar(c, node, key)
    if text is None:
        return None
    m = HISTORY_RE.match(text.strip())
    if text.strip() == "keep":
        return None
    if m is None or not 1 <= int(m.group(1)) <= MAX_HISTORY_DAYS:
        c.add(
            node,
            key,
            f"expected a retention such as `400 days` (1 to {MAX_HISTORY_DAYS} days) or `keep` "
            f"(forever, the default), found `{text}`",
        )
        return None
    return int(m.group(1))


def _attributes(
    c: _Collector, node: yaml.Node | None, key: str
) -> list[tuple[Attribute, yaml.Node]]:
    if node is None or (isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null")):
        return []
    out: list[tuple[Attribute, yaml.Node]] = []
    for name, (knode, vnode) in _mapping(c, node, key).items():
        if not _name(c, knode, f"{key}.{name}", name):
            continue
        typed = _type(c, vnode, f"{key}.{name}")
        if typed is not None:
            out.append((Attribute(name, typed[0], typed[1], typed[2]), knode))
    return out


def load_schema(path: str | Path) -> Schema:
    """Read and validate a schema file; raise `SchemaError` listing every problem."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SchemaError([SchemaProblem(str(p), 1, "<file>", "file not found")]) from None
    except IsADirectoryError:
        raise SchemaError(
            [SchemaProblem(str(p), 1, "<file>", "is a directory, not a file")]
        ) from None
    except OSError as exc:
        msg = f"cannot read the file: {exc.strerror}"
        raise SchemaError([SchemaProblem(str(p), 1, "<file>", msg)]) from None
    except UnicodeDecodeError as exc:
        msg = f"not valid UTF-8 text (byte {exc.start})"
        raise SchemaError([SchemaProblem(str(p), 1, "<file>", msg)]) from None
    return parse_schema(text, str(p))


def parse_schema(text: str, file: str = "<schema>") -> Schema:
    c = _Collector(file)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        problem = exc.problem or "invalid YAML"
        raise SchemaError(
            [SchemaProblem(file, line, "<yaml>", f"invalid YAML: {problem}")]
        ) from None
    if root is None:
        raise SchemaError([SchemaProblem(file, 1, "<file>", "empty schema file")])
    top = _mapping(c, root, "<root>")
    _check_keys(c, top, "<root>", ["version", "entities", "events"])
    if "version" in top:
        _int(c, top["version"][1], "version", 1, 1)
    if "entities" not in top:
        c.add(root, "entities", "missing `entities`: a schema declares at least one entity")
        raise SchemaError(c.problems)

    raw_entities: list[tuple[Entity, dict[str, tuple[yaml.Node, yaml.Node]]]] = []
    declared = _mapping(c, top["entities"][1], "entities")
    if not declared and isinstance(top["entities"][1], yaml.MappingNode | yaml.ScalarNode):
        c.add(top["entities"][1], "entities", "a schema declares at least one entity")
    # entities whose own declaration is wrong: other references to them are not errors too
    broken: set[str] = set(declared)
    for ename, (eknode, evnode) in declared.items():
        key = f"entities.{ename}"
        if not _name(c, eknode, key, ename):
            continue
        spec = _mapping(c, evnode, key)
        _check_keys(c, spec, key, ["key", "attributes", "relations", "description", "history"])
        if "key" not in spec:
            c.add(eknode, f"{key}.key", "missing `key`, e.g. key: {name: id, type: int}")
            continue
        knode = spec["key"][1]
        kspec = _mapping(c, knode, f"{key}.key")
        _check_keys(c, kspec, f"{key}.key", ["name", "type"])
        kname = _scalar(c, kspec["name"][1], f"{key}.key.name") if "name" in kspec else None
        if kname is None:
            c.add(knode, f"{key}.key.name", "missing the key's `name`")
            continue
        ktyped = _type(c, kspec["type"][1], f"{key}.key.type") if "type" in kspec else None
        attrs = _attributes(c, spec.get("attributes", (None, None))[1], f"{key}.attributes")
        if "type" not in kspec:
            c.add(knode, f"{key}.key.type", "missing the key's `type`: `int` or `string`")
            continue
        if ktyped is None:
            continue
        if ktyped[0].kind not in KEY_KINDS:
            c.add(
                kspec["type"][1],
                f"{key}.key.type",
                f"a key's type must be `int` or `string`, not {ktyped[0]}",
            )
            continue
        for attr, anode in attrs:
            if attr.name == kname:
                c.add(anode, f"{key}.attributes.{attr.name}", "repeats the key; list it once")
        desc = ""
        if "description" in spec:
            desc = _scalar(c, spec["description"][1], f"{key}.description") or ""
        days = _history(c, spec["history"][1], f"{key}.history") if "history" in spec else None
        entity = Entity(
            ename,
            Attribute(kname, ktyped[0], required=True),
            tuple(a for a, _ in attrs if a.name != kname),
            (),
            desc,
            days,
        )
        raw_entities.append((entity, spec))
        broken.discard(ename)

    names = [e.name for e, _ in raw_entities]
    relations: dict[str, list[Relation]] = {n: [] for n in names}
    rel_where: dict[tuple[str, str], tuple[yaml.Node, str]] = {}
    for entity, spec in raw_entities:
        if "relations" not in spec:
            continue
        key = f"entities.{entity.name}.relations"
        for rname, (rknode, rvnode) in _mapping(c, spec["relations"][1], key).items():
            rkey = f"{key}.{rname}"
            if not _name(c, rknode, rkey, rname):
                continue
            rs = _mapping(c, rvnode, rkey)
            _check_keys(c, rs, rkey, ["to", "cardinality", "via", "reverse"])
            missing = [k for k in ("to", "via") if k not in rs]
            if missing:
                c.add(
                    rknode,
                    rkey,
                    f"missing {', '.join(missing)}; e.g. "
                    "{to: stores, cardinality: one, via: home_store_id, reverse: members}",
                )
                continue
            target = _scalar(c, rs["to"][1], f"{rkey}.to")
            via = _scalar(c, rs["via"][1], f"{rkey}.via")
            card = "one"
            if "cardinality" in rs:
                card = _scalar(c, rs["cardinality"][1], f"{rkey}.cardinality") or "one"
                if card not in ("one", "many"):
                    c.add(rs["cardinality"][1], f"{rkey}.cardinality", "expected `one` or `many`")
                    continue
            if target is None or via is None:
                continue
            if target in broken:
                continue
            if target not in relations:
                c.add(rs["to"][1], f"{rkey}.to", f"unknown entity `{target}`{_hint(target, names)}")
                continue
            tgt = next(e for e, _ in raw_entities if e.name == target)
            holder = entity if card == "one" else tgt
            via_attr = holder.column(via)
            if via_attr is None:
                c.add(
                    rs["via"][1],
                    f"{rkey}.via",
                    f"`{holder.name}` has no attribute `{via}`"
                    f"{_hint(via, [a.name for a in holder.columns])}; `via` names the attribute "
                    f"of `{holder.name}` that holds the related key",
                )
                continue
            other_key = tgt.key if card == "one" else entity.key
            if via_attr.type.kind != other_key.type.kind:
                c.add(
                    rs["via"][1],
                    f"{rkey}.via",
                    f"`{holder.name}.{via}` is {via_attr.type} but the key it points to is "
                    f"{other_key.type}",
                )
                continue
            reverse = None
            if "reverse" in rs:
                reverse = _scalar(c, rs["reverse"][1], f"{rkey}.reverse")
                if reverse is not None and not _name(
                    c, rs["reverse"][1], f"{rkey}.reverse", reverse
                ):
                    reverse = None
            cardinality = Cardinality(card)
            relations[entity.name].append(
                Relation(rname, entity.name, target, cardinality, via, card == "many", reverse)
            )
            rel_where[(entity.name, rname)] = (rknode, rkey)
            if reverse is not None:
                back = Cardinality.MANY if card == "one" else Cardinality.ONE
                relations[target].append(
                    Relation(reverse, target, entity.name, back, via, card == "one", rname)
                )
                rel_where[(target, reverse)] = (rs["reverse"][1], f"{rkey}.reverse")

    entities: list[Entity] = []
    for entity, _spec in raw_entities:
        seen: dict[str, str] = {a.name: "attribute" for a in entity.columns}
        rels = relations[entity.name]
        for rel in rels:
            if rel.name in seen:
                node, where = rel_where.get(
                    (entity.name, rel.name), (None, f"entities.{entity.name}.relations.{rel.name}")
                )
                c.add(
                    node,
                    where,
                    f"`{rel.name}` is already a {seen[rel.name]} of `{entity.name}`; "
                    "choose another relation or reverse name",
                )
            seen[rel.name] = "relation"
        entities.append(
            Entity(
                entity.name,
                entity.key,
                entity.attributes,
                tuple(rels),
                entity.description,
                entity.history_days,
            )
        )

    streams: list[EventStream] = []
    if "events" in top:
        streams = _streams(c, top["events"][1], entities, broken)

    if c.problems:
        raise SchemaError(c.problems)
    return Schema(tuple(entities), tuple(streams), file)


def _streams(
    c: _Collector, node: yaml.Node, entities: list[Entity], broken: set[str]
) -> list[EventStream]:
    out: list[EventStream] = []
    enames = [e.name for e in entities]
    for sname, (sknode, svnode) in _mapping(c, node, "events").items():
        key = f"events.{sname}"
        if not _name(c, sknode, key, sname):
            continue
        if sname in enames:
            c.add(sknode, key, f"`{sname}` is already an entity name; choose another stream name")
            continue
        spec = _mapping(c, svnode, key)
        _check_keys(c, spec, key, ["time", "references", "fields", "key", "description"])
        time = "ts"
        if "time" in spec:
            time = _scalar(c, spec["time"][1], f"{key}.time") or "ts"
        ref_nodes: dict[str, yaml.Node] = {}
        refs: list[EventRef] = []
        if "references" not in spec:
            c.add(
                sknode,
                f"{key}.references",
                "missing `references`: an event references at least one entity, "
                "e.g. user: {entity: users, column: user_id}",
            )
        else:
            rmap = _mapping(c, spec["references"][1], f"{key}.references")
            for rname, (rknode, rvnode) in rmap.items():
                rkey = f"{key}.references.{rname}"
                if not _name(c, rknode, rkey, rname):
                    continue
                if isinstance(rvnode, yaml.ScalarNode):
                    target, column = _scalar(c, rvnode, rkey), f"{rname}_id"
                else:
                    rs = _mapping(c, rvnode, rkey)
                    _check_keys(c, rs, rkey, ["entity", "column"])
                    target = (
                        _scalar(c, rs["entity"][1], f"{rkey}.entity") if "entity" in rs else None
                    )
                    if "entity" not in rs:
                        c.add(rvnode, f"{rkey}.entity", "missing `entity`")
                    column = f"{rname}_id"
                    if "column" in rs:
                        column = _scalar(c, rs["column"][1], f"{rkey}.column") or column
                if target is None:
                    continue
                if target in broken:
                    continue
                if target not in enames:
                    c.add(rvnode, rkey, f"unknown entity `{target}`{_hint(target, enames)}")
                    continue
                refs.append(EventRef(rname, target, column))
                ref_nodes[rname] = rknode
        fields = _attributes(c, spec.get("fields", (None, None))[1], f"{key}.fields")
        columns: dict[str, str] = {time: "the time field"}
        for ref in refs:
            if ref.column in columns:
                c.add(
                    ref_nodes.get(ref.name, svnode),
                    f"{key}.references.{ref.name}",
                    f"column `{ref.column}` is already {columns[ref.column]}",
                )
            columns[ref.column] = f"the column of reference `{ref.name}`"
        for f, fnode in fields:
            if f.name in columns or any(f.name == r.name for r in refs):
                c.add(
                    fnode,
                    f"{key}.fields.{f.name}",
                    f"`{f.name}` is already {columns.get(f.name, 'a reference name')}",
                )
            columns[f.name] = "a field"
        skey = None
        if "key" in spec:
            skey = _scalar(c, spec["key"][1], f"{key}.key")
            if skey is not None and skey not in [f.name for f, _ in fields]:
                c.add(spec["key"][1], f"{key}.key", f"`{skey}` is not a field of `{sname}`")
        desc = ""
        if "description" in spec:
            desc = _scalar(c, spec["description"][1], f"{key}.description") or ""
        out.append(EventStream(sname, time, tuple(refs), tuple(f for f, _ in fields), skey, desc))
    return out
