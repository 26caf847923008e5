"""The rule fixtures: for each rule, queries it must rewrite and queries it must leave alone.
Their before/after plans are in tests/eql/rules/fixtures/<rule>.txt (update them with
`EQL_UPDATE_SNAPSHOTS=1 python -m pytest tests/eql/rules` and read the diff)."""

from __future__ import annotations

REWRITES, LEAVES = True, False

# rule -> (case name, EQL, whether the rule rewrites it)
CASES: dict[str, list[tuple[str, str, bool]]] = {
    "count_zero_anti_join": [
        (
            "idle members per store",
            "FIND stores RETURN id, "
            "count(members WHERE count(purchase DURING LAST 30 DAYS) = 0) AS idle_members",
            REWRITES,
        ),
        (
            "no purchase, with another condition",
            "FIND users WHERE count(purchase DURING LAST 7 DAYS) < 1 AND birth_year > 1980 "
            "RETURN id",
            REWRITES,
        ),
        ("at most zero", "FIND users WHERE count(purchase) <= 0 RETURN count() AS n", REWRITES),
        (  # the aggregate's WHERE is applied to its input: the rows left are what is counted
            "count with WHERE",
            "FIND users WHERE count(purchase WHERE amount > 100) = 0 RETURN id",
            REWRITES,
        ),
        # the count is also returned; a count of values (not rows) can be 0 for a key that has
        # rows; a count whose WHERE stays its own (another aggregate of the source has none);
        # a comparison with another number
        (
            "count also returned",
            "FIND users WHERE count(purchase) = 0 RETURN id, count(purchase) AS n",
            LEAVES,
        ),
        ("count of values", "FIND users WHERE count(purchase.channel) = 0 RETURN id", LEAVES),
        (
            "count with its own WHERE",
            "FIND users WHERE count(purchase WHERE amount > 100) = 0 "
            "AND sum(purchase.amount) > 0 RETURN id",
            LEAVES,
        ),
        ("not zero", "FIND users WHERE count(purchase) = 1 RETURN id", LEAVES),
    ],
    "shared_scan": [
        (
            "DID and count of the same window",
            "FIND users WHERE DID visit DURING LAST 30 DAYS "
            "RETURN id, count(visit DURING LAST 30 DAYS) AS visits",
            REWRITES,
        ),
        (
            "DID with a filter and a sum with the same filter",
            "FIND users WHERE DID purchase WHERE channel = 'app' "
            "RETURN id, sum(purchase.amount WHERE channel = 'app') AS app_spend",
            REWRITES,
        ),
        # another window; another filter; another stream
        (
            "other window",
            "FIND users WHERE DID visit DURING LAST 7 DAYS "
            "RETURN id, count(visit DURING LAST 30 DAYS) AS visits",
            LEAVES,
        ),
        (
            "other filter",
            "FIND users WHERE DID purchase WHERE channel = 'app' "
            "RETURN id, sum(purchase.amount) AS spend",
            LEAVES,
        ),
        ("other stream", "FIND users WHERE DID visit RETURN id, count(purchase) AS n", LEAVES),
    ],
    "rollups": [
        (
            "a windowed sum and a DID",
            "FIND users WHERE sum(purchase.amount DURING LAST 365 DAYS) > 1000 "
            "AND NOT DID purchase DURING LAST 60 DAYS RETURN id",
            REWRITES,
        ),
        (
            "counts, min and max of several windows over one scan",
            "FIND users WHERE DID visit DURING LAST 30 DAYS RETURN id, "
            "count(visit DURING LAST 7 DAYS) AS v7, max(visit.time DURING LAST 30 DAYS) AS last, "
            "min(purchase.amount) AS least, count(purchase.channel) AS with_channel",
            REWRITES,
        ),
        (
            "lifetime aggregates of stores",
            "FIND stores RETURN id, sum(purchase.amount) AS sales, count(purchase) AS n, "
            "max(purchase.quantity) AS most",
            REWRITES,
        ),
        # an integer sum: whether it leaves int64 depends on the keys the plan keeps
        ("integer sum", "FIND stores RETURN id, sum(purchase.quantity) AS items", LEAVES),
        (
            "equalities on fields",
            "FIND users WHERE sum(purchase.amount WHERE channel = 'app') > 10 "
            "AND DID visit WHERE store IN (1, 2) RETURN id, "
            "count(purchase WHERE channel IN ('app', 'web') DURING LAST 30 DAYS) AS n",
            REWRITES,
        ),
        # another comparison on a field; DISTINCT; an average; a float sum; first/last; an
        # event query
        (
            "comparison on a field",
            "FIND users WHERE sum(purchase.amount WHERE amount > 100) > 10 RETURN id",
            LEAVES,
        ),
        (
            "distinct",
            "FIND users RETURN id, count(DISTINCT purchase.store) AS stores",
            LEAVES,
        ),
        ("average", "FIND users RETURN id, avg(purchase.amount) AS a", LEAVES),
        ("float sum", "FIND users RETURN id, sum(visit.duration_min) AS minutes", LEAVES),
        ("last value", "FIND users RETURN id, last(purchase.amount) AS latest", LEAVES),
        (
            "events",
            "FIND EVENTS purchase DURING LAST 7 DAYS GROUP BY store RETURN store, count() AS n",
            LEAVES,
        ),
        (  # the shape of a DID's keys, but not under a semi or anti join: a row per event
            "events of one column",
            "FIND EVENTS purchase WHERE user IS NOT NULL RETURN user",
            LEAVES,
        ),
    ],
}
