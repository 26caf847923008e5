"""Server settings: every limit in one place, read from `EQL_*` environment variables.

`Settings()` reads the environment (`EQL_DATA_DIR`, `EQL_MAX_ROWS`, ...); `eql serve` passes the
command line's values on top. Sizes are bytes, times seconds, rates requests per second per key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from runtime.engine import EngineSettings


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EQL_", extra="ignore", frozen=True)

    data_dir: Path = Path("./eql-data")
    keys_file: Path | None = None  # default: DATA_DIR/keys.json
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)

    # the query engine
    memory_limit: int | None = Field(default=1 << 30, ge=1)  # DataFusion's spill pool, bytes
    target_partitions: int = Field(default=2, ge=1, le=64)
    batch_size: int = Field(default=8192, ge=64, le=1 << 20)  # rows of a DataFusion batch
    # per-entity aggregates from the streams' per-entity index (`storage.rollups`); 0: scan
    rollups: bool = True

    # heavy work: EQL queries and explains
    query_workers: int = Field(default=4, ge=1, le=256)  # concurrent queries (threads)
    query_queue_timeout: float = Field(default=2.0, ge=0)  # wait for a worker, then 429
    query_deadline: float = Field(default=30.0, gt=0)  # seconds from request to last byte
    default_rows: int = Field(default=1000, ge=1)
    max_rows: int = Field(default=100_000, ge=1)
    # bytes of one encoded result at most (any format); JSON documents, kept whole until their
    # end, also count against `memory_limit` all together
    max_result_bytes: int = Field(default=64 << 20, ge=1024)

    # request sizes
    max_body_bytes: int = Field(default=1 << 20, ge=64)
    # the body of one file import (`POST /v1/ingest/...`), streamed to a file, not held whole
    max_ingest_bytes: int = Field(default=1 << 30, ge=64)
    max_header_bytes: int = Field(default=16 << 10, ge=1024)  # all request headers together
    max_query_chars: int = Field(default=20_000, ge=16)
    max_key_chars: int = Field(default=512, ge=1)
    header_timeout: float = Field(default=10.0, gt=0)  # seconds for a request's headers
    keys_recheck: float = Field(default=0.1, ge=0)  # seconds between looks at the keys file

    # per-key token buckets; a rate of 0 turns the limit off
    rate_query: float = Field(default=20.0, ge=0)
    rate_query_burst: int = Field(default=40, ge=1)
    rate_lookup: float = Field(default=20_000.0, ge=0)
    rate_lookup_burst: int = Field(default=40_000, ge=1)

    # segments and tags: writes (define, refresh, drop), batch lookups, the change feed
    refresh_deadline: float = Field(default=600.0, gt=0)  # seconds for one define/refresh
    max_batch_keys: int = Field(default=100_000, ge=1)  # keys in one batch membership request
    feed_chunk: int = Field(default=10_000, ge=1)  # keys in one change event at most
    feed_keepalive: float = Field(default=15.0, gt=0)  # seconds between keep-alive comments
    feed_max_seconds: float = Field(default=300.0, gt=0)  # a feed then ends; the reader resumes
    feed_retry: float = Field(default=1.0, ge=0)  # the `retry:` a feed suggests, seconds

    # the nice value of query threads and DataFusion's threads (0: as the event loop's)
    query_nice: int = Field(default=10, ge=0, le=19)
    # seconds a thread may hold the GIL before another may run (Python's default: 0.005)
    gil_switch_interval: float = Field(default=0.001, gt=0, le=0.1)

    # `eql serve --workers N`: processes on the port (one writer, the rest readers), and how
    # often a reader follows the writer (`server.follow`), seconds
    workers: int = Field(default=1, ge=1, le=64)
    # CDC connectors the writer runs (`eql serve --cdc CONFIG`, `server.replication`): their
    # config files; consecutive failures before one is left `failed` (None: retry forever);
    # seconds a stop waits for them at shutdown
    cdc: tuple[Path, ...] = ()
    cdc_max_failures: int | None = Field(default=None, ge=1)
    cdc_stop_timeout: float = Field(default=30.0, gt=0)
    cdc_reader: Literal["process", "thread"] = "process"  # where the binlog is decoded
    follow_interval: float = Field(default=0.1, gt=0, le=10)

    # lookups (profiles, membership) on a raw ASGI path in front of FastAPI's router
    fast_lookups: bool = True
    docs: bool = True  # serve /docs and /openapi.json

    # observability (server.metrics, server.logs)
    metrics_require_admin: bool = False  # GET /metrics needs a key with scope admin
    access_log: bool = False  # a JSON line per request and per query on stdout
    log_level: Literal["debug", "info", "warning", "error"] = "info"  # the server's own log

    @model_validator(mode="after")
    def _rows(self) -> Settings:
        if self.default_rows > self.max_rows:
            raise ValueError("default_rows must not exceed max_rows")
        return self

    def engine(self) -> EngineSettings:
        """What the query engine takes of these settings."""
        return EngineSettings(
            target_partitions=self.target_partitions,
            memory_limit=self.memory_limit,
            batch_size=self.batch_size,
            rollups=self.rollups,
        )

    @property
    def keys_path(self) -> Path:
        return self.keys_file if self.keys_file is not None else self.data_dir / "keys.json"
