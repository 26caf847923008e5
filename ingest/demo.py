"""Deterministic synthetic data for the retail demo world (the shipped retail schema).

``generate_demo_files`` writes one Parquet file per entity and per event stream (large streams are
split into ``<stream>-000.parquet``, ``-001``, ... of at most ``MAX_FILE_ROWS`` rows), plus two
deliberately dirty CSV files for exercising loader error handling. Everything is drawn from
``numpy.random.Generator(PCG64)`` streams derived from ``seed``, so equal arguments give
byte-identical files. Users are processed in chunks of ``CHUNK_USERS`` to bound memory.

Behaviour: heavy-tailed (lognormal) user activity; ~25% never-buyers, ~10% loyal buyers spread
over the whole window, ~20% lapsed buyers whose purchases end 60-300 days before ``end``, the rest
casual. Weekly/daily seasonality, an online funnel (view → add_to_cart → purchase), coupons issued
before the discounted purchases that redeem them, and ~5 employee shifts a week.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ingest.demo_events import chunk_events, shift_events
from ingest.demo_world import CITIES, GENDERS, GIVEN, SURNAMES, World, build_world

__all__ = ["CHUNK_USERS", "ENTITIES", "MAX_FILE_ROWS", "STREAMS", "DemoFile",
           "generate_demo_files"]  # fmt: skip

ENTITIES = ("stores", "employees", "products", "users")
STREAMS = ("purchase", "visit", "view", "add_to_cart", "coupon_issue", "coupon_use", "shift")
CHUNK_USERS = 200_000
CHUNK_EMPLOYEES = 5_000
MAX_FILE_ROWS = 2_000_000


@dataclass(frozen=True, slots=True)
class DemoFile:
    kind: Literal["entity", "events"]
    target: str  # entity or stream name from schema.yaml
    path: Path
    rows: int
    dirty: bool = False  # True for the deliberately dirty file


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=key)))


def generate_demo_files(
    out_dir: Path,
    *,
    users: int = 10_000,
    seed: int = 42,
    end: date = date(2026, 11, 1),
    days: int = 365,
    progress: Callable[[str, int], None] | None = None,
) -> list[DemoFile]:
    """Write the demo data set into ``out_dir`` and describe the files written.

    Order of the result: entity files (stores, employees, products, users, users-dirty.csv), then
    event files in schema order (purchase, visit, view, add_to_cart, coupon_issue, coupon_use,
    shift), then purchase-dirty.csv. Event times lie in ``[end - days, end)`` (UTC); each Parquet
    file is sorted by ``ts``. Stale demo files from earlier runs in ``out_dir`` are removed first.
    ``progress(file_name, rows)`` is called after each file is written.
    """
    if users < 1:
        raise ValueError("users must be >= 1")
    if days < 30:
        raise ValueError("days must be >= 30")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale(out_dir)
    world = build_world([_rng(seed, i) for i in range(4)], users, end, days)

    def emit(f: DemoFile) -> DemoFile:
        if progress is not None:
            progress(f.path.name, f.rows)
        return f

    files: list[DemoFile] = []
    for name in ENTITIES:
        table = world.entity_tables[name]
        path = out_dir / f"{name}.parquet"
        pq.write_table(table, path, compression="zstd")
        files.append(emit(DemoFile("entity", name, path, table.num_rows)))
    files.append(emit(_dirty_users(world, out_dir / "users-dirty.csv", _rng(seed, 4))))

    by_stream: dict[str, list[DemoFile]] = {s: [] for s in STREAMS}

    def write_events(stream: str, table: pa.Table, split: bool) -> None:
        parts = by_stream[stream]
        if not split and table.num_rows <= MAX_FILE_ROWS:
            path = out_dir / f"{stream}.parquet"
            pq.write_table(table, path, compression="zstd")
            parts.append(emit(DemoFile("events", stream, path, table.num_rows)))
            return
        for lo in range(0, max(table.num_rows, 1), MAX_FILE_ROWS):
            piece = table.slice(lo, MAX_FILE_ROWS)
            path = out_dir / f"{stream}-{len(parts):03d}.parquet"
            pq.write_table(piece, path, compression="zstd")
            parts.append(emit(DemoFile("events", stream, path, piece.num_rows)))

    n_chunks = math.ceil(users / CHUNK_USERS)
    orders = coupons = 0
    for c in range(n_chunks):
        u0, u1 = c * CHUNK_USERS, min(users, (c + 1) * CHUNK_USERS)
        tables, n_orders, n_coupons = chunk_events(world, _rng(seed, 6, c), u0, u1, orders, coupons)
        orders, coupons = orders + n_orders, coupons + n_coupons
        for stream, table in tables.items():
            write_events(stream, table, n_chunks > 1)
        del tables
    n_emp = len(world.emp_store)
    emp_chunks = math.ceil(n_emp / CHUNK_EMPLOYEES)
    for c in range(emp_chunks):
        e0, e1 = c * CHUNK_EMPLOYEES, min(n_emp, (c + 1) * CHUNK_EMPLOYEES)
        write_events("shift", shift_events(world, _rng(seed, 5, c), e0, e1), emp_chunks > 1)
    for stream in STREAMS:
        files.extend(by_stream[stream])
    files.append(
        emit(_dirty_purchases(world, out_dir / "purchase-dirty.csv", _rng(seed, 7), orders))
    )
    return files


def _remove_stale(out_dir: Path) -> None:
    for target in (*ENTITIES, *STREAMS):
        for path in [
            out_dir / f"{target}.parquet",
            *out_dir.glob(f"{target}-[0-9][0-9][0-9].parquet"),
        ]:
            path.unlink(missing_ok=True)


# --- deliberately dirty CSV files -------------------------------------------------------------


def _iso(us: int) -> str:
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _cents(c: int) -> str:
    return f"{c // 100}.{c % 100:02d}"


def _write_csv(path: Path, header: str, rows: list[list[bytes]]) -> None:
    lines = [header.encode()] + [b",".join(r) for r in rows]
    path.write_bytes(b"\n".join(lines) + b"\n")


def _dirty_purchases(world: World, path: Path, rng: np.random.Generator, orders: int) -> DemoFile:
    """~20 purchase rows: mostly valid ones that reference real entities, 6 broken differently."""
    w, rows = world, []
    n_users, old = len(w.user_segment), np.flatnonzero(w.prod_launch < w.start_day)
    for i in range(20):
        store = int(rng.integers(0, len(w.store_city)))
        sku = int(rng.choice(old))
        qty = int(rng.integers(1, 4))
        day = int(rng.integers(0, w.days))
        ts = (w.start_day + day) * 86_400_000_000 + int(rng.integers(36_000, 75_600)) * 10**6
        in_store = rng.random() < 0.6
        cashier = int(w.store_emp_first[store]) + 2 if in_store else None
        channel = "store" if in_store else str(rng.choice(["app", "web"]))
        fields = [
            _iso(ts), str(int(rng.integers(1, n_users + 1))),
            str(store + 1) if in_store else "", w.sku[sku].as_py(),
            "" if cashier is None else str(cashier), str(orders + 1 + i),
            _cents(int(w.prod_price[sku]) * qty), str(qty), channel,
        ]  # fmt: skip
        rows.append([f.encode() for f in fields])
    rows[2][6] = b"12.5O"  # non-numeric amount (letter O)
    rows[5][0] = b"2026-02-30T25:61:00Z"  # impossible timestamp
    rows[8][7] = b"three"  # quantity as a word
    rows[11][8] = b"phone"  # channel not in enum
    rows[14][6] = b""  # required amount missing
    rows[17][3] = b"SKU-\xff\xfe01"  # invalid UTF-8 bytes
    header = "ts,user_id,store_id,sku,cashier_id,order_id,amount,quantity,channel"
    _write_csv(path, header, rows)
    return DemoFile("events", "purchase", path, len(rows), dirty=True)


def _dirty_users(world: World, path: Path, rng: np.random.Generator) -> DemoFile:
    """10 new users (ids after the generated ones); 3 of them are broken."""
    w, rows = world, []
    n_users = len(w.user_segment)
    for i in range(10):
        uid = n_users + 1 + i
        given, surname = str(rng.choice(GIVEN)), str(rng.choice(SURNAMES))
        store = int(rng.integers(0, len(w.store_city)))
        signup = date(1970, 1, 1) + timedelta(days=w.end_day - int(rng.integers(1, 700)))
        fields = [
            str(uid), f"{given} {surname}", f"{given}.{surname}{uid}@example.com".lower(),
            str(rng.choice(GENDERS)), str(int(rng.integers(1960, 2006))),
            CITIES[int(w.store_city[store])][0], signup.isoformat(),
            "" if i == 6 else str(store + 1), "true" if rng.random() < 0.5 else "false",
        ]  # fmt: skip
        rows.append([f.encode() for f in fields])
    rows[2][4] = b"nineteen"  # birth_year not a number
    rows[5][6] = b"2025-02-30"  # impossible date
    rows[8][3] = b"unknown"  # gender not in enum
    header = "id,name,email,gender,birth_year,city,signup_date,home_store_id,is_member"
    _write_csv(path, header, rows)
    return DemoFile("entity", "users", path, len(rows), dirty=True)
