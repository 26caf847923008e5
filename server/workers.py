"""`eql serve --workers N`: N processes answer on one port, one writer and N-1 readers.

The writer is the `eql serve` process: it holds the store (its one writer), runs the CDC
connectors and the imports, and listens on the public socket and on a private unix socket.
Each reader is a child process (`python -m server.workers ...`) that opens the store read-only,
follows the writer (`server.follow`), answers what reads itself and passes what writes to the
writer's private socket (`server.forward`). Every process binds the public host and port with
SO_REUSEPORT, so the kernel spreads the connections over them (Linux: by a hash of the
connection's addresses), and lookups and queries scale with cores while writes stay in one
process.

The writer supervises its readers: one that exits is started again (after a pause that doubles
up to `MAX_RESTART_SECONDS` while it keeps failing early); at shutdown each is sent SIGTERM, then
SIGKILL after `STOP_SECONDS`. A reader whose writer is gone (its parent pid changed) stops by
itself, so a `kill -9` of the writer leaves no reader serving a store nobody writes.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

log = logging.getLogger("eql.server")

STOP_SECONDS = 10.0
MAX_RESTART_SECONDS = 30.0
HEALTHY_SECONDS = 10.0  # a reader that ran this long before exiting restarts at once


def public_socket(host: str, port: int) -> socket.socket:
    """The listening socket every worker binds (SO_REUSEPORT); port 0: the system chooses."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # accepted connections inherit it (Linux): a response's head and body, written apart, are
    # not held back by a delayed ACK (40 ms each, seen when this was missing)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


class WriterSocket:
    """The writer's private unix socket, in a fresh temporary directory (a short path, mode 0700:
    only this user's processes reach it); removed with the directory by `close()`."""

    def __init__(self) -> None:
        self.folder = tempfile.mkdtemp(prefix="eql-writer-")
        self.path = os.path.join(self.folder, "writer.sock")
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.socket.bind(self.path)
        self.socket.listen(512)

    def close(self) -> None:
        self.socket.close()
        shutil.rmtree(self.folder, ignore_errors=True)


class Readers:
    """The writer's reader processes, kept running until `stop()`."""

    def __init__(
        self,
        count: int,
        data_dir: Path,
        host: str,
        port: int,
        writer_socket: str,
        env: dict[str, str] | None = None,
    ) -> None:
        self.count = count
        self.env = {**os.environ, **(env or {})}
        self.argv = [
            sys.executable,
            "-m",
            "server.workers",
            "--data-dir",
            str(data_dir),
            "--host",
            host,
            "--port",
            str(port),
            "--writer-socket",
            writer_socket,
            "--writer-pid",
            str(os.getpid()),
        ]
        self._procs: list[subprocess.Popen[bytes] | None] = [None] * count
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._supervise, name="eql-readers", daemon=True)

    def start(self) -> None:
        with self._lock:
            for i in range(self.count):
                self._procs[i] = self._spawn()
        self._thread.start()

    def _spawn(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(self.argv, env=self.env)

    def _supervise(self) -> None:
        started = [time.monotonic()] * self.count
        pause = [0.0] * self.count
        while not self._stopping.wait(0.5):
            for i in range(self.count):
                with self._lock:
                    proc = self._procs[i]
                if proc is None or proc.poll() is None:
                    continue
                ran = time.monotonic() - started[i]
                pause[i] = (
                    0.0
                    if ran >= HEALTHY_SECONDS
                    else min(MAX_RESTART_SECONDS, max(0.5, pause[i] * 2))
                )
                log.warning(
                    "reader worker pid %d exited with %s; starting another in %.1f s",
                    proc.pid,
                    proc.returncode,
                    pause[i],
                )
                if self._stopping.wait(pause[i]):
                    return
                with self._lock:
                    self._procs[i] = self._spawn()
                started[i] = time.monotonic()

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            procs = [p for p in self._procs if p is not None]
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_SECONDS
        for proc in procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _watch_writer(writer_pid: int) -> None:
    """Stop this reader when its writer is gone (we are re-parented)."""
    while True:
        time.sleep(1.0)
        if os.getppid() != writer_pid:
            log.warning("the writer (pid %d) is gone: this reader stops", writer_pid)
            os.kill(os.getpid(), signal.SIGTERM)
            return


def reader_main(argv: list[str] | None = None) -> None:
    """A reader worker: the app over the store opened read-only, on the shared port."""
    from runtime import Session
    from server.app import create_app
    from server.forward import ForwardWrites
    from server.protocol import Server, config, configure_logging
    from server.settings import Settings

    ap = argparse.ArgumentParser(prog="python -m server.workers")
    ap.add_argument("--data-dir", required=True, type=Path)
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", required=True, type=int)
    ap.add_argument("--writer-socket", required=True)
    ap.add_argument("--writer-pid", required=True, type=int)
    args = ap.parse_args(argv)
    settings = Settings(data_dir=args.data_dir, host=args.host, port=args.port)
    configure_logging(settings)
    threading.Thread(target=_watch_writer, args=(args.writer_pid,), daemon=True).start()
    session = Session.open(args.data_dir, read_only=True, settings=settings.engine())
    try:
        app = create_app(settings, session=session, follow_interval=settings.follow_interval)
        # outside the whole app, its raw lookup path included (which answers before any of the
        # app's own middleware): every response is marked, every write forwarded
        outer = ForwardWrites(app, args.writer_socket, settings.max_body_bytes)
        sock = public_socket(args.host, args.port)
        Server(config(outer, settings), None).run([sock])  # uvicorn's loop (uvloop), as the writer
    finally:
        session.close()


if __name__ == "__main__":
    reader_main()
