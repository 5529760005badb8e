"""Refit the intent, act, emotion and sentiment heads on the frozen, fine-tuned encoder.

Joint training gives every head a share of the steps; the emotion head sees
GoEmotions for two or three epochs, and the intent head stops while
its learning rate decays to zero. With the encoder frozen, each head is a
linear probe over pooled vectors: cheap to train to convergence. This stage
pools every training text once (every layer's mean), then fits each head for up
to ``epochs`` passes with the same masked losses as training
(``export.batches``), keeping the epoch that scores best on the *calibration*
half of the validation sets (the report half stays untouched for the card).
The sentiment head is refitted on layers 3-6 with copies of every complaint
and of a sample of the tweets and GoEmotions texts as chat and call turns carry
them: without the ``@user`` handle and links (``export.mix.as_turn``), typed
and spoken (lower case, no punctuation). Every complaint tweet starts with a
handle, and joint training learns it as a cue: pack 2.2 recognised 0.42 of its
held-out complaint tweets once the handle was gone (0.89 with it). The paired copies teach
the head that the same words mean the same in every form. Its epoch is chosen
on the calibration halves of the complaints (as tweets, as turns, spoken),
TweetEval and calm SGD turns together.

Heads may read several layers (``Recipe.head_layers``), and the intent head
gets a prototype memory (``Recipe.intent_memory``; see ``export.modeling``):
k-means prototypes per intent, with their count, temperature and blend weight
chosen on the calibration half; no memory when none beats the linear head.

It runs at the end of ``python -m export train`` and on its own as
``python -m export refit --run runs/default``.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file
from torch import nn

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
from export.halves import halves
from export.mix import Sample, as_turn, spoken
from export.modeling import EMBEDDING, MultiHeadModel, PrototypeMemory, load_checkpoint, save_heads
from export.recipe import Recipe, build_data
from models.normalize import normalize
from routing.taxonomy import ACT_LABELS

REFIT_HEADS = ("intent", "act", "emotion", "sentiment")
GROUPS = ("requests", "sgd", "goemotions", "complaints", "tweets")
# Texts pooled per large group: enough for a linear probe, and pooling is most of the refit's time.
GROUP_LIMIT = 15000
# Groups whose texts get turn-form copies for the sentiment head (``turn_copies``), and how many at most.
TURN_COPIES = {"complaints": None, "tweets": 4000, "goemotions": 4000}


# Prototypes per intent: 32 gave no clear gain over 16 on the calibration half and costs twice
# the serving time (the memory runs in fp32, see export/quantize.py).
MEMORY_SIZES = (16,)
MEMORY_TAUS = (0.02, 0.05)
MEMORY_WEIGHTS = (0.3, 0.5, 0.7)


@torch.no_grad()
def pooled(model: MultiHeadModel, enc: Encoded, pad_id: int, batch: int = 128) -> np.ndarray:
    """Mean-pooled vectors of every layer for every text: [n, layers + 1, hidden] (length-sorted batches)."""
    model.eval()
    order = sorted(range(len(enc.ids)), key=lambda i: len(enc.ids[i]))
    layers = list(range(model.last_layer + 1))
    out = np.zeros((len(enc.ids), len(layers), int(model.encoder.config.hidden_size)), np.float32)
    for start in range(0, len(order), batch):
        rows = order[start : start + batch]
        means = model.layer_means(**pad_batch([enc.ids[i] for i in rows], pad_id), layers=layers)
        out[rows] = torch.stack([means[layer] for layer in layers], 1).numpy()
    return out


def layer_features(means: np.ndarray, layers: list[int]) -> np.ndarray:
    """Concatenate the chosen layers of ``pooled`` output, as ``MultiHeadModel.head_features`` does."""
    return np.ascontiguousarray(np.concatenate([means[:, layer] for layer in layers], 1))


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
    if head == "sentiment":
        return sentiment_loss(logits, torch.from_numpy(enc.allowed[rows]))
    return class_loss(logits, torch.from_numpy(getattr(enc, head)[rows]))


def _score(head: str, logits: np.ndarray, enc: Encoded) -> float:
    """Selection metric on the calibration half: accuracy, reason F1, emotion or sentiment (see below)."""
    if head == "sentiment":
        return sentiment_score(logits, enc)
    if head == "intent":
        rows = enc.intent != IGNORE
        return float((logits[rows].argmax(1) == enc.intent[rows]).mean())
    if head == "act":
        rows = enc.act != IGNORE
        reason = ACT_LABELS.index("reason")
        y, pred = enc.act[rows] == reason, logits[rows].argmax(1) == reason
        accuracy = float((logits[rows].argmax(1) == enc.act[rows]).mean())
        return 0.5 * accuracy + 0.5 * 2 * float((y & pred).sum()) / max(1.0, float(y.sum() + pred.sum()))
    # Emotion is scored as it is served: each label at its own best threshold.
    known = enc.emotion_mask.all(1)
    probs, targets = metrics.sigmoid(logits[known]), enc.emotion[known]
    return metrics.multilabel_macro_f1(targets, probs >= metrics.tune_thresholds(probs, targets))


def sentiment_score(logits: np.ndarray, enc: Encoded) -> float:
    """Mean of complaint balanced accuracy (tweets, turns and spoken turns pooled), TweetEval macro-recall
    and calm turns kept off negative: the sentiment bars of the card, each weighing the same."""
    pred = logits.argmax(1)
    groups = np.array([s.group for s in enc.samples])
    negative = enc.allowed[:, 0] == 1
    single = enc.allowed.sum(1) == 1
    parts = []
    complaints = groups == "complaints"
    if complaints.any():
        said = pred == 0
        parts.append(0.5 * said[complaints & negative].mean() + 0.5 * (~said[complaints & ~negative]).mean())
    tweets = (groups == "val") & single
    if tweets.any():
        parts.append(metrics.macro_recall(enc.allowed[tweets].argmax(1), pred[tweets], 3))
    calm = groups == "sgd"
    if calm.any():
        parts.append(float((pred[calm] != 0).mean()))
    return float(np.mean(parts)) if parts else 0.0


def turn_copies(data_train: dict[str, list[Sample]], seed: int) -> list[Sample]:
    """Copies of the sentiment-bearing tweets as chat and call turns would carry them.

    Every complaint, and up to ``TURN_COPIES[group]`` texts of the other groups, gets a copy without
    ``@user`` handles and links (``export.mix.as_turn``) and a spoken copy of that (lower case, no
    punctuation); a copy identical to its original or to the other copy is left out.
    """
    rng = random.Random(seed)
    out = []
    for group, limit in TURN_COPIES.items():
        items = [s for s in data_train.get(group, []) if s.sentiment]
        if limit is not None and len(items) > limit:
            items = rng.sample(items, limit)
        for sample in items:
            seen = {sample.text}
            turn = as_turn(sample.text)
            for text in (turn, normalize(spoken(turn)).text):
                if text and text not in seen and normalize(text).lexical:
                    seen.add(text)
                    out.append(replace(sample, text=text))
    return out


def labelled_rows(head: str, enc: Encoded) -> np.ndarray:
    """Boolean mask of the rows that carry a label for ``head``."""
    if head == "emotion":
        return np.asarray(enc.emotion_mask.any(1))
    if head == "sentiment":
        return np.asarray(enc.allowed.sum(1) > 0)
    return np.asarray(getattr(enc, head) != IGNORE)


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
    """Fit one linear head on features ``x``; returns it with the selection score before and after.

    ``init`` is the starting point when its input width matches ``x``; otherwise the head starts fresh.
    """
    torch.manual_seed(seed)
    layer = nn.Linear(x.shape[1], init.out_features)
    if init.in_features == x.shape[1]:
        layer.load_state_dict(init.state_dict())
    labelled = np.flatnonzero(labelled_rows(head, enc))
    optimizer = torch.optim.AdamW(layer.parameters(), lr=2e-3, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs * -(-len(labelled) // 256))
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
            scheduler.step()
        with torch.no_grad():
            score = _score(head, layer(xvt).numpy(), val)
        if score > best:
            best, best_state = score, {k: v.clone() for k, v in layer.state_dict().items()}
        if epoch % 10 == 9:
            log(f"refit {head}: epoch {epoch + 1} score {score:.4f} (best {best:.4f})")
    layer.load_state_dict(best_state)
    return layer, before, best


def prototypes(
    x: np.ndarray, y: np.ndarray, classes: int, per_class: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """k-means prototypes (unit vectors) of each class's rows: ([classes * per_class, hidden], pad).

    ``pad`` is [classes, per_class]: 0 for a prototype, -1e4 where a class has fewer rows.
    """
    from sklearn.cluster import KMeans

    unit = metrics.unit_rows(x)
    out = np.zeros((classes, per_class, x.shape[1]), np.float32)
    pad = np.full((classes, per_class), -1e4, np.float32)
    for c in range(classes):
        rows = unit[y == c]
        if len(rows) == 0:
            continue
        if len(rows) <= per_class:
            centres = rows
        else:
            centres = KMeans(per_class, n_init=1, random_state=seed).fit(rows).cluster_centers_
        out[c, : len(centres)] = metrics.unit_rows(centres)
        pad[c, : len(centres)] = 0.0
    return out.reshape(classes * per_class, x.shape[1]), pad


def fit_memory(
    head: nn.Linear,
    x: np.ndarray,
    enc: Encoded,
    xv: np.ndarray,
    val: Encoded,
    seed: int,
    log: Callable[[str], None],
) -> tuple[PrototypeMemory | None, dict[str, object]]:
    """The prototype memory whose blend scores best on the calibration half; None when none beats the head."""
    rows = enc.intent != IGNORE
    with torch.no_grad():
        linear = head(torch.from_numpy(xv))
    base = _score("intent", linear.numpy(), val)
    best: tuple[float, PrototypeMemory | None, dict[str, object]] = (base, None, {})
    for per_class in MEMORY_SIZES:
        protos, pad = prototypes(x[rows], enc.intent[rows], head.out_features, per_class, seed)
        for tau in MEMORY_TAUS:
            for weight in MEMORY_WEIGHTS:
                memory = PrototypeMemory(torch.from_numpy(protos), torch.from_numpy(pad), tau, weight)
                with torch.no_grad():
                    score = _score("intent", memory(torch.from_numpy(xv), linear).numpy(), val)
                if score > best[0]:
                    best = (score, memory, {"per_class": per_class, "tau": tau, "weight": weight})
    log(f"refit intent memory: {base:.4f} -> {best[0]:.4f} {best[2]}")
    return best[1], {
        **best[2],
        "calibration_score_before": round(base, 4),
        "calibration_score_after": round(best[0], 4),
    }


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
        if group in ("sgd", "tweets") and len(items) > GROUP_LIMIT:
            items = rng.sample(items, GROUP_LIMIT)
        if items:
            train_parts.append(encode(items, tokenizer, recipe.max_length))
    enc = _concat(train_parts)
    copies = encode(turn_copies(data.train, recipe.seed), tokenizer, recipe.max_length)
    val_sets = {
        "intent": ["requests", "sgd_requests"],
        "act": ["sgd", "sgd_requests"],
        "emotion": ["goemotions"],
        "sentiment": ["complaints", "complaints_turns", "complaints_spoken", "tweeteval", "sgd"],
    }
    log(f"refit: pooling {len(enc.ids)} training texts and {len(copies.ids)} turn-form copies")
    means = pooled(model, enc, pad_id)
    copy_means = pooled(model, copies, pad_id)
    joint = run_dir / "heads.joint.safetensors"
    if not joint.exists():  # the heads as joint training left them; a second refit starts from these too
        joint.write_bytes((checkpoint / "heads.safetensors").read_bytes())
    joint_state = load_file(str(joint))
    report: dict[str, object] = {"train_texts": len(enc.ids)}
    layers = {head: list(recipe.head_layers.get(head, [model.last_layer])) for head in REFIT_HEADS}
    model.layers = {head: chosen for head, chosen in layers.items() if chosen != [model.last_layer]}
    if list(recipe.embedding_layers) != [model.last_layer]:
        model.layers[EMBEDDING] = list(recipe.embedding_layers)
    model.memory = None
    for head in REFIT_HEADS:
        items = [s for name in val_sets[head] for s in calibration_half(data.val.get(name, []), recipe.seed)]
        val = encode(items, tokenizer, recipe.max_length)
        xv = layer_features(pooled(model, val, pad_id), layers[head])
        x = layer_features(means, layers[head])
        head_enc = enc
        if head == "sentiment":
            x = np.concatenate([x, layer_features(copy_means, layers[head])])
            head_enc = _concat([enc, copies])
        start = nn.Linear(joint_state[f"{head}.weight"].shape[1], joint_state[f"{head}.weight"].shape[0])
        start.load_state_dict({"weight": joint_state[f"{head}.weight"], "bias": joint_state[f"{head}.bias"]})
        layer, before, after = fit_head(head, start, x, head_enc, xv, val, recipe.seed, log=log)
        model.heads[head] = layer
        report[head] = {
            "layers": layers[head],
            "calibration_score_before": round(before, 4),
            "calibration_score_after": round(after, 4),
        }
        log(f"refit {head}: {before:.4f} -> {after:.4f}")
        if head == "intent" and recipe.intent_memory:
            model.memory, report["intent_memory"] = fit_memory(layer, x, enc, xv, val, recipe.seed, log)
    save_heads(model, checkpoint)
    report["seconds"] = round(time.perf_counter() - started, 1)
    (run_dir / "refit.json").write_text(json.dumps(report, indent=2))
    return report
