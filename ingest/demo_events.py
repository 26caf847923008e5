"""Behavioural event streams of the synthetic retail demo world (see ``ingest.demo``).

Events are drawn for one chunk of users at a time (memory stays bounded for huge runs); every
table comes back sorted by ``ts``. Order ids and coupon ids continue across chunks via the
``order_base`` / ``coupon_base`` counters.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ingest.demo_world import (
    DAY_US,
    HOUR_US,
    LAPSED,
    LOYAL,
    NEVER,
    ONLINE_HOURS,
    STORE_HOURS,
    Arr,
    World,
    cdf,
    decimal_array,
    int_array,
    pick,
    take,
    ts_array,
)

MINUTE_US = 60_000_000
CHANNELS = pa.array(["store", "app", "web"])
LINKED_CAMPAIGNS = pa.array(["member-day", "spring-sale", "618", "double11", "birthday"])
BLAST_CAMPAIGNS = pa.array(["member-day", "spring-sale", "618", "double11", "new-arrivals"])
COUPON_CAMPAIGNS = pa.array(["welcome", "winback"])
COUPON_VALUES = np.array([500, 1000, 2000, 3000, 5000])  # cents
STORE_CDF = cdf(STORE_HOURS)
ONLINE_CDF = cdf(ONLINE_HOURS)
SHIFT_START_CDF = cdf(np.array([0] * 7 + [4, 6, 5, 3, 1, 2, 4, 3, 1] + [0] * 8, float))
SHIFT_HOURS = np.array([4, 4.5, 5, 6, 6, 7, 7.5, 8, 8, 8, 8, 8.5, 9, 10])


def expand(counts: Arr) -> tuple[Arr, Arr]:
    """(owner index, index within owner) for ``counts[i]`` items owned by each i."""
    owner = np.repeat(np.arange(len(counts)), counts)
    starts = np.cumsum(counts) - counts
    return owner, np.arange(len(owner)) - starts[owner]


def _sorted(cols: dict[str, pa.Array]) -> pa.Table:
    table = pa.table(cols)
    order = np.argsort(table.column("ts").to_numpy(), kind="stable")
    return table.take(pa.array(order))


def _store_ids(store: Arr) -> pa.Array:
    return int_array(store + 1, mask=store < 0)


def _sku_strings(world: World, sku: Arr) -> pa.Array:
    return take(world.sku, sku)


def chunk_events(
    world: World, rng: np.random.Generator, u0: int, u1: int, order_base: int, coupon_base: int
) -> tuple[dict[str, pa.Table], int, int]:
    """All user-driven streams for users ``u0 <= index < u1``; returns (tables, orders, coupons)."""
    w, n = world, u1 - u0
    seg = w.user_segment[u0:u1]
    prop = w.user_propensity[u0:u1]
    lo, hi = w.user_lo[u0:u1], w.user_hi[u0:u1]
    lo_us = (w.start_day + lo) * DAY_US
    pref = w.user_pref[u0:u1]
    days = w.days
    f = days / 365  # expected counts below are per year of window

    # --- purchases: never-buyers none, loyal steady (stratified over the window), others random
    lam = f * np.select([seg == LOYAL, seg == LAPSED], [6.0 * prop, 1.4 * prop], 0.9 * prop)
    n_buy = np.where(
        seg == NEVER, 0, np.where(seg == LOYAL, max(2, round(6 * f)), 1) + rng.poisson(lam)
    )
    u, k = expand(n_buy)
    m = len(u)
    r = rng.random(m)
    r = np.where(seg[u] == LOYAL, (k + r) / np.maximum(n_buy[u], 1), r)
    day = w.sample_days(rng, lo[u], hi[u], r)
    online = rng.random(m) < w.user_online[u0:u1][u]
    chan = np.where(online, np.where(rng.random(m) < 0.67, 1, 2), 0)
    ts = np.where(online, w.to_us(rng, day, ONLINE_CDF), w.to_us(rng, day, STORE_CDF))
    store = np.where(rng.random(m) < 0.8, pref[u], pick(rng, w.store_cdf, m))
    store = np.where(online & (rng.random(m) < 0.4), -1, store)  # online: fulfilment store or none
    cash = w.store_emp_first[store] + 1 + (rng.random(m) * w.store_cashiers[store]).astype(int)
    late = w.emp_hired[cash] > w.start_day + day  # not hired yet: the senior cashier served
    cash = np.where(late, w.store_emp_first[store] + 1, cash)
    cash = np.where(online, -1, cash)
    sku = w.pick_sku(rng, day)
    qty = pick(rng, cdf(np.array([0.62, 0.2, 0.1, 0.05, 0.03])), m) + 1
    gross = w.prod_price[sku] * qty
    value = COUPON_VALUES[rng.integers(0, len(COUPON_VALUES), m)]
    coupon = (rng.random(m) < 0.09) & (gross >= 2 * value)
    member_disc = ~coupon & (rng.random(m) < 0.04)
    amount = gross - np.where(coupon, value, 0) - np.where(member_disc, gross // 10, 0)
    order = order_base + 1 + np.arange(m, dtype=np.int64)
    p_lo_us = lo_us[u]
    tables = {
        "purchase": _sorted({
            "ts": ts_array(ts), "user_id": int_array(u0 + u + 1), "store_id": _store_ids(store),
            "sku": _sku_strings(w, sku), "cashier_id": int_array(cash + 1, mask=cash < 0),
            "order_id": int_array(order), "amount": decimal_array(amount, 12),
            "quantity": int_array(qty), "channel": take(CHANNELS, chan),
        })
    }  # fmt: skip

    # --- store visits: most in-store purchases come with a visit, plus browsing-only visits
    n_vis = rng.poisson(f * (0.45 * prop * (seg != NEVER) + 0.7 * (seg == NEVER)))
    vu, _ = expand(n_vis)
    v_day = w.sample_days(rng, lo[vu], hi[vu])
    linked = np.flatnonzero(~online & (rng.random(m) < 0.9))
    dur_all = np.round(rng.lognormal(np.log(18), 0.7, len(vu) + len(linked)), 1)
    dur_link = dur_all[len(vu) :]
    link_ts = ts[linked] - (dur_link * rng.uniform(0.3, 0.9, len(linked)) * MINUTE_US).astype(int)
    v_ts = np.concatenate([w.to_us(rng, v_day, STORE_CDF), np.maximum(link_ts, p_lo_us[linked])])
    v_user = np.concatenate([vu, u[linked]])
    v_store = np.concatenate(
        [np.where(rng.random(len(vu)) < 0.75, pref[vu], pick(rng, w.store_cdf, len(vu))),
         store[linked]]
    )  # fmt: skip
    tables["visit"] = _sorted({
        "ts": ts_array(v_ts), "user_id": int_array(u0 + v_user + 1),
        "store_id": _store_ids(v_store),
        "duration_min": pa.array(dur_all, pa.float64(), mask=rng.random(len(dur_all)) < 0.03),
    })  # fmt: skip

    # --- funnel: online purchases ← add_to_cart ← view (plus abandoned carts and browsing)
    cart_of = np.flatnonzero(online & (rng.random(m) < 0.75))
    n_ab = rng.poisson(f * 0.45 * prop)
    au, _ = expand(n_ab)
    a_day = w.sample_days(rng, lo[au], hi[au])
    a_ts = np.concatenate([
        np.maximum(ts[cart_of] - rng.exponential(40 * MINUTE_US, len(cart_of)).astype(int),
                   p_lo_us[cart_of]),
        w.to_us(rng, a_day, ONLINE_CDF),
    ])  # fmt: skip
    a_user = np.concatenate([u[cart_of], au])
    a_sku = np.concatenate([sku[cart_of], w.pick_sku(rng, a_day)])
    a_chan = np.concatenate([chan[cart_of], np.where(rng.random(len(au)) < 0.65, 1, 2)])
    a_qty = np.concatenate([qty[cart_of], pick(rng, cdf(np.array([0.7, 0.2, 0.1])), len(au)) + 1])
    tables["add_to_cart"] = _sorted({
        "ts": ts_array(a_ts), "user_id": int_array(u0 + a_user + 1),
        "sku": _sku_strings(w, a_sku), "quantity": int_array(a_qty),
        "channel": take(CHANNELS, a_chan),
    })  # fmt: skip

    view_of = np.flatnonzero(rng.random(len(a_ts)) < 0.85)
    n_br = rng.poisson(f * 2.1 * prop)
    bu, _ = expand(n_br)
    b_day = w.sample_days(rng, lo[bu], hi[bu])
    a_lo_us = lo_us[a_user]
    w_ts = np.concatenate([
        np.maximum(a_ts[view_of] - rng.exponential(15 * MINUTE_US, len(view_of)).astype(int),
                   a_lo_us[view_of]),
        w.to_us(rng, b_day, ONLINE_CDF),
    ])  # fmt: skip
    w_chan = np.concatenate([a_chan[view_of], np.where(rng.random(len(bu)) < 0.65, 1, 2)])
    tables["view"] = _sorted({
        "ts": ts_array(w_ts), "user_id": int_array(u0 + np.concatenate([a_user[view_of], bu]) + 1),
        "sku": _sku_strings(w, np.concatenate([a_sku[view_of], w.pick_sku(rng, b_day)])),
        "channel": take(CHANNELS, w_chan, mask=rng.random(len(w_ts)) < 0.01),
    })  # fmt: skip

    # --- coupons: issued before the discounted purchases that redeem them, plus campaigns
    cp = np.flatnonzero(coupon)
    c_issue = ts[cp] - rng.integers(2 * HOUR_US, 30 * DAY_US, len(cp))
    early = c_issue < p_lo_us[cp]  # would precede the user's first day: anywhere in between
    c_issue[early] = p_lo_us[cp][early] + (
        rng.random(int(early.sum())) * (ts[cp][early] - p_lo_us[cp][early])
    ).astype(np.int64)
    keep = c_issue < ts[cp]
    cp, c_issue = cp[keep], c_issue[keep]
    n_blast = rng.poisson(f * 0.2, n)
    bl_u, _ = expand(n_blast)
    bl_ts = w.to_us(rng, w.sample_days(rng, lo[bl_u], np.full(len(bl_u), days)), ONLINE_CDF)
    welcome = np.flatnonzero((w.user_signup[u0:u1] >= w.start_day) & (rng.random(n) < 0.7))
    wel_ts = (w.user_signup[u0:u1][welcome] * DAY_US) + rng.integers(8 * HOUR_US, 22 * HOUR_US,
                                                                      len(welcome))  # fmt: skip
    winback = np.flatnonzero((seg == LAPSED) & (rng.random(n) < 0.6))
    wb_day = w.sample_days(rng, hi[winback], np.full(len(winback), days))
    wb_ts = w.to_us(rng, wb_day, ONLINE_CDF)
    i_user = np.concatenate([u[cp], bl_u, welcome, winback])
    n_iss = len(i_user)
    i_store = np.concatenate([
        store[cp], np.where(rng.random(len(bl_u)) < 0.5, pref[bl_u], -1),
        np.full(len(welcome) + len(winback), -1),
    ])  # fmt: skip
    campaign = pa.concat_arrays([
        take(LINKED_CAMPAIGNS, rng.integers(0, len(LINKED_CAMPAIGNS), len(cp))),
        take(BLAST_CAMPAIGNS, rng.integers(0, len(BLAST_CAMPAIGNS), len(bl_u))),
        take(COUPON_CAMPAIGNS, np.repeat([0, 1], [len(welcome), len(winback)])),
    ])  # fmt: skip
    i_value = np.concatenate([
        value[cp], COUPON_VALUES[rng.integers(0, 3, len(bl_u))],
        np.where(rng.random(len(welcome)) < 0.5, 1000, 2000),
        np.where(rng.random(len(winback)) < 0.5, 3000, 5000),
    ])  # fmt: skip
    cid = pc.binary_join_element_wise(
        "CPN-", pc.utf8_lpad(pc.cast(int_array(coupon_base + 1 + np.arange(n_iss)), pa.string()),
                             width=9, padding="0"), "",
    )  # fmt: skip
    tables["coupon_issue"] = _sorted({
        "ts": ts_array(np.concatenate([c_issue, bl_ts, wel_ts, wb_ts])),
        "user_id": int_array(u0 + i_user + 1), "store_id": _store_ids(i_store),
        "coupon_id": cid, "campaign": campaign,
        "value": decimal_array(i_value, 10, mask=rng.random(n_iss) < 0.005),
    })  # fmt: skip
    tables["coupon_use"] = _sorted({
        "ts": ts_array(ts[cp]), "user_id": int_array(u0 + u[cp] + 1),
        "store_id": _store_ids(store[cp]), "coupon_id": cid.slice(0, len(cp)),
        "order_id": int_array(order[cp]),
    })  # fmt: skip
    return tables, m, n_iss


def shift_events(world: World, rng: np.random.Generator, e0: int, e1: int) -> pa.Table:
    """Shifts of employees ``e0 <= index < e1``: ~5 a week each from hire date, 4-10 hours."""
    w = world
    hired_rel = np.clip(w.emp_hired[e0:e1] - w.start_day, 0, w.days)
    works = rng.random((e1 - e0, w.days)) < 5 / 7
    works &= np.arange(w.days)[None, :] >= hired_rel[:, None]
    emp, day = np.nonzero(works)
    start = pick(rng, SHIFT_START_CDF, len(day)) * HOUR_US
    start += rng.integers(0, 4, len(day)) * 15 * MINUTE_US
    return _sorted({
        "ts": ts_array((w.start_day + day) * DAY_US + start),
        "employee_id": int_array(e0 + emp + 1),
        "store_id": int_array(w.emp_store[e0 + emp] + 1),
        "hours": pa.array(SHIFT_HOURS[rng.integers(0, len(SHIFT_HOURS), len(day))], pa.float64()),
    })  # fmt: skip
