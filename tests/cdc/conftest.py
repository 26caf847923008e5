"""A throwaway MariaDB with binlog on, owned by the test session (see ../shared notes).

The server gets its own data directory, a free loopback port and its own socket; it is stopped by
its own pid when the session ends. The system MariaDB (port 3306) is never used. Tests that need
the server are skipped, with the reason, only when the server binaries are not installed.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pymysql
import pytest

MARIADBD = "/usr/sbin/mariadbd"
INSTALL_DB = shutil.which("mariadb-install-db") or "/usr/bin/mariadb-install-db"
CDC_USER, CDC_PASSWORD = "cdc", "s3cret-Pw!"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    port: int
    datadir: Path
    proc: subprocess.Popen[bytes]
    host: str = "127.0.0.1"

    def connect(self, **kw: object) -> pymysql.connections.Connection:  # type: ignore[type-arg]
        args: dict[str, object] = {
            "host": self.host,
            "port": self.port,
            "user": "root",
            "password": "",
            "autocommit": True,
            "charset": "utf8mb4",
        }
        args.update(kw)
        return pymysql.connect(**args)  # type: ignore[arg-type]

    def sql(self, *statements: str) -> list[tuple[object, ...]]:
        conn = self.connect()
        try:
            rows: list[tuple[object, ...]] = []
            with conn.cursor() as cur:
                for s in statements:
                    cur.execute(s)
                    rows = list(cur.fetchall())
            return rows
        finally:
            conn.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


def start_server(root: Path, *extra: str, log_bin: bool = True) -> Server:
    """Install a fresh data directory under `root` and start mariadbd on a free port."""
    if not os.path.exists(MARIADBD):
        pytest.skip(f"{MARIADBD} is not installed (CI installs mariadb-server: `make mariadb`)")
    data = root / "data"
    tmp = root / "tmp"  # its own: parallel installs sharing /tmp collided on temporary tables
    tmp.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            INSTALL_DB,
            "--no-defaults",
            f"--datadir={data}",
            f"--tmpdir={tmp}",
            "--user=root",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    port = free_port()
    args = [
        MARIADBD,
        "--no-defaults",
        f"--datadir={data}",
        f"--tmpdir={tmp}",
        "--user=root",
        f"--port={port}",
        "--bind-address=127.0.0.1",
        f"--socket={root / 'sock'}",
        f"--pid-file={root / 'pid'}",
        f"--log-error={root / 'error.log'}",
        "--server-id=1",
        "--skip-name-resolve",
        "--innodb-buffer-pool-size=128M",
        "--innodb-log-file-size=64M",
        "--innodb-flush-log-at-trx-commit=2",
        "--sync-binlog=0",
        "--max-connections=200",
    ]
    if log_bin:
        args += [
            f"--log-bin={data / 'binlog'}",
            "--binlog-format=ROW",
            "--binlog-row-image=FULL",
            "--binlog-row-metadata=FULL",
        ]
    args += list(extra)
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = Server(port, data, proc)
    deadline = time.monotonic() + 60
    while True:
        try:
            server.connect(connect_timeout=1).close()
            break
        except pymysql.MySQLError:
            if proc.poll() is not None or time.monotonic() > deadline:
                log = (root / "error.log").read_text(errors="replace")[-2000:]
                server.stop()
                raise RuntimeError(f"mariadbd did not start:\n{log}") from None
            time.sleep(0.1)
    server.sql(
        f"CREATE USER '{CDC_USER}'@'%' IDENTIFIED BY '{CDC_PASSWORD}'",
        f"GRANT SELECT, RELOAD, REPLICATION SLAVE, BINLOG MONITOR ON *.* TO '{CDC_USER}'@'%'",
    )
    return server


@pytest.fixture(scope="session")
def mariadb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(tmp_path_factory.mktemp("mariadb"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def cdc_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CDC user's password, where configs say `password_env: EQL_TEST_CDC_PASSWORD`."""
    monkeypatch.setenv("EQL_TEST_CDC_PASSWORD", CDC_PASSWORD)
