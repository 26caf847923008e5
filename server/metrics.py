"""The metrics of one app, for `GET /metrics` (Prometheus text format, `server.routers.metrics`).

`Metrics` holds a `CollectorRegistry` of its own (never prometheus_client's global one), so several
apps in one process (the tests) count apart and never clash. Two ways of counting:

- Per request (HTTP requests, lookups): plain integers (`HttpCounts`, `LookupCounts`), changed
  only on the event loop (the fast path, the ASGI wrapper of `server.app`, the lookup handlers),
  about 0.2 µs a request where a prometheus_client histogram observation costs 0.6 µs and a
  counter 0.3 µs; a collector turns them into samples when scraped. Batch membership may run on
  a thread (large bodies), so it counts under a lock.
- Rarer events (queries, refreshes) in prometheus_client's own (thread-safe) metric types.

Families (docs/server.md lists them): `eql_http_requests_total{route, method, status}` and
`eql_http_request_duration_seconds{route}` (by route template, never the raw path: no user keys
in labels; a path that matches no route is `unmatched`, an unknown method `other`);
`eql_lookups_total{kind}` and `eql_batch_membership_keys_total`; `eql_queries_total{kind,
outcome}` and `eql_query_duration_seconds{kind, outcome}`; `eql_refreshes_total{kind, outcome}`
and `eql_refresh_duration_seconds{kind}`; gauges read from the app when scraped (queries running
and queued, workers, result bytes held, open feeds); `eql_build_info{version}`; the process
(`process_*`: CPU, memory, open files).

Ingest and CDC: `eql_ingest_rows_total{target}` and `eql_ingest_rejects_total{target}` count the
rows the file imports of `POST /v1/ingest/...` committed and rejected (`server.routers.ingest`;
`target` is the entity or stream, a name of the schema). `eql_cdc_transactions_total{source}` and
`eql_cdc_lag_seconds{source}` are defined for CDC in the server to feed. The families carry labels
so that no sample shows until something feeds them: nothing is made up meanwhile.
"""

from __future__ import annotations

import asyncio
import re
import threading
from bisect import bisect_left
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder

from eql.diagnostics import EqlError
from server.errors import ApiError
from server.runner import QueryRunner
from server.version import VERSION

# seconds: lookups answer in well under a millisecond, feeds and big results stream for minutes
HTTP_BUCKETS: tuple[float, ...] = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)
HTTP_BUCKETS += (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
QUERY_BUCKETS: tuple[float, ...] = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
QUERY_BUCKETS += (2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
REFRESH_BUCKETS: tuple[float, ...] = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
REFRESH_BUCKETS += (120.0, 300.0, 600.0)
_BOUNDS = (*(str(b) for b in HTTP_BUCKETS), "+Inf")
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"

# what a query or refresh ended with (its error code, or None) -> the `outcome` label
_OUTCOMES = {
    "cancelled": "cancelled",  # the client went away
    "deadline_exceeded": "timed_out",
    "busy": "rejected",  # every worker busy past the queue wait
    "memory_limit": "memory_limit",
    "result_too_large": "result_too_large",
    "query_failed": "failed",  # an Arrow failure while running
    "forbidden": "forbidden",
    "internal": "internal",  # a bug: a 500
}
_EQL_CODE = re.compile(r"E[0-9]{3}")


def outcome(code: str | None) -> str:
    """The `outcome` label of a query or refresh: `ok`; an EQL error's class (`E1xx` syntax,
    `E2xx` names and types, `E3xx` failures while running); a named outcome (`_OUTCOMES`); else
    `invalid` (a request refused by a limit: `query_too_large`, `not_acceptable`, ...)."""
    if code is None:
        return "ok"
    if _EQL_CODE.fullmatch(code):
        return code[:2] + "xx"
    return _OUTCOMES.get(code, "invalid")


def code_of(exc: BaseException) -> str:
    """The error code a query or refresh ended with: an EQL error's first code, the server's
    own code, `cancelled` (stopped: the client went away), or `internal` (a bug: a 500)."""
    if isinstance(exc, EqlError):
        return exc.codes[0]
    if isinstance(exc, ApiError):
        return exc.code
    if isinstance(exc, asyncio.CancelledError):
        return "cancelled"
    return "internal"


class RouteCounts:
    """One route's requests by method and status, and their latency. Event loop only. GET (the
    lookups) counts by status alone: one dictionary update, one bucket, a sum."""

    __slots__ = ("buckets", "get", "other", "total")

    def __init__(self) -> None:
        self.get: dict[int, int] = {}  # GET requests by status
        self.other: dict[tuple[str, int], int] = {}  # the other methods', by (method, status)
        self.buckets = [0] * (len(HTTP_BUCKETS) + 1)  # the last one: above every bound
        self.total = 0.0

    def observe_get(self, status: int, seconds: float) -> None:
        get = self.get
        get[status] = get.get(status, 0) + 1
        self.buckets[bisect_left(HTTP_BUCKETS, seconds)] += 1
        self.total += seconds

    def observe(self, method: str, status: int, seconds: float) -> None:
        if method == "GET":
            self.observe_get(status, seconds)
            return
        key = (method if method in METHODS else "other", status)
        self.other[key] = self.other.get(key, 0) + 1
        self.buckets[bisect_left(HTTP_BUCKETS, seconds)] += 1
        self.total += seconds

    def requests(self) -> list[tuple[str, int, int]]:
        """(method, status, count) of every request seen."""
        return [("GET", s, n) for s, n in list(self.get.items())] + [
            (m, s, n) for (m, s), n in list(self.other.items())
        ]


class HttpCounts:
    """Requests and latency by route template (`RouteCounts`). Event loop only."""

    def __init__(self) -> None:
        self.routes: dict[str, RouteCounts] = {}

    def route(self, template: str) -> RouteCounts:
        """The counts of a route (the fast path keeps its routes' at hand)."""
        counts = self.routes.get(template)
        if counts is None:
            counts = self.routes[template] = RouteCounts()
        return counts

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        self.route(route).observe(method, status, seconds)


class LookupCounts:
    """Lookups answered (200), by kind. Single lookups run on the event loop and count without a
    lock; a batch may run on a thread and counts under one."""

    __slots__ = ("_lock", "batch_keys", "batches", "membership", "profile", "segments_of")

    def __init__(self) -> None:
        self.membership = 0
        self.profile = 0
        self.segments_of = 0
        self.batches = 0
        self.batch_keys = 0
        self._lock = threading.Lock()

    def batch(self, keys: int) -> None:
        with self._lock:
            self.batches += 1
            self.batch_keys += keys


# gauges read when scraped: name, help, value (of the runner, and the open feeds)
_GAUGES: tuple[tuple[str, str, Callable[[QueryRunner, int], float]], ...] = (
    ("eql_queries_running", "Query slots held (queries and writes)", lambda r, f: r.stats.running),
    ("eql_queries_queued", "Queries waiting for a query slot", lambda r, f: r.stats.queued),
    ("eql_query_workers", "Query slots (EQL_QUERY_WORKERS)", lambda r, f: r.workers),
    ("eql_result_bytes_held", "Bytes of JSON results being built", lambda r, f: r.held),
    ("eql_feeds_open", "Change feeds being streamed", lambda r, f: f),
)


class _Live:
    """Samples made when scraped: the plain counters and the app's gauges."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def describe(self) -> list[Metric]:
        """The families (for the registry's check of duplicate names), without samples."""
        return [*self._counted(empty=True), *(GaugeMetricFamily(n, d) for n, d, _ in _GAUGES)]

    def collect(self) -> Iterator[Metric]:
        yield from self._counted()
        watched = self.metrics.watched
        if watched is not None:
            runner, feeds = watched[0], watched[1]()
            for name, doc, value in _GAUGES:
                yield GaugeMetricFamily(name, doc, value(runner, feeds))

    def _counted(self, empty: bool = False) -> Iterator[Metric]:
        m = self.metrics
        requests = CounterMetricFamily(
            "eql_http_requests",
            "HTTP requests answered, by route template, method and status",
            labels=["route", "method", "status"],
        )
        latency = HistogramMetricFamily(
            "eql_http_request_duration_seconds",
            "From a request's arrival to its last byte (a stream's end), by route template",
            labels=["route"],
        )
        lookups = CounterMetricFamily("eql_lookups", "Lookups answered", labels=["kind"])
        keys = CounterMetricFamily(
            "eql_batch_membership_keys", "Keys asked about by batch membership", labels=[]
        )
        info = GaugeMetricFamily("eql_build_info", "The server's version", labels=["version"])
        if not empty:
            for route, counts in list(m.http.routes.items()):
                for method, status, n in counts.requests():
                    requests.add_metric([route, method, str(status)], n)
                cumulative, seen = [], 0
                for bound, n in zip(_BOUNDS, counts.buckets, strict=True):
                    seen += n
                    cumulative.append((bound, seen))
                latency.add_metric([route], cumulative, counts.total)
            c = m.lookups
            lookups.add_metric(["membership"], c.membership)
            lookups.add_metric(["batch_membership"], c.batches)
            lookups.add_metric(["profile"], c.profile)
            lookups.add_metric(["segments_of"], c.segments_of)
            keys.add_metric([], c.batch_keys)
            info.add_metric([VERSION], 1)
        yield from (requests, latency, lookups, keys, info)


class Metrics:
    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry(auto_describe=True)
        # what the gauges read (`watch`): the query runner, and how many feeds are open
        self.watched: tuple[QueryRunner, Callable[[], int]] | None = None
        self.http = HttpCounts()
        self.lookups = LookupCounts()
        self.queries = Counter(
            "eql_queries",
            "Queries, explains and statements answered (/v1/query, /v1/explain), by outcome",
            ["kind", "outcome"],
            registry=registry,
        )
        self.query_seconds = Histogram(
            "eql_query_duration_seconds",
            "From the query's arrival to its last byte, by kind and outcome",
            ["kind", "outcome"],
            buckets=QUERY_BUCKETS,
            registry=registry,
        )
        self.refreshes = Counter(
            "eql_refreshes",
            "Segment, tag and cluster refreshes, by outcome",
            ["kind", "outcome"],
            registry=registry,
        )
        self.refresh_seconds = Histogram(
            "eql_refresh_duration_seconds",
            "The work of a refresh that succeeded (compute and commit), by kind",
            ["kind"],
            buckets=REFRESH_BUCKETS,
            registry=registry,
        )
        # fed by the file imports over HTTP (server.routers.ingest), by target
        self.ingest_rows = Counter(
            "eql_ingest_rows",
            "Rows committed by live ingest, by target (an entity or a stream)",
            ["target"],
            registry=registry,
        )
        self.ingest_rejects = Counter(
            "eql_ingest_rejects",
            "Rows live ingest rejected, by target",
            ["target"],
            registry=registry,
        )
        self.cdc_transactions = Counter(
            "eql_cdc_transactions",
            "Source transactions applied by CDC, by source",
            ["source"],
            registry=registry,
        )
        self.cdc_lag = Gauge(
            "eql_cdc_lag_seconds",
            "Seconds between a source's last change and its application here, by source",
            ["source"],
            registry=registry,
        )
        registry.register(_Live(self))
        ProcessCollector(registry=registry)

    def watch(self, runner: QueryRunner, feeds: Callable[[], int]) -> None:
        """The gauges read `runner` and `feeds()` when scraped (set once the app has started)."""
        self.watched = (runner, feeds)

    def query(self, kind: str, code: str | None, seconds: float) -> None:
        label = outcome(code)
        self.queries.labels(kind, label).inc()
        self.query_seconds.labels(kind, label).observe(seconds)

    def refreshed(self, kind: str, code: str | None, seconds: float | None = None) -> None:
        """A refresh ended (`code` None: it succeeded and its work took `seconds`)."""
        kind = kind.lower()
        self.refreshes.labels(kind, outcome(code)).inc()
        if code is None and seconds is not None:
            self.refresh_seconds.labels(kind).observe(seconds)

    def render(self, accept: str | None) -> tuple[bytes, str]:
        """The exposition and its media type: the Prometheus text format, or OpenMetrics when
        `Accept` asks for it (Prometheus itself does)."""
        encode, media = choose_encoder(accept or "")
        return encode(self.registry), media
