"""``python -m bench <name> [options]``: run one benchmark's ``main`` (names: ``BENCHES``).

``packs`` times two or more model packs against each other in one process (``bench/packs.py``);

``suite`` builds the default policy's test suite (``bench/build_suite.py``);
``routing`` reports the decision quality measured on it (``bench/routing.py``);
``reasons`` measures custom contact reasons with the real pack (``bench/reasons.py``);
``introductions`` measures callers' self-introductions against the intent head (``bench/introductions.py``);
``insights`` times ``GET /v1/insights`` over 10,000 conversations with outcomes (``bench/insights.py``);
``loop`` measures what one append costs the event loop (``bench/loop.py``);
``hugepages`` compares one-turn appends with the service on huge pages or not (``bench/hugepages.py``);
``faults`` counts lost / duplicated / 5xx answers under crashes, outages and attacks (``bench/faults.py``).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

BENCHES = {
    "runtime": "bench.runtime",
    "packs": "bench.packs",
    "http": "bench.http",
    "faults": "bench.faults",
    "routing": "bench.routing",
    "suite": "bench.build_suite",
    "reasons": "bench.reasons",
    "insights": "bench.insights",
    "introductions": "bench.introductions",
    "loop": "bench.loop",
    "hugepages": "bench.hugepages",
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark named by the first argument with the remaining arguments."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in BENCHES:
        print(
            f"usage: python -m bench {{{','.join(BENCHES)}}} [options]  (--help after the name for options)"
        )
        return 2
    module = importlib.import_module(BENCHES[args[0]])  # imported lazily: each bench has its own dependencies
    return int(module.main(args[1:]))


if __name__ == "__main__":
    raise SystemExit(main())
