"""`eql.connect(url, key=...)` against a real server (uvicorn on loopback): the same answers as a
store connection over the same data (rows and Arrow types, explain, schema, segments), errors
rebuilt from the server's JSON with the same codes and positions, the Arrow stream read batch by
batch (an error in its trailer after the first batch), and the server's row limit said."""

from __future__ import annotations

import datetime as dt
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import eql
from tests.client.conftest import Served, serve
from tests.eql.helpers import assert_same_rows, duck_rows, table_rows
from tests.server.conftest import free_port

NOW = "2026-11-01"
QUERIES = [
    ("FIND users RETURN id, name, gender, signup_date, is_member ORDER BY id", {}),
    (
        "FIND users WHERE home_store.city = $city RETURN id, "
        "sum(purchase.amount DURING LAST 30 DAYS) AS spend, count(visit) AS visits ORDER BY id",
        {"city": "Shanghai"},
    ),
    (
        "FIND EVENTS purchase DURING LAST 30 DAYS GROUP BY product.category "
        "RETURN product.category, sum(amount) AS sales, count() AS n ORDER BY sales DESC",
        {},
    ),
    ("FIND EVENTS visit RETURN ts, user.id AS uid, duration_min ORDER BY ts, uid LIMIT 90", {}),
]


@pytest.fixture(scope="module")
def remote(server: Served) -> Iterator[Any]:
    with eql.connect(server.url, key=server.define_key) as db:
        yield db


@pytest.fixture(scope="module")
def local(server: Served) -> Iterator[Any]:
    """A store connection alongside the server, over the same data (read-only: the server
    holds the store)."""
    with eql.connect(server.data_dir, read_only=True) as db:
        yield db


def plain(table: pa.Table) -> pa.Table:
    """Enum (dictionary) columns as their text: dictionaries may be cut differently per batch."""
    columns = [
        pc.cast(c, c.type.value_type) if pa.types.is_dictionary(c.type) else c
        for c in table.columns
    ]
    return pa.Table.from_arrays(columns, names=table.column_names).combine_chunks()


@pytest.mark.parametrize(("text", "params"), QUERIES, ids=range(len(QUERIES)))
def test_the_same_rows_and_types_as_a_store_connection(
    remote: Any, local: Any, text: str, params: dict[str, Any]
) -> None:
    there = remote.query(text, params=params, as_of=NOW, limit=1000)
    here = local.query(text, params=params, as_of=NOW)
    a, b = there.to_arrow(), here.to_arrow()
    assert a.num_rows == b.num_rows > 0
    assert a.schema.equals(b.schema)  # every Arrow type, dictionaries included
    assert plain(a).equals(plain(b))
    assert there.schema == here.schema  # the server sends each EQL type (`eql.type`), enums too
    assert there.truncated is False


def test_rows_match_duckdb(remote: Any, duck: Any) -> None:
    res = remote.query("FIND stores RETURN id, city, area_sqm ORDER BY id", limit=1000)
    expected = duck_rows(duck, "SELECT id, city, area_sqm FROM stores ORDER BY id")
    assert_same_rows(table_rows(res.to_arrow()), expected, ordered=True)
    assert list(res.to_pandas()["id"]) == [r[0] for r in expected]
    assert res.to_polars()["city"].to_list() == [r[1] for r in expected]


def test_the_server_row_limit_is_said(remote: Any, local: Any) -> None:
    text = "FIND EVENTS purchase RETURN order_id, amount"
    total = len(local.query(text, as_of=NOW))
    assert total > 100
    cut = remote.query(text, as_of=NOW)
    with pytest.warns(eql.client.Truncated, match="limit=N"):
        table = cut.to_arrow()
    assert table.num_rows == 100 and cut.truncated is True  # the server's default_rows
    asked = remote.query(text, as_of=NOW, limit=total)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(asked) == total and asked.truncated is False
    few = remote.query(text, as_of=NOW, limit=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a cut the caller asked for does not warn
        assert len(few) == 3 and few.truncated is True


def test_errors_are_rebuilt_with_codes_and_positions(remote: Any, local: Any) -> None:
    text = "FIND users\nWHERE nme = 'x' AND count(purchase) > 'a' RETURN id"
    with pytest.raises(eql.EqlError) as here:
        local.query(text)
    res = remote.query(text)  # nothing is sent until it is read
    with pytest.raises(eql.EqlError) as there:
        res.to_arrow()
    a, b = there.value, here.value
    assert a.diagnostics == b.diagnostics and a.source == b.source == text
    assert (
        (a.code, a.position, a.hint)
        == (b.code, b.position, b.hint)
        == (
            "E202",
            (2, 7),
            "did you mean `name`?",
        )
    )
    assert a.status == 400 and b.status is None
    assert str(a) == str(b)


def test_the_servers_own_errors(server: Served) -> None:
    with eql.connect(server.url, key="eql_" + "0" * 12 + "_" + "x" * 43) as bad:
        with pytest.raises(eql.EqlError) as info:
            bad.query("FIND users RETURN id").to_arrow()
        assert (info.value.code, info.value.status) == ("unauthorized", 401)
        assert "key" in str(info.value.hint)
    with eql.connect(server.url, key=server.query_key) as reader:
        with pytest.raises(eql.EqlError) as info:
            reader.define("DEFINE SEGMENT nope ON users WHERE is_member")
        assert (info.value.code, info.value.status) == ("forbidden", 403)
        with pytest.raises(eql.EqlError) as info:
            reader.query("FIND users RETURN id", limit=10**9).to_arrow()
        assert info.value.code == "limit_too_large"
    with eql.connect(server.url, key=server.query_key) as reader:
        odd = reader.query("FIND users WHERE id = $x RETURN id", params={"x": object()})
        with pytest.raises(eql.EqlError) as info:
            odd.to_arrow()
        assert info.value.code == "invalid_request"
    port = free_port()  # nobody listens there
    with pytest.raises(eql.EqlError) as info:
        eql.connect(f"http://127.0.0.1:{port}", key=server.query_key)
    assert info.value.code == "unreachable"
    with pytest.raises(ValueError, match="scopes"):
        eql.connect(server.url, key=server.query_key, read_only=True)


def test_explain_and_schema_are_the_stores(remote: Any, local: Any) -> None:
    text = "FIND users WHERE NOT DID purchase DURING LAST 30 DAYS RETURN id"
    for stage in ("ast", "bound", "plan"):
        assert remote.explain(text, as_of=NOW, stage=stage) == local.explain(
            text, as_of=NOW, stage=stage
        )
    assert remote.query(text, as_of=NOW).explain("plan") == local.explain(
        text, as_of=NOW, stage="plan"
    )
    assert remote.schema() == local.schema()


def test_batches_come_as_the_stream_arrives(store_dir: Path, tmp_path: Path) -> None:
    """With a result byte limit past the first batch, that batch arrives, then the error that
    ended the stream (its trailer): the rows were not read whole before the first was given."""
    data_dir = Path(shutil.copytree(store_dir, tmp_path / "store"))
    with (
        serve(data_dir, max_result_bytes=1024, batch_size=64) as small,
        eql.connect(small.url, key=small.query_key) as db,
    ):
        batches = db.query("FIND EVENTS purchase RETURN quantity", limit=1000).to_batches()
        first = next(batches)
        assert 0 < first.num_rows <= 64 and first.schema.names == ["quantity"]
        with pytest.raises(eql.EqlError) as info:
            for _ in batches:
                pass
        assert info.value.code == "result_too_large" and info.value.status is None
        assert "1,024 bytes" in info.value.message


def test_segments_over_http_as_in_the_store(server: Served, remote: Any) -> None:
    seg = remote.define(
        "DEFINE SEGMENT spenders ON users WHERE sum(purchase.amount) > 800",
        refresh=True,
        as_of="2026-09-15",
    )
    assert isinstance(seg, eql.client.Segment)
    assert seg.refresh(as_of=NOW)["version"] == 2
    remote.define("DEFINE SEGMENT fresh ON users WHERE is_member")  # never refreshed
    with eql.connect(server.data_dir, read_only=True) as local:  # opened after the writes
        here = local.segment("spenders")
        for version in (1, 2, None):
            assert seg.members(version).equals(here.members(version))
        assert seg.members().num_rows > seg.members(1).num_rows > 0
        for a, b in ((1, 2), (2, 1), (2, 2)):
            there, mine = seg.changes(a, b), here.changes(a, b)
            assert there.entered.equals(mine.entered) and there.exited.equals(mine.exited)
        assert seg.versions() == here.versions()
        assert seg.describe() == here.describe()
        assert remote.segments() == local.segments()
        keys = set(seg.members().column("id").to_pylist())
        member = min(keys)
        outsider = next(k for k in range(1, 10**6) if k not in keys)
        for key, expected in ((member, True), (outsider, False), (10**12, False)):
            assert seg.is_member(key) is here.is_member(key) is expected
        for call in (lambda s: s.members(7), lambda s: s.changes(0, 2)):
            with pytest.raises(eql.EqlError) as over_http:
                call(seg)
            with pytest.raises(eql.EqlError) as in_store:
                call(here)
            assert over_http.value.code == in_store.value.code == "unknown_version"
            assert over_http.value.message == in_store.value.message
        for name, code in (("fresh", "not_refreshed"), ("nothing", "unknown_segment")):
            for handle in (remote.segment(name), local.segment(name)):
                with pytest.raises(eql.EqlError) as info:
                    handle.members()
                assert info.value.code == code
            with pytest.raises(eql.EqlError) as info:
                remote.segment(name).is_member(member)
            assert info.value.code == code
        with pytest.raises(eql.EqlError) as info:
            seg.is_member(str(member))
        assert info.value.code == "invalid_key"
    seg.drop()
    with pytest.raises(eql.EqlError) as info:
        seg.members()
    assert info.value.code == "unknown_segment"


def test_tags_over_http_as_in_the_store(server: Served, remote: Any) -> None:
    tier = remote.define(
        "DEFINE TAG tier ON users AS CASE WHEN count(purchase) >= 3 THEN 'often' ELSE 'rarely' END",
        refresh=True,
        as_of=NOW,
    )
    assert isinstance(tier, eql.client.Tag)
    with eql.connect(server.data_dir, read_only=True) as local:
        assert tier.versions() == local.tag("tier").versions()
        assert tier.describe() == local.tag("tier").describe()
        assert remote.tags() == local.tags()
        text = "FIND users WHERE tier = 'often' RETURN id ORDER BY id"
        assert remote.query(text, limit=1000).to_arrow().equals(local.query(text).to_arrow())
    tier.drop()
    assert remote.tags() == []


def test_closing(server: Served) -> None:
    with eql.connect(server.url, key=server.query_key) as db:
        assert len(db.query("FIND stores RETURN id", limit=1000)) > 0
        db.refresh()  # a server answers from its latest state: nothing to reopen
        assert len(db.query("FIND stores RETURN id", limit=1000)) > 0
    with pytest.raises(eql.EqlError) as info:
        db.query("FIND stores RETURN id")
    assert info.value.code == "closed"
    with pytest.raises(eql.EqlError) as info:
        db.refresh()
    assert info.value.code == "closed"


# ---- the two modes agree on the caller's values ------------------------------------------------
def both(remote: Any, local: Any, call: Any) -> list[tuple[str, Any]]:
    """`call(db)` in each mode, read whole: ("ok", rows) or ("error", (code, message, position))."""
    out = []
    for db in (remote, local):
        try:
            out.append(("ok", call(db).to_arrow().to_pylist()))
        except eql.EqlError as e:
            out.append(("error", (e.code, e.message, e.position)))
    return out


@pytest.mark.parametrize("limit", [-1, 0, True, 2.5, "3"], ids=repr)
def test_a_limit_is_a_whole_number_of_rows_in_both_modes(
    remote: Any, local: Any, limit: Any
) -> None:
    for db in (remote, local):
        with pytest.raises(eql.EqlError) as info:
            db.query("FIND users RETURN id", limit=limit)  # refused before anything runs
        assert info.value.code == "invalid_request"
        assert info.value.message == (
            f"limit must be a whole number of rows, at least 1, not {limit!r}"
        )
    for db in (remote, local):
        assert len(db.query("FIND users RETURN id", limit=np.int64(2))) == 2


SIGNED_UP = "FIND users WHERE signup_date >= $d RETURN count() AS n"
UTC8 = dt.timezone(dt.timedelta(hours=8))


@pytest.mark.parametrize(
    "value",
    [
        dt.date(2025, 1, 1),
        dt.datetime(2025, 1, 1),
        dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
        dt.datetime(2025, 1, 1, 8, tzinfo=UTC8),  # midnight UTC
        "2025-01-01",
    ],
    ids=["date", "naive-midnight", "utc-midnight", "utc8-midnight-utc", "text"],
)
def test_a_date_parameter_reads_the_same_in_both_modes(
    remote: Any, local: Any, duck: Any, value: Any
) -> None:
    there, here = both(remote, local, lambda db: db.query(SIGNED_UP, params={"d": value}))
    expected = duck_rows(duck, "SELECT count(*) FROM users WHERE signup_date >= DATE '2025-01-01'")
    assert there == here == ("ok", [{"n": expected[0][0]}])


@pytest.mark.parametrize(
    "value",
    [dt.datetime(2025, 1, 1, 10, 30), dt.datetime(2025, 1, 1, tzinfo=UTC8)],
    ids=["time-of-day", "utc8-midnight"],
)
def test_a_timestamp_with_a_time_of_day_is_no_date_in_both_modes(
    remote: Any, local: Any, value: Any
) -> None:
    there, here = both(remote, local, lambda db: db.query(SIGNED_UP, params={"d": value}))
    assert there[0] == here[0] == "error"
    (code, message, position), (code2, message2, position2) = there[1], here[1]
    assert code == code2 == "E211" and position == position2 == (1, 33)
    assert message.startswith("parameter $d: expected a date")
    assert message2.startswith("parameter $d: expected a date")


def test_a_midnight_datetime_is_still_a_timestamp_where_one_is_used(
    remote: Any, local: Any
) -> None:
    text = "FIND EVENTS purchase WHERE ts >= $t RETURN count() AS n"
    for value in (dt.datetime(2026, 10, 1), dt.date(2026, 10, 1), dt.datetime(2026, 10, 1, 12)):
        there, here = both(remote, local, lambda db, v=value: db.query(text, params={"t": v}))
        assert there == here and there[0] == "ok", value


def test_numpy_parameters_and_keys_in_both_modes(server: Served, remote: Any, local: Any) -> None:
    text = "FIND users WHERE home_store.city = $city AND id <= $n RETURN id ORDER BY id"
    values = {"city": np.str_("Shanghai"), "n": np.int64(150)}
    there, here = both(remote, local, lambda db: db.query(text, params=values, limit=1000))
    assert there == here and there[0] == "ok" and len(there[1]) > 0
    seg = remote.define(
        "DEFINE SEGMENT np_spenders ON users WHERE sum(purchase.amount) > 800",
        refresh=True,
        as_of=NOW,
    )
    hot = remote.define(
        "DEFINE SEGMENT np_hot ON products WHERE count(purchase) >= 5", refresh=True, as_of=NOW
    )
    try:
        with eql.connect(server.data_dir, read_only=True) as fresh:  # sees the definitions
            member = seg.members().column("id")[0].as_py()
            sku = hot.members().column("sku")[0].as_py()
            for db in (remote, fresh):
                assert db.segment("np_spenders").is_member(np.int64(member)) is True
                assert db.segment("np_hot").is_member(np.str_(sku)) is True
                assert db.segment("np_spenders").members(np.int64(1)).num_rows > 0
                for name, key in (("np_spenders", np.str_("1")), ("np_hot", np.int64(1))):
                    with pytest.raises(eql.EqlError) as info:
                        db.segment(name).is_member(key)
                    assert info.value.code == "invalid_key"
            for version in ("1", True, 1.0):
                messages = set()
                for db in (remote, fresh):
                    for call in (
                        lambda s, v=version: s.members(v),
                        lambda s, v=version: s.changes(v, 1),
                    ):
                        with pytest.raises(eql.EqlError) as info:
                            call(db.segment("np_spenders"))
                        assert info.value.code == "invalid_request"
                        messages.add(info.value.message)
                assert len(messages) == 1 and "whole number" in messages.pop()
    finally:
        seg.drop()
        hot.drop()


def test_an_unknown_segment_is_said_as_a_store_connection_says_it(
    store_dir: Path, tmp_path: Path
) -> None:
    """Whatever the call, over HTTP as in the store: the message names the defined segments."""
    calls = (
        lambda s: s.members(),
        lambda s: s.members(1),
        lambda s: s.is_member(1),
        lambda s: s.changes(1, 2),
        lambda s: s.describe(),
        lambda s: s.versions(),
        lambda s: s.refresh(as_of=NOW),
        lambda s: s.drop(),
    )
    data_dir = Path(shutil.copytree(store_dir, tmp_path / "store"))
    with serve(data_dir) as own, eql.connect(own.url, key=own.define_key) as remote:
        for defined, expected in (
            ((), "segment nope is not defined (no segment is defined yet)"),
            (
                ("zz_last", "Aa_first"),
                "segment nope is not defined (defined segments: Aa_first, zz_last)",
            ),
        ):
            for name in defined:
                remote.define(f"DEFINE SEGMENT {name} ON users WHERE is_member")
            with (
                eql.connect(data_dir, read_only=True) as local,
                pytest.raises(eql.EqlError) as here,
            ):
                local.segment("nope").members()
            assert here.value.message == expected
            for call in calls:
                with pytest.raises(eql.EqlError) as there:
                    call(remote.segment("nope"))
                e = there.value
                assert (e.code, e.message, e.hint) == ("unknown_segment", expected, here.value.hint)
                assert e.status == 404


def test_a_cut_warns_at_the_callers_line(remote: Any) -> None:
    text = "FIND EVENTS purchase RETURN order_id"  # more rows than the server's default 100
    calls = {
        "len": lambda: len(remote.query(text, as_of=NOW)),
        "list": lambda: list(remote.query(text, as_of=NOW)),
        "to_arrow": lambda: remote.query(text, as_of=NOW).to_arrow(),
        "to_pandas": lambda: remote.query(text, as_of=NOW).to_pandas(),
        "repr": lambda: repr(remote.query(text, as_of=NOW)),
        "to_batches": lambda: [b for b in remote.query(text, as_of=NOW).to_batches()],
        "execute": lambda: remote.execute(text, as_of=NOW),
    }
    for name, call in calls.items():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            call()
        cuts = [w for w in caught if issubclass(w.category, eql.client.Truncated)]
        assert len(cuts) == 1, name
        assert Path(cuts[0].filename) == Path(__file__), (name, cuts[0].filename)
