"""docs/errors.md: each E2xx/E3xx section's example fails with its code on the demo schema."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pyarrow as pa
import pytest

from eql.diagnostics import EqlError
from runtime import READ, WRITE, Session
from storage import ChangeSet, Store

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "errors.md"
SECTION = re.compile(r"^### (E[23]\d\d): .*?(?=^### |^## |\Z)", re.M | re.S)
EQL_BLOCK = re.compile(r"```eql\n(.*?)```", re.S)
PARAMS = {"born": "nineteen-eighty", "n": "-5"}
CODES = {m.group(1): m.group(0) for m in SECTION.finditer(DOC.read_text(encoding="utf-8"))}
DOCUMENTED = sorted(c for c, text in CODES.items() if EQL_BLOCK.search(text))


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Session:
    schema = (ROOT / "examples" / "retail" / "schema.yaml").read_text()
    store = Store.create(tmp_path_factory.mktemp("errors") / "s", schema, "retail.yaml")
    change = ChangeSet()
    change.upsert("users", pa.table({"id": [1], "name": ["Li Lei"]}))
    store.commit(change)
    return Session(store)


def test_every_code_the_binder_uses_is_documented() -> None:
    used = set()
    for path in [*(ROOT / "eql").rglob("*.py"), *(ROOT / "runtime").rglob("*.py")]:
        used |= set(re.findall(r'"(E[23]\d\d)"', path.read_text(encoding="utf-8")))
    assert used <= set(CODES), sorted(used - set(CODES))


@pytest.mark.parametrize("code", DOCUMENTED)
def test_documented_example_fails_with_its_code(session: Session, code: str) -> None:
    block = EQL_BLOCK.search(CODES[code])
    assert block is not None
    # statements before the last (each ending with `;` at the end of a line) set the scene
    *setup, last = re.split(r";\n", block.group(1).strip())
    now = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    for statement in setup:
        session.execute(statement, PARAMS, now, WRITE)
    with pytest.raises(EqlError) as info:
        session.execute(last, PARAMS, now, READ if code == "E230" else WRITE)
    assert info.value.codes[0] == code, info.value.render()
    if not code.startswith("E3"):  # run-time failures have no position
        assert info.value.diagnostics[0].span is not None
