"""EQL texts that must parse: the sketch's examples (in the chosen syntax) and one of each form.

Names follow the retail demo schema (examples/retail/schema.yaml). Used by the parse, span,
round-trip and mutation-fuzzing tests.
"""

from __future__ import annotations

# The examples of /work/shared/EQL-SKETCH.md. Changes from the sketch's proposal:
# * FIND EVENTS puts its DURING window right after the stream name (before WHERE);
# * a tag's earlier value is read in parentheses: `(value_tier AS OF '2026-10-01')`;
# * `EXPLAIN FIND users WHERE ...` is shown with a real condition.
SKETCH: dict[str, str] = {
    "users_in_shanghai": """
-- one row per entity: users in Shanghai who bought at least 3 times in the last 30 days
FIND users
WHERE home_store.city = 'Shanghai'
  AND count(purchase DURING LAST 30 DAYS) >= 3
RETURN id, name,
       sum(purchase.amount DURING LAST 30 DAYS) AS spend_30d,
       days_since(last(purchase.time)) AS recency
ORDER BY spend_30d DESC
LIMIT 100
AS OF '2026-11-01'
""",
    "filters_inside_aggregates": """
-- filters inside an aggregate see the event's own fields
FIND users
WHERE sum(purchase.amount WHERE channel = 'app' DURING LAST 90 DAYS) > 500
  AND DID visit DURING LAST 7 DAYS
  AND NOT DID coupon_use DURING LAST 30 DAYS
""",
    "stores_ranked": """
-- other entities have their own events: stores ranked by sales, and by their members' activity
FIND stores
RETURN id, city,
       sum(purchase.amount DURING LAST 30 DAYS) AS sales_30d,
       count(members WHERE count(purchase DURING LAST 30 DAYS) = 0) AS idle_members
ORDER BY sales_30d DESC
""",
    "grouping_entities": """
-- grouping entities
FIND users
WHERE in segment lapsed_vip
GROUP BY home_store.region
RETURN home_store.region, count() AS users, avg(sum(purchase.amount)) AS avg_lifetime_spend
""",
    "event_centric": """
-- event-centric: one row per event, or grouped
FIND EVENTS purchase DURING LAST 7 DAYS
WHERE store.city = $city
GROUP BY day(time), product.category
RETURN day(time) AS day, product.category, sum(amount) AS sales, count(DISTINCT user) AS buyers
""",
    "value_tier_tag": """
-- a valued tag: first matching branch wins (layered tags)
DEFINE TAG value_tier ON users AS
  CASE WHEN sum(purchase.amount DURING LAST 90 DAYS) >= 2000 THEN 'high'
       WHEN sum(purchase.amount DURING LAST 90 DAYS) >= 300  THEN 'mid'
       ELSE 'low' END
""",
    "rfm_tag": """
-- built-in RFM scoring: R, F, M quintile scores and a named RFM class
DEFINE TAG rfm ON users AS rfm(purchase, amount, DURING LAST 365 DAYS)
""",
    "clusters": """
-- clustering: k-means over per-entity features, deterministic with a seed
DEFINE CLUSTERS shopper_type ON users K 4 SEED 7 FEATURES (
  recency   = days_since(last(purchase.time)),
  frequency = count(purchase DURING LAST 180 DAYS),
  monetary  = sum(purchase.amount DURING LAST 180 DAYS))
""",
    "segment": """
-- an audience
DEFINE SEGMENT lapsed_vip ON users WHERE
  sum(purchase.amount DURING LAST 365 DAYS) > 1000 AND NOT DID purchase DURING LAST 60 DAYS
""",
    "refresh": "REFRESH SEGMENT lapsed_vip          -- materialise a new version",
    "tag_and_segments": (
        "FIND users WHERE value_tier = 'high' AND in segment lapsed_vip"
        " AND NOT in segment opted_out"
    ),
    "explain": "EXPLAIN FIND users WHERE value_tier = 'high'        -- the plan, stage by stage",
    "tag_history": "FIND users WHERE (value_tier AS OF '2026-10-01') = 'high'",
}

# One or more of every form the grammar has.
FORMS: dict[str, str] = {
    "find_minimal": "FIND users",
    "find_semicolon": "find users;",
    "find_all_clauses": """
        FIND users WHERE is_member GROUP BY city RETURN city, count() AS n
        ORDER BY n DESC NULLS LAST, city ASC NULLS FIRST LIMIT $top AS OF $t
    """,
    "find_events_full": """
        FIND EVENTS coupon_use DURING '2026-10-01' TO '2026-11-01'
        WHERE store.region IN ('north', 'south') AND coupon_id LIKE 'WELCOME%'
        GROUP BY store.id RETURN store.id, count(*) AS uses ORDER BY uses DESC LIMIT 10
        AS OF TIMESTAMP '2026-11-01 00:00:00'
    """,
    "find_events_plain": "FIND EVENTS shift WHERE hours > 8.5 RETURN employee.name, hours",
    "explain_stages": "EXPLAIN DATAFUSION FIND EVENTS view DURING LAST 2 HOURS",
    "explain_all_define": "EXPLAIN ALL DEFINE SEGMENT s ON stores WHERE format = 'mall'",
    "explain_ast": "EXPLAIN AST FIND products WHERE price BETWEEN 10 AND 20.50",
    "explain_bound": "EXPLAIN BOUND FIND employees WHERE role = 'cashier'",
    "explain_plan": "EXPLAIN PLAN FIND stores WHERE area_sqm >= 100",
    "explain_membership_int": "EXPLAIN MEMBERSHIP lapsed_vip FOR 42",
    "explain_membership_str": "EXPLAIN MEMBERSHIP gifted FOR 'SKU-0001'",
    "explain_membership_param": "EXPLAIN MEMBERSHIP lapsed_vip FOR $user_id",
    "refresh_tag": "REFRESH TAG value_tier",
    "refresh_clusters": "REFRESH CLUSTERS shopper_type",
    "drop": "DROP SEGMENT lapsed_vip",
    "describe": "DESCRIBE CLUSTERS shopper_type",
    "show_tags": "SHOW TAGS",
    "show_segments": "SHOW SEGMENTS",
    "show_clusters": "SHOW CLUSTERS",
    "define_store_rfm": "DEFINE TAG store_rfm ON stores AS rfm(purchase.amount DURING LAST 1 YEAR)",
    "literals": """
        FIND users WHERE a = 1 AND b = 123.45 AND c = 'it''s' AND d = TRUE AND e = false
          AND f IS NULL AND g IS NOT NULL AND h = DATE '2026-01-01'
          AND i < TIMESTAMP '2026-01-01 10:00:00' AND j = $p AND k = 0.000001
          AND coalesce(l, NULL) = 1
    """,
    "predicates": """
        FIND users WHERE x NOT IN (1, 2) AND y IN $ids AND z NOT IN $bad
          AND w NOT BETWEEN 1 AND 5 AND v NOT LIKE 'a%' AND u <> 3 AND t != 4
          AND s <= 5 AND r > -6 AND q < 7 AND p >= 8
    """,
    "arithmetic": "FIND users RETURN -a + b * c - d / e % f, -(a + b), - -a, (a - b) - c",
    "boolean": "FIND users WHERE a OR b AND NOT c OR (d OR e) AND NOT (f AND g)",
    "case_simple": "FIND users RETURN CASE gender WHEN 'female' THEN 'F' WHEN 'male' THEN 'M' END",
    "case_nested": "FIND users RETURN CASE WHEN a THEN CASE WHEN b THEN 1 ELSE 2 END ELSE 3 END",
    "did_forms": """
        FIND users WHERE DID purchase AND DID visit WHERE duration_min > 30
          AND DID purchase WHERE (channel = 'app' AND amount > 100) DURING LAST 1 WEEK
          AND NOT DID view DURING '2026-01-01' TO $end
    """,
    "did_in_aggregate_filter": """
        FIND stores RETURN count(members WHERE DID purchase DURING LAST 30 DAYS) AS active,
          count(members WHERE (DID purchase) DURING LAST 30 DAYS) AS active_window_on_count
    """,
    "call_forms": """
        FIND users RETURN count(), count(*), count(* WHERE amount > 3), f(a, b, c),
          count(DISTINCT purchase.store), sum(purchase.amount DURING LAST $n MONTHS WHERE x),
          max(purchase.amount WHERE channel IN ('app', 'web')), coalesce(a, 0)
    """,
    "soft_keywords": """
        FIND users WHERE segment = 1 AND last = 2 AND day = 3 AND first(purchase.time) > 4
        RETURN day(time) AS day, x AS last, y AS desc, date, `in`, `events`.`where`
    """,
    "quoted_names": "FIND `user table` WHERE `odd``name` = 1 RETURN `x y` AS `select`",
    "comments": """
        /* block
           comment */ FIND users -- trailing
        WHERE /* inline */ x = 1 -- done
    """,
    "keywords_case": "find Users where X = 1 and Y is not null return Z as w order by z desc",
    "as_of_value_params": "FIND users WHERE (value_tier AS OF $then) != value_tier",
    "timestamp_offset": "FIND users WHERE t > TIMESTAMP '2026-01-01T08:00:00+08:00'",
    "units": """
        FIND users RETURN count(visit DURING LAST 1 HOUR), count(visit DURING LAST 2 HOURS),
          count(visit DURING LAST 1 DAY), count(visit DURING LAST 1 MONTH),
          count(visit DURING LAST 2 YEARS), count(visit DURING LAST 3 WEEKS)
    """,
}

CORPUS: dict[str, str] = {**SKETCH, **FORMS}
