"""One SQLite connection on one dedicated thread, awaited from the event loop.

Shared by the conversation store and the adapters' outbox / replay guard. sqlite3 calls
block, so each ``SqliteRunner`` owns one thread and a queue of calls; each result comes back
to the caller's event loop with one ``call_soon_threadsafe``. (``run_in_executor`` costs the
event loop twice as much per call: a ``concurrent.futures.Future`` with its condition variable,
then ``wrap_future`` chaining it to an asyncio future; an append makes two such calls.)

A caller with nothing else to do (``run_in_transaction(..., inline=True)``: a lone append on an
otherwise idle service) has its transaction run on its own thread when no call is queued or
running. Handing it over would wake the sleeping thread and then the sleeping loop: two
wake-ups on the turn's critical path, which on an idle two-core VM cost more than the write
itself. The caller never waits on another process there: the inline attempt takes the write
lock without a busy timeout and, when another process holds it, queues the transaction for
the thread, which waits as usual. Either way the connection is used by one thread at a
time, in the order the calls were made.

A file database is opened in autocommit WAL mode with a busy timeout: readers proceed
during a write, and writers from other worker processes wait instead of failing. Every
write the callers make is one statement, hence its own atomic transaction.

This module is a leaf (it imports nothing from the service) and its error type is not an
HTTP error: callers decide what a failure means to their clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from models.cpu import name_os_thread

T = TypeVar("T")

BUSY_TIMEOUT_S = 10.0


class SqliteError(Exception):
    """A SQLite call failed (I/O, lock timeout, corrupt file, bad SQL).

    The message names the sqlite3 exception type only, never row contents; the original
    exception is the ``__cause__``.
    """


def open_sqlite(
    path: Path | None, schema: str, *, attempts: int = 50, busy_timeout_s: float = BUSY_TIMEOUT_S
) -> sqlite3.Connection:
    """Open ``path`` (``None``: a private in-memory database) and apply ``schema``.

    The connection is in autocommit mode (``isolation_level=None``). A file is switched to
    WAL with ``synchronous=NORMAL`` and a busy timeout of ``busy_timeout_s``; its parent
    folder is created. ``schema`` must be idempotent DDL (``CREATE … IF NOT EXISTS``).
    Raises ``sqlite3.Error`` (the runner wraps it).

    Two processes opening a fresh file at once race for the lock that switching to WAL
    (and the first CREATE) takes; SQLite answers "database is locked" at once there
    instead of waiting on the busy timeout, so that setup is retried up to ``attempts`` times.
    """
    if path is None:
        conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        conn.executescript(schema)
        return conn
    path.parent.mkdir(parents=True, exist_ok=True)
    # Used by one thread at a time, but not always the one that opened it (``SqliteRunner``).
    conn = sqlite3.connect(path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        for attempt in range(attempts):
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.executescript(schema)
                return conn
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or attempt == attempts - 1:
                    raise
                time.sleep(0.02 * (attempt + 1))
    except BaseException:
        conn.close()
        raise
    raise AssertionError("unreachable: the loop returns or raises")


def immediate_transaction(conn: sqlite3.Connection, work: Callable[[], T]) -> T:
    """Return ``work()`` run inside ``BEGIN IMMEDIATE`` … ``COMMIT``; rolled back when it raises.

    IMMEDIATE takes the write lock up front, so what ``work`` reads cannot change before it
    writes (another process's writer waits on the busy timeout instead of interleaving).
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = work()
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return result


class SqliteRunner:
    """Runs functions of one lazily opened SQLite connection on its own thread.

    ``path=None`` is a private in-memory database (gone when the runner closes). Nothing
    is opened until the first ``run``, and the thread starts then. ``busy_timeout_s`` is how
    long a statement waits for another process's lock before failing. Calls run one at a
    time, in the order they were made; each result goes back to the loop that asked for it.
    """

    def __init__(
        self,
        path: Path | None,
        schema: str,
        *,
        thread_name: str = "sqlite",
        busy_timeout_s: float = BUSY_TIMEOUT_S,
    ) -> None:
        self.path = path
        self._schema = schema
        self._busy_timeout_s = busy_timeout_s
        self._thread_name = thread_name
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._closed = False
        self._conn: sqlite3.Connection | None = None  # opened on the runner's thread
        self._state = threading.Lock()  # guards _pending
        self._pending = 0  # calls queued or running (on the thread or inline)
        self._using = threading.Lock()  # held while a call uses the connection

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = open_sqlite(self.path, self._schema, busy_timeout_s=self._busy_timeout_s)
        return self._conn

    def _serve(self) -> None:
        name_os_thread()
        while (call := self._calls.get()) is not None:
            loop, future, fn = call
            with self._using:
                try:
                    outcome: tuple[Any, BaseException | None] = (fn(), None)
                except BaseException as exc:  # delivered to the caller, as run_in_executor would
                    outcome = (None, exc)
            self._done()
            with contextlib.suppress(RuntimeError):  # the caller's loop is closed: nobody waits
                loop.call_soon_threadsafe(_settle, future, *outcome)
        with self._using:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _submit(self, fn: Callable[[], T]) -> asyncio.Future[T]:
        if self._closed:
            raise RuntimeError("the SQLite runner is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        if self._thread is None:
            with self._start_lock:
                if self._thread is None:
                    # A daemon thread, like the executor threads it replaced at interpreter exit;
                    # ``close`` ends it in order after the calls already queued.
                    thread = threading.Thread(target=self._serve, name=f"{self._thread_name}_0", daemon=True)
                    thread.start()
                    self._thread = thread
        with self._state:
            self._pending += 1
        self._calls.put((loop, future, fn))
        return future

    def _done(self) -> None:
        with self._state:
            self._pending -= 1

    def _take_inline(self) -> bool:
        """Whether a call may run on the caller's thread now; if so, it holds the connection."""
        if self._conn is None or self._closed:
            return False
        with self._state:
            if self._pending:
                return False
            self._pending += 1  # a call made meanwhile queues for the thread and waits for this one
        self._using.acquire()
        if self._conn is None:  # closed by the thread meanwhile (``close`` from another thread)
            self._using.release()
            self._done()
            return False
        return True

    def _inline_transaction(self, fn: Callable[[sqlite3.Connection], T]) -> tuple[T] | None:
        """``fn`` in an immediate transaction on the caller's thread (the connection taken by
        ``_take_inline``); None, with nothing done, when another process holds the write lock."""
        conn = self._conn
        assert conn is not None  # _take_inline checked, holding _using
        try:
            with _wrapped_errors():
                conn.execute("PRAGMA busy_timeout=0")
                try:
                    return (immediate_transaction(conn, lambda: fn(conn)),)
                except sqlite3.OperationalError as exc:
                    if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:  # extended codes included
                        raise
                    return None  # rolled back (or never begun): the thread retries it, waiting
                finally:
                    conn.execute(f"PRAGMA busy_timeout={int(self._busy_timeout_s * 1000)}")
        finally:
            self._using.release()
            self._done()

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Return ``fn(connection)`` computed on the SQLite thread.

        Opens the database on first use. Raises ``SqliteError`` for any ``sqlite3.Error``
        (including a failure to open); other exceptions of ``fn`` propagate unchanged;
        ``RuntimeError`` once the runner is closed.
        """
        with _wrapped_errors():
            return await self._submit(lambda: fn(self._connection()))

    async def run_in_transaction(self, fn: Callable[[sqlite3.Connection], T], *, inline: bool = False) -> T:
        """``run`` with ``fn(connection)`` inside ``immediate_transaction``: all or nothing.

        ``inline``: run it on the caller's thread when no call is queued or running and no other
        process holds the write lock (see the module docstring), else on the runner's thread.
        Raises as ``run`` does either way.
        """
        if inline and self._take_inline():
            done = self._inline_transaction(fn)
            if done is not None:
                return done[0]
        return await self.run(lambda conn: immediate_transaction(conn, lambda: fn(conn)))

    async def close(self) -> None:
        """Finish the queued calls, close the connection on its thread, stop the thread. Idempotent."""
        if self._closed:
            return
        self._closed = True
        thread = self._thread
        if thread is None:
            return
        self._calls.put(None)
        await asyncio.to_thread(thread.join)


@contextlib.contextmanager
def _wrapped_errors() -> Iterator[None]:
    """Any ``sqlite3.Error`` inside becomes a ``SqliteError`` naming its type (never row contents)."""
    try:
        yield
    except sqlite3.Error as exc:
        raise SqliteError(f"sqlite failed ({type(exc).__name__})") from exc


_Call = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[[], Any]]


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    """On the caller's loop: deliver a call's outcome unless the caller gave up (cancelled)."""
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
