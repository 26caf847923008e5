"""Tags: values equal their CASE, read across paths, history AS OF; RFM with known answers on a
hand-made dataset; a store-level RFM; clusters deterministic and right on planted clusters."""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from eql.diagnostics import EqlError
from runtime import Session
from runtime.audiences import rfm
from runtime.lookup import Audiences
from storage import ChangeSet, Store
from tests.audiences.helpers import NOW, run
from tests.helpers_store import RETAIL_SCHEMA

TIER = (
    "CASE WHEN sum(purchase.amount DURING LAST 90 DAYS) >= 2000 THEN 'high' "
    "WHEN sum(purchase.amount DURING LAST 90 DAYS) >= 300 THEN 'mid' ELSE 'low' END"
)


def test_tag_values_equal_their_expression(session: Session) -> None:
    run(session, f"DEFINE TAG value_tier ON users AS {TIER}")
    run(session, "REFRESH TAG value_tier")
    got = session.query("FIND users RETURN id, value_tier", None, NOW).sort_by("id")
    want = session.query(f"FIND users RETURN id, {TIER} AS value_tier", None, NOW).sort_by("id")
    assert got.to_pylist() == want.to_pylist()
    n = session.query("FIND users WHERE value_tier = 'high' RETURN count() AS n", None, NOW)
    assert n.column("n")[0].as_py() == sum(r["value_tier"] == "high" for r in want.to_pylist())


def test_tag_across_a_path_and_on_stores(session: Session) -> None:
    run(
        session,
        "DEFINE TAG store_tier ON stores AS CASE WHEN area_sqm >= 1000 THEN 'big' ELSE 'small' END",
    )
    run(session, "REFRESH TAG store_tier")
    got = session.query("FIND users RETURN id, home_store.store_tier AS t", None, NOW)
    want = session.query(
        "FIND users RETURN id, CASE WHEN home_store.area_sqm >= 1000 THEN 'big' "
        "WHEN home_store.id IS NOT NULL THEN 'small' END AS t",
        None,
        NOW,
    )
    assert got.sort_by("id").to_pylist() == want.sort_by("id").to_pylist()
    with pytest.raises(EqlError) as info:
        session.query("FIND users WHERE store_tier = 'big'", None, NOW)
    assert info.value.codes[0] == "E202"


def test_tag_history_as_of(session: Session) -> None:
    run(session, "DEFINE TAG active30 ON users AS DID purchase DURING LAST 30 DAYS")
    t1, t2 = NOW - dt.timedelta(days=60), NOW
    run(session, "REFRESH TAG active30", t1)
    run(session, "REFRESH TAG active30", t2)
    q = "FIND users RETURN id, active30 AS now, (active30 AS OF '{}') AS earlier"
    for at, when in ((t1, "2026-09-15"), (t2, "2026-11-01")):
        got = session.query(q.format(when), None, NOW).sort_by("id")
        want = session.query(
            "FIND users RETURN id, DID purchase DURING LAST 30 DAYS AS x", None, at
        ).sort_by("id")
        assert got.column("earlier").to_pylist() == want.column("x").to_pylist()
    latest = session.query(
        "FIND users RETURN id, DID purchase DURING LAST 30 DAYS AS x", None, t2
    ).sort_by("id")
    got = session.query(q.format("2026-09-15"), None, NOW).sort_by("id")
    assert got.column("now").to_pylist() == latest.column("x").to_pylist()
    assert got.column("now").to_pylist() != got.column("earlier").to_pylist()
    with pytest.raises(EqlError) as info:
        session.query("FIND users RETURN (active30 AS OF '2020-01-01') AS x", None, NOW)
    assert info.value.codes[0] == "E228"
    d = run(session, "DESCRIBE TAG active30")
    assert d.column("version").to_pylist() == [1, 2]


# ---- RFM on a hand-made dataset -----------------------------------------------------------------
@pytest.fixture(scope="module")
def rfm_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    """Users 1..10: user i buys i times, 10*i each, the last time 11-i days before NOW; user 11
    never buys; user 12 bought only 400 days ago (outside the window)."""
    root: Path = tmp_path_factory.mktemp("rfm")
    store = Store.create(root / "s", RETAIL_SCHEMA.read_text(encoding="utf-8"), "retail.yaml")
    change = ChangeSet()
    change.upsert("users", pa.table({"id": list(range(1, 13))}))
    ts, uid, amount = [], [], []
    for i in range(1, 11):
        for j in range(i):
            ts.append(NOW - dt.timedelta(days=11 - i + 3 * j, hours=1))
            uid.append(i)
            amount.append(decimal.Decimal(10 * i))
    ts.append(NOW - dt.timedelta(days=400))
    uid.append(12)
    amount.append(decimal.Decimal(5))
    change.append(
        "purchase",
        pa.table(
            {
                "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
                "user_id": uid,
                "amount": pa.array(amount, pa.decimal128(12, 2)),
                "quantity": [1] * len(ts),
            }
        ),
    )
    store.commit(change)
    yield Session(store)
    store.close()


def test_rfm_known_answers(rfm_engine: Session) -> None:
    run(rfm_engine, "DEFINE TAG rfm ON users AS rfm(purchase, amount, DURING LAST 365 DAYS)")
    run(rfm_engine, "REFRESH TAG rfm")
    rows = rfm_engine.query("FIND users RETURN id, rfm, rfm_r, rfm_f, rfm_m", None, NOW)
    got = {r["id"]: (r["rfm"], r["rfm_r"], r["rfm_f"], r["rfm_m"]) for r in rows.to_pylist()}
    score = {1: 1, 2: 1, 3: 2, 4: 2, 5: 3, 6: 3, 7: 4, 8: 4, 9: 5, 10: 5}
    cls = {1: "lost", 2: "hibernating", 3: "need attention", 4: "champions", 5: "champions"}
    for i in range(1, 11):
        s = score[i]
        assert got[i] == (cls[s], s, s, s), i
    assert got[11] == ("inactive", None, None, None)
    assert got[12] == ("inactive", None, None, None)


def test_rfm_quintiles_and_classes() -> None:
    q = rfm.quintile(pa.array([1, 1, 2, 3, 4]), higher_is_better=True).tolist()
    assert q == [1, 1, 3, 4, 5]  # ties share the lower score
    assert rfm.quintile(pa.array([1, 1, 2, 3, 4]), higher_is_better=False).tolist() == [
        4,
        4,
        3,
        2,
        1,
    ]
    cases = {
        (5, 5, 5): "champions",
        (3, 5, 1): "loyal",
        (5, 1, 5): "new",
        (4, 3, 2): "potential",
        (3, 2, 2): "need attention",
        (2, 5, 1): "at risk",
        (1, 1, 4): "at risk",
        (2, 3, 3): "hibernating",
        (1, 3, 3): "lost",
    }
    r, f, m = (np.array([k[i] for k in cases]) for i in range(3))
    assert rfm.classify(r, f, m).tolist() == list(cases.values())


def test_store_level_rfm(session: Session) -> None:
    run(session, "DEFINE TAG store_rfm ON stores AS rfm(purchase, amount, DURING LAST 90 DAYS)")
    run(session, "REFRESH TAG store_rfm")
    rows = session.query(
        "FIND stores RETURN id, store_rfm, store_rfm_r AS r, store_rfm_f AS f, "
        "store_rfm_m AS m, sum(purchase.amount DURING LAST 90 DAYS) AS sales",
        None,
        NOW,
    ).to_pylist()
    assert {r["store_rfm"] for r in rows} <= {c for c, _ in rfm.CLASSES}
    top = max(rows, key=lambda r: r["sales"])
    assert top["m"] == 5
    assert all(1 <= r[k] <= 5 for r in rows for k in "rfm")


# ---- clusters -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    """Three planted groups of 60 users in (birth_year, home_store_id)."""
    root: Path = tmp_path_factory.mktemp("clusters")
    store = Store.create(root / "s", RETAIL_SCHEMA.read_text(encoding="utf-8"), "retail.yaml")
    rng = np.random.default_rng(1)
    centres = [(1950, 2), (1980, 30), (2005, 12)]
    ids, years, stores_ = [], [], []
    for g, (y, s) in enumerate(centres):
        for j in range(60):
            ids.append(g * 100 + j)
            years.append(int(y + rng.integers(-3, 4)))
            stores_.append(int(s + rng.integers(-2, 3)))
    change = ChangeSet()
    change.upsert("users", pa.table({"id": ids, "birth_year": years, "home_store_id": stores_}))
    store.commit(change)
    yield Session(store)
    store.close()


def test_clusters_planted_and_deterministic(planted: Session) -> None:
    text = (
        "DEFINE CLUSTERS kind ON users K 3 SEED 11 FEATURES (year = birth_year, "
        "store = home_store_id)"
    )
    run(planted, text)
    run(planted, "REFRESH CLUSTERS kind")
    first = planted.query("FIND users RETURN id, kind", None, NOW).sort_by("id").to_pylist()
    by_group: dict[int, set[int]] = {}
    for r in first:
        by_group.setdefault(r["id"] // 100, set()).add(r["kind"])
    assert all(len(v) == 1 for v in by_group.values())
    assert len({next(iter(v)) for v in by_group.values()}) == 3
    d = run(planted, "DESCRIBE CLUSTERS kind").to_pylist()
    assert [r["size"] for r in d] == [60, 60, 60]
    centres = sorted((r["year"], r["store"]) for r in d)  # in original units
    for (y, s), (py, ps) in zip(centres, [(1950, 2), (1980, 30), (2005, 12)], strict=True):
        assert abs(y - py) < 1.5 and abs(s - ps) < 1.5
    run(planted, "REFRESH CLUSTERS kind")
    again = planted.query("FIND users RETURN id, kind", None, NOW).sort_by("id").to_pylist()
    assert again == first
    assert Audiences(planted.store).tags_of("users", 0)["kind"] == first[0]["kind"]
    with pytest.raises(EqlError) as info:
        run(planted, "DEFINE CLUSTERS bad ON users K 1 SEED 1 FEATURES (a = birth_year)")
    assert info.value.codes[0] == "E231"
    with pytest.raises(EqlError) as info:
        run(planted, "DEFINE CLUSTERS bad ON users K 2 SEED 1 FEATURES (a = name)")
    assert info.value.codes[0] == "E231"
