"""Entities and calendar of the synthetic retail demo world (see ``ingest.demo``).

Everything is drawn with NumPy in bulk; the :class:`World` keeps the entity attributes as arrays
so that the event generator can sample behaviour per chunk of users without rebuilding them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

Arr = npt.NDArray[Any]

DAY_US = 86_400_000_000
HOUR_US = 3_600_000_000
EPOCH = date(1970, 1, 1)

# (city, region, weight): weights drive where stores open and where store-less users live.
CITIES: tuple[tuple[str, str, float], ...] = (
    ("Shanghai", "east", 10), ("Beijing", "north", 10), ("Guangzhou", "south", 8),
    ("Shenzhen", "south", 8), ("Chengdu", "west", 6), ("Hangzhou", "east", 6),
    ("Chongqing", "west", 6), ("Wuhan", "central", 5), ("Nanjing", "east", 5),
    ("Xi'an", "west", 4), ("Tianjin", "north", 4), ("Suzhou", "east", 4),
    ("Changsha", "central", 3), ("Zhengzhou", "central", 3), ("Qingdao", "north", 3),
)  # fmt: skip
GIVEN = (
    "Wei", "Fang", "Na", "Min", "Jing", "Li", "Qiang", "Lei", "Jun", "Yang", "Yong", "Yan", "Jie",
    "Tao", "Ming", "Chao", "Xiu", "Xia", "Ping", "Gang", "Hui", "Hong", "Lin", "Yu", "Hao", "Yi",
    "Xin", "Ting", "Bo", "Lan", "Kai", "Rui", "Mei", "Zhen", "Dan", "Ying", "Peng", "Hua", "Qing",
    "Shu",
)  # fmt: skip
SURNAMES = (
    "Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Huang", "Zhao", "Wu", "Zhou", "Xu", "Sun",
    "Ma", "Zhu", "Hu", "Guo", "He", "Gao", "Lin", "Luo", "Zheng", "Liang", "Xie", "Song", "Tang",
    "Han", "Feng", "Deng", "Cao", "Peng",
)  # fmt: skip
DOMAINS = ("qq.com", "163.com", "126.com", "gmail.com", "outlook.com", "sina.com")
GENDERS = ("female", "male", "other")
FORMATS = ("flagship", "mall", "street", "outlet")
FORMAT_P = (0.08, 0.42, 0.35, 0.15)
FORMAT_AREA = (2500.0, 900.0, 300.0, 1200.0)  # median m²
ROLES = ("cashier", "clerk", "manager")
# category: (share, median price in yuan, log-sigma, brands, product nouns)
CATEGORIES: dict[str, tuple[float, float, float, tuple[str, ...], tuple[str, ...]]] = {
    "grocery": (0.30, 18, 0.6, ("FreshFarm", "GoldenGrain", "Lotus Valley", "Sunny Dairy",
                "TeaHouse"), ("Rice", "Noodles", "Green Tea", "Milk", "Soy Sauce", "Dumplings")),
    "beauty": (0.14, 129, 0.7, ("Jade Glow", "PureSkin", "Lumi", "Orchid Lab", "Velvet"),
               ("Serum", "Face Mask", "Lipstick", "Cleanser", "Sunscreen", "Toner")),
    "apparel": (0.18, 199, 0.7, ("Northwind", "UrbanThread", "Silk Road", "Basics Co",
                "Peak Wear"), ("T-Shirt", "Jeans", "Jacket", "Dress", "Sneakers", "Hoodie")),
    "electronics": (0.10, 1299, 0.9, ("Voltix", "Nimbus", "Kestrel", "Huayu Tech", "Pixelon"),
                    ("Headphones", "Smartphone", "Tablet", "Speaker", "Smartwatch", "Power Bank")),
    "home": (0.12, 269, 0.75, ("CasaLiving", "BambooHome", "Hearth", "Linea", "Porcelain House"),
             ("Pillow", "Teapot", "Lamp", "Rice Cooker", "Towel Set", "Storage Box")),
    "toys": (0.07, 149, 0.7, ("PandaPlay", "BrickWorks", "Kite & Co", "TinyTitan", "Dragonfly"),
             ("Puzzle", "Building Set", "Plush Panda", "RC Car", "Board Game", "Kite")),
    "sports": (0.09, 329, 0.8, ("Summit", "StrideMax", "AquaPro", "Tiger Fit", "Ridgeline"),
               ("Yoga Mat", "Running Shoes", "Badminton Racket", "Dumbbells", "Backpack")),
}  # fmt: skip
VARIANTS = ("", " Pro", " Lite", " Max", " Mini", " Classic", " Plus")
NEVER, LOYAL, LAPSED, CASUAL = 0, 1, 2, 3
SEGMENT_P = (0.25, 0.10, 0.20, 0.45)

# Hour-of-day curves (relative weights, index = hour): stores open 9-22, online peaks at night.
STORE_HOURS = np.array([0] * 9 + [3, 5, 7, 9, 7, 6, 6, 7, 8, 10, 10, 8, 4] + [0] * 2, float)
ONLINE_HOURS = np.array([3, 2, 1, 1, 1, 1, 2, 4, 6, 6, 6, 7, 8, 7, 6, 6, 6, 7, 8, 10, 12, 13, 11,
                         7], float)  # fmt: skip
WEEKDAY_FACTOR = np.array([0.9, 0.88, 0.92, 0.97, 1.08, 1.45, 1.38])  # Mon..Sun


def epoch_day(d: date) -> int:
    return (d - EPOCH).days


def cdf(weights: Arr) -> Arr:
    c = np.cumsum(weights, dtype=np.float64)
    return np.asarray(c / c[-1])


def pick(rng: np.random.Generator, cum: Arr, n: int) -> Arr:
    """Indices drawn from the distribution whose normalised cumulative weights are ``cum``."""
    return np.minimum(np.searchsorted(cum, rng.random(n), side="right"), len(cum) - 1)


def decimal_array(cents: Arr, precision: int, mask: Arr | None = None) -> pa.Array:
    """Exact decimal(precision, 2) array built straight from integer cents (no float rounding)."""
    c = np.ascontiguousarray(cents, dtype=np.int64)
    words = np.empty((len(c), 2), dtype=np.int64)
    words[:, 0], words[:, 1] = c, c >> 63  # little-endian 128-bit two's complement
    validity = None
    if mask is not None and mask.any():
        validity = pa.py_buffer(np.packbits(~mask, bitorder="little"))
    return pa.Array.from_buffers(
        pa.decimal128(precision, 2), len(c), [validity, pa.py_buffer(words)]
    )


def int_array(values: Arr, mask: Arr | None = None) -> pa.Array:
    return pa.array(np.asarray(values, dtype=np.int64), type=pa.int64(), mask=mask)


def ts_array(us: Arr) -> pa.Array:
    return pa.array(np.asarray(us, dtype=np.int64), type=pa.timestamp("us", tz="UTC"))


def date_array(days: Arr, mask: Arr | None = None) -> pa.Array:
    return pa.array(np.asarray(days, dtype=np.int32), type=pa.date32(), mask=mask)


def take(values: pa.Array, idx: Arr, mask: Arr | None = None) -> pa.Array:
    """Strings (or anything) looked up by index; masked positions become null."""
    return pc.take(values, pa.array(np.asarray(idx, dtype=np.int64), mask=mask))


def person_names(rng: np.random.Generator, n: int) -> tuple[Arr, Arr, pa.Array]:
    given, surname = rng.integers(0, len(GIVEN), n), rng.integers(0, len(SURNAMES), n)
    names = pc.binary_join_element_wise(
        take(pa.array(GIVEN), given), take(pa.array(SURNAMES), surname), " "
    )
    return given, surname, names


@dataclass(slots=True)
class World:
    """All entity attributes as arrays (index i ↔ key i + 1) plus the event calendar."""

    start_day: int
    end_day: int
    day_cdf: Arr  # cumulative day weights, length days + 1, starting at 0
    # stores
    store_city: Arr
    store_format: Arr
    store_opened: Arr
    store_area: Arr
    store_cdf: Arr
    store_emp_first: Arr  # index of the store's manager; cashiers follow, then clerks
    store_cashiers: Arr
    # employees
    emp_store: Arr
    emp_role: Arr
    emp_hired: Arr
    # products
    prod_category: Arr
    prod_brand: Arr
    prod_price: Arr  # cents
    prod_launch: Arr
    prod_cdf: Arr
    prod_old_cdf: Arr  # popularity restricted to products launched before the window
    sku: pa.Array
    # users
    user_segment: Arr
    user_propensity: Arr
    user_home: Arr  # store index or -1
    user_pref: Arr  # store index the user mostly shops at
    user_signup: Arr
    user_lo: Arr  # first active day, relative to start_day
    user_hi: Arr  # active until (exclusive), relative; earlier than days for lapsed users
    user_online: Arr  # probability that a purchase is app/web
    user_member: Arr
    entity_tables: dict[str, pa.Table]

    @property
    def days(self) -> int:
        return self.end_day - self.start_day

    def sample_days(self, rng: np.random.Generator, lo: Arr, hi: Arr, r: Arr | None = None) -> Arr:
        """Days in [lo, hi) (relative) following the seasonal day weights; r ∈ [0,1) optional."""
        c = self.day_cdf
        if r is None:
            r = rng.random(len(lo))
        u = c[lo] + r * (c[hi] - c[lo])
        d = np.searchsorted(c, u, side="right") - 1
        return np.asarray(np.clip(d, lo, hi - 1))

    def to_us(self, rng: np.random.Generator, day: Arr, hours: Arr) -> Arr:
        """Microsecond timestamps on relative ``day`` with an hour drawn from the ``hours`` cdf."""
        hour = pick(rng, hours, len(day))
        jitter = rng.integers(0, HOUR_US, len(day))
        return np.asarray((self.start_day + day) * DAY_US + hour * HOUR_US + jitter, np.int64)

    def pick_sku(self, rng: np.random.Generator, day: Arr) -> Arr:
        """Popularity-weighted products, never one launched after the event's day."""
        sku = pick(rng, self.prod_cdf, len(day))
        late = self.prod_launch[sku] > self.start_day + day
        sku[late] = pick(rng, self.prod_old_cdf, int(late.sum()))
        return sku


def day_weights(start_day: int, days: int) -> Arr:
    """Weekly seasonality, shopping festivals (11.11, 6.18, Christmas) and a mild growth trend."""
    ep = np.arange(start_day, start_day + days)
    dt = ep.astype("datetime64[D]")
    month = dt.astype("datetime64[M]").astype(np.int64) % 12 + 1
    dom = (dt - dt.astype("datetime64[M]")).astype(np.int64) + 1
    w = WEEKDAY_FACTOR[(ep + 3) % 7] * (1.0 + 0.15 * np.arange(days) / max(days, 1))
    for m, d, f in ((11, 11, 2.5), (11, 10, 1.4), (6, 18, 1.8), (12, 24, 1.3), (12, 25, 1.3)):
        w[(month == m) & (dom == d)] *= f
    return np.asarray(w)


def build_world(rngs: list[np.random.Generator], n_users: int, end: date, days: int) -> World:
    """Draw stores, employees, products and users; ``rngs`` holds one generator per entity."""
    r_store, r_emp, r_prod, r_user = rngs
    end_day = epoch_day(end)
    start_day = end_day - days
    n_cities = len(CITIES)
    city_cdf = cdf(np.array([c[2] for c in CITIES]))
    city_names = pa.array([c[0] for c in CITIES])

    # --- stores
    n_s = max(20, n_users // 2000)
    s_city = np.concatenate(
        [np.arange(min(n_s, n_cities)), pick(r_store, city_cdf, max(0, n_s - n_cities))]
    )
    s_fmt = pick(r_store, cdf(np.array(FORMAT_P)), n_s)
    s_area = np.round(np.array(FORMAT_AREA)[s_fmt] * r_store.lognormal(0, 0.35, n_s), 1)
    s_opened = start_day - r_store.integers(60, 15 * 365, n_s)
    seen: dict[int, int] = {}
    s_names = []
    for c, f in zip(s_city.tolist(), s_fmt.tolist(), strict=True):
        seen[c] = seen.get(c, 0) + 1
        s_names.append(f"{CITIES[c][0]} {FORMATS[f].title()} #{seen[c]}")

    # --- employees: per store 1 manager, then cashiers, then clerks (≈ 8 in total)
    per_store = r_emp.integers(6, 11, n_s)
    n_cash = np.maximum(2, np.round(per_store * 0.45).astype(np.int64))
    first = np.concatenate([[0], np.cumsum(per_store)[:-1]])
    n_e = int(per_store.sum())
    e_store = np.repeat(np.arange(n_s), per_store)
    e_pos = np.arange(n_e) - first[e_store]
    e_role = np.where(e_pos == 0, 2, np.where(e_pos <= n_cash[e_store], 0, 1))
    opened = s_opened[e_store]
    e_hired = opened + (r_emp.random(n_e) * (end_day - 1 - opened)).astype(np.int64)
    senior = e_pos <= 1  # manager and first cashier were there before the window starts
    e_hired[senior] = opened[senior] + (
        r_emp.random(int(senior.sum())) * (start_day - opened[senior])
    ).astype(np.int64)
    _, _, e_names = person_names(r_emp, n_e)

    # --- products
    n_p = max(200, min(20_000, n_users // 50))
    cats = list(CATEGORIES)
    p_cat = pick(r_prod, cdf(np.array([CATEGORIES[c][0] for c in cats])), n_p)
    median = np.array([CATEGORIES[c][1] for c in cats], float)[p_cat]
    sigma = np.array([CATEGORIES[c][2] for c in cats])[p_cat]
    yuan = np.maximum(1, np.round(median * np.exp(sigma * r_prod.standard_normal(n_p))))
    p_price = np.maximum(99, yuan.astype(np.int64) * 100 - r_prod.choice([1, 10, 0, 50], n_p))
    p_brand = r_prod.integers(0, 5, n_p)
    noun = r_prod.integers(0, 6, n_p)
    variant = r_prod.integers(0, len(VARIANTS), n_p)
    p_launch = np.where(
        r_prod.random(n_p) < 0.85,
        start_day - r_prod.integers(1, 6 * 365, n_p),
        start_day + (r_prod.random(n_p) * 0.8 * days).astype(np.int64),
    )
    pop = 1.0 / (r_prod.permutation(n_p) + 1.0) ** 0.8
    brands = [CATEGORIES[c][3] for c in cats]
    nouns = [CATEGORIES[c][4] for c in cats]
    p_names = [
        f"{brands[c][b]} {nouns[c][k % len(nouns[c])]}{VARIANTS[v]}"
        for c, b, k, v in zip(p_cat.tolist(), p_brand.tolist(), noun.tolist(), variant.tolist(),
                              strict=True)
    ]  # fmt: skip
    p_brand_name = [brands[c][b] for c, b in zip(p_cat.tolist(), p_brand.tolist(), strict=True)]

    # --- users
    n = n_users
    seg = pick(r_user, cdf(np.array(SEGMENT_P)), n)
    prop = np.clip(r_user.lognormal(-0.32, 0.8, n), 0.05, 25.0)
    store_cdf = cdf(np.sqrt(s_area))
    home = np.where(r_user.random(n) < 0.9, pick(r_user, store_cdf, n), -1)
    pref = np.where(home >= 0, home, pick(r_user, store_cdf, n))
    u_city = np.where(
        (home >= 0) & (r_user.random(n) < 0.92), s_city[np.maximum(home, 0)],
        pick(r_user, city_cdf, n),
    )  # fmt: skip
    signup_lo = end_day - max(3 * 365, days + 30)
    lapse = np.clip(r_user.integers(60, 301, n), 1, max(1, days - 1))
    hi = np.where(seg == LAPSED, days - lapse, days)
    signup_hi = np.select(
        [seg == LOYAL, seg == LAPSED], [start_day - 1, end_day - lapse - 14], end_day - 1
    )
    signup_hi = np.maximum(signup_hi, signup_lo)
    signup = signup_lo + (r_user.random(n) * (signup_hi - signup_lo + 1)).astype(np.int64)
    lo = np.clip(signup - start_day, 0, hi - 1)
    online = np.clip(r_user.beta(2, 3, n) + 0.3 * (home < 0), 0, 0.95)
    member = r_user.random(n) < np.array([0.25, 0.8, 0.45, 0.45])[seg]
    gender = pick(r_user, cdf(np.array([0.52, 0.45, 0.03])), n)
    birth = np.clip(np.round(r_user.normal(1989, 11, n)), 1950, 2008).astype(np.int64)
    given, surname, u_names = person_names(r_user, n)
    ids = np.arange(1, n + 1, dtype=np.int64)
    email = pc.utf8_lower(
        pc.binary_join_element_wise(
            take(pa.array(GIVEN), given), ".", take(pa.array(SURNAMES), surname),
            pc.cast(pa.array(ids), pa.string()), "@",
            take(pa.array(DOMAINS), r_user.integers(0, len(DOMAINS), n)), "",
        )
    )  # fmt: skip
    email = pc.if_else(pa.array(r_user.random(n) < 0.03), pa.scalar(None, pa.string()), email)

    tables = {
        "stores": pa.table({
            "id": int_array(np.arange(1, n_s + 1)),
            "name": pa.array(s_names),
            "city": take(city_names, s_city),
            "region": take(pa.array([c[1] for c in CITIES]), s_city),
            "format": take(pa.array(FORMATS), s_fmt),
            "opened_on": date_array(s_opened),
            "area_sqm": pa.array(s_area, pa.float64()),
            "manager_id": int_array(first + 1),
        }),
        "employees": pa.table({
            "id": int_array(np.arange(1, n_e + 1)),
            "name": e_names,
            "role": take(pa.array(ROLES), e_role),
            "hired_on": date_array(e_hired),
            "store_id": int_array(e_store + 1),
        }),
        "products": pa.table({
            "sku": pa.array([f"SKU-{i:06d}" for i in range(1, n_p + 1)]),
            "name": pa.array(p_names),
            "category": take(pa.array(cats), p_cat),
            "brand": pa.array(p_brand_name, mask=r_prod.random(n_p) < 0.02),
            "price": decimal_array(p_price, 12),
            "launched_on": date_array(p_launch),
        }),
        "users": pa.table({
            "id": int_array(ids),
            "name": u_names,
            "email": email,
            "gender": take(pa.array(GENDERS), gender, mask=r_user.random(n) < 0.01),
            "birth_year": int_array(birth, mask=r_user.random(n) < 0.05),
            "city": take(city_names, u_city),
            "signup_date": date_array(signup),
            "home_store_id": int_array(home + 1, mask=home < 0),
            "is_member": pa.array(member, pa.bool_()),
        }),
    }  # fmt: skip
    old = pop * (p_launch < start_day)
    return World(
        start_day=start_day, end_day=end_day,
        day_cdf=np.concatenate([[0.0], np.cumsum(day_weights(start_day, days))]),
        store_city=s_city, store_format=s_fmt, store_opened=s_opened, store_area=s_area,
        store_cdf=store_cdf, store_emp_first=first, store_cashiers=n_cash,
        emp_store=e_store, emp_role=e_role, emp_hired=e_hired,
        prod_category=p_cat, prod_brand=p_brand, prod_price=p_price, prod_launch=p_launch,
        prod_cdf=cdf(pop), prod_old_cdf=cdf(old), sku=tables["products"].column("sku").chunk(0),
        user_segment=seg, user_propensity=prop, user_home=home, user_pref=pref,
        user_signup=signup, user_lo=lo, user_hi=hi, user_online=online, user_member=member,
        entity_tables=tables,
    )  # fmt: skip
