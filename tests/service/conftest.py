"""Shared fixtures for the service tests.

End-to-end tests use the real default model pack (``models/packs/default``)
and skip, saying so, only while it does not exist. ``SWITCHBOARD_TEST_PACK``
points them at another pack (development before the default pack lands).
Redis tests use ``REDIS_URL`` (default ``redis://127.0.0.1:6379/0``) and skip
with a clear reason only when no server answers there.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from models.packs import DEFAULT_PACK

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
ROOT = Path(__file__).resolve().parents[2]


def pack_dir() -> Path:
    """The pack end-to-end tests load."""
    override = os.environ.get("SWITCHBOARD_TEST_PACK")
    return Path(override) if override else DEFAULT_PACK


def pack_available() -> bool:
    """True when the pack has a manifest."""
    return (pack_dir() / "manifest.json").is_file()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "pack: needs the default model pack (skipped while it is absent)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``pack``-marked tests, saying why, only when the pack is missing."""
    if pack_available():
        return
    skip = pytest.mark.skip(reason=f"default model pack not present at {pack_dir()} (committed by the lead)")
    for item in items:
        if item.get_closest_marker("pack") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def test_pack() -> Path:
    """The pack folder end-to-end tests load."""
    return pack_dir()


def redis_available(url: str = REDIS_URL) -> bool:
    """True when something accepts a TCP connection and answers PING at ``url``."""
    parts = urlsplit(url)
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or 6379), timeout=0.5
        ) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A Redis URL with a per-test key prefix, so tests never see each other's keys."""
    if not redis_available():
        pytest.skip(f"no Redis server answers at {REDIS_URL} (set REDIS_URL or start redis-server)")
    separator = "&" if "?" in REDIS_URL else "?"
    yield f"{REDIS_URL}{separator}prefix=sbtest-{uuid.uuid4().hex[:12]}:"


@pytest.fixture
def base_env(tmp_path: Path) -> dict[str, str]:
    """Environment for an app with auth off, a temp data dir and the test pack."""
    return {
        "SWITCHBOARD_AUTH_DISABLED": "true",
        "SWITCHBOARD_DATA_DIR": str(tmp_path / "var"),
        "SWITCHBOARD_PACK": str(pack_dir()),
        "SWITCHBOARD_RATE_LIMIT": "0",
        "SWITCHBOARD_POLICY_RELOAD_INTERVAL": "0",
        "SWITCHBOARD_LOG_LEVEL": "WARNING",
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """``python -m service.cli serve`` in a subprocess, with its log captured to a file."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        full_env = {**os.environ, **env, "SWITCHBOARD_LOG_LEVEL": "INFO", "PYTHONPATH": str(ROOT)}
        with log.open("ab") as handle:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "service.cli", "serve", "--port", str(self.port)],
                cwd=ROOT,
                env=full_env,
                stdout=handle,
                stderr=subprocess.STDOUT,
            )
        self.client = httpx.Client(base_url=self.url, timeout=10)

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"server exited {self.process.returncode}: {self.log.read_text()[-3000:]}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if self.client.get("/readyz").status_code == 200:
                    return
            time.sleep(0.1)
        raise AssertionError(f"server not ready: {self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.client.close()


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], Server]]:
    """Start ``switchboard serve`` processes; every one is stopped at teardown."""
    started: list[Server] = []

    def start(env: dict[str, str]) -> Server:
        server = Server(env, tmp_path / f"server{len(started)}.log")
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One ready ``switchboard serve`` process for a test module (auth off, SQLite, no rate limit)."""
    folder = tmp_path_factory.mktemp("live")
    env = {
        "SWITCHBOARD_AUTH_DISABLED": "true",
        "SWITCHBOARD_DATA_DIR": str(folder / "var"),
        "SWITCHBOARD_PACK": str(pack_dir()),
        "SWITCHBOARD_RATE_LIMIT": "0",
        "SWITCHBOARD_POLICY_RELOAD_INTERVAL": "0",
    }
    server = Server(env, folder / "server.log")
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


class ThreadedServer:
    """A real uvicorn server for an app object, on its own thread and event loop.

    Litestar's test clients run one request at a time; concurrency tests need a
    real server. The app object stays reachable (monkeypatching its runtime).
    """

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.app = app
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, loop="asyncio", log_config=None, lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="test-uvicorn", daemon=True)

    def __enter__(self) -> ThreadedServer:
        self.thread.start()
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return self
            time.sleep(0.05)
        raise AssertionError("threaded server never became ready")

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture
def serve_app() -> Callable[[Any], ThreadedServer]:
    """``with serve_app(app) as server:`` runs the app on a real server (see ThreadedServer)."""
    return ThreadedServer


def _tiny_pack_builder() -> ModuleType:
    """tests/models/conftest.py as a module: its ``build_pack`` writes tiny but real packs."""
    pytest.importorskip("onnx")
    name = "tiny_pack_builder"
    if name not in sys.modules:
        root = Path(__file__).resolve().parents[2]
        spec = importlib.util.spec_from_file_location(name, root / "tests" / "models" / "conftest.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope="module")
def packs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny packs: ``v2`` has a sentence embedding and an act head, ``v1`` has neither."""
    builder = _tiny_pack_builder()
    folder = tmp_path_factory.mktemp("packs")
    return {"v2": builder.build_pack(folder / "v2", v2=True), "v1": builder.build_pack(folder / "v1")}


class RedisServer:
    """A private redis-server process (no persistence) that tests may freeze."""

    def __init__(self, tmp: Path) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            cwd=tmp,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError("redis-server did not start")

    def freeze(self) -> None:
        os.kill(self.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        self.thaw()  # a stopped process would not act on SIGTERM
        self.process.terminate()
        self.process.wait(timeout=10)


@contextlib.contextmanager
def private_redis(factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server of the caller's own (skips when redis-server is not installed)."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    started = RedisServer(factory.mktemp("redis"))
    try:
        yield started
    finally:
        started.stop()
