"""Names and identity of definitions through EQL: the name rule at the door (E233), one name per
kind regardless of case, no stale members or values after DROP and DEFINE again (a new
generation, new tables, new lookup structures), a query whose segment is dropped under it, and a
DEFINE with its first refresh as one commit."""

from __future__ import annotations

import pytest

from eql.diagnostics import EqlError
from runtime import Query, Session, definitions
from runtime.lookup import Audiences
from tests.audiences.helpers import NOW, run


def _count(session: Session, where: str) -> int:
    return int(
        session.query(f"FIND users WHERE {where} RETURN count() AS n", None, NOW)[0][0].as_py()
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
def test_names_follow_the_rule(session: Session, name: str) -> None:
    for text in (
        f"DEFINE SEGMENT {name} ON users WHERE id < 10",
        f"DEFINE TAG {name} ON users AS 1",
        f"DEFINE CLUSTERS {name} ON users K 2 SEED 1 FEATURES (a = count(purchase))",
    ):
        with pytest.raises(EqlError) as info:
            run(session, text)
        (d,) = info.value.diagnostics
        assert d.code == "E233" and d.span is not None and d.helps
        assert text[d.span.start : d.span.end] == name  # it points at the name
        assert "\x00" not in d.message and "\n" not in d.message  # shown escaped
    assert not [n for n in session.audiences.names("SEGMENT") if not n.isidentifier()]


def test_names_of_any_script(session: Session) -> None:
    run(session, "DEFINE SEGMENT `客户_早` ON users WHERE id < 10")
    run(session, "REFRESH SEGMENT `客户_早`")
    assert _count(session, "in segment `客户_早`") == 9
    run(session, "DROP SEGMENT `客户_早`")


def test_one_name_per_kind_regardless_of_case(session: Session) -> None:
    run(session, "DEFINE SEGMENT vip ON users WHERE id < 10")
    with pytest.raises(EqlError) as info:  # the same name, on another entity
        run(session, "DEFINE SEGMENT VIP ON stores WHERE id < 3")
    assert info.value.codes == ("E229",)
    out = run(session, "DEFINE SEGMENT Vip ON users WHERE id < 20")  # a new version of `vip`
    assert out.column("name").to_pylist() == ["vip"] and out.column("definition")[0].as_py() == 2
    assert [n for n in session.audiences.names("SEGMENT") if n.lower() == "vip"] == ["vip"]
    run(session, "REFRESH SEGMENT VIP")
    assert _count(session, "in segment vIp") == 19
    shown = run(session, "DESCRIBE SEGMENT VIP").column("text").to_pylist()
    assert shown == ["DEFINE SEGMENT Vip ON users WHERE id < 20"]
    run(session, "DEFINE TAG `ßig` ON users AS 1")
    with pytest.raises(EqlError) as info:  # tags and clusters share names; ß folds to ss
        run(session, "DEFINE CLUSTERS SSIG ON users K 2 SEED 1 FEATURES (a = count(purchase))")
    assert info.value.codes == ("E229",)
    run(session, "DROP SEGMENT VIP")
    run(session, "DROP TAG ssig")
    assert session.audiences.definition("SEGMENT", "vip") is None
    assert session.audiences.definition("TAG", "ßig") is None


def test_no_stale_members_after_drop_and_define_again(session: Session) -> None:
    aud = Audiences(session.store)
    run(session, "DEFINE SEGMENT cachetest ON users WHERE id < 100")
    run(session, "REFRESH SEGMENT cachetest")
    assert _count(session, "in segment cachetest") == 99
    aud.reload()
    assert aud.is_member("cachetest", 50) and not aud.is_member("cachetest", 4000)
    run(session, "DROP SEGMENT cachetest")
    run(session, "DEFINE SEGMENT cachetest ON users WHERE id < 5000")
    run(session, "REFRESH SEGMENT cachetest")
    expected = _count(session, "id < 5000")
    assert _count(session, "in segment cachetest") == expected  # the same session: not 99
    aud.reload()
    assert aud.is_member("cachetest", 4000) == (4000 in _ids(session, "id < 5000"))
    assert aud.size("cachetest") == expected
    run(session, "DROP SEGMENT cachetest")


def _ids(session: Session, where: str) -> set[int]:
    rows = session.query(f"FIND users WHERE {where} RETURN id", None, NOW)
    return set(rows.column("id").to_pylist())


def test_no_stale_tag_values_after_drop_and_define_again(session: Session) -> None:
    aud = Audiences(session.store)
    run(session, "DEFINE TAG stale ON users AS 'old'")
    run(session, "REFRESH TAG stale")
    assert _count(session, "stale = 'old'") == session.store.count("users")
    aud.reload()
    assert aud.tags_of("users", 1)["stale"] == "old"
    run(session, "DROP TAG stale")
    run(session, "DEFINE TAG stale ON users AS 'new'")
    run(session, "REFRESH TAG stale")
    assert _count(session, "stale = 'new'") == session.store.count("users")
    aud.reload()
    assert aud.tags_of("users", 1)["stale"] == "new"
    run(session, "DROP TAG stale")


def test_a_segment_dropped_under_a_query_is_an_error_not_empty(session: Session) -> None:
    run(session, "DEFINE SEGMENT racing ON users WHERE id < 100")
    run(session, "REFRESH SEGMENT racing")
    query = session.prepare("FIND users WHERE in segment racing RETURN count() AS n", None, NOW)
    assert isinstance(query, Query)
    run(session, "DROP SEGMENT racing")
    with pytest.raises(EqlError) as info:
        query.table()
    assert info.value.codes == ("E225",)


def test_define_and_refresh_commit_together(session: Session) -> None:
    text = "DEFINE SEGMENT together ON users WHERE id < 30"
    before = session.audiences.counter()
    d, facts = definitions.define(session, definitions.SEGMENTS, text, NOW, NOW)
    assert session.audiences.counter() == before + 1  # one commit
    assert facts is not None and facts["size"] == 29 and d.version == 1
    # a definition whose refresh fails is not stored at all
    bad = "DEFINE CLUSTERS lonely ON stores K 64 SEED 1 FEATURES (a = count(purchase))"
    with pytest.raises(EqlError):
        definitions.define(session, definitions.TAGS, bad, NOW, NOW)
    assert session.audiences.definition("CLUSTERS", "lonely") is None
    assert session.audiences.counter() == before + 1
    run(session, "DROP SEGMENT together")
