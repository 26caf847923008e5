"""A tiny schema of our own, and random or hand-made datasets for it, for EQL-3 and EQL-4."""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from storage import Store
from storage.store import ChangeSet

TINY_SCHEMA = """\
version: 1
entities:
  users:
    key: {name: id, type: int}
    attributes:
      name: string
      city: string
      age: int
      score: float
      tier: {type: enum, values: [gold, silver, bronze]}
      vip: bool
      joined: date
      store_id: int
    relations:
      store: {to: stores, cardinality: one, via: store_id, reverse: members}
  stores:
    key: {name: id, type: int}
    attributes:
      city: string
      size: int
events:
  orders:
    time: ts
    references:
      user: {entity: users, column: user_id}
      store: {entity: stores, column: store_id}
    fields:
      amount: {type: decimal, precision: 10, scale: 2}
      qty: int
      channel: {type: enum, values: [app, web, shop]}
  clicks:
    time: ts
    references:
      user: {entity: users, column: user_id}
    fields:
      page: string
      secs: float
"""

TINY_REF = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
TS = pa.timestamp("us", tz="UTC")

USER_TYPES = {
    "id": pa.int64(),
    "name": pa.string(),
    "city": pa.string(),
    "age": pa.int64(),
    "score": pa.float64(),
    "tier": pa.string(),
    "vip": pa.bool_(),
    "joined": pa.date32(),
    "store_id": pa.int64(),
}
STORE_TYPES = {"id": pa.int64(), "city": pa.string(), "size": pa.int64()}
ORDER_TYPES = {
    "ts": TS,
    "user_id": pa.int64(),
    "store_id": pa.int64(),
    "amount": pa.decimal128(10, 2),
    "qty": pa.int64(),
    "channel": pa.string(),
}
CLICK_TYPES = {"ts": TS, "user_id": pa.int64(), "page": pa.string(), "secs": pa.float64()}


@dataclass
class TinyData:
    users: list[dict[str, Any]] = field(default_factory=list)
    stores: list[dict[str, Any]] = field(default_factory=list)
    orders: list[dict[str, Any]] = field(default_factory=list)
    clicks: list[dict[str, Any]] = field(default_factory=list)


def _table(rows: Sequence[dict[str, Any]], types: dict[str, pa.DataType]) -> pa.Table:
    return pa.table({k: pa.array([r.get(k) for r in rows], type=t) for k, t in types.items()})


def tiny_store(root: Path, data: TinyData) -> Store:
    store = Store.create(root, TINY_SCHEMA, "tiny.yaml")
    cs = ChangeSet()
    if data.users:
        cs.upsert("users", _table(data.users, USER_TYPES))
    if data.stores:
        cs.upsert("stores", _table(data.stores, STORE_TYPES))
    if data.orders:
        cs.append("orders", _table(data.orders, ORDER_TYPES))
    if data.clicks:
        cs.append("clicks", _table(data.clicks, CLICK_TYPES))
    store.commit(cs)
    return store


def money(cents: int | None) -> decimal.Decimal | None:
    return None if cents is None else decimal.Decimal(cents).scaleb(-2)
