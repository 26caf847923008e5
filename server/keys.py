"""API keys: made by `eql keys create`, stored hashed in `DATA_DIR/keys.json`, checked per request.

A key is `eql_<id>_<secret>`: `id` (12 hex digits) names it in listings and revocations, `secret`
is 256 random bits. The file holds the SHA-256 of the whole key, never the key; a presented key is
found by its id and compared in constant time. Writers take an exclusive lock on
`keys.json.lock` and replace the file atomically (write, fsync, rename), so `eql keys` works while a
server runs; the server re-reads the file when its mtime, size or inode change (looking at most
every `recheck` seconds: `keys_recheck`, 0.1 by default). Keys are revoked (kept, marked) or, as
the local key a server mints for the CLI (`eql.cli.served`), deleted.

Scopes: `query` (EQL query, explain), `lookup` (profiles, schema), `define` (segments and tags,
later), `ingest` (later), `admin` (everything).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import hmac
import logging
import os
import secrets
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from entities.names import label_problem

SCOPES = ("query", "lookup", "define", "ingest", "admin")
PREFIX = "eql_"
ID_HEX = 12
KEY_LEN = len(PREFIX) + ID_HEX + 1 + 43  # token_urlsafe(32) is 43 characters

log = logging.getLogger("eql.server")


class KeyFileError(Exception):
    """The keys file cannot be read or written; said in words a user can act on."""


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    name: str
    scopes: frozenset[str]
    created: str
    digest: str
    revoked: str | None = None

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes

    def public(self) -> dict[str, Any]:
        """What listings show: never the digest."""
        return {
            "id": self.id,
            "name": self.name,
            "scopes": sorted(self.scopes),
            "created": self.created,
            "revoked": self.revoked,
        }


def parse_scopes(text: str | Iterable[str]) -> frozenset[str]:
    items = text.split(",") if isinstance(text, str) else list(text)
    scopes = frozenset(s.strip().lower() for s in items if s.strip())
    unknown = sorted(scopes - set(SCOPES))
    if unknown or not scopes:
        raise ValueError(
            f"unknown scope {', '.join(unknown)}" if unknown else "give at least one scope"
        )
    return scopes


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _now() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _decode(data: bytes) -> dict[str, ApiKey]:
    doc = orjson.loads(data) if data.strip() else {"keys": []}
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise ValueError("expected an object with a list `keys`")
    keys: dict[str, ApiKey] = {}
    for item in doc["keys"]:
        k = ApiKey(
            id=str(item["id"]),
            name=str(item.get("name", "")),
            scopes=frozenset(str(s) for s in item["scopes"]),
            created=str(item.get("created", "")),
            digest=str(item["sha256"]),
            revoked=item.get("revoked"),
        )
        keys[k.id] = k
    return keys


def _encode(keys: Iterable[ApiKey]) -> bytes:
    items = [
        {
            "id": k.id,
            "name": k.name,
            "scopes": sorted(k.scopes),
            "created": k.created,
            "revoked": k.revoked,
            "sha256": k.digest,
        }
        for k in keys
    ]
    return orjson.dumps({"version": 1, "keys": items}, option=orjson.OPT_INDENT_2) + b"\n"


class KeyFile:
    """The keys of one data directory. `verify` is what the server calls on every request.

    `recheck`: seconds between looks at the file (a `stat`) when verifying; 0 looks every time.
    """

    def __init__(self, path: Path, recheck: float = 0.0) -> None:
        self.path = path
        self.recheck = recheck
        self._checked = -1e18
        self._signature: tuple[int, int, int] | None = None
        self._keys: dict[str, ApiKey] = {}
        self._verified: dict[str, ApiKey] = {}  # token -> live key, emptied on every reload

    # ---- reading (server) ------------------------------------------------------------------
    def _reload(self) -> None:
        if self.recheck > 0:
            now = time.monotonic()
            if now - self._checked < self.recheck:
                return
            self._checked = now
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._signature, self._keys, self._verified = None, {}, {}
            return
        sig = (st.st_mtime_ns, st.st_size, st.st_ino)
        if sig == self._signature:
            return
        try:
            keys = _decode(self.path.read_bytes())
        except (OSError, ValueError, KeyError, TypeError) as exc:
            # fail closed: a damaged file lets nobody in until it is fixed
            log.error("cannot read the keys file (%s); refusing every key", type(exc).__name__)
            keys = {}
        self._signature, self._keys, self._verified = sig, keys, {}

    def verify(self, token: str) -> ApiKey | None:
        """The live key `token` names, or None (unknown, wrong secret, revoked, malformed).
        A token that verified is remembered (until the file changes): the hash is computed once
        per key, not on every request."""
        self._reload()
        known = self._verified.get(token)
        if known is not None:
            return known
        if len(token) != KEY_LEN or not token.startswith(PREFIX) or token[4 + ID_HEX] != "_":
            return None
        key = self._keys.get(token[4 : 4 + ID_HEX])
        if key is None or not hmac.compare_digest(_digest(token), key.digest):
            return None
        if key.revoked:
            return None
        if len(self._verified) < 10_000:
            self._verified[token] = key
        return key

    def records(self) -> list[ApiKey]:
        self._checked = -1e18
        self._reload()
        return sorted(self._keys.values(), key=lambda k: (k.created, k.id))

    # ---- writing (CLI) ---------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, ApiKey]]:
        lock_path = self.path.with_name(self.path.name + ".lock")
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise KeyFileError(f"cannot lock {lock_path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                data = self.path.read_bytes()
            except FileNotFoundError:
                data = b""
            try:
                keys = _decode(data)
            except (ValueError, KeyError, TypeError) as exc:
                raise KeyFileError(f"{self.path} is damaged ({exc}); fix or remove it") from None
            yield keys
            self._write(keys.values())
        finally:
            os.close(fd)

    def _write(self, keys: Iterable[ApiKey]) -> None:
        fd, tmp = tempfile.mkstemp(prefix=".keys-", dir=self.path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(_encode(keys))
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        dfd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def create(self, scopes: Iterable[str], name: str = "") -> tuple[ApiKey, str]:
        """A new key: its record and the key itself (shown once, never stored). ValueError for
        unknown scopes or a name that is not a label (`entities.names.label_problem`)."""
        wanted = parse_scopes(scopes)
        problem = label_problem(name)
        if problem is not None:
            raise ValueError(f"--name: {problem}")
        with self._locked() as keys:
            key_id = secrets.token_hex(ID_HEX // 2)
            while key_id in keys:
                key_id = secrets.token_hex(ID_HEX // 2)
            token = f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
            record = ApiKey(key_id, name, wanted, _now(), _digest(token))
            keys[key_id] = record
        return record, token

    def delete(self, key_ids: Iterable[str]) -> list[ApiKey]:
        """Remove keys by id (a server's own local key at its stop: `eql.cli.served`); the
        removed ones. A deleted key is refused like an unknown one."""
        with self._locked() as keys:
            return [keys.pop(k) for k in list(key_ids) if k in keys]

    def revoke(self, key_id: str) -> ApiKey | None:
        """Revoke a key by id (idempotent); None if there is no such key."""
        with self._locked() as keys:
            key = keys.get(key_id)
            if key is None:
                return None
            if key.revoked is None:
                key = ApiKey(key.id, key.name, key.scopes, key.created, key.digest, _now())
                keys[key_id] = key
        return key
