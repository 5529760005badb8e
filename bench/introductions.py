"""``python -m bench introductions``: callers' openings against the intent head.

Most calls open with a name or a pleasantry ("hi, my name is Rob and I ...", "good thanks,
how are you? I ..."), which state no need, yet the model reads them. On Banking77's held-out
10% (the model card's split) the benchmark puts each request, lower-cased without end
punctuation as speech-to-text sends it, behind ``hi my name is <name> and``, behind ``yes hi
this is <name>`` (dropped only for a word that can only be a name, ``models.lexicon.FIRST_NAMES``; nine of
the twelve ``NAMES`` are also words), behind two pleasantries (``hi how are you doing today``,
``i'm good thanks how are you``) and behind a plain ``hi and`` (a control: an opening that says
nothing), and reports the intent accuracy and the share of turns that keep the bare request's
intent, with the transcript normalisation dropping the opening (``models.normalize``, the
default) and without it (the usual alternative: the text as sent).
"""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import models.normalize as normalize_module
from export import data as d
from models.packs import DEFAULT_PACK
from models.runtime import Runtime, RuntimeConfig

# Names that are also ordinary words ("bill", "will", "joy") are the hard case: keep them in.
NAMES = ("rob", "bill", "sue", "mark", "john", "grace", "will", "june", "april", "joy", "frank", "rose")


@contextlib.contextmanager
def introductions_kept() -> Iterator[None]:
    """Normalisation as it was before openings were dropped (for the comparison only)."""
    original = normalize_module.drop_opening
    normalize_module.drop_opening = lambda tokens: tokens
    try:
        yield
    finally:
        normalize_module.drop_opening = original


def spoken(text: str) -> str:
    """Lower case without end punctuation, as a speech-to-text bridge sends a request."""
    return text.lower().rstrip("?.! ")


def measure(runtime: Runtime, texts: Sequence[str], labels: Sequence[str]) -> dict[str, Any]:
    """Accuracy and agreement with the bare request, per opening and normalisation."""
    bare = [spoken(text) for text in texts]
    forms = {
        "bare": bare,
        "hi and": [f"hi and {text}" for text in bare],
        "hi my name is <name> and": [
            f"hi my name is {NAMES[i % len(NAMES)]} and {t}" for i, t in enumerate(bare)
        ],
        "yes hi this is <name>": [f"yes hi this is {NAMES[i % len(NAMES)]} {t}" for i, t in enumerate(bare)],
        "hi how are you doing today": [f"hi how are you doing today {t}" for t in bare],
        "i'm good thanks how are you": [f"i'm good thanks how are you {t}" for t in bare],
    }
    reference = [p.intent.label for p in runtime.predict(bare)]
    out: dict[str, Any] = {}
    for mode in ("dropped", "kept"):
        context = introductions_kept() if mode == "kept" else contextlib.nullcontext()
        with context:
            for name, turns in forms.items():
                predicted = [p.intent.label for p in runtime.predict(turns)]
                out[f"{name} ({mode})"] = {
                    "accuracy": round(
                        float(np.mean([p == y for p, y in zip(predicted, labels, strict=True)])), 4
                    ),
                    "same_intent_as_bare": round(
                        float(np.mean([p == r for p, r in zip(predicted, reference, strict=True)])), 4
                    ),
                }
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Print (and optionally write) the table; 0 always (figures are reported, not asserted)."""
    parser = argparse.ArgumentParser(prog="python -m bench introductions", description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--pack", type=Path, default=DEFAULT_PACK)
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    args = parser.parse_args(argv)
    _, held_out = d.split_holdout(d.load_banking77(args.data), 0.1, 13)
    runtime = Runtime.load(args.pack, RuntimeConfig())
    result = measure(runtime, [ex.text for ex in held_out], [ex.label or "" for ex in held_out])
    print(f"Banking77 held-out requests ({len(held_out)}), spoken form, intent head:")
    print("| opening | accuracy | same intent as the bare request |\n|---|---|---|")
    for name, row in result.items():
        print(f"| {name} | {row['accuracy']:.3f} | {row['same_intent_as_bare']:.3f} |")
    if args.out is not None:
        args.out.write_text(
            json.dumps({"benchmark": "introductions", "held_out": len(held_out), **result}, indent=2) + "\n"
        )
    return 0
