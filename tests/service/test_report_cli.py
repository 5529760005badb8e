"""``switchboard report``: 10,000 conversations from an export and from the store's counters
(SQLite; Redis on a smaller set) written as HTML well within 60 s, the summary equal to
counts made independently, ``--window`` filtering, and bad input refused with its exit code."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from routing.insights import BUCKET_S
from service.cli import main
from service.insights import RedisInsights, SqliteInsights
from service.redis_conn import open_redis
from tests.service.test_report import (
    END,
    TURN_MARKER,
    Planted,
    fill_store,
    in_window,
    summary_values,
    write_export,
)

ROOT = Path(__file__).resolve().parents[2]
N = 10_000
BUDGET_S = 60.0


def expected_summary(planted: list[Planted], window_s: int) -> dict[str, str]:
    """The summary numbers, counted from what was planted (not through routing.insights)."""
    chosen = in_window(planted, window_s)
    n = len(chosen)
    outcomes = [p.outcome for p in chosen if p.outcome is not None]
    return {
        "conversations": str(n),
        "closed": str(sum(p.closed for p in chosen)),
        "outcomes": str(len(outcomes)),
        "containment": f"{sum(p.contained for p in chosen)}/{n}",
        "escalation": f"{sum(not p.on_bot for p in chosen)}/{n}",
        "negative_exit": f"{sum(p.negative_exit for p in chosen)}/{n}",
        "resolution": f"{sum(o.resolved for o in outcomes)}/{len(outcomes)}",
    }


def assert_summary(page: str, planted: list[Planted], window_s: int) -> None:
    values = summary_values(page)
    for key, value in expected_summary(planted, window_s).items():
        assert values[key] == value, key


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh data dir; the store URL is set by each test."""
    data_dir = tmp_path / "var"
    monkeypatch.setenv("SWITCHBOARD_DATA_DIR", str(data_dir))
    monkeypatch.delenv("SWITCHBOARD_STORE", raising=False)
    monkeypatch.delenv("SWITCHBOARD_POLICY", raising=False)
    return data_dir


def test_report_from_an_export_of_10000_conversations(tmp_path: Path, env: Path) -> None:
    export = tmp_path / "export.jsonl"
    planted = write_export(export, N)
    out = tmp_path / "report.html"
    command = [sys.executable, "-m", "service.cli", "report", "--input", str(export), "--out", str(out)]
    command.extend(["--window", "24h", "--end", str(END)])
    started = time.perf_counter()
    run = subprocess.run(
        command,
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "SWITCHBOARD_DATA_DIR": str(env)},
        timeout=120,
    )
    seconds = time.perf_counter() - started
    print(f"switchboard report --input ({N} conversations): {seconds:.2f} s")
    assert run.returncode == 0, run.stderr
    assert seconds < BUDGET_S
    assert "100%" in run.stderr  # the progress bar ran to the end (the export is ~20 MB)
    page = out.read_text(encoding="utf-8")
    assert_summary(page, planted, 86400)
    assert TURN_MARKER not in page and "https://" not in page and "http://" not in page
    for section in ("reasons", "sentiment", "funnel", "experiments"):
        assert "<svg" in page.split(f'<section id="{section}">', 1)[1].split("</section>", 1)[0]

    wide = tmp_path / "wide.html"
    args = ["report", "--input", str(export), "--out", str(wide), "--window", "2d", "--end", str(END)]
    assert main([*args, "--no-progress"]) == 0
    assert_summary(wide.read_text(encoding="utf-8"), planted, 2 * 86400)
    # --window 2d keeps the day that 24h left out.
    assert len(in_window(planted, 2 * 86400)) > 1.9 * len(in_window(planted, 86400))


def test_report_from_the_sqlite_counters_of_10000_conversations(
    tmp_path: Path, env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    planted = write_export(tmp_path / "export.jsonl", N)
    url = f"sqlite:///{env / 'switchboard.sqlite3'}"
    env.mkdir(parents=True, exist_ok=True)

    async def fill() -> None:
        store = SqliteInsights(env / "switchboard.sqlite3")
        try:
            await fill_store(store, N)
        finally:
            await store.close()

    asyncio.run(fill())
    monkeypatch.setenv("SWITCHBOARD_STORE", url)
    for window, window_s in (("24h", 86400), ("48h", 2 * 86400), ("3h", 3 * BUCKET_S)):
        out = tmp_path / f"report-{window}.html"
        started = time.perf_counter()
        assert main(["report", "--window", window, "--out", str(out), "--end", str(END)]) == 0
        seconds = time.perf_counter() - started
        print(f"switchboard report --window {window} (store, {N} conversations): {seconds:.2f} s")
        assert seconds < BUDGET_S
        assert_summary(out.read_text(encoding="utf-8"), planted, window_s)


def test_report_from_redis_counters_matches_the_export(
    tmp_path: Path, env: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    n = 400
    planted = write_export(tmp_path / "export.jsonl", n)

    async def fill(url: str) -> None:
        store = RedisInsights(url)
        try:
            await fill_store(store, n)
        finally:
            await store.close()

    async def drop(url: str) -> None:
        conn = open_redis(url)
        try:
            keys = [key async for key in conn.client.scan_iter(match=f"{conn.prefix}*")]
            if keys:
                await conn.client.delete(*keys)
        finally:
            await conn.aclose()

    asyncio.run(fill(redis_url))
    try:
        monkeypatch.setenv("SWITCHBOARD_STORE", redis_url)
        out = tmp_path / "redis.html"
        assert main(["report", "--window", "24h", "--out", str(out), "--end", str(END)]) == 0
        from_redis = summary_values(out.read_text(encoding="utf-8"))
    finally:
        asyncio.run(drop(redis_url))
    exported = tmp_path / "export.html"
    args = ["report", "--input", str(tmp_path / "export.jsonl"), "--out", str(exported), "--end", str(END)]
    assert main(args) == 0
    assert from_redis == summary_values(exported.read_text(encoding="utf-8"))
    assert_summary(out.read_text(encoding="utf-8"), planted, 86400)


def test_report_reads_an_export_from_stdin(tmp_path: Path, env: Path) -> None:
    export = tmp_path / "export.jsonl"
    planted = write_export(export, 300)
    out = tmp_path / "stdin.html"
    command = [sys.executable, "-m", "service.cli", "report", "--input", "-", "--out", str(out)]
    command.extend(["--end", str(END)])
    with open(export, "rb") as stdin:
        run = subprocess.run(
            command,
            cwd=ROOT,
            stdin=stdin,
            capture_output=True,
            env={**os.environ, "SWITCHBOARD_DATA_DIR": str(env)},
            timeout=60,
        )
    assert run.returncode == 0, run.stderr
    assert_summary(out.read_text(encoding="utf-8"), planted, 86400)


def test_bad_input_and_usage_exit_codes(
    tmp_path: Path, env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"created_at": 1.0}\n{"not": "a record"}\n', encoding="utf-8")
    out = tmp_path / "out.html"
    assert main(["report", "--input", str(bad), "--out", str(out)]) == 1
    assert f"{bad}:2: not an export record" in capsys.readouterr().err
    assert not out.exists()
    assert main(["report", "--window", "91d", "--out", str(out)]) == 2
    assert main(["report", "--end", "yesterday", "--out", str(out)]) == 2
    assert main(["report", "--input", str(tmp_path / "missing.jsonl"), "--out", str(out)]) == 2
    assert not out.exists()
