"""Run the binlog reader in a child process, so that decoding (pure Python, in the library) and
applying (conversion and store commits) use two cores instead of sharing one interpreter lock.

The child is `python -m ingest.cdc_reader_proc CTL_FD DATA_FD`: it receives its settings (the
password included) as the first message on the control pipe, never in argv or the environment;
it sends `("unit", Transaction | Heartbeat)`, then `("end",)` or `("error", exc)` on the data pipe.
It stops when the control pipe closes, which also happens when the parent dies (kill -9), and
the kernel kills it if its parent dies first (PR_SET_PDEATHSIG). A crash point reached in the
child is forwarded as `("crash", point)` and the parent dies there, in stream order.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Literal

from ingest.cdc_config import Source
from ingest.cdc_faults import CRASH, die
from ingest.cdc_position import CdcError, Position
from ingest.mysql_binlog import BinlogReader, ConnectionLost, Heartbeat, Transaction

PR_SET_PDEATHSIG = 1


class ProcessReader:
    """The same interface as `BinlogReader`, with the reading done in a child process."""

    def __init__(
        self,
        source: Source,
        start: Position,
        mapped: set[str],
        *,
        server_id: int,
        mariadb: bool = True,
        heartbeat: float = 0.1,
        on_unknown: Literal["error", "skip"] = "error",
    ) -> None:
        self.spec: dict[str, Any] = {
            "source": source,
            "start": start,
            "mapped": mapped,
            "server_id": server_id,
            "mariadb": mariadb,
            "heartbeat": heartbeat,
            "on_unknown": on_unknown,
        }
        self._ctl: Connection | None = None

    def interrupt(self) -> None:
        ctl = self._ctl
        if ctl is not None:
            with contextlib.suppress(OSError):
                ctl.close()

    def read(self, stop: threading.Event) -> Iterator[Transaction | Heartbeat]:
        ctl_r, ctl_w = os.pipe()
        data_r, data_w = os.pipe()
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        proc = subprocess.Popen(
            [sys.executable, "-m", "ingest.cdc_reader_proc", str(ctl_r), str(data_w)],
            pass_fds=(ctl_r, data_w),
            env=env,
            stdin=subprocess.DEVNULL,
        )
        os.close(ctl_r)
        os.close(data_w)
        self._ctl = ctl = Connection(ctl_w, readable=False)
        data = Connection(data_r, writable=False)
        try:
            ctl.send(self.spec)
            while not stop.is_set():
                if not data.poll(0.2):
                    continue
                try:
                    msg = data.recv()
                except (EOFError, OSError):
                    if stop.is_set():
                        return
                    code = proc.wait(timeout=5)
                    raise ConnectionLost(f"the binlog reader process exited ({code})") from None
                kind = msg[0]
                if kind == "unit":
                    yield msg[1]
                elif kind == "end":
                    return
                elif kind == "error":
                    raise msg[1]
                elif kind == "crash":
                    die()
        finally:
            self.interrupt()
            data.close()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)

    def close(self) -> None:
        self.interrupt()


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def main() -> None:
    ctl = Connection(int(sys.argv[1]), writable=False)
    out = Connection(int(sys.argv[2]), readable=False)
    _die_with_parent()
    if os.getppid() == 1:  # the parent died before we could ask to die with it
        os._exit(0)
    try:
        spec = ctl.recv()
    except (EOFError, OSError):
        os._exit(0)
    stop = threading.Event()
    reader = BinlogReader(
        spec["source"],
        spec["start"],
        spec["mapped"],
        server_id=spec["server_id"],
        mariadb=spec["mariadb"],
        heartbeat=spec["heartbeat"],
        on_unknown=spec["on_unknown"],
    )

    def watch() -> None:  # any message, or the pipe closing, means stop
        with contextlib.suppress(EOFError, OSError):
            ctl.recv()
        stop.set()
        reader.interrupt()

    threading.Thread(target=watch, daemon=True).start()

    def crash(point: str) -> None:
        with contextlib.suppress(OSError):
            out.send(("crash", point))
        os._exit(0)

    CRASH.on_crash = crash
    try:
        for unit in reader.read(stop):
            out.send(("unit", unit))
        out.send(("end",))
    except (CdcError, ConnectionLost) as exc:
        with contextlib.suppress(OSError):
            out.send(("error", exc))
    except (BrokenPipeError, EOFError):
        pass
    except Exception as exc:  # anything else: its kind and message, never a traceback
        with contextlib.suppress(OSError):
            out.send(("error", CdcError(f"the binlog reader failed: {type(exc).__name__}: {exc}")))
    finally:
        with contextlib.suppress(OSError):
            out.close()
        os._exit(0)


if __name__ == "__main__":
    main()
