"""``python -m bench packs --pack A --pack B``: what one pack costs against another, per utterance.

Absolute figures on a shared machine drift by tens of percent over an afternoon,
so two packs measured in two ``bench runtime`` runs cannot be compared. This
loads every pack into one process and times them in alternating rounds (the
order flips every round) on the same generated turns (``bench.turns``), one
utterance per call through ``Runtime.predict`` (normalise, tokenize, the ONNX
graph, post-process): all turns, and the turns of at most 32 tokens (issue 9's
one-utterance bar). Every call scores its text; nothing is cached.

An older pack comes out of git, for example::

    mkdir -p /tmp/v20 && git archive d839fc6 models/packs/default | tar -x -C /tmp/v20
    python -m bench packs --pack /tmp/v20/models/packs/default --pack models/packs/default
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench.runtime import SHORT_TOKENS, percentile
from bench.turns import generate
from models.runtime import Runtime, RuntimeConfig
from models.tokenize import TextEncoder


def _timed(call: Callable[[int], Any], count: int) -> list[float]:
    out = []
    for index in range(count):
        started = time.perf_counter()
        call(index)
        out.append((time.perf_counter() - started) * 1000)
    return out


def _one_per_call(runtime: Runtime, texts: Sequence[str]) -> Callable[[int], Any]:
    return lambda index: runtime.predict([texts[index]])


def compare(packs: Sequence[Path], turns: Sequence[str], rounds: int) -> dict[str, Any]:
    """p50 ms per pack for one utterance per call: every turn, and the turns of <= 32 tokens."""
    runtimes = [Runtime.load(pack, RuntimeConfig()) for pack in packs]
    encoder = TextEncoder.from_file(packs[0] / "tokenizer.json", max_length=10_000)
    short = [
        text for text, ids in zip(turns, encoder.encode(list(turns)), strict=True) if len(ids) <= SHORT_TOKENS
    ]
    samples: list[dict[str, list[float]]] = [{"all": [], "short": []} for _ in packs]
    for round_ in range(rounds):
        order = range(len(packs)) if round_ % 2 == 0 else reversed(range(len(packs)))
        for k in order:
            for name, texts in (("all", turns), ("short", short)):
                samples[k][name] += _timed(_one_per_call(runtimes[k], texts), len(texts))
    return {
        "turns": len(turns),
        "short_turns": len(short),
        "rounds": rounds,
        "packs": [
            {
                "path": str(pack),
                "version": runtime.info["version"],
                **{f"p50_ms_{name}": round(percentile(values, 50), 3) for name, values in sample.items()},
            }
            for pack, runtime, sample in zip(packs, runtimes, samples, strict=True)
        ],
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Print the comparison and write it as JSON to ``--out``."""
    parser = argparse.ArgumentParser(prog="python -m bench packs", description=__doc__)
    parser.add_argument("--pack", type=Path, action="append", required=True, help="a pack folder; repeat")
    parser.add_argument("--turns", type=int, default=200, help="generated turns per round")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--out", type=Path, default=Path("bench/results/packs.json"))
    args = parser.parse_args(argv)
    report = compare(args.pack, generate(args.turns), args.rounds)
    for row in report["packs"]:
        print(
            f"{row['version']:>8} {row['path']}: utterance p50 {row['p50_ms_all']} ms, "
            f"<= {SHORT_TOKENS} tokens {row['p50_ms_short']} ms"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
