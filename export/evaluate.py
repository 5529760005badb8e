"""Evaluate fp32 and int8 graphs, fit calibration, write metrics, figures and the card.

Validation data of every head is split in two halves by a fixed seed: the
*calibration* half fits per-head temperatures and per-label emotion
thresholds; the *report* half gives every number in the card, so no reported
figure is measured on the data used to tune it.
"""

from __future__ import annotations

import json
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from export import metrics as m
from export.data import Example, service_emotion, service_problems, service_sentiment
from export.pack import LABELS
from export.quantize import PRESETS, quantize
from export.recipe import Recipe, build_splits
from models.manifest import FileEntry, HeadSpec, Manifest, read_manifest, write_manifest
from routing.taxonomy import OUT_OF_SCOPE

HEADS = ("sentiment", "emotion", "intent")


@dataclass
class EvalSet:
    """One named evaluation set for one head."""

    name: str
    head: str
    examples: list[Example]


class OnnxScorer:
    """Runs a multi-head ONNX graph over texts in length-sorted batches."""

    def __init__(self, graph: Path, tokenizer: Path, max_length: int, threads: int = 0):
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.tokenizer = Tokenizer.from_file(str(tokenizer))
        self.tokenizer.enable_truncation(max_length)
        self.tokenizer.no_padding()

    def logits(self, texts: list[str], batch: int = 64) -> dict[str, np.ndarray]:
        """Logits per head for ``texts`` (in input order)."""
        encodings = self.tokenizer.encode_batch(texts)
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        outputs = [o.name for o in self.session.get_outputs()]
        result = {
            name: np.zeros((len(texts), o.shape[-1]), np.float32)
            for name, o in zip(outputs, self.session.get_outputs(), strict=True)
        }
        for start in range(0, len(order), batch):
            rows = order[start : start + batch]
            width = max(len(encodings[i].ids) for i in rows)
            ids = np.zeros((len(rows), width), np.int64)
            mask = np.zeros((len(rows), width), np.int64)
            for r, i in enumerate(rows):
                seq = encodings[i].ids
                ids[r, : len(seq)] = seq
                mask[r, : len(seq)] = 1
            feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            values = self.session.run(outputs, {k: v for k, v in feeds.items() if k in self.inputs})
            for name, value in zip(outputs, values, strict=True):
                result[name][rows] = value
        return {name.removesuffix("_logits"): value for name, value in result.items()}


def eval_sets(recipe: Recipe) -> list[EvalSet]:
    """The validation sets reported in the card, grouped by head and source."""
    splits = build_splits(recipe)
    val = splits.val

    def by(head: str, *sources: str) -> list[Example]:
        return [e for e in val if e.head == head and (not sources or e.source in sources)]

    sets = [
        EvalSet("intent_all", "intent", by("intent")),
        EvalSet("intent_banking77", "intent", by("intent", "banking77")),
        EvalSet("intent_bitext", "intent", by("intent", "bitext")),
        EvalSet("intent_clinc_in_scope", "intent", by("intent", "clinc")),
        EvalSet("intent_clinc_oos", "intent", by("intent", "clinc_oos", "clinc_other_domains")),
        EvalSet("sentiment_tweeteval", "sentiment", by("sentiment", "tweeteval_sentiment")),
        EvalSet(
            "sentiment_service_requests", "sentiment", service_sentiment(by("intent", "banking77", "bitext"))
        ),
        EvalSet("emotion_goemotions", "emotion", by("emotion", "goemotions")),
        EvalSet("emotion_service_requests", "emotion", service_emotion(by("intent", "banking77", "bitext"))),
        EvalSet("emotion_service_problems", "emotion", service_problems(by("intent", "banking77", "bitext"))),
    ]
    sets.extend(
        EvalSet(f"{e.head}_user", e.head, [x for x in val if x.source == e.source])
        for e in {x.source: x for x in val if x.source.endswith(".csv")}.values()
    )
    return [s for s in sets if s.examples]


def halves(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic calibration / report index split of ``n`` rows."""
    order = list(range(n))
    random.Random(seed).shuffle(order)
    return np.array(sorted(order[: n // 2]), dtype=np.int64), np.array(
        sorted(order[n // 2 :]), dtype=np.int64
    )


def targets(examples: list[Example], head: str) -> np.ndarray:
    """Class ids (single-label) or multi-hot rows (emotion)."""
    labels = LABELS[head]
    if head == "emotion":
        out = np.zeros((len(examples), len(labels)), np.float32)
        for r, ex in enumerate(examples):
            for name in ex.labels:
                out[r, labels.index(name)] = 1
        return out
    return np.array([labels.index(ex.label) for ex in examples], np.int64)


def single_label_report(y: np.ndarray, logits: np.ndarray, head: str, temperature: float) -> dict[str, Any]:
    """Accuracy, macro-F1/recall, per-class P/R, ECE for a softmax head."""
    n = len(LABELS[head])
    probs = m.softmax(logits, temperature)
    pred = probs.argmax(1)
    precision, recall, _f1, support = m.per_class(y, pred, n)
    present = [i for i in range(n) if support[i] > 0 or (pred == i).any()]
    conf = probs.max(1)
    return {
        "n": len(y),
        "accuracy": float((pred == y).mean()),
        "macro_f1": m.macro_f1(y, pred, n),
        "macro_recall": m.macro_recall(y, pred, n),
        "ece": m.ece(conf, pred == y),
        "ece_uncalibrated": m.ece(m.softmax(logits).max(1), m.softmax(logits).argmax(1) == y),
        "per_class": {
            LABELS[head][i]: {
                "precision": round(float(precision[i]), 4),
                "recall": round(float(recall[i]), 4),
                "support": int(support[i]),
            }
            for i in present
        },
    }


def emotion_report(
    y: np.ndarray, logits: np.ndarray, temperature: float, thresholds: np.ndarray
) -> dict[str, Any]:
    """Macro-F1 with tuned thresholds (and flat 0.5), per-label P/R/F1, ECE over label decisions."""
    probs = m.sigmoid(logits, temperature)
    pred = probs >= thresholds
    f1 = m.multilabel_f1(y, pred)
    t, p = y.astype(bool), pred
    tp = (t & p).sum(0)
    precision = np.divide(tp, p.sum(0), out=np.zeros(len(f1)), where=p.sum(0) > 0)
    recall = np.divide(tp, t.sum(0), out=np.zeros(len(f1)), where=t.sum(0) > 0)
    flat = m.multilabel_macro_f1(y, probs >= 0.5)
    return {
        "n": len(y),
        "macro_f1": float(f1.mean()),
        "macro_f1_flat_0_5": flat,
        "ece": m.ece(probs.ravel(), y.ravel()),
        "ece_uncalibrated": m.ece(m.sigmoid(logits).ravel(), y.ravel()),
        "per_label": {
            label: {
                "precision": round(float(precision[i]), 4),
                "recall": round(float(recall[i]), 4),
                "f1": round(float(f1[i]), 4),
                "support": int(t[:, i].sum()),
            }
            for i, label in enumerate(LABELS["emotion"])
        },
    }


def intent_extra(examples: list[Example], logits: np.ndarray, temperature: float) -> dict[str, Any]:
    """CLINC-style figures: in-scope accuracy and out_of_scope recall."""
    probs = m.softmax(logits, temperature)
    pred = [LABELS["intent"][i] for i in probs.argmax(1)]
    oos = [i for i, e in enumerate(examples) if e.label == OUT_OF_SCOPE]
    ins = [i for i, e in enumerate(examples) if e.label != OUT_OF_SCOPE]
    out: dict[str, Any] = {}
    if oos:
        out["oos_recall"] = float(np.mean([pred[i] == OUT_OF_SCOPE for i in oos]))
    if ins:
        out["in_scope_accuracy"] = float(np.mean([pred[i] == examples[i].label for i in ins]))
    return out


def calibrate(
    sets: list[EvalSet], logits: dict[str, np.ndarray], seed: int
) -> tuple[dict[str, float], np.ndarray]:
    """Fit temperatures (all heads) and emotion thresholds on the calibration halves."""
    temps: dict[str, float] = {}
    thresholds = np.full(len(LABELS["emotion"]), 0.5)
    primary = {"intent": "intent_all", "sentiment": "sentiment_tweeteval", "emotion": "emotion_goemotions"}
    for s in sets:
        if primary.get(s.head) != s.name:
            continue
        cal, _ = halves(len(s.examples), seed)
        y = targets(s.examples, s.head)[cal]
        z = logits[s.name][cal]
        temps[s.head] = m.fit_temperature(z, y, multilabel=s.head == "emotion")
        if s.head == "emotion":
            thresholds = m.tune_thresholds(m.sigmoid(z, temps["emotion"]), y)
    return temps, thresholds


def report(
    sets: list[EvalSet],
    logits: dict[str, np.ndarray],
    temps: dict[str, float],
    thresholds: np.ndarray,
    seed: int,
) -> dict[str, Any]:
    """Metrics on the report halves for every evaluation set."""
    out: dict[str, Any] = {}
    for s in sets:
        _, rep = halves(len(s.examples), seed)
        y = targets(s.examples, s.head)[rep]
        z = logits[s.name][rep]
        t = temps.get(s.head, 1.0)
        if s.name == "emotion_service_problems":  # labels unknown but for "not gratitude, not joy"
            flagged = m.sigmoid(z, t) >= thresholds
            positive = [LABELS["emotion"].index(x) for x in ("gratitude", "joy")]
            out[s.name] = {"n": len(y), "positive_emotion_rate": float(flagged[:, positive].any(1).mean())}
        elif s.head == "emotion":
            out[s.name] = emotion_report(y, z, t, thresholds)
            if s.name == "emotion_service_requests":
                emotional = (m.sigmoid(z, t) >= thresholds)[:, :-1].any(1)  # any label but neutral
                out[s.name]["false_emotion_rate"] = float(emotional.mean())
        else:
            out[s.name] = single_label_report(y, z, s.head, t)
            if s.head == "intent":
                out[s.name].update(intent_extra([s.examples[i] for i in rep], z, t))
    return out


def score_all(scorer: OnnxScorer, sets: list[EvalSet]) -> dict[str, np.ndarray]:
    """Logits of each set's own head."""
    return {s.name: scorer.logits([e.text for e in s.examples])[s.head] for s in sets}


def agreement(a: dict[str, np.ndarray], b: dict[str, np.ndarray], sets: list[EvalSet]) -> dict[str, float]:
    """Share of identical decisions between two graphs, per head (argmax, or emotion labels at 0.5)."""
    out: dict[str, list[float]] = {}
    for s in sets:
        if s.head == "emotion":
            same = ((a[s.name] > 0) == (b[s.name] > 0)).all(1)
        else:
            same = a[s.name].argmax(1) == b[s.name].argmax(1)
        out.setdefault(s.head, []).extend(same.astype(float).tolist())
    return {head: round(float(np.mean(v)), 4) for head, v in out.items()}


HEADLINE = {
    "intent_banking77": "accuracy",
    "intent_clinc_in_scope": "in_scope_accuracy",
    "intent_clinc_oos": "oos_recall",
    "sentiment_tweeteval": "macro_recall",
    "sentiment_service_requests": "accuracy",
    "emotion_goemotions": "macro_f1",
    "emotion_service_requests": "false_emotion_rate",
    "emotion_service_problems": "positive_emotion_rate",
}


def headline(rep: dict[str, Any]) -> dict[str, float]:
    """The figures the quality bars are stated in."""
    out = {f"{k}.{v}": round(float(rep[k][v]), 4) for k, v in HEADLINE.items() if k in rep and v in rep[k]}
    if "sentiment_service_requests" in rep:
        out["sentiment_service_requests.negative_recall"] = (
            rep["sentiment_service_requests"]["per_class"].get("negative", {}).get("recall", 0.0)
        )
    return out


def evaluate(
    run_dir: Path, pack_dir: Path, *, compare_presets: bool = True, figures: bool = True
) -> dict[str, Any]:
    """Evaluate the pack against its fp32 graph, calibrate it, and rewrite its manifest and card."""
    summary = json.loads((run_dir / "train_summary.json").read_text())
    recipe = Recipe(**summary["recipe"])
    manifest = read_manifest(pack_dir)
    graph = manifest.graphs["multitask"]
    fp32 = run_dir / "onnx" / "model.fp32.onnx"
    tokenizer = pack_dir / graph.tokenizer
    sets = eval_sets(recipe)
    seed = recipe.seed

    fp32_logits = score_all(OnnxScorer(fp32, tokenizer, graph.max_length), sets)
    int8_logits = score_all(OnnxScorer(pack_dir / graph.file, tokenizer, graph.max_length), sets)
    temps, thresholds = calibrate(sets, int8_logits, seed)
    fp32_temps, fp32_thresholds = calibrate(sets, fp32_logits, seed)
    rep_int8 = report(sets, int8_logits, temps, thresholds, seed)
    rep_fp32 = report(sets, fp32_logits, fp32_temps, fp32_thresholds, seed)
    presets: dict[str, Any] = {}
    if compare_presets:
        with tempfile.TemporaryDirectory() as tmp:
            shipped = manifest.metrics.get("quantization", {}).get("preset")
            for preset in PRESETS:
                if preset == shipped:  # the pack's own graph, scored above
                    lg = int8_logits
                else:
                    path = Path(tmp) / f"{preset}.onnx"
                    quantize(fp32, path, preset)
                    lg = score_all(OnnxScorer(path, tokenizer, graph.max_length), sets)
                t, th = calibrate(sets, lg, seed)
                presets[preset] = {
                    "agreement_with_fp32": agreement(fp32_logits, lg, sets),
                    "headline": headline(report(sets, lg, t, th, seed)),
                }
    results = {
        "int8": rep_int8,
        "fp32": rep_fp32,
        "headline": {"int8": headline(rep_int8), "fp32": headline(rep_fp32)},
        "agreement_int8_vs_fp32": agreement(fp32_logits, int8_logits, sets),
        "calibration": {
            "temperatures": temps,
            "emotion_thresholds": dict(zip(LABELS["emotion"], thresholds.round(3).tolist(), strict=True)),
        },
        "presets": presets,
        "training": {k: summary[k] for k in ("best_step", "best_score", "train_seconds", "threads")},
    }
    extra_files: list[str] = []
    if figures:
        from export import figures as fig

        extra_files = fig.write_all(pack_dir, sets, int8_logits, temps, thresholds, seed)
    from export.card import write_card

    (pack_dir / "card").mkdir(exist_ok=True)
    detail = {k: results[k] for k in ("int8", "fp32", "presets", "calibration")}
    (pack_dir / "card" / "metrics.json").write_text(json.dumps(detail, indent=1))
    extra_files.append("card/metrics.json")
    new_manifest = _calibrated_manifest(manifest, temps, thresholds, results, extra_files)
    write_card(pack_dir, new_manifest, results)  # before the manifest, which hashes it
    write_manifest(pack_dir, new_manifest)
    (run_dir / "evaluation.json").write_text(json.dumps(results, indent=2))
    return results


def _calibrated_manifest(
    manifest: Manifest,
    temps: dict[str, float],
    thresholds: np.ndarray,
    results: dict[str, Any],
    extra_files: list[str],
) -> Manifest:
    heads = {}
    for name, spec in manifest.heads.items():
        th = (
            dict(zip(LABELS["emotion"], [round(float(x), 3) for x in thresholds], strict=True))
            if name == "emotion"
            else spec.thresholds
        )
        heads[name] = HeadSpec(
            graph=spec.graph,
            output=spec.output,
            kind=spec.kind,
            labels=spec.labels,
            temperature=round(temps.get(name, spec.temperature), 4),
            thresholds=th,
            source=spec.source,
        )
    files = dict(manifest.files)
    for f in [*extra_files, "MODEL_CARD.md"]:
        files[f] = files.get(f) or FileEntry("", 0)
    metrics = {
        **manifest.metrics,
        "headline": results["headline"],
        "agreement_int8_vs_fp32": results["agreement_int8_vs_fp32"],
        "ece": {k: round(float(v["ece"]), 4) for k, v in results["int8"].items() if "ece" in v},
    }
    fields = {f: getattr(manifest, f) for f in manifest.__struct_fields__}
    fields.update(heads=heads, files=files, metrics=metrics)
    return Manifest(**fields)
