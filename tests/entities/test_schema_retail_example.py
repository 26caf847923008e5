"""The shipped retail schema loads into the model the rest of EQL relies on."""

from __future__ import annotations

import pyarrow as pa
import pytest

from entities import Cardinality, Schema, TypeKind, load_schema
from entities.arrow import ENUM_TYPE, ID_COLUMN, TS_TYPE, entity_schema, stream_schema
from tests.helpers_store import RETAIL_SCHEMA


@pytest.fixture(scope="module")
def schema() -> Schema:
    return load_schema(RETAIL_SCHEMA)


def test_entities_and_keys(schema: Schema) -> None:
    assert [e.name for e in schema.entities] == ["users", "stores", "products", "employees"]
    keys = {e.name: (e.key.name, e.key.type.kind, e.key.required) for e in schema.entities}
    assert keys == {
        "users": ("id", TypeKind.INT, True),
        "stores": ("id", TypeKind.INT, True),
        "products": ("sku", TypeKind.STRING, True),
        "employees": ("id", TypeKind.INT, True),
    }
    assert schema.source == str(RETAIL_SCHEMA)


def test_attribute_types(schema: Schema) -> None:
    users = schema.require_entity("users")
    assert [c.name for c in users.columns] == [
        "id",
        "name",
        "email",
        "gender",
        "birth_year",
        "city",
        "signup_date",
        "home_store_id",
        "is_member",
    ]
    assert users.column("gender").type.values == ("female", "male", "other")
    assert users.column("signup_date").type.kind is TypeKind.DATE
    assert users.column("is_member").type.kind is TypeKind.BOOL
    assert schema.require_entity("stores").column("area_sqm").type.kind is TypeKind.FLOAT
    price = schema.require_entity("products").column("price").type
    assert (price.kind, price.precision, price.scale) == (TypeKind.DECIMAL, 12, 2)
    assert str(price) == "decimal(12,2)"
    assert users.column("nope") is None


def _rels(schema: Schema, entity: str) -> dict[str, tuple[str, str, str, bool, str | None]]:
    return {
        r.name: (r.target, r.cardinality.value, r.via, r.via_on_target, r.reverse)
        for r in schema.require_entity(entity).relations
    }


def test_relations_and_their_reverses(schema: Schema) -> None:
    assert _rels(schema, "users") == {
        "home_store": ("stores", "one", "home_store_id", False, "members"),
    }
    assert _rels(schema, "stores") == {
        "members": ("users", "many", "home_store_id", True, "home_store"),
        "manager": ("employees", "one", "manager_id", False, "managed_stores"),
        "staff": ("employees", "many", "store_id", True, "store"),
    }
    assert _rels(schema, "employees") == {
        "managed_stores": ("stores", "many", "manager_id", True, "manager"),
        "store": ("stores", "one", "store_id", False, "staff"),
    }
    assert _rels(schema, "products") == {}
    members = schema.require_entity("stores").relation("members")
    assert members is not None
    assert (members.source, members.cardinality) == ("stores", Cardinality.MANY)
    # every reverse points back at a relation of the other side whose reverse is this one
    for ent in schema.entities:
        for rel in ent.relations:
            back = schema.require_entity(rel.target).relation(rel.reverse or "")
            assert back is not None, (ent.name, rel.name)
            assert (back.target, back.reverse, back.via) == (ent.name, rel.name, rel.via)
            assert back.cardinality is not rel.cardinality
            assert back.via_on_target is not rel.via_on_target


def test_stream_references_and_columns(schema: Schema) -> None:
    assert [s.name for s in schema.streams] == [
        "purchase",
        "visit",
        "view",
        "add_to_cart",
        "coupon_issue",
        "coupon_use",
        "shift",
    ]
    purchase = schema.require_stream("purchase")
    assert purchase.time == "ts"
    assert [(r.name, r.entity, r.column) for r in purchase.references] == [
        ("user", "users", "user_id"),
        ("store", "stores", "store_id"),
        ("product", "products", "sku"),
        ("cashier", "employees", "cashier_id"),
    ]
    amount = purchase.field("amount")
    assert amount is not None and amount.required and amount.type.scale == 2
    assert purchase.reference("cashier").entity == "employees"
    assert purchase.reference("nobody") is None
    cols = schema.stream_columns("purchase")
    assert [c.name for c in cols] == [
        "ts",
        "user_id",
        "store_id",
        "sku",
        "cashier_id",
        "order_id",
        "amount",
        "quantity",
        "channel",
    ]
    # reference columns take the type of the referenced entity's key
    assert cols[3].type.kind is TypeKind.STRING and cols[1].type.kind is TypeKind.INT
    assert cols[0].required and cols[0].type.kind is TypeKind.TIMESTAMP
    shift = schema.require_stream("shift")
    assert [(r.name, r.entity, r.column) for r in shift.references] == [
        ("employee", "employees", "employee_id"),
        ("store", "stores", "store_id"),
    ]


def test_streams_of(schema: Schema) -> None:
    def of(entity: str) -> list[tuple[str, str]]:
        return [(st.name, ref.name) for st, ref in schema.streams_of(entity)]

    assert of("users") == [
        ("purchase", "user"),
        ("visit", "user"),
        ("view", "user"),
        ("add_to_cart", "user"),
        ("coupon_issue", "user"),
        ("coupon_use", "user"),
    ]
    assert of("stores") == [
        ("purchase", "store"),
        ("visit", "store"),
        ("coupon_issue", "store"),
        ("coupon_use", "store"),
        ("shift", "store"),
    ]
    assert of("products") == [
        ("purchase", "product"),
        ("view", "product"),
        ("add_to_cart", "product"),
    ]
    assert of("employees") == [("purchase", "cashier"), ("shift", "employee")]
    assert of("nobody") == []


def test_lookups_of_unknown_names(schema: Schema) -> None:
    assert schema.entity("nobody") is None and schema.stream("nobody") is None
    with pytest.raises(KeyError, match="nobody"):
        schema.require_entity("nobody")
    with pytest.raises(KeyError, match="nobody"):
        schema.require_stream("nobody")


def test_arrow_mapping(schema: Schema) -> None:
    users = entity_schema(schema.require_entity("users"))
    assert users.field("id").type == pa.int64() and not users.field("id").nullable
    assert users.field("gender").type == ENUM_TYPE
    assert users.field("signup_date").type == pa.date32()
    assert users.field(ID_COLUMN).type == pa.uint32()
    purchase = stream_schema(schema, "purchase")
    assert purchase.field("ts").type == TS_TYPE and not purchase.field("ts").nullable
    assert purchase.field("amount").type == pa.decimal128(12, 2)
    assert not purchase.field("amount").nullable
    assert purchase.field("sku").type == pa.string()
    assert purchase.field("order_id").nullable
