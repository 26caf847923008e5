"""What importing costs and what is optional, each in a fresh interpreter: `import eql` loads
neither the runtime nor pyarrow nor httpx (`eql.connect` is looked up on first use); a store
connection never loads httpx; and without pandas or polars (their import made to fail by a
`sys.meta_path` finder) `to_pandas()` / `to_polars()` say what to install, while Arrow works."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("runtime", "storage", "datafusion", "pyarrow", "httpx", "eql.client", "pandas")


def _run(code: str, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_import_eql_stays_light() -> None:
    out = _run(
        "import json, sys\n"
        "import eql\n"
        f"heavy = {HEAVY!r}\n"
        "before = [m for m in heavy if m in sys.modules]\n"
        "connect = eql.connect\n"
        "after = [m for m in heavy if m in sys.modules]\n"
        "from eql import connect as again\n"
        "print(json.dumps([before, after, connect.__module__, again is connect]))\n"
    )
    before, after, module, same = json.loads(out)
    assert before == []
    assert sorted(after) == ["eql.client", "pyarrow"]  # the library, not the runtime nor httpx
    assert (module, same) == ("eql.client", True)


def test_a_store_connection_does_not_load_httpx(store_dir: Path) -> None:
    out = _run(
        "import sys, eql\n"
        "with eql.connect(sys.argv[1], read_only=True) as db:\n"
        "    n = len(db.query('FIND users RETURN id'))\n"
        "print(n, 'runtime' in sys.modules, 'httpx' in sys.modules)\n",
        str(store_dir),
    )
    n, runtime, httpx = out.split()
    assert int(n) > 0 and (runtime, httpx) == ("True", "False")


BLOCKED = """
import sys

class Missing:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("pandas", "polars"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Missing())
import eql

with eql.connect(sys.argv[1], read_only=True) as db:
    res = db.query("FIND users RETURN id ORDER BY id LIMIT 3")
    for method in ("to_pandas", "to_polars"):
        try:
            getattr(res, method)()
        except ImportError as exc:
            print(method, type(exc.__cause__).__name__, exc.name, exc, sep="|")
    print(res.to_arrow().column("id").to_pylist())
"""


def test_without_pandas_or_polars_the_error_says_what_to_install(store_dir: Path) -> None:
    lines = _run(BLOCKED, str(store_dir)).splitlines()
    assert lines == [
        "to_pandas|ModuleNotFoundError|pandas|"
        "Result.to_pandas() needs pandas: pip install 'eql[pandas]'",
        "to_polars|ModuleNotFoundError|polars|"
        "Result.to_polars() needs polars: pip install 'eql[polars]'",
        "[1, 2, 3]",
    ]
