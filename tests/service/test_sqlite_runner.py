"""``SqliteRunner`` / ``open_sqlite`` on real SQLite files."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from service.errors import ServiceError
from service.sqlite_runner import SqliteError, SqliteRunner, immediate_transaction, open_sqlite

SCHEMA = "CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY, v INTEGER NOT NULL);"


async def test_runs_on_one_dedicated_thread_and_opens_lazily(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "db.sqlite3"
    runner = SqliteRunner(path, SCHEMA, thread_name="test-sqlite")
    assert not path.exists()  # nothing is opened before the first call
    names = await asyncio.gather(*(runner.run(lambda _: threading.current_thread().name) for _ in range(5)))
    assert len(set(names)) == 1 and names[0].startswith("test-sqlite")
    assert names[0] != threading.current_thread().name
    if Path("/proc/self/task").is_dir():  # the OS sees the name too (top -H, bench http's CPU split)
        tid = await runner.run(lambda _: threading.get_native_id())
        assert Path(f"/proc/self/task/{tid}/comm").read_text().strip() == "test-sqlite_0"
    mode = await runner.run(lambda conn: conn.execute("PRAGMA journal_mode").fetchone()[0])
    busy = await runner.run(lambda conn: conn.execute("PRAGMA busy_timeout").fetchone()[0])
    assert (mode, busy) == ("wal", 10_000)
    await runner.close()
    await runner.close()  # idempotent


async def test_writes_are_autocommitted_and_seen_by_another_connection(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    writer, reader = SqliteRunner(path, SCHEMA), SqliteRunner(path, SCHEMA)
    await writer.run(lambda conn: conn.execute("INSERT INTO t VALUES ('a', 1)"))
    assert await reader.run(lambda conn: conn.execute("SELECT v FROM t").fetchall()) == [(1,)]
    await writer.close()
    await reader.close()


async def test_memory_database_is_private_to_the_runner() -> None:
    one, two = SqliteRunner(None, SCHEMA), SqliteRunner(None, SCHEMA)
    await one.run(lambda conn: conn.execute("INSERT INTO t VALUES ('a', 1)"))
    assert await two.run(lambda conn: conn.execute("SELECT COUNT(*) FROM t").fetchone()[0]) == 0
    await one.close()
    await two.close()


async def test_sqlite_errors_are_wrapped_in_a_non_http_error(tmp_path: Path) -> None:
    (tmp_path / "dir.sqlite3").mkdir()  # a directory where the file should be
    broken = SqliteRunner(tmp_path / "dir.sqlite3", SCHEMA)
    with pytest.raises(SqliteError) as caught:
        await broken.run(lambda conn: conn.execute("SELECT 1"))
    assert not isinstance(caught.value, ServiceError)
    assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
    await broken.close()

    runner = SqliteRunner(tmp_path / "db.sqlite3", SCHEMA)
    with pytest.raises(SqliteError, match="IntegrityError"):
        await runner.run(lambda conn: conn.executemany("INSERT INTO t VALUES (?, 1)", [("x",), ("x",)]))

    def not_sqlite(conn: sqlite3.Connection) -> None:
        raise KeyError("mine")

    with pytest.raises(KeyError):  # the caller's own errors pass through unchanged
        await runner.run(not_sqlite)
    await runner.close()


def test_concurrent_first_opens_of_one_file_all_succeed(tmp_path: Path) -> None:
    """Several processes' first open race for the WAL switch; the retry absorbs "locked"."""
    path = tmp_path / "race.sqlite3"
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def open_one() -> None:
        barrier.wait()
        try:
            open_sqlite(path, SCHEMA).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_a_lock_that_never_clears_is_raised_after_the_attempts(tmp_path: Path) -> None:
    path = tmp_path / "locked.sqlite3"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # rollback journal: nobody else may even read
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            open_sqlite(path, SCHEMA, attempts=2, busy_timeout_s=0.05)
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_immediate_transaction_commits_or_rolls_back_everything(tmp_path: Path) -> None:
    conn = open_sqlite(tmp_path / "db.sqlite3", SCHEMA)
    other = open_sqlite(tmp_path / "db.sqlite3", SCHEMA, busy_timeout_s=0)

    def write_two() -> int:
        conn.execute("INSERT INTO t VALUES ('a', 1)")
        with pytest.raises(sqlite3.OperationalError, match="locked"):  # the write lock is held from BEGIN
            other.execute("INSERT INTO t VALUES ('x', 0)")
        conn.execute("INSERT INTO t VALUES ('b', 2)")
        return 2

    assert immediate_transaction(conn, write_two) == 2

    def fail_halfway() -> None:
        conn.execute("INSERT INTO t VALUES ('c', 3)")
        conn.execute("INSERT INTO t VALUES ('a', 9)")  # the primary key exists: the whole step goes

    with pytest.raises(sqlite3.IntegrityError):
        immediate_transaction(conn, fail_halfway)
    assert other.execute("SELECT k, v FROM t ORDER BY k").fetchall() == [("a", 1), ("b", 2)]
    assert not conn.in_transaction
    conn.close()
    other.close()


def _where(conn: sqlite3.Connection, key: str) -> str:
    conn.execute("INSERT INTO t VALUES (?, 1)", (key,))
    return threading.current_thread().name


async def test_an_inline_transaction_on_an_idle_runner_runs_on_the_callers_thread(tmp_path: Path) -> None:
    runner = SqliteRunner(tmp_path / "db.sqlite3", SCHEMA, thread_name="test-sqlite")
    here = threading.current_thread().name
    # Before the runner's thread has opened the database, everything goes there.
    assert await runner.run_in_transaction(lambda conn: _where(conn, "a"), inline=True) != here
    assert await runner.run_in_transaction(lambda conn: _where(conn, "b"), inline=True) == here
    assert await runner.run_in_transaction(lambda conn: _where(conn, "c")) != here  # not asked
    with pytest.raises(SqliteError, match="IntegrityError"):  # wrapped as on the thread, and rolled back
        await runner.run_in_transaction(lambda conn: [_where(conn, "d"), _where(conn, "a")], inline=True)
    keys = await runner.run(lambda conn: [k for (k,) in conn.execute("SELECT k FROM t ORDER BY k")])
    assert keys == ["a", "b", "c"]
    await runner.close()


async def test_an_inline_transaction_never_overtakes_a_queued_call(tmp_path: Path) -> None:
    runner = SqliteRunner(tmp_path / "db.sqlite3", SCHEMA)
    await runner.run(lambda conn: None)  # opened
    release = threading.Event()

    def slow_first(conn: sqlite3.Connection) -> str:
        release.wait(5)
        return _where(conn, "first")

    first = asyncio.ensure_future(runner.run(slow_first))
    await asyncio.sleep(0.05)  # the slow call is on the thread
    second = asyncio.ensure_future(
        runner.run_in_transaction(lambda conn: conn.execute("SELECT k FROM t").fetchall(), inline=True)
    )
    await asyncio.sleep(0.05)
    assert not second.done()  # it queued behind the first instead of running on this thread
    release.set()
    await first
    assert await second == [("first",)]
    await runner.close()


async def test_a_write_lock_held_elsewhere_sends_an_inline_transaction_to_the_thread(tmp_path: Path) -> None:
    """The caller (the event loop) must never wait on another process's lock: the inline attempt
    gives up at once, and the runner's thread waits out the lock as usual."""
    path = tmp_path / "db.sqlite3"
    runner = SqliteRunner(path, SCHEMA, busy_timeout_s=5)
    await runner.run(lambda conn: None)
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    threading.Timer(0.3, lambda: holder.execute("COMMIT")).start()
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.ensure_future(tick())
    where = await runner.run_in_transaction(lambda conn: _where(conn, "late"), inline=True)
    ticker.cancel()
    assert where != threading.current_thread().name
    assert ticks >= 10  # the loop kept running while the thread waited for the lock
    busy = await runner.run(lambda conn: conn.execute("PRAGMA busy_timeout").fetchone()[0])
    assert busy == 5000  # the inline attempt's zero timeout did not stick
    holder.close()
    await runner.close()
