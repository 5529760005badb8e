"""``switchboard report``: the journey report as one self-contained HTML file.

``switchboard report --window 24h --out report.html`` sums the configured store's insights
counters (``SWITCHBOARD_STORE``, as the service counts them); ``--input export.jsonl`` computes
the same aggregates from conversations exported with ``switchboard export`` instead. The
policy (``SWITCHBOARD_POLICY``, else the bundled one) names the experiments' arms and declares
the SLOs. Exit codes: 0 written, 1 an input line is not an export record, 2 usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import msgspec

from service.report import ReportBuilder, ReportData, render_html, report_from_store
from service.settings import Settings

__all__ = ["PROGRESS_FROM_BYTES", "add_report_parser", "parse_end", "run_report"]

# Inputs smaller than this finish before a progress bar would say anything useful.
PROGRESS_FROM_BYTES = 1 << 20


def add_report_parser(sub: Any) -> None:
    """Add ``report`` to the ``switchboard`` subcommands."""
    report = sub.add_parser(
        "report",
        help="write the journey report (HTML, no network needed to view it)",
        description="Write a self-contained HTML report over a window: summary table, contact-reason mix "
        "over time, sentiment bands, containment and escalation funnel, SLO status and experiment arms "
        "with 95% intervals. Reads the configured store's insights counters, or --input an export.",
    )
    report.add_argument(
        "--window", default="24h", help="how far back: <n>h or <n>d, at most 90d (default 24h)"
    )
    report.add_argument(
        "--out", type=Path, default=Path("report.html"), help="output file (default report.html)"
    )
    report.add_argument(
        "--input", type=Path, help="JSONL from `switchboard export` ('-' = stdin) instead of the store"
    )
    report.add_argument(
        "--end", help="the window ends in the hour of this time (ISO 8601 or epoch seconds; default now)"
    )
    report.add_argument(
        "--policy", type=Path, help="policy TOML for experiment arms and SLOs (default SWITCHBOARD_POLICY)"
    )
    report.add_argument("--no-progress", action="store_true", help="no progress bar")
    report.set_defaults(handler=run_report)


def parse_end(text: str | None) -> float:
    """Epoch seconds of ``text`` (epoch seconds or ISO 8601, naive = UTC); now when None.
    ``ValueError`` for anything else."""
    if text is None:
        return time.time()
    try:
        return float(text)
    except ValueError:
        pass
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def run_report(args: argparse.Namespace) -> int:
    """Handler of ``switchboard report``."""
    from service.errors import ValidationFailed
    from service.insights_api import parse_window

    try:
        window_s = parse_window(args.window)
        end_ts = parse_end(args.end)
    except (ValidationFailed, ValueError) as exc:
        detail = exc.detail if isinstance(exc, ValidationFailed) else f"--end: {exc}"
        print(f"switchboard report: {detail}", file=sys.stderr)
        return 2
    settings = Settings.from_env({**os.environ, "SWITCHBOARD_AUTH_DISABLED": "true"})
    policy = _load_policy(args.policy or settings.policy_path)
    declared: dict[str, list[str]] = {}
    experiment = getattr(policy, "experiment", None)
    if experiment is not None:
        declared[experiment.id] = [variant.id for variant in experiment.variants]
    started = time.perf_counter()
    if args.input is not None:
        try:
            data = _from_export(args, window_s, end_ts, declared, policy)
        except OSError as exc:
            print(f"switchboard report: cannot read {args.input}: {exc}", file=sys.stderr)
            return 2
        except _BadLine as exc:
            print(f"switchboard report: {exc}", file=sys.stderr)
            return 1
    else:
        from service.store.base import StoreError

        try:
            data = asyncio.run(
                _from_store(settings.resolved_store_url, args.window, window_s, end_ts, declared, policy)
            )
        except StoreError as exc:
            print(f"switchboard report: {exc}", file=sys.stderr)
            return 2
    text = render_html(data)
    args.out.write_text(text, encoding="utf-8")
    seconds = time.perf_counter() - started
    print(
        f"wrote {args.out} ({data.total.conversations} conversations, {len(text) // 1024} KiB) "
        f"in {seconds:.1f} s",
        file=sys.stderr,
    )
    return 0


def _load_policy(path: Path | None) -> Any:
    """The policy (experiment arms, SLOs), or None when it does not load: the report still works
    without it (the control then falls back to an arm named control/holdout, or the first)."""
    from routing.errors import PolicyError
    from service.policy_test import load_test_policy

    try:
        return load_test_policy(path)
    except (OSError, UnicodeDecodeError, PolicyError) as exc:
        print(f"switchboard report: policy not used ({type(exc).__name__}: {exc})", file=sys.stderr)
        return None


class _BadLine(Exception):
    """An input line that is not an export record."""


def _from_export(
    args: argparse.Namespace, window_s: int, end_ts: float, declared: dict[str, list[str]], policy: Any
) -> ReportData:
    from tqdm import tqdm

    builder = ReportBuilder(args.window, window_s, end_ts)
    name = str(args.input)
    stream: BinaryIO = sys.stdin.buffer if name == "-" else open(args.input, "rb")  # noqa: SIM115
    try:
        size = 0 if name == "-" else os.fstat(stream.fileno()).st_size
        show = not args.no_progress and size >= PROGRESS_FROM_BYTES
        with tqdm(
            total=size or None,
            unit="B",
            unit_scale=True,
            desc="conversations",
            disable=not show,
            file=sys.stderr,
        ) as bar:
            for number, line in _lines(stream, bar):
                try:
                    builder.add_line(line)
                except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                    raise _BadLine(f"{name}:{number}: not an export record ({exc})") from exc
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()
    return builder.result(declared, policy)


def _lines(stream: BinaryIO, bar: Any) -> Iterator[tuple[int, bytes]]:
    for number, line in enumerate(stream, start=1):
        bar.update(len(line))
        if line.strip():
            yield number, line


async def _from_store(
    store_url: str, window: str, window_s: int, end_ts: float, declared: dict[str, list[str]], policy: Any
) -> ReportData:
    from service.insights import open_insights

    store = open_insights(store_url)
    try:
        return await report_from_store(store, window, window_s, end_ts, declared, policy)
    finally:
        await store.close()
