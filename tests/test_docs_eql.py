"""Every `eql run` block of docs/eql.md runs on a demo store; every `eql error=CODE` fails so."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from eql.diagnostics import EqlError
from ingest.demo import generate_demo_files
from ingest.files import import_file
from runtime.engine import Engine
from storage import Store

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "eql.md"
BLOCK = re.compile(r"^```eql (run|error=(E\d+))\n(.*?)^```", re.S | re.M)
EXAMPLES = BLOCK.findall(DOC.read_text(encoding="utf-8"))
PARAMS = {"city": "Shanghai", "born_after": "1990", "n": "5"}
NOW = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    base = tmp_path_factory.mktemp("docs-eql")
    schema = (ROOT / "examples" / "retail" / "schema.yaml").read_text()
    store = Store.create(base / "store", schema, "retail.yaml")
    for f in generate_demo_files(base / "files", users=2000, seed=42):
        if not f.dirty:
            import_file(store, f.kind, f.target, f.path)
    return Engine(store)


def test_the_reference_has_examples() -> None:
    assert len(EXAMPLES) >= 15


@pytest.mark.parametrize(("kind", "code", "text"), EXAMPLES, ids=range(len(EXAMPLES)))
def test_doc_example(engine: Engine, kind: str, code: str, text: str) -> None:
    if kind == "run":
        compiled = engine.compile(text, PARAMS, NOW)
        if compiled.explain_stage is not None:
            assert "Scan" in engine.explain(compiled, compiled.explain_stage)
            return
        result = engine.run(compiled)
        assert result.num_columns > 0
        return
    with pytest.raises(EqlError) as info:
        engine.query(text, PARAMS, NOW)
    assert code in info.value.codes
