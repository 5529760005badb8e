"""Evaluate fp32 and int8 graphs, fit calibration, write metrics, figures and the card.

Every validation set of the mixture (``export/mix.py``) is split in two halves
by a fixed seed: the *calibration* half fits temperatures and the emotion
thresholds; the *report* half gives every number in the card, so no reported
figure is measured on the data used to tune it.

Two sections:

- **benchmarks**: Banking77, CLINC in-scope and out-of-scope, TweetEval
  sentiment, GoEmotions emotion (the quality bars kept from pack v1);
- **real conversations**: what a contact centre sees. False alarms on calm
  turns (SGD user turns typed and spoken, plain bank requests typed and
  spoken): negative sentiment, anger or frustration, joy or gratitude,
  emotions per turn; complaint recall on complaint tweets; conversation-act
  confusion; and, through the real ``Runtime`` on the finished pack,
  quietness of non-lexical turns, language ID on short turns and batch
  invariance.

The int8 graph is scored one text per ONNX call, exactly as the runtime
serves it (see ``models.engine``); fp32 is batch-invariant anyway.
"""

from __future__ import annotations

import json
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from export import metrics as m
from export.dequantize import dequantize_graph
from export.halves import emotion_arrays, halves, label_index, report_half, single_label_rows
from export.headline import headline
from export.mix import Mixture, Sample
from export.pack import LABELS
from export.quantize import PRESETS, quantize
from export.recipe import Recipe, build_data
from models.manifest import FileEntry, HeadSpec, Manifest, read_manifest, write_manifest
from models.pack import DISABLED_OPTIMIZERS
from models.postprocess import emotion_labels, preferred
from routing.taxonomy import OUT_OF_SCOPE

Logits = dict[str, dict[str, np.ndarray]]
"""Per validation set, per graph output (``sentiment``, ``emotion``, ``intent``, ``act``): logits."""

# What the card's fp32 column was measured on (``evaluate``).
FP32_TRAINED = "trained"
FP32_DEQUANTIZED = "dequantized"
NEGATIVE_EMOTIONS = ("anger", "frustration")
POSITIVE_EMOTIONS = ("gratitude", "joy")
# Largest share of calm in-domain turns an emotion may fire on; thresholds rise until it holds.
CALM_FIRING_RATE = {"anger": 0.01, "frustration": 0.01, "gratitude": 0.01, "joy": 0.01}
DEFAULT_CALM_FIRING_RATE = 0.02


class OnnxScorer:
    """Runs a multi-head ONNX graph over texts: one text per call, or length-sorted batches."""

    def __init__(self, graph: Path, tokenizer: Path, max_length: int, threads: int = 0):
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        # The runtime's graph rewrites (models.pack.DISABLED_OPTIMIZERS): with dynamic int8 a fused
        # node's float rounding moves activation scales, so the card must score what is served.
        self.session = ort.InferenceSession(
            str(graph),
            options,
            providers=["CPUExecutionProvider"],
            disabled_optimizers=list(DISABLED_OPTIMIZERS),
        )
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.outputs = [o.name for o in self.session.get_outputs()]
        self.tokenizer = Tokenizer.from_file(str(tokenizer))
        self.tokenizer.enable_truncation(max_length)
        self.tokenizer.no_padding()

    def logits(self, texts: list[str], batch: int = 64, per_text: bool = False) -> dict[str, np.ndarray]:
        """Outputs per head (``_logits`` suffix dropped) for ``texts``, in input order."""
        encodings = self.tokenizer.encode_batch(texts)
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        size = 1 if per_text else batch
        result: dict[str, np.ndarray] = {}
        for start in range(0, len(order), size):
            rows = order[start : start + size]
            width = max(len(encodings[i].ids) for i in rows)
            ids = np.zeros((len(rows), width), np.int64)
            mask = np.zeros((len(rows), width), np.int64)
            for r, i in enumerate(rows):
                seq = encodings[i].ids
                ids[r, : len(seq)] = seq
                mask[r, : len(seq)] = 1
            feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            values = self.session.run(self.outputs, {k: v for k, v in feeds.items() if k in self.inputs})
            for name, value in zip(self.outputs, values, strict=True):
                if name not in result:
                    result[name] = np.zeros((len(texts), value.shape[-1]), np.float32)
                result[name][rows] = value
        return {name.removesuffix("_logits"): value for name, value in result.items()}


def score_sets(scorer: OnnxScorer, val: dict[str, list[Sample]], per_text: bool) -> Logits:
    """Every output for every validation set."""
    return {name: scorer.logits([s.text for s in items], per_text=per_text) for name, items in val.items()}


# --- calibration ------------------------------------------------------------------------


def reason_threshold(
    val: dict[str, list[Sample]], logits: Logits, temps: dict[str, float], seed: int
) -> float:
    """The p(reason) from which a turn is a reason: best reason-vs-rest F1 on the calibration halves."""
    index = label_index("act")
    ys, ps = [], []
    for name in ("sgd", "sgd_requests"):
        if name not in val or "act" not in logits.get(name, {}):
            continue
        cal, _ = halves(len(val[name]), seed)
        rows, y = single_label_rows(val[name], cal, "act")
        ys.append(y == index["reason"])
        ps.append(m.softmax(logits[name]["act"][rows], temps.get("act", 1.0))[:, index["reason"]])
    if not ys:
        return 0.5
    y, p = np.concatenate(ys), np.concatenate(ps)
    grid = np.linspace(0.05, 0.95, 91)
    f1 = [2 * (y & (p >= g)).sum() / max(1, y.sum() + (p >= g).sum()) for g in grid]
    return float(grid[int(np.argmax(f1))])


def calibrate(val: dict[str, list[Sample]], logits: Logits, seed: int) -> tuple[dict[str, float], np.ndarray]:
    """Temperatures per head and emotion thresholds, fitted on the calibration halves only.

    Sentiment is calibrated on conversational data (calm turns, requests and
    complaints) as well as tweets; emotion thresholds maximise GoEmotions F1
    per label, then rise until the label fires on at most ``CALM_FIRING_RATE``
    of calm in-domain turns known not to carry it (the abstention rule).
    """
    temps: dict[str, float] = {}
    sources = {
        "sentiment": ("tweeteval", "complaints", "sgd", "requests"),
        "intent": ("requests", "sgd_requests"),
        "act": ("sgd", "sgd_requests"),
    }
    for head, names in sources.items():
        zs, ys = [], []
        for name in names:
            if name not in val or head not in logits.get(name, {}):
                continue
            cal, _ = halves(len(val[name]), seed)
            rows, y = single_label_rows(val[name], cal, head)
            if len(rows):
                zs.append(logits[name][head][rows])
                ys.append(y)
        if zs:
            temps[head] = m.fit_temperature(np.concatenate(zs), np.concatenate(ys))
    cal, _ = halves(len(val["goemotions"]), seed)
    y_go, _known = emotion_arrays(val["goemotions"])
    z_go = logits["goemotions"]["emotion"][cal]
    temps["emotion"] = m.fit_temperature(z_go, y_go[cal], multilabel=True)
    thresholds = m.tune_thresholds(m.sigmoid(z_go, temps["emotion"]), y_go[cal])
    calm_scores, calm_known = [], []
    for name in ("sgd", "requests", "sgd_requests"):
        if name not in val:
            continue
        cal, _ = halves(len(val[name]), seed)
        y, known = emotion_arrays(val[name])
        calm_scores.append(m.sigmoid(logits[name]["emotion"][cal], temps["emotion"]))
        calm_known.append((known[cal] == 1) & (y[cal] == 0))
    probs, negatives = np.concatenate(calm_scores), np.concatenate(calm_known)
    for j, label in enumerate(LABELS["emotion"]):
        if label == "neutral" or not negatives[:, j].any():
            continue
        rate = CALM_FIRING_RATE.get(label, DEFAULT_CALM_FIRING_RATE)
        calm_cut = float(np.quantile(probs[negatives[:, j], j], 1 - rate))
        thresholds[j] = min(0.99, max(float(thresholds[j]), calm_cut))
    temps["act_reason_threshold"] = reason_threshold(val, logits, temps, seed)
    return temps, thresholds


# --- reports ----------------------------------------------------------------------------


def decisions(z: dict[str, np.ndarray], temps: dict[str, float], thresholds: np.ndarray) -> dict[str, Any]:
    """What the runtime would report per row: sentiment label, emotion labels, intent, act."""
    sentiment = m.softmax(z["sentiment"], temps.get("sentiment", 1.0)).argmax(1)
    probs = m.sigmoid(z["emotion"], temps.get("emotion", 1.0))
    labels = LABELS["emotion"]
    order = np.argsort(-probs, axis=1, kind="stable")
    over = probs >= thresholds
    emotions = []
    for r in range(len(probs)):
        ranked = [labels[j] for j in order[r] if over[r, j]]
        emotions.append(emotion_labels(ranked, negative=sentiment[r] == 0))
    out: dict[str, Any] = {"sentiment": sentiment, "emotions": emotions, "emotion_probs": probs}
    for head in ("intent", "act"):
        if head in z:
            out[head] = z[head].argmax(1)
    return out


def calm_rates(d: dict[str, Any]) -> dict[str, float]:
    """False alarms on turns that should be calm."""
    emotions = d["emotions"]
    n = max(1, len(emotions))
    return {
        "n": len(emotions),
        "negative_rate": float((d["sentiment"] == 0).mean()),
        "anger_rate": sum("anger" in e for e in emotions) / n,
        "anger_or_frustration_rate": sum(any(x in e for x in NEGATIVE_EMOTIONS) for e in emotions) / n,
        "joy_or_gratitude_rate": sum(any(x in e for x in POSITIVE_EMOTIONS) for e in emotions) / n,
        "emotions_per_turn": sum(len([x for x in e if x != "neutral"]) for e in emotions) / n,
    }


def _slice(z: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[rows] for k, v in z.items()}


def benchmark_report(
    val: dict[str, list[Sample]], logits: Logits, temps: dict[str, float], thresholds: np.ndarray, seed: int
) -> dict[str, Any]:
    """The quality bars kept from pack v1, on the report halves."""
    out: dict[str, Any] = {}
    samples, rows = report_half(val, "requests", seed)
    pred = logits["requests"]["intent"][rows].argmax(1)
    index = label_index("intent")
    truth = np.array([index[s.intent] for s in samples])

    def accuracy(select: list[int]) -> float:
        return float((pred[select] == truth[select]).mean()) if select else 0.0

    out["banking77_accuracy"] = accuracy([i for i, s in enumerate(samples) if s.source == "banking77"])
    out["bitext_accuracy"] = accuracy([i for i, s in enumerate(samples) if s.source == "bitext"])
    out["clinc_in_scope_accuracy"] = accuracy([i for i, s in enumerate(samples) if s.source == "clinc"])
    out["clinc_oos_recall"] = accuracy([i for i, s in enumerate(samples) if s.intent == OUT_OF_SCOPE])
    samples, rows = report_half(val, "tweeteval", seed)
    y = np.array([label_index("sentiment")[s.sentiment[0]] for s in samples])
    out["tweeteval_macro_recall"] = m.macro_recall(y, logits["tweeteval"]["sentiment"][rows].argmax(1), 3)
    samples, rows = report_half(val, "goemotions", seed)
    y_go, _ = emotion_arrays(samples)
    probs = m.sigmoid(logits["goemotions"]["emotion"][rows], temps["emotion"])
    f1 = m.multilabel_f1(y_go, probs >= thresholds)
    out["goemotions_macro_f1"] = float(f1.mean())
    out["goemotions_f1_per_label"] = {
        label: round(float(v), 4) for label, v in zip(LABELS["emotion"], f1, strict=True)
    }
    return out


def conversation_report(
    val: dict[str, list[Sample]], logits: Logits, temps: dict[str, float], thresholds: np.ndarray, seed: int
) -> dict[str, Any]:
    """False alarms on calm turns, complaint recall and conversation acts (report halves)."""
    out: dict[str, Any] = {}
    for name, label in (
        ("sgd", "calm_task_turns"),
        ("sgd_spoken", "calm_task_turns_spoken"),
        ("requests_spoken", "bank_requests_spoken"),
    ):
        if name in val:
            _, rows = report_half(val, name, seed)
            out[label] = calm_rates(decisions(_slice(logits[name], rows), temps, thresholds))
    samples, rows = report_half(val, "requests", seed)
    bank = np.array([r for r, s in zip(rows.tolist(), samples, strict=True) if s.source == "banking77"])
    out["bank_requests"] = calm_rates(decisions(_slice(logits["requests"], bank), temps, thresholds))
    for name in ("complaints", "complaints_turns", "complaints_spoken"):
        if name in val:
            out[name] = complaint_rates(val, logits, temps, thresholds, seed, name)
    out["acts"] = act_report(val, logits, temps, seed)
    return out


def complaint_rates(
    val: dict[str, list[Sample]],
    logits: Logits,
    temps: dict[str, float],
    thresholds: np.ndarray,
    seed: int,
    name: str,
) -> dict[str, Any]:
    """Negative recall and accuracy on the report half of complaint set ``name`` (as tweets, as turns,
    or as spoken turns)."""
    samples, rows = report_half(val, name, seed)
    d = decisions(_slice(logits[name], rows), temps, thresholds)
    complaint = np.array([s.sentiment == ("negative",) for s in samples])
    negative = d["sentiment"] == 0
    return {
        "n": len(samples),
        "complaints": int(complaint.sum()),
        "negative_recall": float(negative[complaint].mean()),
        # complaint -> negative, other tweet to the same accounts -> neutral or positive
        "accuracy": float((negative == complaint).mean()),
        "joy_or_gratitude_on_complaints": float(
            np.mean(
                [
                    any(x in e for x in POSITIVE_EMOTIONS)
                    for e, c in zip(d["emotions"], complaint, strict=True)
                    if c
                ]
            )
        ),
    }


def act_report(
    val: dict[str, list[Sample]], logits: Logits, temps: dict[str, float], seed: int
) -> dict[str, Any]:
    """Conversation-act accuracy, reason-vs-rest F1 and the confusion matrix on SGD dev turns."""
    index = label_index("act")
    cut = {"reason": temps.get("act_reason_threshold", 1.0)}
    ys, preds = [], []
    for name in ("sgd", "sgd_requests"):
        samples, rows = report_half(val, name, seed)
        keep = [i for i, s in enumerate(samples) if s.act]
        ys += [index[samples[i].act] for i in keep]
        probs = m.softmax(logits[name]["act"][rows[keep]], temps.get("act", 1.0))
        preds += preferred(probs, LABELS["act"], cut).tolist()
    y, pred = np.array(ys), np.array(preds)
    reason = index["reason"]
    tp = float(((y == reason) & (pred == reason)).sum())
    return {
        "n": len(y),
        "accuracy": float((y == pred).mean()),
        "reason_f1": 2 * tp / max(1.0, float((y == reason).sum() + (pred == reason).sum())),
        "macro_f1": m.macro_f1(y, pred, len(index)),
        "labels": LABELS["act"],
        "confusion": m.confusion(y, pred, len(index)).tolist(),
    }


def agreement(a: Logits, b: Logits) -> dict[str, float]:
    """Share of identical argmax decisions between two graphs, per head, over every set."""
    out: dict[str, list[float]] = {}
    for name in a:
        for head in ("sentiment", "intent", "act"):
            if head in a[name]:
                out.setdefault(head, []).extend((a[name][head].argmax(1) == b[name][head].argmax(1)).tolist())
        if "emotion" in a[name]:
            same = ((a[name]["emotion"] > 0) == (b[name]["emotion"] > 0)).all(1)
            out.setdefault("emotion", []).extend(same.tolist())
    return {head: round(float(np.mean(v)), 4) for head, v in out.items()}


def full_report(
    val: dict[str, list[Sample]], logits: Logits, seed: int
) -> tuple[dict[str, Any], dict[str, float], np.ndarray]:
    """Calibrate on one half, report on the other: (report, temperatures, thresholds)."""
    temps, thresholds = calibrate(val, logits, seed)
    report = {
        "benchmarks": benchmark_report(val, logits, temps, thresholds, seed),
        "conversations": conversation_report(val, logits, temps, thresholds, seed),
    }
    return report, temps, thresholds


def evaluate(
    run_dir: Path,
    pack_dir: Path,
    *,
    compare_presets: bool = False,
    figures: bool = True,
    limit: int | None = None,
) -> dict[str, Any]:
    """Evaluate the pack against its fp32 graph, calibrate it, and rewrite its manifest and card.

    The fp32 graph is the run's (``onnx/model.fp32.onnx``); a run without one (a pack refitted
    after its training run was cleaned up) is compared with the pack's int8 weights in fp32
    (``export.dequantize``), and the card says so. ``limit`` caps every validation set (a
    deterministic sample) for smoke runs.
    """
    summary = json.loads((run_dir / "train_summary.json").read_text())
    recipe = Recipe(**summary["recipe"])
    manifest = read_manifest(pack_dir)
    graph = manifest.graphs["multitask"]
    fp32 = run_dir / "onnx" / "model.fp32.onnx"
    reference = FP32_TRAINED
    if not fp32.exists():
        fp32 = run_dir / "onnx" / "model.dequantized.onnx"
        dequantize_graph(pack_dir / graph.file, fp32)
        reference = FP32_DEQUANTIZED
    tokenizer = pack_dir / graph.tokenizer
    data: Mixture = build_data(recipe)
    val = {
        name: items
        if limit is None or len(items) <= limit
        else random.Random(recipe.seed).sample(items, limit)
        for name, items in data.val.items()
        if items
    }
    seed = recipe.seed

    fp32_logits = score_sets(OnnxScorer(fp32, tokenizer, graph.max_length), val, per_text=False)
    int8_logits = score_sets(
        OnnxScorer(pack_dir / graph.file, tokenizer, graph.max_length), val, per_text=True
    )
    rep_int8, temps, thresholds = full_report(val, int8_logits, seed)
    rep_fp32, _, _ = full_report(val, fp32_logits, seed)
    presets: dict[str, Any] = {}
    if compare_presets and reference == FP32_TRAINED:
        with tempfile.TemporaryDirectory() as tmp:
            for preset in PRESETS:
                path = Path(tmp) / f"{preset}.onnx"
                quantize(fp32, path, preset)
                lg = score_sets(OnnxScorer(path, tokenizer, graph.max_length), val, per_text=True)
                presets[preset] = {
                    "agreement_with_fp32": agreement(fp32_logits, lg),
                    "headline": headline(full_report(val, lg, seed)[0]),
                }
    results: dict[str, Any] = {
        "int8": rep_int8,
        "fp32": rep_fp32,
        "headline": {"int8": headline(rep_int8), "fp32": headline(rep_fp32)},
        "agreement_int8_vs_fp32": agreement(fp32_logits, int8_logits),
        "fp32_reference": reference,
        "calibration": {
            "temperatures": temps,
            "emotion_thresholds": dict(zip(LABELS["emotion"], thresholds.round(3).tolist(), strict=True)),
        },
        "presets": presets,
        "training": {
            **{k: summary.get(k) for k in ("best_step", "best_score", "train_seconds", "threads")},
            "device": summary.get("device", "cpu"),
            "steps_run": (summary.get("history") or [{}])[-1].get("step"),
            "intent_memory": (summary.get("refit") or {}).get("intent_memory"),
            "served_head": summary.get("served_head"),
            "refitted_from": summary.get("refitted_from"),
        },
        "data": data.used,
    }
    extra_files: list[str] = []
    if figures:
        from export import figures as fig

        extra_files = fig.write_all(pack_dir, val, int8_logits, temps, thresholds, seed)
    (pack_dir / "card").mkdir(exist_ok=True)
    extra_files.append("card/metrics.json")
    extra_files.append("card/runtime_checks.json")
    new_manifest = _calibrated_manifest(manifest, temps, thresholds, results, extra_files)
    # The runtime checks load the calibrated pack, so the manifest is written twice.
    (pack_dir / "card" / "runtime_checks.json").write_text("{}")
    (pack_dir / "card" / "metrics.json").write_text("{}")
    (pack_dir / "MODEL_CARD.md").write_text("")
    write_manifest(pack_dir, new_manifest)
    from export.checks import runtime_checks

    results["runtime_checks"] = runtime_checks(pack_dir, val, seed)
    (pack_dir / "card" / "runtime_checks.json").write_text(json.dumps(results["runtime_checks"], indent=1))
    detail = {k: results[k] for k in ("int8", "fp32", "presets", "calibration", "data")}
    (pack_dir / "card" / "metrics.json").write_text(json.dumps(detail, indent=1))
    from export.card import write_card

    write_card(pack_dir, new_manifest, results)
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
        if name == "act" and "act_reason_threshold" in temps:
            th = {"reason": round(temps["act_reason_threshold"], 3)}
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
    }
    fields = {f: getattr(manifest, f) for f in manifest.__struct_fields__}
    fields.update(heads=heads, files=files, metrics=metrics)
    return Manifest(**fields)
