"""A webhook receiver on loopback for the tests: answers from a script, records every request."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    at: float
    status: int


@dataclass
class Receiver:
    """``script``: the status (and optional ``Retry-After``) of each answer in turn; after
    the script, 200."""

    script: list[tuple[int, str | None]] = field(default_factory=list)
    requests: list[Received] = field(default_factory=list)
    url: str = ""

    def answer(self) -> tuple[int, str | None]:
        index = len(self.requests)
        return self.script[index] if index < len(self.script) else (200, None)


@contextmanager
def serve(script: list[tuple[int, str | None]] | None = None) -> Iterator[Receiver]:
    receiver = Receiver(script=list(script or []))
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            with lock:
                status, retry_after = receiver.answer()
                receiver.requests.append(
                    Received(
                        {k.lower(): v for k, v in self.headers.items()},
                        body,
                        time.monotonic(),
                        status,
                    )
                )
            self.send_response(status)
            if retry_after is not None:
                self.send_header("Retry-After", retry_after)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
