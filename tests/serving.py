"""A real ``autopilot serve`` on a free loopback port in a subprocess: the one helper behind
the browser tests' server (``tests/browser/conftest.py``) and the load benchmarks
(``benchmarks/api_load.py``, ``benchmarks/dashboard_load.py``)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
READY_TIMEOUT_S = 120.0
"""How long a server may take to answer its first request (a busy machine, many workers)."""
STOP_TIMEOUT_S = 30.0


def free_port() -> int:
    """A loopback port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A running server: its base URL, process, log file and environment (and, for tests that
    created them, one key per role)."""

    url: str
    process: subprocess.Popen[bytes]
    env: dict[str, str]
    log: Path
    keys: dict[str, str] = field(default_factory=dict)

    def stop(self) -> None:
        """Terminate the server (and its workers), killing it if it does not exit."""
        self.process.terminate()
        try:
            self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=STOP_TIMEOUT_S)


def start_server(
    env: dict[str, str],
    log: Path,
    *,
    workers: int = 1,
    ready_path: str = "/readyz",
    timeout_s: float = READY_TIMEOUT_S,
    extra: tuple[str, ...] = (),
    cwd: Path = ROOT,
) -> Server:
    """``autopilot serve`` with ``workers`` workers (and ``extra`` flags, e.g. ``--db``) on a
    free loopback port, run in ``cwd``, its output in ``log``; returned once ``ready_path``
    answers 200. ``RuntimeError`` with the log's tail when the server exits or does not become
    ready within ``timeout_s``."""
    port = free_port()
    command = [sys.executable, "-m", "cli.main", "serve", "--host", "127.0.0.1",
               "--port", str(port), "--workers", str(workers), "--log-level", "warning",
               "--no-access-log", *extra]  # fmt: skip
    with log.open("wb") as handle:
        process = subprocess.Popen(
            command, env=env, cwd=cwd, stdout=handle, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}: {_tail(log)}")
        try:
            if httpx.get(url + ready_path, timeout=2).status_code == 200:
                return Server(url, process, env, log)
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"server did not answer {ready_path} within {timeout_s} s: {_tail(log)}")


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-2000:]
