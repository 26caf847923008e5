"""A module docstring's "May import" line is true: every module of ours that the module imports
is named there (a package, a module, or `package.{a, b}`), its own package's modules aside."""

from __future__ import annotations

import ast
import re

from tests.structure.graph import imports, modules


def _named(doc: str) -> set[str] | None:
    found = re.search(r"[Mm]ay import(.*?)(\n\n|$)", doc, re.S)
    if found is None:
        return None
    text = found.group(1)
    for braces in re.finditer(r"([\w.]+)\.\{([^}]*)\}", text):
        text += " " + " ".join(f"{braces.group(1)}.{x.strip()}" for x in braces.group(2).split(","))
    return {w.rstrip(".") for w in re.findall(r"[a-z_][\w.]*", text.replace("/", "."))}


def _covered(target: str, named: set[str]) -> bool:
    parts = target.split(".")
    return any(".".join(parts[:k]) in named for k in range(1, len(parts) + 1))


def test_may_import_lines_are_true() -> None:
    known = modules()
    targets: dict[str, set[str]] = {}
    for i in imports():
        if i.target in known:
            targets.setdefault(i.source, set()).add(i.target)
    wrong = []
    checked = 0
    for name, path in sorted(known.items()):
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        named = _named(doc)
        if named is None:
            continue
        checked += 1
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for target in sorted(targets.get(name, ())):
            if target.startswith(package + ".") and path.name == "__init__.py":
                continue  # a package imports its own modules
            if not _covered(target, named):
                wrong.append(f"{name} imports {target}, its docstring does not say so")
    assert checked >= 20
    assert wrong == [], "\n".join(wrong)
