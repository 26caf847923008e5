"""Tests of the deterministic retail demo data generator (ingest/demo.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import yaml

from ingest import demo
from ingest.demo import DemoFile, generate_demo_files

ROOT = Path(__file__).resolve().parents[1]

_SCHEMA_FILES = [ROOT / "entities/examples/retail.yaml", ROOT / "examples/retail/schema.yaml"]
SCHEMA = yaml.safe_load(next(p for p in _SCHEMA_FILES if p.exists()).read_text())
USERS = 4000
END = date(2026, 11, 1)
DAYS = 365
END_US = int(datetime(2026, 11, 1, tzinfo=UTC).timestamp()) * 1_000_000
START_US = END_US - DAYS * 86_400_000_000


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> list[DemoFile]:
    return generate_demo_files(tmp_path_factory.mktemp("demo"), users=USERS, seed=7)


def _tables(files: list[DemoFile]) -> dict[str, pa.Table]:
    paths: dict[str, list[Path]] = {}
    for f in files:
        if not f.dirty:
            paths.setdefault(f.target, []).append(f.path)
    return {t: pa.concat_tables([pq.read_table(p) for p in ps]) for t, ps in paths.items()}


@pytest.fixture(scope="module")
def t(files: list[DemoFile]) -> dict[str, pa.Table]:
    return _tables(files)


def _np(table: pa.Table, col: str) -> np.ndarray:
    return np.asarray(table.column(col).to_numpy(zero_copy_only=False))


def _isin(values: pa.ChunkedArray, pool: pa.ChunkedArray) -> bool:
    present = pc.drop_null(values)
    return bool(pc.all(pc.is_in(present, value_set=pool.combine_chunks())).as_py())


def test_file_list_order_and_rows(files: list[DemoFile]) -> None:
    heads = [(f.kind, f.target, f.dirty) for f in files]
    assert heads[:5] == [("entity", "stores", False), ("entity", "employees", False),
                         ("entity", "products", False), ("entity", "users", False),
                         ("entity", "users", True)]  # fmt: skip
    assert heads[-1] == ("events", "purchase", True)
    streams = [f.target for f in files[5:-1]]
    assert streams == sorted(streams, key=list(SCHEMA["events"]).index)
    assert set(streams) == set(SCHEMA["events"])
    for f in files:
        assert f.path.exists()
        if not f.dirty:
            assert f.path.name == f"{f.target}.parquet"  # small run: one file per target
            assert pq.ParquetFile(f.path).metadata.num_rows == f.rows
    assert files[-1].path.name == "purchase-dirty.csv"
    assert files[4].path.name == "users-dirty.csv"


def _expected_type(spec: object) -> pa.DataType:
    kind = spec if isinstance(spec, str) else spec["type"]  # type: ignore[index]
    if kind == "decimal":
        return pa.decimal128(spec["precision"], spec["scale"])  # type: ignore[index]
    return {"int": pa.int64(), "string": pa.string(), "enum": pa.string(), "float": pa.float64(),
            "bool": pa.bool_(), "date": pa.date32()}[kind]  # fmt: skip


def test_columns_and_types_follow_schema(t: dict[str, pa.Table]) -> None:
    for name, ent in SCHEMA["entities"].items():
        key = ent["key"]
        expected = {key["name"]: _expected_type(key["type"])}
        expected |= {a: _expected_type(s) for a, s in ent["attributes"].items()}
        assert t[name].schema.names == list(expected), name
        for col, typ in expected.items():
            assert t[name].schema.field(col).type == typ, (name, col)
    for name, ev in SCHEMA["events"].items():
        expected = {ev["time"]: pa.timestamp("us", tz="UTC")}
        expected |= {r["column"]: pa.int64() for r in ev["references"].values()}
        if "product" in ev["references"]:
            expected["sku"] = pa.string()
        expected |= {f: _expected_type(s) for f, s in ev["fields"].items()}
        assert t[name].schema.names == list(expected), name
        for col, typ in expected.items():
            assert t[name].schema.field(col).type == typ, (name, col)
    for section in ("entities", "events"):
        for name, decl in SCHEMA[section].items():
            fields = decl.get("attributes") or decl.get("fields")
            for col, spec in fields.items():
                if isinstance(spec, dict) and spec["type"] == "enum":
                    values = set(pc.unique(t[name].column(col)).drop_null().to_pylist())
                    assert values <= set(spec["values"]), (name, col, values)
                if isinstance(spec, dict) and spec.get("required"):
                    assert t[name].column(col).null_count == 0, (name, col)


def test_sizes_and_entities(t: dict[str, pa.Table]) -> None:
    assert t["users"].num_rows == USERS
    assert t["stores"].num_rows == 20
    assert t["products"].num_rows == 200
    assert 6 * 20 <= t["employees"].num_rows <= 10 * 20
    users = t["users"]
    assert 0.01 < users.column("email").null_count / USERS < 0.06
    emails = pc.drop_null(users.column("email"))
    assert len(pc.unique(emails)) == len(emails)
    assert 0.06 < users.column("home_store_id").null_count / USERS < 0.14
    assert _isin(users.column("home_store_id"), t["stores"].column("id"))
    by = _np(users, "birth_year")
    by = by[~np.isnan(by)] if by.dtype.kind == "f" else by
    assert by.min() >= 1950 and by.max() <= 2008
    stores, emp = t["stores"], t["employees"]
    role = dict(zip(emp.column("id").to_pylist(), emp.column("role").to_pylist(), strict=True))
    home = dict(zip(emp.column("id").to_pylist(), emp.column("store_id").to_pylist(), strict=True))
    for sid, mid in zip(stores.column("id").to_pylist(), stores.column("manager_id").to_pylist(),
                        strict=True):  # fmt: skip
        assert role[mid] == "manager" and home[mid] == sid
    assert sorted(role.values()).count("manager") == stores.num_rows
    assert all(s.startswith("SKU-") and len(s) == 10 for s in t["products"]["sku"].to_pylist())


def test_referential_integrity(t: dict[str, pa.Table]) -> None:
    users, stores, products = t["users"]["id"], t["stores"]["id"], t["products"]["sku"]
    emp = t["employees"]
    for name in SCHEMA["events"]:
        ev = t[name]
        if "user_id" in ev.schema.names:
            assert ev["user_id"].null_count == 0 and _isin(ev["user_id"], users), name
        if "store_id" in ev.schema.names:
            assert _isin(ev["store_id"], stores), name
        if "sku" in ev.schema.names:
            assert ev["sku"].null_count == 0 and _isin(ev["sku"], products), name
    p = t["purchase"]
    assert len(pc.unique(p["order_id"])) == p.num_rows
    assert _isin(p["cashier_id"], emp["id"])
    in_store = pc.equal(p["channel"], "store")
    assert pc.all(pc.equal(pc.is_valid(p["cashier_id"]), in_store)).as_py()
    assert p.filter(in_store)["store_id"].null_count == 0
    emp_role = dict(zip(emp["id"].to_pylist(), emp["role"].to_pylist(), strict=True))
    emp_store = dict(zip(emp["id"].to_pylist(), emp["store_id"].to_pylist(), strict=True))
    shop = p.filter(in_store)
    for cid, sid in zip(shop["cashier_id"].to_pylist(), shop["store_id"].to_pylist(), strict=True):
        assert emp_role[cid] == "cashier" and emp_store[cid] == sid
    sh = t["shift"]
    assert [emp_store[e] for e in sh["employee_id"].to_pylist()] == sh["store_id"].to_pylist()
    # coupon uses redeem a coupon issued earlier to the same user, on a real order
    iss = t["coupon_issue"]
    issue = dict(
        zip(iss["coupon_id"].to_pylist(), zip(_np(iss, "user_id"), _np(iss, "ts"), strict=True),
            strict=True)
    )  # fmt: skip
    orders = set(p["order_id"].to_pylist())
    use = t["coupon_use"]
    assert use.num_rows > 0
    for c, u, ts, o in zip(use["coupon_id"].to_pylist(), _np(use, "user_id"), _np(use, "ts"),
                           use["order_id"].to_pylist(), strict=True):  # fmt: skip
        assert issue[c][0] == u and issue[c][1] < ts and o in orders
    assert len(pc.unique(t["coupon_issue"]["coupon_id"])) == t["coupon_issue"].num_rows


def test_amounts_and_quantities(t: dict[str, pa.Table]) -> None:
    p, prod = t["purchase"], t["products"]
    price = dict(zip(prod["sku"].to_pylist(), prod["price"].to_pylist(), strict=True))
    qty = p["quantity"].to_pylist()
    assert min(qty) >= 1 and max(qty) <= 5
    exact = 0
    for sku, q, amount in zip(p["sku"].to_pylist(), qty, p["amount"].to_pylist(), strict=True):
        gross = price[sku] * q
        assert Decimal(0) < amount <= gross
        exact += amount == gross
    assert 0.8 < exact / p.num_rows < 0.97  # occasionally discounted
    hours = t["shift"]["hours"].to_numpy()
    assert hours.min() >= 4 and hours.max() <= 10


def test_event_times_in_window_and_sorted(files: list[DemoFile]) -> None:
    for f in files:
        if f.kind == "events" and not f.dirty:
            ts = pq.read_table(f.path).column("ts").cast(pa.int64()).to_numpy()
            assert ts.min() >= START_US and ts.max() < END_US, f.path.name
            assert np.all(np.diff(ts) >= 0), f.path.name


def test_segments(t: dict[str, pa.Table]) -> None:
    p = t["purchase"]
    uid, ts = _np(p, "user_id"), p["ts"].cast(pa.int64()).to_numpy()
    n_buy = np.bincount(uid, minlength=USERS + 1)[1:]
    never = n_buy == 0
    assert 0.21 < never.mean() < 0.29
    last = np.full(USERS + 1, -1, dtype=np.int64)
    np.maximum.at(last, uid, ts)
    lapsed = (last[1:] >= 0) & (last[1:] < END_US - 60 * 86_400_000_000)
    assert 0.25 < lapsed.mean() < 0.65  # the lapsed segment plus casual buyers gone quiet
    quarter = (ts - START_US) // (DAYS * 86_400_000_000 // 4)
    seen = np.zeros((USERS + 1, 5), dtype=bool)
    seen[uid, quarter] = True
    steady = seen[1:, :4].all(axis=1)
    assert 0.08 < steady.mean() < 0.2  # loyal buyers purchase in every quarter
    # never-buyers still browse
    browsed = np.zeros(USERS + 1, dtype=bool)
    browsed[_np(t["view"], "user_id")] = True
    browsed[_np(t["visit"], "user_id")] = True
    assert browsed[1:][never].mean() > 0.5
    # heavy tail: the top 10% of buyers make a large share of the purchases
    top = np.sort(n_buy)[::-1][: USERS // 10].sum() / n_buy.sum()
    assert top > 0.3


def test_volumes_funnel_and_seasonality(t: dict[str, pa.Table]) -> None:
    count = {name: t[name].num_rows for name in SCHEMA["events"]}
    per_user = sum(v for k, v in count.items() if k != "shift") / USERS
    assert 8.5 < per_user < 11  # shifts come on top (~1 per user at 1M users)
    assert 2.0 < count["purchase"] / USERS < 3.0
    online = t["purchase"].filter(pc.not_equal(t["purchase"]["channel"], "store")).num_rows
    assert count["view"] > 2 * count["add_to_cart"] > 2 * online * 0.5
    assert count["add_to_cart"] > online
    assert 0 < count["coupon_use"] < count["coupon_issue"]
    weekday = pc.day_of_week(t["purchase"]["ts"]).to_numpy()  # Monday = 0
    per_day = np.bincount(weekday, minlength=7)
    assert per_day[5:].min() > 1.2 * per_day[:4].max()
    shifts_per_week = count["shift"] / t["employees"].num_rows / (DAYS / 7)
    assert 3.5 < shifts_per_week < 5.2


def test_determinism(tmp_path: Path, files: list[DemoFile]) -> None:
    a = generate_demo_files(tmp_path / "a", users=USERS, seed=7)
    assert [(f.kind, f.target, f.path.name, f.rows, f.dirty) for f in a] == [
        (f.kind, f.target, f.path.name, f.rows, f.dirty) for f in files
    ]
    for x, y in zip(a, files, strict=True):
        assert x.path.read_bytes() == y.path.read_bytes(), x.path.name
    b = generate_demo_files(tmp_path / "b", users=USERS, seed=8)
    tb, ta = _tables(b), _tables(a)
    assert not tb["purchase"].equals(ta["purchase"])
    assert not tb["users"].equals(ta["users"])


def test_chunked_run_splits_files_and_cleans_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(demo, "CHUNK_USERS", 1000)
    monkeypatch.setattr(demo, "MAX_FILE_ROWS", 3000)
    seen: list[tuple[str, int]] = []
    out = generate_demo_files(
        tmp_path, users=2500, seed=1, progress=lambda n, r: seen.append((n, r))
    )
    assert sorted(seen) == sorted((f.path.name, f.rows) for f in out)
    purchase = [f for f in out if f.target == "purchase" and not f.dirty]
    assert [f.path.name for f in purchase] == [f"purchase-{i:03d}.parquet" for i in range(3)]
    views = [f for f in out if f.target == "view"]
    assert len(views) > 3 and all(f.rows <= 3000 for f in views)
    tables = _tables(out)
    assert len(pc.unique(tables["purchase"]["order_id"])) == tables["purchase"].num_rows
    assert len(pc.unique(tables["coupon_issue"]["coupon_id"])) == tables["coupon_issue"].num_rows
    monkeypatch.undo()
    small = generate_demo_files(tmp_path, users=300, seed=1)
    parquet = sorted(p.name for p in tmp_path.glob("*.parquet"))
    assert parquet == sorted(f.path.name for f in small if not f.dirty)


def test_dirty_files(files: list[DemoFile]) -> None:
    purchase = files[-1].path.read_bytes().splitlines()
    header, rows = purchase[0].decode().split(","), purchase[1:]
    assert header == ["ts", "user_id", "store_id", "sku", "cashier_id", "order_id", "amount",
                      "quantity", "channel"]  # fmt: skip
    assert len(rows) == files[-1].rows == 20

    def good_purchase(raw: bytes) -> bool:
        try:
            r = dict(zip(header, raw.decode("utf-8").split(","), strict=True))
            ts = datetime.strptime(r["ts"], "%Y-%m-%dT%H:%M:%SZ")
            int(r["quantity"])
            Decimal(r["amount"])
            return START_US <= int(ts.replace(tzinfo=UTC).timestamp() * 1e6) < END_US and r[
                "channel"
            ] in {"store", "app", "web"}
        except (ValueError, ArithmeticError):
            return False

    verdicts = [good_purchase(r) for r in rows]
    assert verdicts.count(False) == 6 and verdicts.count(True) == 14
    with pytest.raises(UnicodeDecodeError):
        b"\n".join(rows).decode("utf-8")

    users = files[4].path.read_text().splitlines()
    uh, urows = users[0].split(","), [dict(zip(users[0].split(","), r.split(","), strict=True))
                                      for r in users[1:]]  # fmt: skip
    assert uh[0] == "id" and len(urows) == files[4].rows == 10

    def good_user(r: dict[str, str]) -> bool:
        try:
            int(r["birth_year"])
            date.fromisoformat(r["signup_date"])
        except ValueError:
            return False
        return r["gender"] in {"female", "male", "other"}

    assert [good_user(r) for r in urows].count(False) == 3
    assert min(int(r["id"]) for r in urows) > USERS  # new users, no key clash


def test_ten_thousand_users_event_volume(tmp_path: Path) -> None:
    out = generate_demo_files(tmp_path, users=10_000)
    events = sum(f.rows for f in out if f.kind == "events" and not f.dirty)
    assert 10 * 10_000 <= events <= 14 * 10_000
