"""The human-readable model card (MODEL_CARD.md) written next to the manifest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from models.manifest import Manifest

BARS = {
    "intent_banking77.accuracy": ("Banking77 intent accuracy", 0.92),
    "intent_clinc_in_scope.in_scope_accuracy": ("CLINC banking/credit_cards in-scope accuracy", 0.92),
    "intent_clinc_oos.oos_recall": ("CLINC out_of_scope recall", 0.85),
    "sentiment_tweeteval.macro_recall": ("Sentiment macro-recall, TweetEval/SemEval tweets", 0.70),
    "sentiment_service_requests.accuracy": (
        "Sentiment accuracy, customer-service requests (weak labels)",
        0.80,
    ),
    "sentiment_service_requests.negative_recall": (
        "Negative recall, customer-service requests (weak labels)",
        None,
    ),
    "emotion_goemotions.macro_f1": ("Emotion macro-F1 (8 labels, GoEmotions dev mapped)", 0.50),
    "emotion_service_requests.false_emotion_rate": (
        "Plain service requests given a non-neutral emotion (lower is better)",
        None,
    ),
    "emotion_service_problems.positive_emotion_rate": (
        "Problem reports and cancellations given gratitude or joy (lower is better)",
        None,
    ),
}


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def write_card(pack_dir: Path, manifest: Manifest, results: dict[str, Any]) -> Path:
    """Render MODEL_CARD.md from the manifest and the evaluation results."""
    head = results["headline"]
    lines = [
        f"# Model card: {manifest.name} {manifest.version}",
        "",
        "Three classifiers on one shared encoder (all-MiniLM-L6-v2, 6 layers, hidden 384, mean pooling), "
        "fine-tuned jointly and exported as one dynamic-int8 ONNX graph. English only.",
        "",
        "## Heads",
        "",
        "| head | kind | labels | temperature |",
        "|---|---|---|---|",
    ]
    for name, spec in manifest.heads.items():
        labels = (
            ", ".join(spec.labels)
            if len(spec.labels) <= 10
            else f"{len(spec.labels)} intents incl. out_of_scope"
        )
        lines.append(f"| {name} | {spec.kind} | {labels} | {spec.temperature:.3f} |")
    emotion = manifest.heads["emotion"].thresholds
    lines += [
        "",
        "Emotion thresholds (tuned per label for F1 on the calibration half): "
        + ", ".join(f"{k} {v:.2f}" for k, v in emotion.items()),
        "",
        "## Metrics",
        "",
        "Validation data is split in two halves with a fixed seed: temperatures and thresholds are fitted on one, "
        "every figure below is measured on the other. Test splits are not available to this project.",
        "",
        "| metric | bar | fp32 | int8 | Δ |",
        "|---|---|---|---|---|",
    ]
    for key, (title, bar) in BARS.items():
        f32, i8 = head["fp32"].get(key), head["int8"].get(key)
        delta = None if f32 is None or i8 is None else i8 - f32
        bar_s = "—" if bar is None else f"≥ {bar:.2f}"
        lines.append(f"| {title} | {bar_s} | {_fmt(f32)} | {_fmt(i8)} | {_fmt(delta)} |")
    agree = results["agreement_int8_vs_fp32"]
    lines += [
        "",
        "int8 vs fp32 agreement (same top label; emotion: same label set at logit 0): "
        + ", ".join(f"{k} {v:.3f}" for k, v in agree.items()),
        "",
        "Expected calibration error after temperature scaling (int8): "
        + ", ".join(
            f"{k} {v['ece']:.3f} (before {v['ece_uncalibrated']:.3f})"
            for k, v in results["int8"].items()
            if k in ("intent_all", "sentiment_tweeteval", "emotion_goemotions")
        ),
        "",
    ]
    if results.get("presets"):
        lines += [
            "### Quantization presets",
            "",
            "| preset | agreement (sentiment / emotion / intent) | "
            "Banking77 acc | sentiment macro-recall | emotion macro-F1 |",
            "|---|---|---|---|---|",
        ]
        for name, p in results["presets"].items():
            a, h = p["agreement_with_fp32"], p["headline"]
            lines.append(
                f"| {name} | {a.get('sentiment', 0):.3f} / {a.get('emotion', 0):.3f} / {a.get('intent', 0):.3f} | "
                f"{_fmt(h.get('intent_banking77.accuracy'))} | {_fmt(h.get('sentiment_tweeteval.macro_recall'))} | "
                f"{_fmt(h.get('emotion_goemotions.macro_f1'))} |"
            )
        quant = manifest.metrics.get("quantization", {})
        lines += [
            "",
            f"The pack ships the `{quant.get('preset', '?')}` preset; see `export/quantize.py` for why.",
            "",
        ]
    lines += [
        "Per-class precision and recall for every set (fp32 and int8) are in `card/metrics.json`.",
        "",
        "![sentiment confusion](card/confusion_sentiment.png)",
        "![intent categories confusion](card/confusion_intent_categories.png)",
        "![emotion confusion](card/confusion_emotion.png)",
        "![reliability](card/reliability.png)",
        "",
        "## Training",
        "",
        f"- Steps: best at {results['training']['best_step']} of {manifest.recipe.get('steps')} "
        f"(batch {manifest.recipe.get('batch_size')}, max length {manifest.recipe.get('max_length')}, "
        f"lr {manifest.recipe.get('lr')}, task shares {manifest.recipe.get('task_weights')}).",
        f"- Wall time: {results['training']['train_seconds'] / 60:.1f} min on {results['training']['threads']} "
        "CPU threads.",
        "- The emotion head was then refitted on the frozen encoder (`refit`, part of `train`; 1.5 min).",
        "- Reproduce: `python -m export train && python -m export onnx && python -m export quantize && "
        "python -m export evaluate`.",
        "",
        "## Data",
        "",
        "| source | licence | train | val | origin |",
        "|---|---|---|---|---|",
    ]
    for p in manifest.provenance:
        origin = f"{p.get('repo', p.get('url', ''))} {str(p.get('commit', ''))[:10]}".strip()
        lines.append(f"| {p['name']} | {p['licence']} | {p.get('train', 0)} | {p.get('val', 0)} | {origin} |")
    lines += [
        "",
        "Banking77 and Bitext have no validation split here: 10% of each intent is held out (stratified, seed 13). "
        "SemEval tweets that also appear in the TweetEval validation set are removed from training. "
        "`service_requests_weak` labels customer-service utterances by their intent: problem reports "
        "(declined payments, missing cards, wrong charges, complaints …) as negative and plain requests as neutral, "
        "because general tweets alone make a model call many complaints neutral.",
        "",
        "## Intended use",
        "",
        "Scoring customer, agent and bot turns in English contact-centre conversations (chat, SMS, e-mail, "
        "speech-to-text transcripts) to route them. The routing layer treats low-confidence or ambiguous intents "
        "as `out_of_scope`.",
        "",
        "## Known limits",
        "",
        "- English only; uncased WordPiece vocabulary.",
        "- Intents cover banking and generic customer service (orders, refunds, accounts). Other industries fall "
        "into `out_of_scope` or the nearest generic intent — build your own pack from your labelled transcripts "
        "(`python -m export train --csv intent=your.csv`).",
        "- Sentiment is trained on tweets and movie reviews plus weak service labels; sarcasm and mixed sentiment "
        "are often missed. Emotion is trained on Reddit comments.",
        "- The customer-service complaint figure above uses weak labels derived from intents, not human sentiment "
        "labels: treat it as indicative.",
        "- The emotion head is refitted on the frozen encoder with plain customer-service requests labelled "
        "neutral (`export/refit.py`); before that, 98% of plain requests got a non-neutral emotion. Problem "
        "reports and cancellations have no emotion labels in any public set: about half still get gratitude or "
        "joy over threshold (row above), so do not route on positive emotions in those conversations.",
        "- Truncation at the manifest's maximum length; the runtime keeps head and tail of long turns.",
        "",
    ]
    path = pack_dir / "MODEL_CARD.md"
    path.write_text("\n".join(lines))
    return path
