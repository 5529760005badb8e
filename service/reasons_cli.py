"""``switchboard reasons check`` and ``switchboard reasons suggest`` (see ``service.reasons_tools``).

Exit codes as for every ``switchboard`` command: 0 ok, 1 the checked file is
invalid (``check``; with ``--strict`` also on warnings and confusable pairs),
2 usage or configuration error (unreadable file, a pack without a sentence
embedding, scikit-learn missing for ``suggest``).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from routing.errors import ReasonsError
from routing.reasons import empty_reasons, load_reasons
from service.errors import SettingsError
from service.reasons_tools import CLUSTER_SIMILARITY
from service.settings import Settings

if TYPE_CHECKING:
    from service.reasons import Embedder

CHUNK = 64
NO_EMBEDDING = (
    "the model pack at {pack} has no sentence embedding (a v1 pack): custom contact reasons cannot be "
    "matched or measured with it; use a pack that has one (v2, manifest field 'embedding')"
)


def add_reasons_parser(sub: Any) -> None:
    """Add ``reasons check`` and ``reasons suggest`` to the ``switchboard`` subcommands."""
    reasons = sub.add_parser("reasons", help="custom contact reasons: check a reasons file, suggest new ones")
    commands = reasons.add_subparsers(dest="reasons_command", required=True)
    check = commands.add_parser(
        "check",
        help="validate a reasons file and measure it with the model pack",
        description="Validate a reasons file (exit 1 with every error, naming reason and field), then embed "
        "its examples with the model pack and print, per reason, held-out accuracy and the share of "
        "examples a live turn would match; the confusable pairs (two custom reasons, or a custom reason and "
        "a built-in intent the intent head claims its examples for); and reasons with too few or too similar "
        "examples. See routing/REASONS.md.",
    )
    check.add_argument("file", type=Path)
    check.add_argument(
        "--pack", type=Path, help="model pack folder (default SWITCHBOARD_PACK or the bundled)"
    )
    check.add_argument("--strict", action="store_true", help="exit 1 on warnings and confusable pairs too")
    check.add_argument("--no-progress", action="store_true", help="no progress bar")
    check.set_defaults(handler=run_check)
    suggest = commands.add_parser(
        "suggest",
        help="cluster the turns the pack could not name (from `switchboard export`) into candidate reasons",
        description="Read exported conversations (JSONL from `switchboard export`), keep the customer turns "
        "that stated a reason the pack could not name (intent out_of_scope or below 0.5) and that no custom "
        "reason matches, cluster their embeddings and print candidate reasons with their most typical "
        "utterances and counts, as TOML ready to review and paste into a reasons file. Needs scikit-learn "
        "(pip install 'switchboard[suggest]'). The export holds transcripts: the utterances are printed, "
        "never logged.",
    )
    suggest.add_argument("export", help="JSONL written by `switchboard export` ('-' = stdin)")
    suggest.add_argument(
        "--reasons",
        help="reasons file whose matches are left out (default SWITCHBOARD_REASONS or the bundled file; "
        "'none' keeps every unclear turn)",
    )
    suggest.add_argument(
        "--pack", type=Path, help="model pack folder (default SWITCHBOARD_PACK or the bundled)"
    )
    suggest.add_argument(
        "--min-turns", type=int, default=5, help="smallest cluster reported (turns, default 5)"
    )
    suggest.add_argument(
        "--similarity",
        type=float,
        default=CLUSTER_SIMILARITY,
        help=f"average similarity within a cluster (default {CLUSTER_SIMILARITY})",
    )
    suggest.add_argument("--examples", type=int, default=10, help="typical utterances per candidate (10)")
    suggest.add_argument("--out", type=Path, help="write the TOML here instead of stdout")
    suggest.add_argument("--no-progress", action="store_true", help="no progress bar")
    suggest.set_defaults(handler=run_suggest)


def _settings() -> Settings:
    return Settings.from_env({**os.environ, "SWITCHBOARD_AUTH_DISABLED": "true"})


def _embedder(pack: Path | None, settings: Settings) -> tuple[Embedder, Path]:
    from models.packs import DEFAULT_PACK
    from models.runtime import Runtime, RuntimeConfig
    from service.reasons import Embedder

    pack_dir = pack or settings.pack_dir or DEFAULT_PACK
    runtime = Runtime.load(pack_dir, RuntimeConfig(intra_op_threads=settings.inference.intra_op_threads))
    return Embedder(runtime), pack_dir


def _progress(total: int, desc: str, disable: bool) -> Callable[[Iterable[int]], Iterator[int]]:
    def wrap(steps: Iterable[int]) -> Iterator[int]:
        from tqdm import tqdm

        with tqdm(total=total, desc=desc, unit="text", disable=disable, file=sys.stderr) as bar:
            for start in steps:
                yield start
                bar.update(min(CHUNK, total - start))

    return wrap


def run_check(args: argparse.Namespace) -> int:
    """``switchboard reasons check FILE``."""
    from service.reasons import indexed_texts
    from service.reasons_tools import check_reasons, format_check

    try:
        text = args.file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"{args.file}: cannot read ({type(exc).__name__}: {exc})", file=sys.stderr)
        return 2
    try:
        reasons = load_reasons(text)
    except ReasonsError as exc:
        print(f"{args.file}: invalid reasons file", file=sys.stderr)
        for message in exc.errors:
            print(f"  - {message}", file=sys.stderr)
        return 1
    print(f"{args.file}: valid ({len(reasons.reasons)} reasons, hash {reasons.hash})")
    if not reasons.reasons:
        return 0
    settings = _settings()
    embedder, pack_dir = _embedder(args.pack, settings)
    if not embedder.available:
        print(f"switchboard reasons check: {NO_EMBEDDING.format(pack=pack_dir)}", file=sys.stderr)
        return 2
    total = len(indexed_texts(reasons))
    progress = _progress(total, "embedding examples", args.no_progress)
    report = check_reasons(reasons, embedder, progress)
    print(format_check(report, reasons))
    return 1 if args.strict and report.problems else 0


def run_suggest(args: argparse.Namespace) -> int:
    """``switchboard reasons suggest EXPORT.jsonl``."""
    if importlib.util.find_spec("sklearn") is None:
        print(
            "switchboard reasons suggest needs scikit-learn, which serving does not install: "
            "pip install 'switchboard[suggest]' (or pip install scikit-learn)",
            file=sys.stderr,
        )
        return 2
    from service.reasons import ActiveReasons, ReasonIndex, indexed_texts
    from service.reasons_tools import format_suggestions, select_unclear, suggest_reasons

    try:
        if args.export == "-":
            selection = select_unclear(sys.stdin.buffer)
        else:
            with open(args.export, "rb") as handle:
                selection = select_unclear(handle)
    except OSError as exc:
        print(f"{args.export}: cannot read ({type(exc).__name__})", file=sys.stderr)
        return 2
    for number in selection.bad_lines[:20]:
        print(f"{args.export}:{number}: not an exported conversation; skipped", file=sys.stderr)
    settings = _settings()
    try:
        reasons = _reasons_to_leave_out(args.reasons, settings)
    except (ReasonsError, SettingsError, OSError, UnicodeDecodeError) as exc:
        print(f"switchboard reasons suggest: cannot use the reasons file: {exc}", file=sys.stderr)
        return 2
    embedder, pack_dir = _embedder(args.pack, settings)
    if not embedder.available:
        print(f"switchboard reasons suggest: {NO_EMBEDDING.format(pack=pack_dir)}", file=sys.stderr)
        return 2
    active = None
    if reasons.reasons:
        vectors = embedder(indexed_texts(reasons))
        active = ActiveReasons(
            reasons=reasons,
            index=ReasonIndex.build(reasons, vectors, embedder.prototypes),
            source="",
            loaded_at="",
            status="active",
        )
    progress = _progress(len(selection.texts), "embedding turns", args.no_progress)
    candidates, covered = suggest_reasons(
        selection,
        embedder,
        active=active,
        min_turns=args.min_turns,
        similarity=args.similarity,
        max_examples=args.examples,
        progress=progress,
    )
    output = format_suggestions(candidates, selection, covered, args.export)
    if args.out:
        args.out.write_text(output, encoding="utf-8")
        print(
            f"switchboard reasons suggest: {len(candidates)} candidates written to {args.out}",
            file=sys.stderr,
        )
    else:
        sys.stdout.write(output)
    return 0


def _reasons_to_leave_out(option: str | None, settings: Settings) -> Any:
    from service.reasons import default_reasons_text

    if option is not None:
        if option.lower() in ("none", "off"):
            return empty_reasons()
        return load_reasons(Path(option).read_text(encoding="utf-8"))
    if not settings.reasons_enabled:
        return empty_reasons()
    if settings.reasons_path is None:
        return load_reasons(default_reasons_text())
    try:
        return load_reasons(settings.reasons_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"SWITCHBOARD_REASONS: cannot read {settings.reasons_path}") from exc


def load_reason_set(settings: Settings) -> Any:
    """The reasons file the settings name, validated (for ``policy check`` and ``analyze``)."""
    return _reasons_to_leave_out(None, settings)
