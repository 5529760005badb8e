"""Refit the intent, act and emotion heads on the frozen, fine-tuned encoder.

Joint training gives every head a share of ~5,000 steps; the emotion head sees
GoEmotions for barely one and a half epochs, and the intent head stops while
its learning rate decays to zero. With the encoder frozen, each head is a
linear probe over pooled vectors: cheap to train to convergence. This stage
pools every training text once, then fits each head for up to ``epochs``
passes with the same masked losses as training (``export.batches``), keeping the
epoch that scores best on the *calibration* half of the validation sets (the
report half stays untouched for the card). Sentiment is left as trained: it
already meets its bars and is calibrated on the same conversational data.

It runs at the end of ``python -m export train`` and on its own as
``python -m export refit --run runs/default``.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from export import metrics
from export.batches import IGNORE, Encoded, class_loss, cpu_threads, emotion_loss, encode, pad_batch
from export.halves import halves
from export.mix import Sample
from export.modeling import MultiHeadModel, load_checkpoint
from export.recipe import Recipe, build_data
from routing.taxonomy import ACT_LABELS

REFIT_HEADS = ("intent", "act", "emotion")
GROUPS = ("requests", "sgd", "goemotions", "complaints")


@torch.no_grad()
def pooled(model: MultiHeadModel, enc: Encoded, pad_id: int, batch: int = 128) -> np.ndarray:
    """Mean-pooled encoder vectors of every encoded text (length-sorted batches)."""
    model.eval()
    order = sorted(range(len(enc.ids)), key=lambda i: len(enc.ids[i]))
    out = np.zeros((len(enc.ids), int(model.encoder.config.hidden_size)), np.float32)
    for start in range(0, len(order), batch):
        rows = order[start : start + batch]
        out[rows] = model.pooled(**pad_batch([enc.ids[i] for i in rows], pad_id)).numpy()
    return out


def _concat(parts: list[Encoded]) -> Encoded:
    return Encoded(
        ids=[i for p in parts for i in p.ids],
        allowed=np.concatenate([p.allowed for p in parts]),
        emotion=np.concatenate([p.emotion for p in parts]),
        emotion_mask=np.concatenate([p.emotion_mask for p in parts]),
        intent=np.concatenate([p.intent for p in parts]),
        act=np.concatenate([p.act for p in parts]),
        samples=[s for p in parts for s in p.samples],
    )


def _loss(head: str, logits: torch.Tensor, enc: Encoded, rows: np.ndarray) -> torch.Tensor | None:
    if head == "emotion":
        return emotion_loss(
            logits, torch.from_numpy(enc.emotion[rows]), torch.from_numpy(enc.emotion_mask[rows])
        )
    return class_loss(logits, torch.from_numpy(getattr(enc, head)[rows]))


def _score(head: str, logits: np.ndarray, enc: Encoded) -> float:
    """Selection metric on the calibration half: accuracy, reason F1 or emotion macro-F1."""
    if head == "intent":
        rows = enc.intent != IGNORE
        return float((logits[rows].argmax(1) == enc.intent[rows]).mean())
    if head == "act":
        rows = enc.act != IGNORE
        reason = ACT_LABELS.index("reason")
        y, pred = enc.act[rows] == reason, logits[rows].argmax(1) == reason
        accuracy = float((logits[rows].argmax(1) == enc.act[rows]).mean())
        return 0.5 * accuracy + 0.5 * 2 * float((y & pred).sum()) / max(1.0, float(y.sum() + pred.sum()))
    known = enc.emotion_mask.all(1)
    return metrics.multilabel_macro_f1(enc.emotion[known], logits[known] > 0)


def fit_head(
    head: str,
    init: nn.Linear,
    x: np.ndarray,
    enc: Encoded,
    xv: np.ndarray,
    val: Encoded,
    seed: int,
    epochs: int = 40,
    log: Callable[[str], None] = print,
) -> tuple[nn.Linear, float, float]:
    """Fit one linear head; returns it with the selection score before and after."""
    torch.manual_seed(seed)
    layer = nn.Linear(init.in_features, init.out_features)
    layer.load_state_dict(init.state_dict())
    labelled = np.flatnonzero(enc.emotion_mask.any(1) if head == "emotion" else getattr(enc, head) != IGNORE)
    optimizer = torch.optim.AdamW(layer.parameters(), lr=2e-3, weight_decay=1e-4)
    xt, xvt = torch.from_numpy(x), torch.from_numpy(xv)
    with torch.no_grad():
        before = _score(head, layer(xvt).numpy(), val)
    best_state, best = {k: v.clone() for k, v in layer.state_dict().items()}, before
    rng = random.Random(seed)
    order = labelled.tolist()
    for epoch in range(epochs):
        rng.shuffle(order)
        for start in range(0, len(order), 256):
            rows = np.array(order[start : start + 256])
            loss = _loss(head, layer(xt[rows]), enc, rows)
            if loss is None:
                continue
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            score = _score(head, layer(xvt).numpy(), val)
        if score > best:
            best, best_state = score, {k: v.clone() for k, v in layer.state_dict().items()}
        if epoch % 10 == 9:
            log(f"refit {head}: epoch {epoch + 1} score {score:.4f} (best {best:.4f})")
    layer.load_state_dict(best_state)
    return layer, before, best


def calibration_half(items: list[Sample], seed: int) -> list[Sample]:
    """The half of a validation set that calibration may use (see ``export.halves``)."""
    cal, _ = halves(len(items), seed)
    return [items[i] for i in cal.tolist()]


def refit_heads(run_dir: Path, recipe: Recipe, log: Callable[[str], None] = print) -> dict[str, object]:
    """Refit ``run_dir/checkpoint``'s intent, act and emotion heads in place; returns the report."""
    started = time.perf_counter()
    torch.set_num_threads(cpu_threads())
    checkpoint = run_dir / "checkpoint"
    model, tokenizer = load_checkpoint(checkpoint)
    pad_id = int(tokenizer.pad_token_id or 0)
    data = build_data(recipe)
    rng = random.Random(recipe.seed)
    train_parts = []
    for group in GROUPS:
        items = data.train.get(group, [])
        if group == "sgd" and len(items) > 15000:
            items = rng.sample(items, 15000)
        if items:
            train_parts.append(encode(items, tokenizer, recipe.max_length))
    enc = _concat(train_parts)
    val_sets = {
        "intent": ["requests", "sgd_requests"],
        "act": ["sgd", "sgd_requests"],
        "emotion": ["goemotions"],
    }
    log(f"refit: pooling {len(enc.ids)} training texts")
    x = pooled(model, enc, pad_id)
    state = load_file(str(checkpoint / "heads.safetensors"))
    (run_dir / "heads.joint.safetensors").write_bytes((checkpoint / "heads.safetensors").read_bytes())
    report: dict[str, object] = {"train_texts": len(enc.ids)}
    for head in REFIT_HEADS:
        items = [s for name in val_sets[head] for s in calibration_half(data.val.get(name, []), recipe.seed)]
        val = encode(items, tokenizer, recipe.max_length)
        xv = pooled(model, val, pad_id)
        current = model.heads[head]
        assert isinstance(current, nn.Linear)
        layer, before, after = fit_head(head, current, x, enc, xv, val, recipe.seed, log=log)
        state[f"{head}.weight"] = layer.weight.detach().contiguous()
        state[f"{head}.bias"] = layer.bias.detach().contiguous()
        report[head] = {
            "calibration_score_before": round(before, 4),
            "calibration_score_after": round(after, 4),
        }
        log(f"refit {head}: {before:.4f} -> {after:.4f}")
    save_file(state, str(checkpoint / "heads.safetensors"))
    report["seconds"] = round(time.perf_counter() - started, 1)
    (run_dir / "refit.json").write_text(json.dumps(report, indent=2))
    return report
