"""Classification metrics and calibration, in numpy (no scikit-learn needed)."""

from __future__ import annotations

import itertools

import numpy as np


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``logits / temperature``."""
    z = logits / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 length (all-zero rows stay zero)."""
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def sigmoid(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Element-wise logistic of ``logits / temperature``."""
    return 1.0 / (1.0 + np.exp(-logits / temperature))


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n: int) -> np.ndarray:
    """``n x n`` confusion matrix, rows = truth, columns = prediction."""
    matrix = np.zeros((n, n), dtype=np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


def per_class(
    y_true: np.ndarray, y_pred: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall, F1 and support per class (0 where undefined)."""
    m = confusion(y_true, y_pred, n)
    tp = np.diag(m).astype(float)
    support = m.sum(1).astype(float)
    predicted = m.sum(0).astype(float)
    precision = np.divide(tp, predicted, out=np.zeros(n), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(n), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros(n), where=denom > 0)
    return precision, recall, f1, support


def macro_recall(y_true: np.ndarray, y_pred: np.ndarray, n: int) -> float:
    """Mean recall over classes present in ``y_true`` (the SemEval-2017 4A metric)."""
    _, recall, _, support = per_class(y_true, y_pred, n)
    return float(recall[support > 0].mean())


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, n: int) -> float:
    """Mean F1 over classes present in ``y_true``."""
    _, _, f1, support = per_class(y_true, y_pred, n)
    return float(f1[support > 0].mean())


def multilabel_f1(targets: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Per-label F1 for multi-hot ``targets`` and boolean ``predicted``."""
    t = targets.astype(bool)
    p = predicted.astype(bool)
    tp = (t & p).sum(0).astype(float)
    denom = t.sum(0) + p.sum(0)
    return np.divide(2 * tp, denom, out=np.zeros(t.shape[1]), where=denom > 0)


def multilabel_macro_f1(targets: np.ndarray, predicted: np.ndarray) -> float:
    """Macro-F1 over labels for multi-label predictions."""
    return float(multilabel_f1(targets, predicted).mean())


def ece(confidence: np.ndarray, correct: np.ndarray, bins: int = 15) -> float:
    """Expected calibration error with equal-width confidence bins."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    total = 0.0
    for lo, hi in itertools.pairwise(edges):
        inside = (confidence > lo) & (confidence <= hi)
        if inside.any():
            total += inside.mean() * abs(confidence[inside].mean() - correct[inside].mean())
    return float(total)


def reliability(
    confidence: np.ndarray, correct: np.ndarray, bins: int = 15
) -> list[tuple[float, float, int]]:
    """(mean confidence, accuracy, count) per non-empty bin, for the reliability diagram."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    out = []
    for lo, hi in itertools.pairwise(edges):
        inside = (confidence > lo) & (confidence <= hi)
        if inside.any():
            out.append((float(confidence[inside].mean()), float(correct[inside].mean()), int(inside.sum())))
    return out


def fit_temperature(logits: np.ndarray, targets: np.ndarray, multilabel: bool = False) -> float:
    """Temperature minimising validation negative log-likelihood (golden-section on log T)."""

    def nll(log_t: float) -> float:
        t = float(np.exp(log_t))
        if multilabel:
            p = np.clip(sigmoid(logits, t), 1e-7, 1 - 1e-7)
            return float(-(targets * np.log(p) + (1 - targets) * np.log(1 - p)).mean())
        p = softmax(logits, t)
        return float(-np.log(np.clip(p[np.arange(len(targets)), targets], 1e-12, None)).mean())

    lo, hi = np.log(0.05), np.log(20.0)
    ratio = (np.sqrt(5) - 1) / 2
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    for _ in range(60):
        if nll(a) < nll(b):
            hi = b
        else:
            lo = a
        a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    return float(np.exp((lo + hi) / 2))


def tune_thresholds(probs: np.ndarray, targets: np.ndarray, grid: np.ndarray | None = None) -> np.ndarray:
    """Per-label threshold maximising that label's F1 on validation data."""
    grid = np.linspace(0.05, 0.95, 37) if grid is None else grid
    best = np.full(probs.shape[1], 0.5)
    for j in range(probs.shape[1]):
        scores = [multilabel_f1(targets[:, [j]], probs[:, [j]] >= g)[0] for g in grid]
        best[j] = grid[int(np.argmax(scores))]
    return best
