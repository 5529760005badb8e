"""``python -m bench packs --pack A --pack B``: what one pack costs against another, per utterance.

Absolute figures on a shared machine drift by tens of percent over an afternoon,
so two packs measured in two ``bench runtime`` runs cannot be compared. This
loads every pack into one process and times them on the same generated turns
(``bench.turns``), one utterance per call through ``Runtime.predict`` (normalise,
tokenize, the ONNX graph, post-process), each turn by every pack in turn (the
order flips with every turn), so a drift of the machine hits every pack alike:
all turns, and the turns of at most 32 tokens (issue 9's one-utterance bar).
Besides each pack's p50, ``ratio_vs_first`` is the median over turns of its time
divided by the first pack's time for the same turn. Both thread plans: ``one
thread`` (``lone_text_all_cpus`` off) and ``lone text`` (the default: a lone
utterance on every CPU, spinning while it runs). Every call scores its text;
nothing is cached.

An older pack comes out of git, for example::

    mkdir -p /tmp/v20 && git archive d839fc6 models/packs/default | tar -x -C /tmp/v20
    python -m bench packs --pack /tmp/v20/models/packs/default --pack models/packs/default
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.runtime import SHORT_TOKENS, percentile
from bench.turns import generate
from models.runtime import Runtime, RuntimeConfig
from models.tokenize import TextEncoder

PLANS: dict[str, RuntimeConfig] = {
    "one_thread": RuntimeConfig(lone_text_all_cpus=False),
    "lone_text": RuntimeConfig(),
}


def _interleaved(runtimes: Sequence[Runtime], texts: Sequence[str], rounds: int) -> list[list[float]]:
    """ms per call, per pack, in the same turn order for every pack."""
    samples: list[list[float]] = [[] for _ in runtimes]
    step = 0
    for _ in range(rounds):
        for index in range(len(texts)):
            order = range(len(runtimes)) if step % 2 == 0 else reversed(range(len(runtimes)))
            step += 1
            for k in order:
                started = time.perf_counter()
                runtimes[k].predict([texts[index]])
                samples[k].append((time.perf_counter() - started) * 1000)
    return samples


def _ratio(mine: Sequence[float], first: Sequence[float]) -> float:
    return round(percentile([a / b for a, b in zip(mine, first, strict=True)], 50), 3)


def compare(packs: Sequence[Path], turns: Sequence[str], rounds: int) -> dict[str, Any]:
    """Per thread plan and pack: p50 ms for one utterance per call, and the median per-turn ratio
    to the first pack; every turn, and the turns of <= 32 tokens."""
    encoder = TextEncoder.from_file(packs[0] / "tokenizer.json", max_length=10_000)
    short = [
        text for text, ids in zip(turns, encoder.encode(list(turns)), strict=True) if len(ids) <= SHORT_TOKENS
    ]
    plans: dict[str, list[dict[str, Any]]] = {}
    for plan, config in PLANS.items():
        runtimes = [Runtime.load(pack, config) for pack in packs]
        sets = {
            name: _interleaved(runtimes, texts, rounds) for name, texts in (("all", turns), ("short", short))
        }
        plans[plan] = [
            {
                "path": str(pack),
                "version": runtime.info["version"],
                **{f"p50_ms_{name}": round(percentile(times[k], 50), 3) for name, times in sets.items()},
                **{f"ratio_vs_first_{name}": _ratio(times[k], times[0]) for name, times in sets.items()},
            }
            for k, (pack, runtime) in enumerate(zip(packs, runtimes, strict=True))
        ]
    return {"turns": len(turns), "short_turns": len(short), "rounds": rounds, "plans": plans}


def main(argv: Sequence[str] | None = None) -> int:
    """Print the comparison and write it as JSON to ``--out``."""
    parser = argparse.ArgumentParser(prog="python -m bench packs", description=__doc__)
    parser.add_argument("--pack", type=Path, action="append", required=True, help="a pack folder; repeat")
    parser.add_argument("--turns", type=int, default=200, help="generated turns per round")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--out", type=Path, default=Path("bench/results/packs.json"))
    args = parser.parse_args(argv)
    report = compare(args.pack, generate(args.turns), args.rounds)
    for plan, rows in report["plans"].items():
        for row in rows:
            print(
                f"{plan:>10} {row['version']:>8} {row['path']}: utterance p50 {row['p50_ms_all']} ms "
                f"(x{row['ratio_vs_first_all']}), <= {SHORT_TOKENS} tokens {row['p50_ms_short']} ms "
                f"(x{row['ratio_vs_first_short']})"
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
