"""A real HTTP callback receiver (http.server in a thread, free port) for the outbox tests."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Delivery:
    """One request the receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes
    status: int


@dataclass
class Receiver:
    """A real HTTP server in a thread that answers a scripted list of statuses, then 200.

    ``accepted`` holds the deliveries answered 2xx, de-duplicated by ``Idempotency-Key``
    the way a well-behaved receiver would.
    """

    url: str
    script: list[int] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def respond(self, path: str, headers: dict[str, str], body: bytes) -> int:
        with self.lock:
            status = self.script.pop(0) if self.script else 200
            self.deliveries.append(Delivery(path, headers, body, status))
            return status

    @property
    def accepted(self) -> dict[str, Delivery]:
        with self.lock:
            return {d.headers["idempotency-key"]: d for d in self.deliveries if 200 <= d.status < 300}

    def wait(self, count: int, timeout: float = 20.0) -> list[Delivery]:
        """Block until ``count`` requests arrived (any status)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.deliveries) >= count:
                    return list(self.deliveries)
            time.sleep(0.02)
        raise AssertionError(f"receiver got {len(self.deliveries)} requests, expected {count}")

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[Delivery]:
        """Wait until ``count`` requests arrived (any status)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.deliveries) >= count:
                    return list(self.deliveries)
            await asyncio.sleep(0.02)
        raise AssertionError(f"receiver got {len(self.deliveries)} requests, expected {count}")


@contextlib.contextmanager
def running_receiver() -> Iterator[Receiver]:
    """Start the receiver on 127.0.0.1 and a free port; stop it on exit."""
    holder: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            status = holder["r"].respond(self.path, headers, body)
            payload = b'{"ok": true}' if status < 300 else b'{"error": "scripted failure"}'
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    holder["r"] = Receiver(url=f"http://127.0.0.1:{server.server_address[1]}/switchboard/decisions")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield holder["r"]
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
