"""Post-processing: logits of one batch -> calibrated probabilities -> typed results.

Vectorised over the batch with numpy; only the final per-text assembly is a
Python loop (``tolist()`` converts to plain floats in one step).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from models.language import LanguageResult
from models.manifest import HeadSpec
from models.normalize import Normalized
from models.types import UNKNOWN, ActResult, EmotionResult, IntentResult, SentimentResult, TextPrediction

TOP_K_INTENTS = 5
DEFAULT_THRESHOLD = 0.5
MAX_EMOTIONS = 2
NEUTRAL_EMOTION = "neutral"
# Emotions that contradict a negative turn: "thanks for nothing" is not gratitude.
POSITIVE_EMOTIONS = frozenset({"gratitude", "joy"})


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise ``softmax(logits / temperature)`` in float64 (numerically stable)."""
    scaled = logits.astype(np.float64) / temperature
    scaled -= scaled.max(axis=-1, keepdims=True)
    exp = np.exp(scaled)
    return exp / exp.sum(axis=-1, keepdims=True)


def sigmoid(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Element-wise ``sigmoid(logits / temperature)`` in float64."""
    return 1.0 / (1.0 + np.exp(-logits.astype(np.float64) / temperature))


def calibrate(logits: np.ndarray, head: HeadSpec) -> np.ndarray:
    """Calibrated probabilities of a head's logits [batch, labels] (its kind and temperature)."""
    if head.kind == "softmax":
        return softmax(logits, head.temperature)
    return sigmoid(logits, head.temperature)


def sentiment_results(probs: np.ndarray, labels: Sequence[str]) -> list[SentimentResult]:
    """Label, p(positive) - p(negative), confidence and all probabilities per row."""
    pos, neg = labels.index("positive"), labels.index("negative")
    best = probs.argmax(axis=-1).tolist()
    results = []
    for row, top in zip(probs.tolist(), best, strict=True):
        results.append(
            SentimentResult(
                label=labels[top],
                score=row[pos] - row[neg],
                confidence=row[top],
                probs=dict(zip(labels, row, strict=True)),
            )
        )
    return results


def emotion_labels(ranked: Sequence[str], negative: bool) -> list[str]:
    """The emotions to report from those over threshold (strongest first).

    At most ``MAX_EMOTIONS``; ``neutral`` only when nothing else fired; no
    gratitude or joy on a turn whose sentiment is negative.
    """
    kept = [x for x in ranked if not (negative and x in POSITIVE_EMOTIONS)]
    emotional = [x for x in kept if x != NEUTRAL_EMOTION]
    return emotional[:MAX_EMOTIONS] if emotional else kept[:1]


def emotion_results(
    probs: np.ndarray,
    labels: Sequence[str],
    thresholds: Mapping[str, float],
    negative: Sequence[bool] | None = None,
) -> list[EmotionResult]:
    """Every label's score, and the labels to report (see ``emotion_labels``), strongest first.

    Labels without a threshold in the manifest use 0.5. The list may be empty.
    ``negative[i]`` says whether row ``i``'s sentiment is negative.
    """
    cut = np.array([thresholds.get(label, DEFAULT_THRESHOLD) for label in labels])
    order = np.argsort(-probs, axis=-1, kind="stable").tolist()
    over = (probs >= cut).tolist()
    flags = list(negative) if negative is not None else [False] * len(probs)
    results = []
    for row, row_order, row_over, neg in zip(probs.tolist(), order, over, flags, strict=True):
        ranked = [labels[i] for i in row_order if row_over[i]]
        results.append(
            EmotionResult(labels=emotion_labels(ranked, neg), scores=dict(zip(labels, row, strict=True)))
        )
    return results


def intent_results(probs: np.ndarray, labels: Sequence[str], k: int = TOP_K_INTENTS) -> list[IntentResult]:
    """Best intent, its probability, and the top-``k`` (label, prob) pairs best first."""
    k = min(k, probs.shape[-1])
    top = np.argsort(-probs, axis=-1, kind="stable")[:, :k]
    top_probs = np.take_along_axis(probs, top, axis=-1).tolist()
    results = []
    for indices, values in zip(top.tolist(), top_probs, strict=True):
        alternatives = [(labels[i], p) for i, p in zip(indices, values, strict=True)]
        results.append(
            IntentResult(label=alternatives[0][0], confidence=values[0], alternatives=alternatives)
        )
    return results


def preferred(probs: np.ndarray, labels: Sequence[str], thresholds: Mapping[str, float]) -> np.ndarray:
    """Argmax per row, except that a label with a threshold wins whenever it reaches it.

    This is how a softmax head states a decision threshold for one class (the
    act head's ``reason``: a need stated in passing should still count).
    """
    best = probs.argmax(axis=-1)
    for label, cut in thresholds.items():
        column = list(labels).index(label)
        best = np.where(probs[:, column] >= cut, column, best)
    return best


def act_results(
    probs: np.ndarray, labels: Sequence[str], thresholds: Mapping[str, float] | None = None
) -> list[ActResult]:
    """Chosen act (``preferred``), its probability and every act's probability per row."""
    best = preferred(probs, labels, thresholds or {}).tolist()
    return [
        ActResult(label=labels[top], confidence=row[top], probs=dict(zip(labels, row, strict=True)))
        for row, top in zip(probs.tolist(), best, strict=True)
    ]


def quiet(
    sentiment_labels: Sequence[str], emotion_labels_: Sequence[str]
) -> tuple[SentimentResult, EmotionResult]:
    """Neutral sentiment and no emotion: what a turn without lexical content gets."""
    probs = {label: (1.0 if label == "neutral" else 0.0) for label in sentiment_labels}
    return (
        SentimentResult(label="neutral", score=0.0, confidence=1.0, probs=probs),
        EmotionResult(labels=[], scores=dict.fromkeys(emotion_labels_, 0.0)),
    )


NO_INTENT = IntentResult(label=UNKNOWN, confidence=0.0, alternatives=[])


def _unjudged(language: LanguageResult, embedding: np.ndarray | None) -> TextPrediction:
    """A turn in a language the pack does not support: reported, not guessed."""
    return TextPrediction(
        sentiment=SentimentResult(label=UNKNOWN, score=0.0, confidence=0.0, probs={}),
        emotion=EmotionResult(labels=[], scores={}),
        intent=NO_INTENT,
        act=ActResult(label=UNKNOWN, confidence=0.0, probs={}),
        language=language,
        embedding=embedding,
    )


def _rule_act(norm: Normalized) -> str:
    return "repeat_request" if norm.repeat_request else "non_lexical"


def predictions(
    logits: Mapping[str, np.ndarray],
    heads: Mapping[str, HeadSpec],
    norms: Sequence[Normalized],
    languages: Sequence[LanguageResult],
    embeddings: np.ndarray | None = None,
) -> list[TextPrediction]:
    """Assemble one ``TextPrediction`` per row from every head's logits and the turn's normalisation.

    A non-lexical turn is quiet (neutral, no emotion, no intent, act ``non_lexical``, or
    ``repeat_request`` when it only asks the other side to repeat itself);
    a turn in an unsupported language is unknown on every head.
    """
    sentiment_head, emotion_head, intent_head = heads["sentiment"], heads["emotion"], heads["intent"]
    sentiment = sentiment_results(calibrate(logits["sentiment"], sentiment_head), sentiment_head.labels)
    emotion = emotion_results(
        calibrate(logits["emotion"], emotion_head),
        emotion_head.labels,
        emotion_head.thresholds,
        [s.label == "negative" for s in sentiment],
    )
    intent = intent_results(calibrate(logits["intent"], intent_head), intent_head.labels)
    act_head = heads.get("act")
    acts = (
        act_results(calibrate(logits["act"], act_head), act_head.labels, act_head.thresholds)
        if act_head is not None
        else [ActResult(label=UNKNOWN, confidence=0.0, probs={})] * len(intent)
    )
    vectors: list[np.ndarray | None] = [None] * len(intent)
    if embeddings is not None:
        rows = np.array(embeddings, dtype=np.float32)  # a copy: the session may reuse its buffer
        rows.flags.writeable = False
        vectors = list(rows)
    out = []
    for row, norm in enumerate(norms):
        language, vector = languages[row], vectors[row]
        if not norm.lexical:
            quiet_sentiment, quiet_emotion = quiet(sentiment_head.labels, emotion_head.labels)
            out.append(
                TextPrediction(
                    sentiment=quiet_sentiment,
                    emotion=quiet_emotion,
                    intent=NO_INTENT,
                    act=ActResult(label=_rule_act(norm), confidence=1.0, probs={}),
                    language=language,
                    lexical=False,
                    embedding=vector,
                )
            )
        elif not language.supported:
            out.append(_unjudged(language, vector))
        else:
            act = acts[row]
            if norm.greeting:
                act = ActResult(label="greeting", confidence=1.0, probs=act.probs)
            elif norm.hold:
                act = ActResult(label="hold", confidence=1.0, probs=act.probs)
            out.append(
                TextPrediction(
                    sentiment=sentiment[row],
                    emotion=emotion[row],
                    intent=intent[row],
                    act=act,
                    language=language,
                    embedding=vector,
                )
            )
    return out
