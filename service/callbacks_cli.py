"""``switchboard callbacks list|show|redrive``: the decision-callback outbox from the command line.

Works on the configured outbox backend (``SWITCHBOARD_OUTBOX``, else the store URL: SQLite
or Redis), the one the running service delivers from: a callback sent again here is picked
up by the service's workers within a second. Shows the same fields as ``/v1/admin/callbacks``
(``service.admin.callback_info``): metadata by default, the body (redacted handoff context)
only with ``--body``.

Exit codes as for every ``switchboard`` command: 0 ok, 1 an unknown key (``show``,
``redrive``: then nothing is sent again), 2 usage or configuration error, or the backend
is unreachable.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from service.adapters.backend import BackendError
from service.adapters.outbox import Outbox
from service.admin import MAX_LIST, CallbackInfo, RedriveRequest, callback_info, redrive
from service.errors import NotFound
from service.settings import Settings

_COLUMNS = ("key", "state", "attempts", "last_error", "source", "conversation_id", "finished_at", "url")


def add_callbacks_parser(sub: Any) -> None:
    """Add ``callbacks list``, ``callbacks show`` and ``callbacks redrive`` to the subcommands."""
    callbacks = sub.add_parser(
        "callbacks",
        help="decision callbacks in the outbox: list, show, send dead letters again",
        description="Inspect the decision-callback outbox of the configured backend (SWITCHBOARD_OUTBOX, "
        "else SWITCHBOARD_STORE) and send dead-lettered callbacks again.",
    )
    commands = callbacks.add_subparsers(dest="callbacks_command", required=True)
    listing = commands.add_parser(
        "list",
        help="list callbacks in one state (default: the dead letters)",
        description="Pending callbacks in enqueue order; delivered and dead ones most recently finished "
        "first. A table by default, a JSON array with --json.",
    )
    listing.add_argument("--state", choices=("dead", "pending", "delivered"), default="dead")
    listing.add_argument("--limit", type=_limit, default=100, help=f"most callbacks shown (1-{MAX_LIST})")
    listing.add_argument("--json", action="store_true", help="a JSON array instead of a table")
    listing.add_argument("--body", action="store_true", help="include the bodies (implies --json)")
    listing.set_defaults(handler=run_list)
    show = commands.add_parser("show", help="one callback as JSON", description="One callback as JSON.")
    show.add_argument("key", help="the callback's idempotency key")
    show.add_argument(
        "--body", action="store_true", help="include the body (it holds the redacted handoff context)"
    )
    show.set_defaults(handler=run_show)
    again = commands.add_parser(
        "redrive",
        help="send dead callbacks again (named ones, or --all)",
        description="Send dead-lettered callbacks again with a fresh attempt budget and the same "
        "idempotency key. Unknown keys: nothing is sent, exit 1. Keys that are not dead are reported.",
    )
    again.add_argument("keys", nargs="*", help="idempotency keys of dead callbacks")
    again.add_argument("--all", action="store_true", help="every dead callback")
    again.add_argument("--json", action="store_true", help="print the result as JSON")
    again.set_defaults(handler=run_redrive)


def _limit(text: str) -> int:
    value = int(text)
    if not 1 <= value <= MAX_LIST:
        raise argparse.ArgumentTypeError(f"must be 1-{MAX_LIST}")
    return value


def _outbox() -> Outbox:
    settings = Settings.from_env({**os.environ, "SWITCHBOARD_AUTH_DISABLED": "true"})
    return Outbox.from_settings(settings)


def _run(work: Callable[[Outbox], Awaitable[int]]) -> int:
    """Run ``work`` on a fresh outbox (its worker never starts) and close the backend after."""

    async def main() -> int:
        outbox = _outbox()
        try:
            return await work(outbox)
        finally:
            await outbox.backend.close()

    try:
        return asyncio.run(main())
    except BackendError as exc:
        print(f"switchboard callbacks: the outbox backend is unavailable: {exc}", file=sys.stderr)
        return 2


def _json(value: Any) -> str:
    return msgspec.json.format(msgspec.json.encode(value), indent=2).decode()


def format_table(callbacks: list[CallbackInfo]) -> str:
    """Aligned columns of ``_COLUMNS``, one callback a row; ``-`` for a missing value."""
    rows = [list(_COLUMNS)]
    for info in callbacks:
        rows.append(["-" if (v := getattr(info, c)) is None else str(v) for c in _COLUMNS])
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def run_list(args: argparse.Namespace) -> int:
    """``switchboard callbacks list``."""

    async def work(outbox: Outbox) -> int:
        records = await outbox.list_messages(args.state, args.limit)
        infos = [callback_info(record, body=args.body) for record in records]
        if args.json or args.body:
            print(_json(infos))
            return 0
        counts = await outbox.counts()
        print(format_table(infos))
        summary = ", ".join(f"{count} {state}" for state, count in counts.items())
        print(f"({len(infos)} shown; outbox: {summary})", file=sys.stderr)
        return 0

    return _run(work)


def run_show(args: argparse.Namespace) -> int:
    """``switchboard callbacks show KEY``."""

    async def work(outbox: Outbox) -> int:
        record = await outbox.get(args.key)
        if record is None:
            print(f"switchboard callbacks: no callback with key {args.key!r}", file=sys.stderr)
            return 1
        print(_json(callback_info(record, body=args.body)))
        return 0

    return _run(work)


def run_redrive(args: argparse.Namespace) -> int:
    """``switchboard callbacks redrive KEY ...`` or ``--all``."""
    if bool(args.keys) == args.all:
        print("switchboard callbacks redrive: give keys or --all (not both)", file=sys.stderr)
        return 2

    async def work(outbox: Outbox) -> int:
        try:
            result = await redrive(outbox, RedriveRequest(keys=args.keys or None, all=args.all))
        except NotFound as exc:
            for error in exc.errors:
                print(f"switchboard callbacks: {error['message']}", file=sys.stderr)
            print(f"switchboard callbacks: {exc.detail}", file=sys.stderr)
            return 1
        if args.json:
            print(_json(result))
            return 0
        print(f"{result.redriven} callback(s) will be sent again")
        for key in result.not_dead or []:
            status = await outbox.status(key)
            state = status.state if status is not None else "gone"
            print(f"{key}: not dead ({state}); left as it is", file=sys.stderr)
        return 0

    return _run(work)
