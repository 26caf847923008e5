"""Schema validation: every problem names the file, the exact line and the key, and says what is
expected; all problems of one file are reported together."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from entities import SchemaError, SchemaProblem, load_schema, parse_schema

FILE = "shop.yaml"


def problems(text: str) -> list[SchemaProblem]:
    with pytest.raises(SchemaError) as info:
        parse_schema(text, FILE)
    found = list(info.value.problems)
    assert found, "a SchemaError must carry at least one problem"
    assert str(info.value) == "\n".join(str(p) for p in found)
    assert all(p.file == FILE for p in found)
    return found


def only(text: str) -> SchemaProblem:
    found = problems(text)
    assert len(found) == 1, found
    return found[0]


def line_of(text: str, marker: str, nth: int = 1) -> int:
    """1-based number of the line holding the nth occurrence of `marker` (which must exist)."""
    hits = [i for i, line in enumerate(text.splitlines(), start=1) if marker in line]
    assert len(hits) >= nth, (marker, hits)
    return hits[nth - 1]


def doc(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


BASE = doc(
    """
    version: 1
    entities:
      users:
        key: {name: id, type: int}
        attributes:
          name: string
          home_store_id: int
        relations:
          home_store: {to: stores, cardinality: one, via: home_store_id, reverse: members}
      stores:
        key: {name: id, type: int}
        attributes:
          city: string
    events:
      purchase:
        time: ts
        references:
          user: {entity: users, column: user_id}
          store: {entity: stores, column: store_id}
        fields:
          amount: {type: decimal, precision: 12, scale: 2}
    """
)


def test_base_document_is_valid() -> None:
    schema = parse_schema(BASE, FILE)
    assert [e.name for e in schema.entities] == ["users", "stores"]
    assert schema.require_entity("stores").relation("members") is not None


def test_unknown_type_suggests_the_closest() -> None:
    text = BASE.replace("name: string", "name: strng")
    p = only(text)
    # the scalar form `name: strng` is reported at the attribute's own key
    assert (p.line, p.key) == (line_of(text, "name: strng"), "entities.users.attributes.name")
    assert "unknown type `strng`" in p.message
    assert "did you mean `string`?" in p.message
    assert "expected one of: int, decimal, float, string, bool, date, timestamp, enum" in p.message
    assert str(p) == f"{FILE}:{p.line}: entities.users.attributes.name: {p.message}"


def test_unknown_type_in_mapping_form() -> None:
    text = BASE.replace("amount: {type: decimal,", "amount: {type: decimel,")
    p = only(text)
    assert (p.line, p.key) == (line_of(text, "decimel"), "events.purchase.fields.amount.type")
    assert "did you mean `decimal`?" in p.message


LONE = doc(
    """
    entities:
      users:
        key: {name: id, type: int}
      tags:
        key: {name: label, type: string}
        attributes:
          color: string
    """
)


def test_missing_entity_key() -> None:
    text = LONE.replace("    key: {name: label, type: string}\n", "")
    p = only(text)
    assert (p.line, p.key) == (line_of(text, "tags:"), "entities.tags.key")
    assert "missing `key`" in p.message and "key: {name: id, type: int}" in p.message


def test_key_without_name() -> None:
    text = LONE.replace("{name: label, type: string}", "{type: string}")
    p = only(text)
    assert (p.line, p.key) == (line_of(text, "key: {type: string}"), "entities.tags.key.name")
    assert "missing the key's `name`" in p.message


def test_key_without_type() -> None:
    text = LONE.replace("{name: label, type: string}", "{name: label}")
    p = only(text)
    assert (p.line, p.key) == (line_of(text, "{name: label}"), "entities.tags.key.type")
    assert "`int` or `string`" in p.message


def test_bad_key_type() -> None:
    text = LONE.replace("{name: label, type: string}", "{name: label, type: float}")
    p = only(text)
    assert (p.line, p.key) == (line_of(text, "type: float"), "entities.tags.key.type")
    assert "a key's type must be `int` or `string`" in p.message


def test_entity_with_a_bad_key_is_not_called_unknown_elsewhere() -> None:
    text = BASE.replace("key: {name: id, type: int}", "key: {name: id, type: float}", 1)
    p = only(text)
    assert p.key == "entities.users.key.type"


def test_enum_without_values() -> None:
    text = BASE.replace("city: string", "city: enum")
    p = only(text)
    assert (p.line, p.key) == (
        line_of(text, "city: enum"),
        "entities.stores.attributes.city.values",
    )
    assert "an enum needs `values: [a, b, ...]`" in p.message


def test_enum_with_empty_values_points_at_the_values() -> None:
    text = BASE.replace("city: string", "city:\n        type: enum\n        values: []")
    p = only(text)
    assert (p.line, p.key) == (
        line_of(text, "values: []"),
        "entities.stores.attributes.city.values",
    )
    assert "an enum needs" in p.message


def test_duplicate_enum_value() -> None:
    text = BASE.replace("city: string", "city: {type: enum, values: [a, b, a]}")
    p = only(text)
    assert (p.line, p.key) == (line_of(text, "[a, b, a]"), "entities.stores.attributes.city.values")
    assert "duplicate enum value `a`" in p.message


def test_duplicate_yaml_key() -> None:
    text = BASE.replace("      name: string\n", "      name: string\n      name: int\n")
    p = only(text)
    assert (p.line, p.key) == (line_of(text, "name: int"), "entities.users.attributes.name")
    assert "duplicate key" in p.message and "once" in p.message


def test_duplicate_entity() -> None:
    text = BASE.replace("  stores:\n", "  users:\n")
    p = problems(text)[0]
    assert (p.line, p.key) == (line_of(text, "  users:", 2), "entities.users")
    assert "duplicate key" in p.message


def test_relation_to_unknown_entity() -> None:
    text = BASE.replace("to: stores", "to: storez")
    p = only(text)
    assert (p.line, p.key) == (
        line_of(text, "to: storez"),
        "entities.users.relations.home_store.to",
    )
    assert "unknown entity `storez`" in p.message and "did you mean `stores`?" in p.message


def test_relation_without_via() -> None:
    text = BASE.replace(", via: home_store_id", "")
    p = only(text)
    assert (p.line, p.key) == (line_of(text, "home_store:"), "entities.users.relations.home_store")
    assert "missing via" in p.message and "via: home_store_id" in p.message


def test_relation_via_attribute_missing() -> None:
    text = BASE.replace("via: home_store_id", "via: home_store")
    p = only(text)
    assert (p.line, p.key) == (
        line_of(text, "via: home_store,"),
        "entities.users.relations.home_store.via",
    )
    assert "`users` has no attribute `home_store`" in p.message
    assert "did you mean `home_store_id`?" in p.message
    assert "`via` names the attribute of `users` that holds the related key" in p.message


def test_many_relation_via_is_looked_up_on_the_target() -> None:
    text = BASE.replace(
        "      city: string\n",
        "      city: string\n    relations:\n"
        "      people: {to: users, cardinality: many, via: home_store}\n",
    )
    p = only(text)
    assert (p.line, p.key) == (
        line_of(text, "via: home_store}"),
        "entities.stores.relations.people.via",
    )
    assert "`users` has no attribute `home_store`" in p.message
    assert "did you mean `home_store_id`?" in p.message


def test_via_type_mismatch() -> None:
    text = BASE.replace("home_store_id: int", "home_store_id: string")
    p = only(text)
    assert (p.line, p.key) == (
        line_of(text, "via: home_store_id"),
        "entities.users.relations.home_store.via",
    )
    assert "`users.home_store_id` is string but the key it points to is int" in p.message


def test_bad_cardinality() -> None:
    text = BASE.replace("cardinality: one", "cardinality: some")
    p = only(text)
    assert (p.line, p.key) == (
        line_of(text, "cardinality: some"),
        "entities.users.relations.home_store.cardinality",
    )
    assert "expected `one` or `many`" in p.message


def _reverse_clash() -> str:
    # `members`, the reverse of users.home_store, is already an attribute of stores
    return BASE.replace("      city: string\n", "      city: string\n      members: int\n")


def test_reverse_name_clashing_with_an_attribute_is_reported() -> None:
    p = only(_reverse_clash())
    assert p.key == "entities.users.relations.home_store.reverse"  # where `members` is written
    assert "`members` is already a" in p.message and "attribute of `stores`" in p.message
    assert "choose another relation or reverse name" in p.message


def test_reverse_name_clash_points_at_the_reverse() -> None:
    text = _reverse_clash()
    p = only(text)
    assert p.line == line_of(text, "reverse: members")


def test_relation_name_clashing_with_own_attribute_is_reported() -> None:
    text = BASE.replace("      home_store: {to:", "      name: {to:")
    p = only(text)
    assert p.key == "entities.users.relations.name"
    assert "`name` is already a" in p.message


def test_stream_referencing_unknown_entity() -> None:
    text = BASE.replace("user: {entity: users,", "user: {entity: user,")
    p = only(text)
    assert (p.line, p.key) == (line_of(text, "entity: user,"), "events.purchase.references.user")
    assert "unknown entity `user`" in p.message and "did you mean `users`?" in p.message


def test_stream_reference_without_entity() -> None:
    text = BASE.replace("user: {entity: users, column: user_id}", "user: {column: user_id}")
    p = only(text)
    assert (p.line, p.key) == (
        line_of(text, "user: {column"),
        "events.purchase.references.user.entity",
    )
    assert "missing `entity`" in p.message


def test_stream_field_duplicating_a_reference_column() -> None:
    text = BASE.replace("      amount:", "      store_id: int\n      amount:")
    p = only(text)
    assert (p.line, p.key) == (line_of(text, "  store_id: int"), "events.purchase.fields.store_id")
    assert "`store_id` is already the column of reference `store`" in p.message


def test_stream_field_named_like_the_time_field() -> None:
    text = BASE.replace("      amount:", "      ts: timestamp\n      amount:")
    p = only(text)
    assert (p.line, p.key) == (line_of(text, "ts: timestamp"), "events.purchase.fields.ts")
    assert "`ts` is already the time field" in p.message


def _two_references_one_column() -> str:
    return BASE.replace("column: store_id", "column: user_id")


def test_two_references_sharing_a_column_are_reported() -> None:
    p = only(_two_references_one_column())
    assert p.key == "events.purchase.references.store"
    assert "column `user_id` is already the column of reference `user`" in p.message


def test_two_references_sharing_a_column_point_at_the_reference() -> None:
    text = _two_references_one_column()
    p = only(text)
    assert p.line == line_of(text, "store: {entity: stores")


def test_stream_named_like_an_entity() -> None:
    text = BASE.replace("  purchase:", "  users:")
    p = only(text)
    assert (p.line, p.key) == (line_of(text, "  users:", 2), "events.users")
    assert "already an entity name" in p.message


def test_stream_key_must_be_a_field() -> None:
    text = BASE.replace("    time: ts\n", "    time: ts\n    key: order_id\n")
    p = only(text)
    assert (p.line, p.key) == (line_of(text, "key: order_id"), "events.purchase.key")
    assert "`order_id` is not a field of `purchase`" in p.message


def test_stream_without_references() -> None:
    text = BASE.split("    references:")[0] + "    fields:\n      n: int\n"
    p = only(text)
    assert (p.line, p.key) == (line_of(text, "purchase:"), "events.purchase.references")
    assert "missing `references`" in p.message


def test_invalid_yaml_syntax_gives_its_line() -> None:
    text = BASE.replace("name: string", "name: [string")
    p = only(text)
    assert p.key == "<yaml>"
    assert p.message.startswith("invalid YAML: ")
    # the flow sequence opened on the `name:` line is found broken on the next line
    assert p.line == line_of(text, "home_store_id: int")


def test_invalid_yaml_bad_indentation() -> None:
    text = doc(
        """
        entities:
          users:
            key: {name: id, type: int}
           attributes: {}
        """
    )
    p = only(text)
    assert (p.line, p.key) == (4, "<yaml>")
    assert "invalid YAML" in p.message


def test_unknown_top_level_key() -> None:
    text = BASE.replace("events:", "event:")
    p = only(text)
    assert (p.line, p.key) == (line_of(text, "event:"), "<root>.event")
    assert "unknown key (did you mean `events`?)" in p.message
    assert "expected one of: version, entities, events" in p.message


def test_unknown_attribute_option() -> None:
    text = BASE.replace("scale: 2}", "scale: 2, requred: true}")
    p = only(text)
    assert (p.line, p.key) == (line_of(text, "requred"), "events.purchase.fields.amount.requred")
    assert "did you mean `required`?" in p.message


def test_missing_entities() -> None:
    text = "version: 1\nevents: {}\n"
    p = only(text)
    assert (p.line, p.key) == (1, "entities")
    assert "missing `entities`" in p.message


def test_empty_entities_mapping_is_rejected() -> None:
    p = only("version: 1\nentities: {}\n")
    assert (p.line, p.key) == (2, "entities")


def test_unsupported_version() -> None:
    text = BASE.replace("version: 1", "version: 2")
    p = only(text)
    assert (p.line, p.key) == (1, "version")
    assert "expected a whole number from 1 to 1, found 2" in p.message


def test_decimal_scale_larger_than_precision() -> None:
    text = BASE.replace("precision: 12, scale: 2", "precision: 4, scale: 6")
    p = only(text)
    assert (p.line, p.key) == (line_of(text, "precision: 4"), "events.purchase.fields.amount")
    assert "scale 6 is larger than precision 4" in p.message


def test_decimal_precision_out_of_range() -> None:
    text = BASE.replace("precision: 12", "precision: 39")
    p = only(text)
    assert (p.line, p.key) == (
        line_of(text, "precision: 39"),
        "events.purchase.fields.amount.precision",
    )
    assert "expected a whole number from 1 to 38, found 39" in p.message


def test_precision_on_a_non_decimal() -> None:
    text = BASE.replace("city: string", "city: {type: string, precision: 3}")
    p = only(text)
    assert (p.line, p.key) == (
        line_of(text, "precision: 3"),
        "entities.stores.attributes.city.precision",
    )
    assert "`precision` applies only to type decimal" in p.message


def test_required_must_be_a_boolean() -> None:
    text = BASE.replace("scale: 2}", "scale: 2, required: maybe}")
    p = only(text)
    assert (p.line, p.key) == (line_of(text, "maybe"), "events.purchase.fields.amount.required")
    assert "expected true or false" in p.message


def test_invalid_names() -> None:
    text = BASE.replace("      name: string", "      Full-Name: string")
    p = only(text)
    assert (p.line, p.key) == (line_of(text, "Full-Name"), "entities.users.attributes.Full-Name")
    assert "not a valid name" in p.message and "lower-case letters, digits and _" in p.message


def test_attribute_repeating_the_key() -> None:
    text = BASE.replace("      name: string\n", "      name: string\n      id: int\n", 1)
    p = only(text)
    assert (p.line, p.key) == (line_of(text, "      id: int"), "entities.users.attributes.id")
    assert "repeats the key" in p.message


def test_attributes_must_be_a_mapping() -> None:
    text = BASE.replace("      city: string\n", "      - city\n")
    p = only(text)
    assert (p.line, p.key) == (line_of(text, "- city"), "entities.stores.attributes")
    assert "expected a mapping" in p.message and "found a list" in p.message


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
def test_empty_file(text: str) -> None:
    p = only(text)
    assert (p.line, p.key) == (1, "<file>")
    assert "empty schema file" in p.message


def test_several_problems_are_all_reported_in_order() -> None:
    text = (
        BASE.replace("name: string", "name: strng")
        .replace("to: stores", "to: storez")
        .replace("city: string", "city: enum")
        .replace("precision: 12, scale: 2", "precision: 4, scale: 6")
        .replace("user: {entity: users,", "user: {entity: usr,")
        .replace("events:", "events:\n  bogus: 1\n")
        .replace("version: 1", "version: 1\nextra: true")
    )
    found = problems(text)
    got = [(p.line, p.key) for p in found]
    assert got == [
        (line_of(text, "extra: true"), "<root>.extra"),
        (line_of(text, "strng"), "entities.users.attributes.name"),
        (line_of(text, "city: enum"), "entities.stores.attributes.city.values"),
        (line_of(text, "to: storez"), "entities.users.relations.home_store.to"),
        (line_of(text, "bogus: 1"), "events.bogus"),
        (line_of(text, "bogus: 1"), "events.bogus.references"),
        (line_of(text, "entity: usr,"), "events.purchase.references.user"),
        (line_of(text, "precision: 4"), "events.purchase.fields.amount"),
    ]
    assert "did you mean `string`" in found[1].message


def test_load_schema_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "my-schema.yaml"
    path.write_text(BASE.replace("name: string", "name: strng"), encoding="utf-8")
    with pytest.raises(SchemaError) as info:
        load_schema(path)
    (p,) = info.value.problems
    assert p.file == str(path)
    assert p.line == 6
    assert str(info.value).startswith(f"{path}:6: entities.users.attributes.name: unknown type")
    path.write_text(BASE, encoding="utf-8")
    assert load_schema(path).source == str(path)


def test_load_schema_missing_and_undecodable_files(tmp_path: Path) -> None:
    with pytest.raises(SchemaError) as info:
        load_schema(tmp_path / "absent.yaml")
    (p,) = info.value.problems
    assert (p.file, p.line, p.key, p.message) == (
        str(tmp_path / "absent.yaml"),
        1,
        "<file>",
        "file not found",
    )
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("# café\n".encode("latin-1") + BASE.encode())
    with pytest.raises(SchemaError) as info:
        load_schema(latin)
    (p,) = info.value.problems
    assert (p.line, p.key, p.message) == (1, "<file>", "not valid UTF-8 text (byte 5)")


def test_load_schema_of_a_directory(tmp_path: Path) -> None:
    with pytest.raises(SchemaError) as info:
        load_schema(tmp_path)
    assert info.value.problems[0].key == "<file>"
