"""What `eql cdc status` shows: every connector's offset record, read from the store."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from ingest.cdc_state import COUNTERS, CdcState
from storage import Store, codec


def states(store: Store) -> list[CdcState]:
    out = []
    for key, value in store.kv.scan(b"o:cdc:"):
        if b":ddl" in key[len(b"o:cdc:") :]:
            continue
        out.append(CdcState.from_json(codec.loads(value)))
    return out


def _when(ts: float | None) -> str | None:
    if ts is None:
        return None
    # RFC 3339 with `Z`, as every other time the CLI and the API print
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def status_json(state: CdcState) -> dict[str, Any]:
    pos = state.position
    snap_rows = sum(p.rows for p in state.tables.values())
    return {
        "name": state.name,
        "phase": state.phase,
        "position": pos.to_json() if pos else None,
        "source_server_id": state.server_id,
        "lag_seconds": state.lag_seconds,
        "last_event_at": _when(state.last_event_at),
        "caught_up_at": _when(state.caught_up_at),
        "updated_at": _when(state.updated_at),
        "seconds_since_update": round(time.time() - state.updated_at, 1),
        "counters": {k: state.counter(k) for k in COUNTERS},
        "snapshot": {
            "tables": {t: {"status": p.status, "rows": p.rows} for t, p in state.tables.items()},
            "rows": snap_rows,
            "seconds": state.snapshot_seconds,
            "attempts": state.snapshot_attempts,
        },
        "column_renames": state.renames,
        "change_log_seq": state.change_seq,
        "last_error": state.last_error,
    }


def status_text(state: CdcState) -> str:
    d = status_json(state)
    pos = state.position
    lines = [
        f"connector {state.name}: {state.phase}",
        f"  position       {pos if pos else '-'}",
        "  lag            "
        + (f"{state.lag_seconds:.1f}s" if state.lag_seconds is not None else "-")
        + (f" (caught up at {d['caught_up_at']})" if d["caught_up_at"] else ""),
        f"  last event at  {d['last_event_at'] or '-'}",
        f"  updated at     {d['updated_at']} ({d['seconds_since_update']}s ago)",
    ]
    snap = d["snapshot"]
    done = sum(1 for t in snap["tables"].values() if t["status"] == "done")
    lines.append(
        f"  snapshot       {done}/{len(snap['tables'])} tables, {snap['rows']} rows"
        + (f", {snap['seconds']:.1f}s" if snap["seconds"] is not None else "")
        + f", {snap['attempts']} attempt(s)"
    )
    for t, p in snap["tables"].items():
        if p["status"] != "done":
            lines.append(f"    {t}: {p['status']} ({p['rows']} rows)")
    lines.append("  counters")
    for k, v in d["counters"].items():
        flag = "  <- must be 0" if k == "skipped" and v else ""
        lines.append(f"    {k:<22} {v}{flag}")
    if state.last_error:
        lines.append(f"  last error     {state.last_error}")
    return "\n".join(lines)
