"""The headline figures of a pack and their quality bars.

``HEADLINE`` names, by dotted key into the evaluation report, every figure the
model card states a bar for; ``headline(report)`` picks those figures out.
Shared by ``export.evaluate`` (which computes them) and ``export.card`` (which
prints them against their bars).
"""

from __future__ import annotations

from typing import Any

__all__ = ["HEADLINE", "headline", "lookup"]

HEADLINE: dict[str, tuple[str, float | None, str]] = {
    # key: (description, bar, direction: ">=" or "<=")
    "benchmarks.banking77_accuracy": ("Banking77 intent accuracy", 0.92, ">="),
    "benchmarks.clinc_in_scope_accuracy": ("CLINC banking/credit in-scope accuracy", 0.92, ">="),
    "benchmarks.clinc_oos_recall": ("CLINC out-of-scope recall", 0.85, ">="),
    "benchmarks.tweeteval_macro_recall": (
        "Sentiment macro-recall, TweetEval (SemEval-2017 style)",
        0.70,
        ">=",
    ),
    "benchmarks.goemotions_macro_f1": ("Emotion macro-F1, 8 labels, GoEmotions dev", 0.60, ">="),
    "conversations.calm_task_turns.negative_rate": ("Calm task turns (SGD dev) called negative", 0.08, "<="),
    "conversations.calm_task_turns.anger_or_frustration_rate": (
        "Calm task turns with anger or frustration",
        0.03,
        "<=",
    ),
    "conversations.calm_task_turns_spoken.negative_rate": (
        "Calm task turns, spoken form, called negative",
        0.08,
        "<=",
    ),
    "conversations.bank_requests.anger_rate": ("Plain bank requests with anger", 0.05, "<="),
    "conversations.bank_requests.joy_or_gratitude_rate": (
        "Plain bank requests with joy or gratitude",
        0.05,
        "<=",
    ),
    "conversations.bank_requests.emotions_per_turn": (
        "Plain bank requests: non-neutral emotions per turn",
        0.6,
        "<=",
    ),
    "conversations.bank_requests.negative_rate": ("Plain bank requests called negative", None, "<="),
    "conversations.bank_requests_spoken.negative_rate": (
        "Bank requests, spoken form, called negative",
        0.08,
        "<=",
    ),
    "conversations.complaints.negative_recall": ("Complaint tweets: negative recall", 0.85, ">="),
    "conversations.complaints.accuracy": ("Complaint tweets: accuracy (complaint = negative)", 0.80, ">="),
    "conversations.complaints_turns.negative_recall": (
        "Complaint tweets as chat turns (no @handle, no link): negative recall",
        None,
        ">=",
    ),
    "conversations.complaints_turns.accuracy": ("Complaint tweets as chat turns: accuracy", None, ">="),
    "conversations.complaints_spoken.negative_recall": (
        "Complaint tweets as spoken turns (no handle, lower case, no punctuation): negative recall",
        None,
        ">=",
    ),
    "conversations.complaints_spoken.accuracy": ("Complaint tweets as spoken turns: accuracy", None, ">="),
    "conversations.acts.reason_f1": ("Conversation act: reason vs rest F1 (SGD dev)", 0.90, ">="),
    "conversations.acts.accuracy": ("Conversation act accuracy, 6 acts (SGD dev)", None, ">="),
}


def lookup(report: dict[str, Any], key: str) -> float | None:
    """A dotted key of a report, or None."""
    node: Any = report
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return float(node)


def headline(report: dict[str, Any]) -> dict[str, float]:
    """The figures the quality bars are stated in."""
    out = {}
    for key in HEADLINE:
        value = lookup(report, key)
        if value is not None:
            out[key] = round(value, 4)
    return out
