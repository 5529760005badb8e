"""``python -m bench reasons``: custom contact reasons with the real pack, through the service's own code.

1. Accuracy: 45 CLINC150 intents from three domains the pack does not cover
   (``export.fewshot``: 10 train examples each) loaded as a reasons file;
   measured on CLINC's *validation* utterances of those intents: closed-set
   (the best reason by ``ReasonIndex.match``, no threshold), and per-turn
   accuracy after the open-set test and the merge with the intent head
   (``ActiveReasons.merge``). Utterances of five other CLINC domains plus
   CLINC's out-of-scope validation set: the share no custom reason takes.
   Both again in spoken form, each utterance behind a caller's opening
   (``SPOKEN_OPENINGS``: "hi there um ...", "okay so i wanted to ask ..."), as
   a call brings them against typed examples. Banking77's held-out 10%: the
   intent head alone vs with the 45 reasons loaded (interference).
2. Cost: a 200-reason x 10-example file (CLINC and Banking77 training
   utterances) embedded from an empty cache, then reloaded with one example
   added; matching plus merging per turn.
3. ``reasons suggest`` clustering on 10,000 distinct unclear turns (CLINC
   training utterances of the eight domains the pack does not serve).

Every text is distinct; nothing is served from a cache unless the step says so.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from export import data as d
from export.fewshot import DOMAINS, clinc_fewshot
from models.packs import DEFAULT_PACK
from models.runtime import Runtime, RuntimeConfig
from models.types import TextPrediction
from routing.taxonomy import INTENT_LABELS
from service.metrics import Metrics
from service.reasons import ActiveReasons, Embedder, EmbeddingCache, ReasonSource
from service.reasons_tools import Selection, suggest_reasons

# How the same utterances arrive from a call: behind an opening. Deliberately not the openings the
# index wraps examples in (``service.reasons.CARRIER_PHRASES``), so the spoken figures do not
# flatter that.
SPOKEN_OPENINGS = (
    "hi there um",
    "yes hello i was hoping you could tell me",
    "okay so i wanted to ask",
    "hey i have a question",
    "uh hi i'm calling about",
)


def spoken_form(texts: Sequence[str]) -> list[str]:
    """Each text behind one of ``SPOKEN_OPENINGS`` in turn."""
    return [f"{SPOKEN_OPENINGS[i % len(SPOKEN_OPENINGS)]} {text}" for i, text in enumerate(texts)]


# CLINC150's domains outside the pack's own (banking, credit cards): reasons come from some, the
# unrelated utterances from the rest.
FEWSHOT_DOMAINS = (
    "travel",
    "kitchen_and_dining",
    "auto_and_commute",
    "home",
    "utility",
    "work",
    "small_talk",
    "meta",
)


def reasons_toml(
    reasons: dict[str, list[str]], category: str, matching: dict[str, float] | None = None
) -> str:
    """A reasons file with one reason per entry (``replaces`` where the id is a built-in intent)."""
    parts = ["[matching]\n" + "".join(f"{k} = {v}\n" for k, v in matching.items())] if matching else []
    for rid, texts in reasons.items():
        replaces = f'replaces = "{rid}"\n' if rid in INTENT_LABELS else ""
        parts.append(
            f'[[reasons]]\nid = "{rid}"\ncategory = "{category}"\n{replaces}examples = {json.dumps(texts)}\n'
        )
    return "\n".join(parts)


def _nearest(match: Any) -> str:
    return str(match.reason) if match is not None else ""


def merged_top(active: ActiveReasons, predictions: Sequence[TextPrediction]) -> list[str]:
    """The top intent of each turn after the custom reasons are merged in."""
    out = []
    for p in predictions:
        merged = active.merge(p)
        out.append(merged.intents[0][0] if merged is not None and merged.intents else p.intent.label)
    return out


def accuracy(
    runtime: Runtime,
    data: Path,
    folder: Path,
    matching: dict[str, float],
    discriminant: bool = True,
    domains: Sequence[str] = DOMAINS,
) -> dict[str, Any]:
    """Part 1 (see the module docstring); ``matching`` overrides the reasons file's open-set settings;
    ``discriminant=False`` picks the reason by the highest blended cosine instead (as before it);
    ``domains``: the CLINC domains the reasons come from (the unrelated utterances: the others)."""
    shots, val = clinc_fewshot(data, names=domains)
    path = folder / "clinc45.toml"
    path.write_text(reasons_toml(shots, "clinc_custom", matching))
    source = ReasonSource(path, Metrics())
    source.attach(Embedder(runtime))
    active = source.active
    index = active.index
    if index is None:
        raise SystemExit("the pack has no sentence embedding")
    if not discriminant:
        index = replace(index, discriminant=None)
        active = replace(active, index=index)
    predictions = runtime.predict([text for text, _ in val])
    truth = [intent for _, intent in val]
    closed = [_nearest(index.match(p.embedding) if p.embedding is not None else None) for p in predictions]
    merged = merged_top(active, predictions)
    clinc = json.loads((data / "clinc150" / "data_full.json").read_text())
    clinc_domains = json.loads((data / "clinc150" / "domains.json").read_text())
    wanted = set(domains)
    other = {i for name in FEWSHOT_DOMAINS if name not in wanted for i in clinc_domains[name]}
    negatives = random.Random(1).sample([t for t, i in clinc["val"] if i in other], 600)
    negatives += [t for t, _ in clinc["oos_val"]]
    left_alone = [m not in shots for m in merged_top(active, runtime.predict(negatives))]
    spoken = merged_top(active, runtime.predict(spoken_form([text for text, _ in val])))
    spoken_alone = [m not in shots for m in merged_top(active, runtime.predict(spoken_form(negatives)))]
    _, b77 = d.split_holdout(d.load_banking77(data), 0.1, 13)
    bank = runtime.predict([e.text for e in b77])
    with_reasons = merged_top(active, bank)
    labels = [e.label for e in b77]
    return {
        "matching": matching or "defaults",
        "pick": "discriminant" if discriminant else "cosine",
        "domains": list(domains),
        "reasons": len(shots),
        "queries": len(val),
        "closed_set_accuracy": float(np.mean([c == t for c, t in zip(closed, truth, strict=True)])),
        "per_turn_accuracy_open_set": float(np.mean([m == t for m, t in zip(merged, truth, strict=True)])),
        "unrelated_utterances": len(negatives),
        "unrelated_left_alone": float(np.mean(left_alone)),
        "spoken_per_turn_accuracy": float(np.mean([m == t for m, t in zip(spoken, truth, strict=True)])),
        "spoken_unrelated_left_alone": float(np.mean(spoken_alone)),
        "banking77_holdout": len(b77),
        "banking77_head_alone": float(
            np.mean([p.intent.label == y for p, y in zip(bank, labels, strict=True)])
        ),
        "banking77_with_reasons": float(np.mean([m == y for m, y in zip(with_reasons, labels, strict=True)])),
    }


def large_file(data: Path) -> dict[str, list[str]]:
    """200 reasons x 10 distinct training examples: Banking77 intents, then CLINC intents outside banking."""
    clinc = json.loads((data / "clinc150" / "data_full.json").read_text())
    domains = json.loads((data / "clinc150" / "domains.json").read_text())
    skip = set(domains["banking"])
    by: dict[str, list[str]] = {}
    for text, intent in clinc["train"]:
        if intent not in skip:
            by.setdefault(f"clinc_{intent}", []).append(text)
    for ex in d.load_banking77(data):
        by.setdefault(f"b77_{ex.label.lower().strip('?')}", []).append(ex.text)
    rng = random.Random(7)
    names = sorted(by)[:200]
    return {name: rng.sample(sorted(set(by[name])), 10) for name in names}


def cost(runtime: Runtime, data: Path, folder: Path) -> dict[str, Any]:
    """Part 2: cold load of 200 x 10, reload with one new example, per-turn matching + merge."""
    reasons = large_file(data)
    path = folder / "large.toml"
    path.write_text(reasons_toml(reasons, "custom"))
    started = time.perf_counter()
    source = ReasonSource(path, Metrics(), cache=EmbeddingCache(folder / "cache"))
    source.attach(Embedder(runtime))
    cold = time.perf_counter() - started
    first = next(iter(reasons))
    reasons[first] = [*reasons[first], "a brand new example sentence for this reason"]
    path.write_text(reasons_toml(reasons, "custom"))
    started = time.perf_counter()
    source.reload()
    reload_s = time.perf_counter() - started
    turns = runtime.predict([f"question number {i} about my card and my account" for i in range(500)])
    active = source.active
    started = time.perf_counter()
    for p in turns:
        active.merge(p)
    per_turn = (time.perf_counter() - started) / len(turns)
    return {
        "reasons": len(reasons),
        "examples": sum(len(v) for v in reasons.values()),
        "cold_load_s": round(cold, 2),
        "reload_one_new_example_s": round(reload_s, 3),
        "match_and_merge_us_per_turn": round(per_turn * 1e6, 1),
    }


def suggest(runtime: Runtime, data: Path, turns: int) -> dict[str, Any]:
    """Part 3: ``reasons suggest`` clustering on distinct unclear turns."""
    clinc = json.loads((data / "clinc150" / "data_full.json").read_text())
    domains = json.loads((data / "clinc150" / "domains.json").read_text())
    served = set(domains["banking"]) | set(domains["credit_cards"])
    texts = sorted({t for t, i in clinc["train"] if i not in served})
    picked = random.Random(3).sample(texts, min(turns, len(texts)))
    selection = Selection(texts=Counter(picked), conversations=len(picked), customer_turns=len(picked))
    selection.unclear_turns = len(picked)
    started = time.perf_counter()
    candidates, _ = suggest_reasons(selection, Embedder(runtime))
    return {
        "turns": len(picked),
        "seconds": round(time.perf_counter() - started, 1),
        "candidates": len(candidates),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Print the three parts as JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench reasons", description=__doc__)
    parser.add_argument("--pack", type=Path, default=DEFAULT_PACK)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--suggest-turns", type=int, default=10_000)
    parser.add_argument(
        "--threshold", type=float, help="similarity_threshold for part 1 (default: the file's)"
    )
    parser.add_argument("--margin", type=float, help="ambiguity_margin for part 1 (default: the file's)")
    parser.add_argument(
        "--example-weight", type=float, help="example_weight for part 1 (default: the file's)"
    )
    parser.add_argument(
        "--atypicality-weight", type=float, help="atypicality_weight for part 1 (default: the file's)"
    )
    parser.add_argument(
        "--carrier-pairs", type=int, help="carrier_pairs for part 1 (default: the file's; 0: none)"
    )
    parser.add_argument(
        "--domains",
        default=",".join(DOMAINS),
        help=f"comma-separated CLINC domains of part 1's reasons, from {', '.join(FEWSHOT_DOMAINS)} "
        "(default: the three the issue names); the unrelated utterances come from the rest",
    )
    parser.add_argument("--accuracy-only", action="store_true", help="only part 1 (for a threshold sweep)")
    parser.add_argument(
        "--cosine-pick",
        action="store_true",
        help="part 1 picks the reason by the highest blended cosine, not the discriminant (the earlier rule)",
    )
    args = parser.parse_args(argv)
    matching = {
        name: value
        for name, value in (
            ("similarity_threshold", args.threshold),
            ("ambiguity_margin", args.margin),
            ("example_weight", args.example_weight),
            ("atypicality_weight", args.atypicality_weight),
            ("carrier_pairs", args.carrier_pairs),
        )
        if value is not None
    }
    domains = tuple(name.strip() for name in args.domains.split(",") if name.strip())
    unknown = sorted(set(domains) - set(FEWSHOT_DOMAINS))
    if unknown or not domains:
        choices = ", ".join(FEWSHOT_DOMAINS)
        parser.error(f"--domains: {', '.join(unknown) or 'none given'}; choose from {choices}")
    runtime = Runtime.load(args.pack, RuntimeConfig())
    with tempfile.TemporaryDirectory() as tmp:
        report: dict[str, Any] = {
            "accuracy": accuracy(runtime, args.data, Path(tmp), matching, not args.cosine_pick, domains)
        }
        if not args.accuracy_only:
            report["cost"] = cost(runtime, args.data, Path(tmp))
            report["suggest"] = suggest(runtime, args.data, args.suggest_turns)
    print(json.dumps(report, indent=2))
    return 0
