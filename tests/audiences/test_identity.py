"""Names and identity of definitions through EQL: the name rule at the door (E233), one name per
kind regardless of case, no stale members or values after DROP and DEFINE again (a new
generation, new tables, new lookup structures), a query whose segment is dropped under it, and a
DEFINE with its first refresh as one commit."""

from __future__ import annotations

import pytest

from eql.audiences import define as DF
from eql.diagnostics import EqlError
from eql.engine import Engine
from eql.lookup import Audiences
from eql.syntax import ast as A
from eql.syntax import parse
from tests.audiences.helpers import NOW, run


def _count(engine: Engine, where: str) -> int:
    return int(
        engine.query(f"FIND users WHERE {where} RETURN count() AS n", None, NOW)[0][0].as_py()
    )


@pytest.mark.parametrize(
    "name",
    [
        "`victim\u0000evil`",
        "`a b`",
        "`line\nbreak`",
        "`\u202eevil`",  # a bidi override
        "`zero\u200bwidth`",
        "`" + "x" * 65 + "`",
        "`1st`",
        "`e\u0301`",  # not NFC: é as e + combining accent
        "`tab\t`",
    ],
)
def test_names_follow_the_rule(engine: Engine, name: str) -> None:
    for text in (
        f"DEFINE SEGMENT {name} ON users WHERE id < 10",
        f"DEFINE TAG {name} ON users AS 1",
        f"DEFINE CLUSTERS {name} ON users K 2 SEED 1 FEATURES (a = count(purchase))",
    ):
        with pytest.raises(EqlError) as info:
            run(engine, text)
        (d,) = info.value.diagnostics
        assert d.code == "E233" and d.span is not None and d.helps
        assert text[d.span.start : d.span.end] == name  # it points at the name
        assert "\x00" not in d.message and "\n" not in d.message  # shown escaped
    assert not [n for n in engine.audiences.names("SEGMENT") if not n.isidentifier()]


def test_names_of_any_script(engine: Engine) -> None:
    run(engine, "DEFINE SEGMENT `客户_早` ON users WHERE id < 10")
    run(engine, "REFRESH SEGMENT `客户_早`")
    assert _count(engine, "in segment `客户_早`") == 9
    run(engine, "DROP SEGMENT `客户_早`")


def test_one_name_per_kind_regardless_of_case(engine: Engine) -> None:
    run(engine, "DEFINE SEGMENT vip ON users WHERE id < 10")
    with pytest.raises(EqlError) as info:  # the same name, on another entity
        run(engine, "DEFINE SEGMENT VIP ON stores WHERE id < 3")
    assert info.value.codes == ("E229",)
    out = run(engine, "DEFINE SEGMENT Vip ON users WHERE id < 20")  # a new version of `vip`
    assert out.column("name").to_pylist() == ["vip"] and out.column("definition")[0].as_py() == 2
    assert [n for n in engine.audiences.names("SEGMENT") if n.lower() == "vip"] == ["vip"]
    run(engine, "REFRESH SEGMENT VIP")
    assert _count(engine, "in segment vIp") == 19
    shown = run(engine, "DESCRIBE SEGMENT VIP").column("text").to_pylist()
    assert shown == ["DEFINE SEGMENT Vip ON users WHERE id < 20"]
    run(engine, "DEFINE TAG `ßig` ON users AS 1")
    with pytest.raises(EqlError) as info:  # tags and clusters share names; ß folds to ss
        run(engine, "DEFINE CLUSTERS SSIG ON users K 2 SEED 1 FEATURES (a = count(purchase))")
    assert info.value.codes == ("E229",)
    run(engine, "DROP SEGMENT VIP")
    run(engine, "DROP TAG ssig")
    assert engine.audiences.definition("SEGMENT", "vip") is None
    assert engine.audiences.definition("TAG", "ßig") is None


def test_no_stale_members_after_drop_and_define_again(engine: Engine) -> None:
    aud = Audiences(engine.store)
    run(engine, "DEFINE SEGMENT cachetest ON users WHERE id < 100")
    run(engine, "REFRESH SEGMENT cachetest")
    assert _count(engine, "in segment cachetest") == 99
    aud.reload()
    assert aud.is_member("cachetest", 50) and not aud.is_member("cachetest", 4000)
    run(engine, "DROP SEGMENT cachetest")
    run(engine, "DEFINE SEGMENT cachetest ON users WHERE id < 5000")
    run(engine, "REFRESH SEGMENT cachetest")
    expected = _count(engine, "id < 5000")
    assert _count(engine, "in segment cachetest") == expected  # the same engine: not 99
    aud.reload()
    assert aud.is_member("cachetest", 4000) == (4000 in _ids(engine, "id < 5000"))
    assert aud.size("cachetest") == expected
    run(engine, "DROP SEGMENT cachetest")


def _ids(engine: Engine, where: str) -> set[int]:
    rows = engine.query(f"FIND users WHERE {where} RETURN id", None, NOW)
    return set(rows.column("id").to_pylist())


def test_no_stale_tag_values_after_drop_and_define_again(engine: Engine) -> None:
    aud = Audiences(engine.store)
    run(engine, "DEFINE TAG stale ON users AS 'old'")
    run(engine, "REFRESH TAG stale")
    assert _count(engine, "stale = 'old'") == engine.store.count("users")
    aud.reload()
    assert aud.tags_of("users", 1)["stale"] == "old"
    run(engine, "DROP TAG stale")
    run(engine, "DEFINE TAG stale ON users AS 'new'")
    run(engine, "REFRESH TAG stale")
    assert _count(engine, "stale = 'new'") == engine.store.count("users")
    aud.reload()
    assert aud.tags_of("users", 1)["stale"] == "new"
    run(engine, "DROP TAG stale")


def test_a_segment_dropped_under_a_query_is_an_error_not_empty(engine: Engine) -> None:
    run(engine, "DEFINE SEGMENT racing ON users WHERE id < 100")
    run(engine, "REFRESH SEGMENT racing")
    compiled = engine.compile("FIND users WHERE in segment racing RETURN count() AS n", None, NOW)
    run(engine, "DROP SEGMENT racing")
    with pytest.raises(EqlError) as info:
        engine.run(compiled)
    assert info.value.codes == ("E225",)


def test_define_and_refresh_commit_together(engine: Engine) -> None:
    stmt = parse("DEFINE SEGMENT together ON users WHERE id < 30")
    assert isinstance(stmt, A.DefineSegment)
    before = engine.audiences.counter()
    d, facts = DF.store_definition(
        engine, stmt, "DEFINE SEGMENT together ON users WHERE id < 30", NOW, NOW
    )
    assert engine.audiences.counter() == before + 1  # one commit
    assert facts is not None and facts["size"] == 29 and d.version == 1
    # a definition whose refresh fails is not stored at all
    bad = "DEFINE CLUSTERS lonely ON stores K 64 SEED 1 FEATURES (a = count(purchase))"
    stmt2 = parse(bad)
    assert isinstance(stmt2, A.DefineClusters)
    with pytest.raises(EqlError):
        DF.store_definition(engine, stmt2, bad, NOW, NOW)
    assert engine.audiences.definition("CLUSTERS", "lonely") is None
    assert engine.audiences.counter() == before + 1
    run(engine, "DROP SEGMENT together")
