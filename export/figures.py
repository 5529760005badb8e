"""Confusion matrices and reliability diagrams as PNG files inside the pack."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from export import metrics as m
from export.halves import emotion_arrays, report_half, single_label_rows
from export.pack import LABELS
from routing.taxonomy import CATEGORIES, category_of

FIG_DIR = "card"


def _confusion_png(matrix: np.ndarray, labels: list[str], title: str, path: Path) -> None:
    norm = matrix / np.clip(matrix.sum(1, keepdims=True), 1, None)
    size = max(4.0, 0.42 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if len(labels) <= 20:
        for i in range(len(labels)):
            for j in range(len(labels)):
                if matrix[i, j]:
                    ax.text(
                        j,
                        i,
                        str(int(matrix[i, j])),
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black",
                    )
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _reliability_png(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: Path) -> None:
    fig, axes = plt.subplots(1, len(curves), figsize=(4 * len(curves), 4))
    for ax, (name, (conf, correct)) in zip(np.atleast_1d(axes), curves.items(), strict=True):
        points = m.reliability(conf, correct)
        ax.plot([0, 1], [0, 1], "--", color="grey", linewidth=1)
        ax.plot([p[0] for p in points], [p[1] for p in points], "o-")
        ax.set_title(f"{name} (ECE {m.ece(conf, correct):.3f})")
        ax.set_xlabel("confidence")
        ax.set_ylabel("accuracy")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write_all(
    pack_dir: Path,
    val: dict[str, Any],
    logits: dict[str, dict[str, np.ndarray]],
    temps: dict[str, float],
    thresholds: np.ndarray,
    seed: int,
) -> list[str]:
    """Write every figure for the report halves; returns paths relative to the pack."""
    out_dir = pack_dir / FIG_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    ys, zs = [], []
    for name in ("tweeteval", "complaints", "sgd", "requests"):
        _, rows = report_half(val, name, seed)
        keep, y = single_label_rows(val[name], rows, "sentiment")
        ys.append(y)
        zs.append(logits[name]["sentiment"][keep])
    y, probs = np.concatenate(ys), m.softmax(np.concatenate(zs), temps["sentiment"])
    _confusion_png(
        m.confusion(y, probs.argmax(1), 3),
        LABELS["sentiment"],
        "sentiment (tweets, complaints, calm turns, requests)",
        out_dir / "confusion_sentiment.png",
    )
    curves["sentiment"] = (probs.max(1), probs.argmax(1) == y)
    _, rows = report_half(val, "requests", seed)
    keep, y = single_label_rows(val["requests"], rows, "intent")
    probs = m.softmax(logits["requests"]["intent"][keep], temps["intent"])
    pred = probs.argmax(1)
    cat = {c: i for i, c in enumerate(CATEGORIES)}
    yc = np.array([cat[category_of(LABELS["intent"][i])] for i in y])
    pc = np.array([cat[category_of(LABELS["intent"][i])] for i in pred])
    _confusion_png(
        m.confusion(yc, pc, len(CATEGORIES)),
        list(CATEGORIES),
        "intent, by contact-reason category",
        out_dir / "confusion_intent_categories.png",
    )
    curves["intent"] = (probs.max(1), pred == y)
    ys, zs = [], []
    for name in ("sgd", "sgd_requests"):
        _, rows = report_half(val, name, seed)
        keep, y = single_label_rows(val[name], rows, "act")
        ys.append(y)
        zs.append(logits[name]["act"][keep])
    y, probs = np.concatenate(ys), m.softmax(np.concatenate(zs), temps["act"])
    _confusion_png(
        m.confusion(y, probs.argmax(1), len(LABELS["act"])),
        LABELS["act"],
        "conversation act (SGD dev)",
        out_dir / "confusion_act.png",
    )
    curves["act"] = (probs.max(1), probs.argmax(1) == y)
    samples, rows = report_half(val, "goemotions", seed)
    y_go, _ = emotion_arrays(samples)
    probs = m.sigmoid(logits["goemotions"]["emotion"][rows], temps["emotion"])
    pred = probs >= thresholds
    labels = LABELS["emotion"]
    matrix = np.zeros((len(labels), 2, 2), dtype=np.int64)
    for j in range(len(labels)):
        matrix[j] = m.confusion(y_go[:, j].astype(int), pred[:, j].astype(int), 2)
    _emotion_png(matrix, labels, out_dir / "confusion_emotion.png")
    curves["emotion (per label)"] = (probs.ravel(), y_go.ravel().astype(bool))
    _reliability_png(curves, out_dir / "reliability.png")
    names = [
        "confusion_sentiment",
        "confusion_intent_categories",
        "confusion_act",
        "confusion_emotion",
        "reliability",
    ]
    return [f"{FIG_DIR}/{name}.png" for name in names]


def _emotion_png(matrix: np.ndarray, labels: list[str], path: Path) -> None:
    fig, axes = plt.subplots(2, 4, figsize=(10, 5))
    for ax, label, cm in zip(axes.ravel(), labels, matrix, strict=True):
        ax.imshow(cm / max(1, cm.sum()), cmap="Blues")
        for i in range(2):
            for j in range(2):
                ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", fontsize=8)
        ax.set_title(label, fontsize=9)
        ax.set_xticks([0, 1], ["no", "yes"])
        ax.set_yticks([0, 1], ["no", "yes"])
    fig.suptitle("emotion: true (rows) vs predicted (columns), GoEmotions dev")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
