"""A served store: what `eql serve` leaves for the CLI in `DATA/server.json`, and how the CLI
finds that server and speaks to it.

A store has one writer (RocksDB's lock), and while `eql serve` runs that is the server. So that
`eql ingest`, a DEFINE or REFRESH by `eql query` and `eql cdc run` can still write, the server
leaves a local credential: once its socket listens it writes `DATA/server.json` with its
pid, host, port, URL, data directory, start time and an API key of scope admin minted for local
clients only (named `local-cli` in `eql keys list`). The file is created with mode 0600 (never
readable by others, not even for a moment: a temporary file opened 0600 in DATA, written,
fsynced, renamed over the old one). At a clean stop the server removes the file and deletes the
key; a file a killed server left is stale, and the next server (which holds the store's lock, so
any file there is stale) deletes its key and replaces it.

`find_server(data_dir)` is what a command calls when the store is locked: the server of that
data directory, or None. It believes the file only if this user owns it, its mode is 0600 (else
it warns and ignores it), it names this data directory and a loopback URL, its pid is alive
(and, where /proc tells, is an `eql serve` process), and something answers on its port. Only
loopback URLs are used: a server bound to another address (`--host 192.0.2.1`) writes the file
for the second-server check but gets no key. `client(served)` is an httpx client for it (the
key as a bearer token; no proxies from the environment).

The server side: `mint_key` (before uvicorn starts, so the app reads the key with the others),
`announce` (on the bound socket), `withdraw` (at the stop), `clear_stale` (at the start).

May import httpx (its owner in the CLI), pyarrow, server.keys and eql.diagnostics.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import os
import socket
import stat
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import orjson

if TYPE_CHECKING:
    import pyarrow as pa

    from eql.diagnostics import EqlError
    from server.keys import KeyFile

SERVER_FILE = "server.json"
KEY_NAME = "local-cli"
_PROBE_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class Served:
    """A live server of a data directory, as its `server.json` says (a loopback URL)."""

    pid: int
    host: str
    port: int
    url: str
    key: str
    data_dir: Path


def server_file(data_dir: Path) -> Path:
    return data_dir / SERVER_FILE


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def local_url(host: str, port: int) -> str | None:
    """The loopback URL a local client reaches a server bound to `host` by: the address itself
    when it is a loopback one, 127.0.0.1 / [::1] for the wildcards; None for any other."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if not is_loopback(host):
        return None
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


# ---- reading (the CLI) ---------------------------------------------------------------------
def read_record(data_dir: Path) -> dict[str, Any] | None:
    """What `DATA/server.json` says, if this user may believe it (owned by us, mode 0600, a
    well-formed record of this data directory) and its pid is a live `eql serve`; else None
    (a file that is not safe to believe is warned about)."""
    path = server_file(data_dir)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return None
    except OSError as exc:
        _warn(f"cannot read {path} ({exc.strerror}); ignoring it")
        return None
    try:
        st = os.fstat(fd)
        if st.st_uid != os.getuid():
            _warn(f"{path} belongs to another user; ignoring it")
            return None
        if stat.S_IMODE(st.st_mode) != 0o600:
            _warn(f"{path} has mode {stat.S_IMODE(st.st_mode):04o}, not 0600; ignoring it")
            return None
        with os.fdopen(fd, "rb") as fh:
            fd = -1
            data = fh.read(1 << 16)
    finally:
        if fd >= 0:
            os.close(fd)
    record = _parse(data)
    if record is None:
        _warn(f"{path} is not a server record; ignoring it")
        return None
    if Path(record["data_dir"]).resolve() != data_dir.resolve():
        _warn(f"{path} names another data directory ({record['data_dir']}); ignoring it")
        return None
    if not _serving(record["pid"]):
        return None  # stale: the server was killed (its key is deleted by the next server)
    return record


def _parse(data: bytes) -> dict[str, Any] | None:
    try:
        record = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(record, dict):
        return None
    fields = {"pid": int, "host": str, "port": int, "data_dir": str, "started": str}
    for name, kind in fields.items():
        if not isinstance(record.get(name), kind) or isinstance(record.get(name), bool):
            return None
    if not isinstance(record.get("url"), str | None) or not isinstance(record.get("key"), str):
        return None
    return record


def _serving(pid: int) -> bool:
    """Whether `pid` is a live process of ours that is an `eql serve` (as far as /proc says)."""
    if pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, but another user's: not our server
        return False
    if not os.path.isdir("/proc"):
        return True  # no /proc to ask: a live pid is believed
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except FileNotFoundError:
        return False  # it ended meanwhile
    except OSError:
        return True
    return b"serve" in args  # a pid reused by another program is not our server


def answers(record: dict[str, Any]) -> bool:
    """Whether the server a record names accepts connections on its port (on its loopback URL's
    host, else on the host it is bound to)."""
    url = record["url"]
    host = httpx.URL(url).host if url else record["host"]
    return _answers(host, record["port"])


def _answers(host: str, port: int) -> bool:
    """Whether something accepts connections on the server's port (a killed server's does not)."""
    try:
        with socket.create_connection((host, port), timeout=_PROBE_SECONDS):
            return True
    except OSError:
        return False


def find_server(data_dir: Path) -> Served | None:
    """The live server of `data_dir` that local clients may write through, or None."""
    record = read_record(data_dir)
    if record is None:
        return None
    url = record["url"]
    if url is None:
        _warn(
            f"the server of {data_dir} (pid {record['pid']}) listens on {record['host']}, "
            "not on a loopback address; the CLI writes only through a local server"
        )
        return None
    if not record["key"]:
        _warn(f"the server of {data_dir} (pid {record['pid']}) made no local key (see its log)")
        return None
    parsed = httpx.URL(url)
    host = parsed.host
    if parsed.scheme != "http" or not is_loopback(host) or parsed.port != record["port"]:
        _warn(f"{server_file(data_dir)} names a URL that is not a loopback one; ignoring it")
        return None
    if not _answers(host, record["port"]):
        return None
    return Served(record["pid"], record["host"], record["port"], url, record["key"], data_dir)


Http = httpx.Client  # what `client` gives (named so that other modules need not import httpx)


def client(served: Served, *, read_timeout: float | None = 3600.0) -> Http:
    """An httpx client for `served`: its URL, its key as a bearer token, no proxies from the
    environment (HTTP_PROXY must not see a loopback request, nor the key)."""
    return httpx.Client(
        base_url=served.url,
        headers={"Authorization": f"Bearer {served.key}"},
        timeout=httpx.Timeout(30.0, read=read_timeout),
        trust_env=False,
    )


class ServerError(Exception):
    """The server could not be reached, or refused the request: `message`, `hint` to say,
    `status` (None: no answer), `code` (the error body's first code)."""

    def __init__(
        self, message: str, hint: str = "", status: int | None = None, code: str = ""
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.status = status
        self.code = code


def error_items(response: httpx.Response) -> list[dict[str, Any]]:
    """The items of an error answer (`{"errors": [...]}`); one made of the status otherwise."""
    try:
        body = response.json()
    except ValueError:
        body = None
    items = body.get("errors") if isinstance(body, dict) else None
    if isinstance(items, list) and items and all(isinstance(i, dict) for i in items):
        return items
    return [{"code": "http_error", "message": f"the server answered {response.status_code}"}]


def refused(served: Served, response: httpx.Response) -> ServerError:
    """A refusal the CLI cannot act on by itself (no key, no scope, busy, ...) said plainly."""
    item = error_items(response)[0]
    status = response.status_code
    hint = str(item.get("hint") or "")
    if status == 401:
        hint = "the server's local key was refused: is DATA/server.json from this server?"
    elif status == 429:
        hint = f"the server is busy; retry in {response.headers.get('retry-after', 'a few')} s"
    message = f"the server at {served.url} answered {status}: {item.get('message', '')}"
    return ServerError(message, hint, status, str(item.get("code", "")))


def unreachable(served: Served, exc: httpx.HTTPError) -> ServerError:
    return ServerError(
        f"the server at {served.url} (pid {served.pid}) did not answer: {exc}",
        "is it still running? `eql serve` leaves DATA/server.json while it does",
    )


MEDIA = {
    "csv": "text/csv",
    "parquet": "application/vnd.apache.parquet",
    "jsonl": "application/x-ndjson",
}
_CHUNK = 1 << 20


_BUSY_TRIES = 5  # a 429 (the key's token bucket, a full queue) is waited out this often
_BUSY_WAIT = 10.0  # seconds at most per wait, whatever Retry-After says


def post_file(
    http: Http,
    served: Served,
    kind: str,
    target: str,
    path: Path,
    fmt: str,
    allow_extra_columns: bool,
) -> httpx.Response:
    """Send one file to the ingest route of `target` (an entity for `kind` "entity", else an
    event stream), streamed in chunks of 1 MiB with its length up front (never read whole);
    a 429 is retried after its Retry-After (a few times, each wait bounded). OSError when the
    file cannot be read, ServerError when the server does not answer."""
    from urllib.parse import quote

    folder = "entities" if kind == "entity" else "streams"
    route = f"/v1/ingest/{folder}/{quote(target, safe='')}"
    params = {"format": fmt, "allow_extra_columns": str(allow_extra_columns).lower()}
    for attempt in range(_BUSY_TRIES):
        with path.open("rb") as fh:
            size = os.fstat(fh.fileno()).st_size

            def chunks(fh: Any = fh) -> Iterator[bytes]:
                while data := fh.read(_CHUNK):
                    yield data

            headers = {"content-type": MEDIA[fmt], "content-length": str(size)}
            try:
                response = http.post(route, params=params, content=chunks(), headers=headers)
            except httpx.HTTPError as exc:
                raise unreachable(served, exc) from None
        if response.status_code != 429 or attempt == _BUSY_TRIES - 1:
            return response
        time.sleep(_retry_after(response))
    raise AssertionError  # the last attempt returns


def _retry_after(response: httpx.Response) -> float:
    try:
        wait = float(response.headers.get("retry-after", "1"))
    except ValueError:
        wait = 1.0
    return min(max(wait, 0.1), _BUSY_WAIT)


def run_statement(served: Served, text: str, params: dict[str, Any], as_of: str | None) -> pa.Table:
    """Run a statement (DEFINE, REFRESH, DROP, ...) on the server (`POST /v1/query`); its
    answer table, read from the Arrow stream. EqlError for the diagnostics of a text the server
    refuses (as a local run raises them), ServerError for any other refusal."""
    import pyarrow as pa
    import pyarrow.ipc as ipc

    body: dict[str, Any] = {"query": text, "params": params}
    if as_of is not None:
        body["as_of"] = as_of
    try:
        with client(served) as http:
            response = http.post(
                "/v1/query", json=body, headers={"accept": "application/vnd.apache.arrow.stream"}
            )
    except httpx.HTTPError as exc:
        raise unreachable(served, exc) from None
    if response.status_code == 400 and _diagnostics(response):
        raise _eql_error(error_items(response), text)
    if response.status_code >= 400:
        raise refused(served, response)
    reader = ipc.open_stream(pa.BufferReader(response.content))
    batches = []
    while True:
        try:
            batch, meta = reader.read_next_batch_with_custom_metadata()
        except StopIteration:
            break
        failed = None if meta is None else meta.get(b"eql.error")
        if failed is not None:
            item = orjson.loads(failed)
            raise ServerError(f"the server stopped the statement: {item.get('message', '')}")
        if batch.num_rows:
            batches.append(batch)
    return pa.Table.from_batches(batches, schema=reader.schema)


def _diagnostics(response: httpx.Response) -> bool:
    """Whether an error answer is EQL's diagnostics (codes E...), not the server's own."""
    return all(str(i.get("code", "")).startswith("E") for i in error_items(response))


def _eql_error(items: list[dict[str, Any]], text: str) -> EqlError:
    """The server's diagnostics as the EqlError a local run raises (spans into `text`)."""
    from eql.diagnostics import Diagnostic, EqlError, Severity, Span

    diagnostics = []
    for item in items:
        start, end = item.get("start"), item.get("end")
        span = Span(start, end) if isinstance(start, int) and isinstance(end, int) else None
        try:
            severity = Severity(item.get("severity", "error"))
        except ValueError:
            severity = Severity.ERROR
        diagnostics.append(
            Diagnostic(
                str(item.get("code", "")),
                str(item.get("message", "")),
                span,
                severity,
                tuple(str(n) for n in item.get("notes") or ()),
                tuple(str(h) for h in item.get("helps") or ()),
            )
        )
    return EqlError(diagnostics, text)


# ---- writing (the server) ------------------------------------------------------------------
def _key_id(token: str) -> str | None:
    from server.keys import ID_HEX, PREFIX

    if token.startswith(PREFIX) and len(token) > len(PREFIX) + ID_HEX:
        return token[len(PREFIX) : len(PREFIX) + ID_HEX]
    return None


def _keys(keys_path: Path) -> KeyFile:
    from server.keys import KeyFile

    return KeyFile(keys_path)


def mint_key(keys_path: Path) -> str:
    """A new admin key for local clients (`local-cli`) in the server's keys file
    (`Settings.keys_path`), for the server about to start."""
    _, token = _keys(keys_path).create(["admin"], KEY_NAME)
    return token


def delete_keys(keys_path: Path, token: str | None = None) -> int:
    """Delete the local key `token`, or (None) every `local-cli` key: a server's start, when
    no other server can be alive, also removes one a server killed before writing its file
    left. Keys of other names are never touched."""
    keys = _keys(keys_path)
    wanted = None if token is None else _key_id(token)
    ids = [k.id for k in keys.records() if k.name == KEY_NAME and (token is None or k.id == wanted)]
    return len(keys.delete(ids)) if ids else 0


def announce(data_dir: Path, host: str, port: int, key: str) -> Path:
    """Write `DATA/server.json` for the server of this process, bound to `host`:`port`: created
    0600, written and fsynced under a temporary name in DATA, renamed into place."""
    url = local_url(host, port)
    record = {
        "pid": os.getpid(),
        "host": host,
        "port": port,
        "url": url,
        "data_dir": str(data_dir.resolve()),
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "key": key if url is not None else "",
    }
    path = server_file(data_dir)
    fd, tmp = tempfile.mkstemp(prefix=".server-", suffix=".json", dir=data_dir)  # 0600
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(orjson.dumps(record, option=orjson.OPT_INDENT_2) + b"\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def _own_record(data_dir: Path) -> dict[str, Any] | None:
    try:
        return _parse(server_file(data_dir).read_bytes())
    except OSError:
        return None


def withdraw(data_dir: Path, keys_path: Path, key: str) -> None:
    """At a clean stop: remove `DATA/server.json` if it is this process's, delete the key
    (a keys file that cannot be written keeps it: the next server's start deletes it)."""
    from server.keys import KeyFileError

    record = _own_record(data_dir)
    if record is not None and record["pid"] == os.getpid():
        with contextlib.suppress(FileNotFoundError):
            server_file(data_dir).unlink()
    if key:
        with contextlib.suppress(KeyFileError):
            delete_keys(keys_path, key)


def clear_stale(data_dir: Path, keys_path: Path) -> dict[str, Any] | None:
    """At a server's start, with the store's lock held (so no other server is alive): delete
    the `local-cli` keys killed servers left and the `server.json` of the last one. Returns
    what that file said (None: there was none, or it was not a record)."""
    path = server_file(data_dir)
    record = None if path.is_symlink() else _own_record(data_dir)
    delete_keys(keys_path)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    return record
