"""``switchboard outcomes import FILE.csv``: outcomes learnt elsewhere (CRM, WFM, surveys), in bulk.

One row per conversation, with a header. ``conversation_id`` is required; the other columns are
the fields of ``POST /v1/conversations/{id}/outcome`` and may be left out or empty:
``resolved``, ``transferred``, ``abandoned``, ``churned`` (true/false, yes/no, 1/0), ``csat``
(1-5), ``handle_time_s``, ``recontact_within_days`` and ``labels`` (separated by ``;``).
Each row goes through the same validation and the same idempotent store as the endpoint; a bad
row is reported as ``FILE:LINE: problem`` and the others are still imported.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec

from routing.insights import Outcome
from service.errors import ServiceError
from service.settings import Settings

_FLAGS = ("resolved", "transferred", "abandoned", "churned")
_NUMBERS = {"csat": int, "handle_time_s": float, "recontact_within_days": int}
_TRUE = {"true", "yes", "y", "1"}
_FALSE = {"false", "no", "n", "0"}
COLUMNS = ("conversation_id", *_FLAGS, *_NUMBERS, "labels")


def add_outcomes_parser(sub: Any) -> None:
    """Add ``outcomes import`` to the ``switchboard`` subcommands."""
    outcomes = sub.add_parser("outcomes", help="record conversation outcomes in bulk")
    actions = outcomes.add_subparsers(dest="outcomes_command", required=True)
    importer = actions.add_parser(
        "import",
        help="import outcomes from a CSV file",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
    )
    importer.add_argument("file", type=Path, help="CSV with a header row ('-' = stdin)")
    importer.set_defaults(handler=run_import)


def parse_row(row: dict[str, str]) -> tuple[str, Outcome]:
    """The conversation id and outcome of one CSV row; ``ValueError`` naming the column otherwise."""
    unknown = sorted(set(row) - set(COLUMNS))
    if unknown:
        raise ValueError(f"unknown column(s) {', '.join(unknown)} (expected {', '.join(COLUMNS)})")
    conversation_id = (row.get("conversation_id") or "").strip()
    if not conversation_id:
        raise ValueError("conversation_id is empty")
    fields: dict[str, Any] = {}
    for name in _FLAGS:
        value = (row.get(name) or "").strip().lower()
        if value in _TRUE:
            fields[name] = True
        elif value not in _FALSE and value:
            raise ValueError(f"{name}: expected true/false, got {value!r}")
    for name, kind in _NUMBERS.items():
        value = (row.get(name) or "").strip()
        if value:
            try:
                fields[name] = kind(value)
            except ValueError:
                raise ValueError(f"{name}: expected a number, got {value!r}") from None
    labels = [label.strip() for label in (row.get("labels") or "").split(";") if label.strip()]
    if labels:
        fields["labels"] = labels
    try:
        return conversation_id, msgspec.convert(fields, Outcome)
    except msgspec.ValidationError as exc:
        raise ValueError(str(exc)) from None


def read_rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row) for each data row of the CSV (line numbers count the header as 1)."""
    handle = sys.stdin if str(path) == "-" else path.open(encoding="utf-8", newline="")
    try:
        reader = csv.DictReader(handle)
        for row in reader:
            yield reader.line_num, {key.strip(): value for key, value in row.items() if key is not None}
    finally:
        if handle is not sys.stdin:
            handle.close()


def run_import(args: argparse.Namespace) -> int:
    """Exit 0 when every row was recorded (or already was), 1 when a row failed, 2 when the file
    cannot be read."""
    settings = Settings.from_env({**os.environ, "SWITCHBOARD_AUTH_DISABLED": "true"})
    try:
        rows = list(read_rows(args.file))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        print(f"switchboard outcomes import: cannot read {args.file} ({type(exc).__name__})", file=sys.stderr)
        return 2
    return asyncio.run(_import(settings, args.file, rows))


async def _import(settings: Settings, path: Path, rows: list[tuple[int, dict[str, str]]]) -> int:
    from service.app import create_app

    # The app's own services (its pack is never loaded): the same store, counters and erasure rules.
    service = create_app(settings).state.service
    recorded = unchanged = failed = 0
    try:
        for line, row in rows:
            try:
                conversation_id, outcome = parse_row(row)
                result = await service.insights.record_outcome(
                    service.conversations, conversation_id, outcome
                )
            except ValueError as exc:
                failed += 1
                print(f"{path}:{line}: {exc}", file=sys.stderr)
                continue
            except ServiceError as exc:
                failed += 1
                print(f"{path}:{line}: {exc.detail}", file=sys.stderr)
                continue
            if result.changed:
                recorded += 1
            else:
                unchanged += 1
        await service.insights.flush()
    finally:
        await service.insights.store.close()
        await service.outbox.stop()
        await service.store.close()
    print(f"{recorded} recorded, {unchanged} unchanged, {failed} failed")
    return 1 if failed else 0
