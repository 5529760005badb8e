"""The human-readable model card (MODEL_CARD.md) written next to the manifest."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from export.headline import HEADLINE
from models.manifest import Manifest


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def _bar(bar: float | None, direction: str) -> str:
    return "—" if bar is None else f"{direction.replace('>=', '≥').replace('<=', '≤')} {bar:g}"


def _metrics_table(results: dict[str, Any]) -> list[str]:
    head = results["headline"]
    lines = ["| metric | bar | fp32 | int8 | Δ |", "|---|---|---|---|---|"]
    for key, (title, bar, direction) in HEADLINE.items():
        f32, i8 = head["fp32"].get(key), head["int8"].get(key)
        delta = None if f32 is None or i8 is None else i8 - f32
        lines.append(f"| {title} | {_bar(bar, direction)} | {_fmt(f32)} | {_fmt(i8)} | {_fmt(delta)} |")
    return lines


def _runtime_lines(checks: dict[str, Any]) -> list[str]:
    if not checks:
        return []
    quiet, lang = checks["non_lexical"], checks["language"]
    inv, loose = checks["invariance"], checks["invariance_without_per_text_runs"]
    return [
        "## Through the serving runtime",
        "",
        f"- Non-lexical turns (speech-to-text tags, fillers, backchannels, spoken digits; {quiet['turns']} "
        f"generated combinations): neutral with no emotion {quiet['quiet_rate']:.3f}. Calm SGD turns wrongly "
        f"taken for non-lexical: {quiet['calm_turns_taken_for_non_lexical']:.3f}.",
        f"- Language ID on {lang['short_english_turns']} short English turns: judged {lang['judged_rate']:.3f} "
        f"(the rest are too short and count as undetermined), English when judged "
        f"{lang['english_when_judged']:.3f}, wrongly flagged unsupported {lang['wrongly_unsupported_rate']:.3f}. "
        f"{lang['foreign_turns']} hand-written turns in 12 other languages: flagged unsupported "
        f"{lang['foreign_flagged_unsupported']:.3f}, language code right {lang['foreign_code_correct']:.3f}.",
        f"- Batch invariance, {inv['texts']} validation texts alone vs inside batches of random neighbours: "
        f"batch of 8: {inv['batch_8']['label_changes']} label changes, max |Δp| {inv['batch_8']['max_abs_prob_diff']:.2g}; "
        f"batch of 32: {inv['batch_32']['label_changes']} label changes, max |Δp| "
        f"{inv['batch_32']['max_abs_prob_diff']:.2g}. Without per-text runs (one padded ONNX batch, "
        f"{loose['texts']} texts): batch of 32: {loose['batch_32']['label_changes']} label changes, max |Δp| "
        f"{loose['batch_32']['max_abs_prob_diff']:.2g}.",
        "",
    ]


def _prototypes_line(manifest: Manifest) -> list[str]:
    name = manifest.embedding.prototypes if manifest.embedding else None
    if not name:
        return []
    return [
        f"- **Intent prototypes** (`{name}`, `python -m export prototypes`): each built-in intent's "
        "centroid and k-means centres over the pack's own embeddings of its training utterances; a custom "
        "contact reason beats the intent head where the turn is closer to the reason's examples than to "
        "the head's intent (`routing/REASONS.md`)."
    ]


def _embedding_layers(recipe: dict[str, Any]) -> str:
    layers = recipe.get("embedding_layers") or [6]
    return "–".join(str(layer) for layer in (layers[0], layers[-1])) if len(layers) > 1 else str(layers[0])


def _head_layers(recipe: dict[str, Any]) -> str:
    layers = recipe.get("head_layers") or {}
    named = [f"{head} {'+'.join(map(str, chosen))}" for head, chosen in layers.items()]
    return ", ".join([*named, "the others 6 (the last)"]) if named else "6 (the last) for every head"


LAYERS_WHY = (
    'Emotion, act and sentiment read several layers because cues such as "ugh" or "no thanks" sit in layers '
    "that fine-tuning for intent bent least (+4 points of GoEmotions macro-F1 in the refit)."
)


@dataclass(frozen=True)
class CpuRun:
    """A run of the committed recipe on CPU threads only, to state what a GPU-trained pack costs without one."""

    steps: int
    seconds: float
    best_step: int
    threads: int
    command: str
    date: str


# Pack 2.3's recipe trained again with ``python -m export build --device cpu`` on this project's
# 2-core machine (its train_summary.json): early stop at 9,750 and best step 7,800 as on the GPU,
# validation score 0.8370 vs 0.8374.
CPU_RUN = CpuRun(
    steps=9750,
    seconds=4616.1,
    best_step=7800,
    threads=2,
    command="python -m export build --device cpu",
    date="2026-11-30",
)


def _memory_line(results: dict[str, Any]) -> str:
    memory = (results.get("training") or {}).get("intent_memory")
    if not memory or "per_class" not in memory:
        return f"No intent memory: none beat the linear intent head on the calibration half. {LAYERS_WHY}"
    return (
        f"Intent memory: {memory['per_class']} k-means prototypes per intent, temperature {memory['tau']}, "
        f"blend weight {memory['weight']} (calibration-half intent accuracy {memory['calibration_score_before']:.4f}"
        f" → {memory['calibration_score_after']:.4f}). {LAYERS_WHY} Intent gets nearest-prototype evidence "
        "because a linear probe draws one plane per intent while people ask for the same thing in several "
        "distinct ways."
    )


def _wall_time_line(training: dict[str, Any], cpu_run: CpuRun = CPU_RUN) -> str:
    minutes = float(training.get("train_seconds") or 0) / 60
    if training.get("device") == "cuda":
        steps = int(training.get("steps_run") or 0)
        return (
            f"- Wall time: {minutes:.1f} min for {steps} steps on one GPU (`--device cuda`; the refit ran on "
            f"the CPU). The same recipe on {cpu_run.threads} CPU threads (`{cpu_run.command}`, a separate run "
            f"on {cpu_run.date}) trained for {cpu_run.seconds / 60:.0f} min: {cpu_run.steps} steps, best at "
            f"{cpu_run.best_step}. The recipe does not depend on the device; the result differs only by "
            "floating-point order."
        )
    return f"- Wall time: {minutes:.1f} min on {training.get('threads')} CPU threads (`--device cpu`)."


def _reference_lines(results: dict[str, Any]) -> list[str]:
    if results.get("fp32_reference") != "dequantized":
        return []
    origin = (results.get("training") or {}).get("refitted_from")
    since = (
        f" The encoder and every head but intent are pack {origin['pack']}'s, whose card compared them with "
        f"the trained fp32 graph: every Δ within {origin['max_abs_delta']:.3f}."
        if origin
        else ""
    )
    return [
        "The fp32 column runs the int8 graph's own weights in fp32 (`export/dequantize.py`): this pack was "
        "refitted after its training run's fp32 graph was gone, so Δ measures what quantizing the "
        f"activations costs, not the weights.{since}",
        "",
    ]


def _fusion_line(manifest: Manifest) -> list[str]:
    fused = int(manifest.metrics.get("quantization", {}).get("fused_attention", 0))
    if not fused:
        return []
    return [
        f"- **Fused attention**: each of the graph's {fused} self-attention blocks is one `QAttention` node "
        "(`export/quantize.py`, `fuse_attention`, before quantizing): the same int8 arithmetic in one kernel "
        "instead of about twenty nodes, about 5% less time per utterance on one thread. `python -m export fuse` "
        "rebuilds an older pack's graph this way and refuses to write it unless every output stays equal."
    ]


def _served_head_line(results: dict[str, Any]) -> list[str]:
    served = (results.get("training") or {}).get("served_head")
    if not served or "skipped" in served:
        return []
    settings = served["settings"]
    before = served.get("calibration_accuracy_before")
    classes, previous = served.get("classes"), served.get("classes_before")
    merged = (
        f"The taxonomy had merged intents that mean the same as another source's into that name "
        f"(`routing.taxonomy.INTENT_ALIASES`), so the new head has {classes} outputs where the graph had "
        f"{previous}; the old head is scored with each merged intent read as the one it merged into. "
        if classes and previous and classes != previous
        else ""
    )
    change = (
        f"{before:.4f} → {served['calibration_accuracy_after']:.4f}"
        if before is not None
        else f"{served['calibration_accuracy_after']:.4f}"
    )
    return [
        "- Last, the intent head is refitted on the int8 graph's own pooled vectors (`export/served_head.py`, "
        "`python -m export served-head`, part of `build` after `quantize`): each of the "
        f"{served['train_texts']} intent-labelled training texts is run alone through the int8 graph as the runtime "
        f"serves it, and a fresh linear head is fitted for a fixed {settings['epochs']} epochs (AdamW, lr "
        f"{settings['lr']}, label smoothing {settings['label_smoothing']}), then re-quantized like the rest. "
        f"{merged}Calibration-half intent accuracy {change} ({served['seconds'] / 60:.1f} min on the CPU). Only "
        "`intent_logits` changes; the other heads and the sentence embedding are bit for bit the same.",
    ]


def write_card(pack_dir: Path, manifest: Manifest, results: dict[str, Any]) -> Path:
    """Render MODEL_CARD.md from the manifest and the evaluation results."""
    lines = [
        f"# Model card: {manifest.name} {manifest.version}",
        "",
        "Four classifiers on one shared encoder (all-MiniLM-L6-v2, 6 layers, hidden 384, mean pooling), "
        "fine-tuned jointly and exported as one dynamic-int8 ONNX graph that also returns the pooled sentence "
        f"embedding (`{manifest.embedding.output if manifest.embedding else '—'}`). "
        f"Languages: {', '.join(manifest.languages)} only; other languages are detected and reported, not scored.",
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
        "Emotion thresholds: " + ", ".join(f"{k} {v:.2f}" for k, v in emotion.items()) + ".",
        "",
        *(
            [
                "Act decision threshold: a turn is a `reason` when p(reason) ≥ "
                f"{manifest.heads['act'].thresholds['reason']:.2f} (best reason-vs-rest F1 on the calibration "
                "half), otherwise the most probable act."
            ]
            if "act" in manifest.heads and "reason" in manifest.heads["act"].thresholds
            else []
        ),
        "",
        "## Metrics",
        "",
        "Validation data is split in two halves with a fixed seed: temperatures and thresholds are fitted on one, "
        "every figure below is measured on the other. Test splits are not available to this project. The int8 "
        "graph is scored one text per call, as the runtime serves it.",
        "",
        *_metrics_table(results),
        "",
        "Calm task turns are SGD dev user turns (typed; *spoken* = lower case without punctuation, as "
        "speech-to-text output). Plain bank requests are the held-out 10% of Banking77 (all 77 intents, problem "
        "reports included). Complaint tweets are the held-out quarter of the complaints set (tweets to "
        "customer-care accounts; complaint = negative, other tweets to the same accounts = neutral or positive).",
        "",
        *_reference_lines(results),
        "int8 vs fp32 agreement (same top label; emotion: same label set at logit 0): "
        + ", ".join(f"{k} {v:.3f}" for k, v in results["agreement_int8_vs_fp32"].items())
        + ".",
        "",
        *_runtime_lines(results.get("runtime_checks", {})),
        "Per-set details (fp32 and int8, act confusion, per-label F1) are in `card/metrics.json`; runtime checks in "
        "`card/runtime_checks.json`.",
        "",
        "![sentiment confusion](card/confusion_sentiment.png)",
        "![act confusion](card/confusion_act.png)",
        "![intent categories confusion](card/confusion_intent_categories.png)",
        "![emotion confusion](card/confusion_emotion.png)",
        "![reliability](card/reliability.png)",
        "",
        "## How the signals were made to hold on conversations",
        "",
        "- **One mixture, every head at once** (`export/mix.py`): each example is labelled for every head it can "
        "speak to and masked for the rest. Bank and service requests teach intent, act `reason`, neutral "
        "sentiment and no anger/joy/gratitude; SGD user turns teach the acts and what a calm customer sounds like; "
        "complaint tweets teach negative; SemEval/SST-2 and GoEmotions keep the general scales.",
        "- **Weak labels revisited**: asking how to do something is neutral; a problem report (card not arrived, "
        "payment declined) is neutral too, never joy or gratitude and never anger by itself; the Bitext `complaint` "
        "intent and its offensive-language variants are negative. Non-complaint tweets to customer care are a "
        "partial label (*neutral or positive*), trained with `-log(p_neutral + p_positive)`. No class weights.",
        "- **Emotion abstains** by per-label thresholds: each starts at its GoEmotions F1 optimum and rises until it "
        "fires on at most 1% (anger, frustration, joy, gratitude) or 2% (the others) of calm in-domain turns known "
        "not to carry it. A softmax *primary emotion* head was not chosen because GoEmotions is multi-label and "
        "would have to be collapsed. The runtime reports at most two emotions, `neutral` only alone, and no "
        "gratitude or joy on a negative turn.",
        "- **Conversation acts** come from SGD dialogue acts (INFORM_INTENT → reason, INFORM → inform, "
        "REQUEST/REQUEST_ALTS → question, AFFIRM/SELECT → affirm, NEGATE → deny, THANK_YOU/GOODBYE → "
        "thanks_or_closing; strongest act wins); `greeting` and `non_lexical` are decided by transcript "
        "normalisation (`models/normalize.py`), which both training and serving apply.",
        "- **Spoken form and turn form**: 30% of every group's training texts (calm requests and task turns, "
        "complaints, tweets, GoEmotions) are lower-cased with punctuation removed, so that speech-to-text output "
        "is not a cue for calm. The sentiment refit adds copies of every complaint tweet and of 4,000 tweets and "
        "GoEmotions texts as chat and call turns carry them: without the `@user` handle and link, typed and "
        "spoken. Every complaint tweet starts with a handle, and pack 2.2 had learnt it as a cue: 0.89 of its "
        "held-out complaint tweets were recognised as negative, 0.42 of the same tweets as chat turns and 0.39 "
        "as spoken turns (int8, `python -m export evaluate` on pack 2.2's run).",
        "- **Sentence embedding**: a cosine distillation term keeps the pooled vector close to the pretrained "
        "encoder's, so example-defined contact reasons keep working on the fine-tuned encoder; the embedding "
        f"concatenates the normalised means of layers {_embedding_layers(manifest.recipe)} "
        f"({manifest.embedding.dim if manifest.embedding else 0} values, unit length), because fine-tuning "
        "bends the last layer towards the pack's own intents (`python -m bench reasons` measures the "
        "few-shot accuracy).",
        *_prototypes_line(manifest),
        "- **Batch invariance**: dynamic int8 scales activations per tensor, so the runtime runs each text alone.",
        "- **Scored as served**: the runtime opens the graph without ONNX Runtime's SkipLayerNormalization "
        "fusion (`models.pack.DISABLED_OPTIMIZERS`), whose CPU kernel is slower than the nodes it replaces "
        "(`python -m bench runtime`, `runtime_fused`), and `export evaluate` "
        "scores and calibrates with the same sessions: with dynamic int8 a fused node's float rounding moves "
        "the activation scales, so a figure measured on another graph rewrite would not be the served one "
        "(pack 2.4.1 is pack 2.4.0's graph file, re-calibrated and re-measured this way).",
        *_fusion_line(manifest),
        "",
        "## Training",
        "",
        f"- Steps: best at {results['training']['best_step']} of {manifest.recipe.get('steps')} "
        f"(batch {manifest.recipe.get('batch_size')}, max length {manifest.recipe.get('max_length')}, "
        f"lr {manifest.recipe.get('lr')}, group shares {manifest.recipe.get('group_weights')}).",
        _wall_time_line(results["training"]),
        "- Then the intent, act, emotion and sentiment heads are refitted on the frozen encoder "
        "(`export/refit.py`, part of `train`; its seconds are in the run's `refit.json`): every training text is "
        "pooled once (every layer's mean) and each head is trained to convergence with the same masked losses, "
        "keeping the epoch that scores best on the calibration half. "
        f"Layers read per head: {_head_layers(manifest.recipe)}. {_memory_line(results)}",
        *_served_head_line(results),
        "- Reproduce: `python -m export build` (train, refit, onnx, quantize, served head, prototypes, evaluate "
        "in one command).",
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
        "SGD validation turns come from its dev file; complaints are split 75/25 by label. SemEval tweets that "
        "also appear in the TweetEval validation set are removed from training.",
        "",
        "## Intended use",
        "",
        "Scoring customer, agent and bot turns in English contact-centre conversations (chat, SMS, e-mail, "
        "speech-to-text transcripts) to route them.",
        "",
        "## Known limits",
        "",
        "- English only; uncased WordPiece vocabulary. Turns in other languages are reported with their language "
        "and `unknown` scores.",
        "- Intents cover banking and generic customer service (orders, refunds, accounts, appointments). Other "
        "industries fall into `out_of_scope` or the nearest generic intent.",
        "- Complaint data is 1,232 tweets; sarcasm and mixed sentiment are still often missed.",
        "- A complaint said in a chat or a call, without the tweet's `@handle`, is recognised less often than "
        "a complaint tweet (the *as chat turns* and *as spoken turns* rows above); no public set of labelled "
        'spoken complaints was available to train or measure on. Blame stated as a bank request ("you charged '
        'me twice, I want my money back") often stays neutral: requests and problem reports are trained calm.',
        "- Emotions in problem reports have no public labels: the thresholds keep them rare, not right.",
        "- Truncation at the manifest's maximum length; the runtime keeps head and tail of long turns.",
        "",
    ]
    path = pack_dir / "MODEL_CARD.md"
    path.write_text("\n".join(lines))
    return path
