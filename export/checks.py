"""Checks of the finished pack through the real serving ``Runtime``.

These measure what the runtime adds around the graph: transcript
normalisation (non-lexical turns must come back neutral and quiet), language
ID on short turns, and batch invariance (a text's scores must not depend on
its batch neighbours). ``python -m export evaluate`` runs them and the model
card quotes them.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np

from export.mix import Sample
from models.runtime import Runtime, RuntimeConfig
from models.types import TextPrediction

TAGS = ("[noise]", "<unk>", "[laughter]", "[inaudible]", "(inaudible)", "[crosstalk]", "<noise>", "[silence]")
FILLERS = ("um", "uh", "er", "hmm", "mm hmm", "uh huh", "mhm", "erm", "ah")
BACKCHANNELS = ("okay", "yeah", "right", "alright", "ok", "yep", "oh okay", "yeah yeah")
DIGITS = ("zero", "oh", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
NUMBERS = ("eighty one", "two hundred fifty", "nineteen", "forty two", "a hundred", "twenty twenty")

# Hand-written customer-service turns in languages the default pack does not support,
# for the language-ID check (not training data).
FOREIGN: tuple[tuple[str, str], ...] = (
    ("es", "Hola, perdí mi tarjeta de crédito ayer"),
    ("es", "quiero cancelar mi cuenta ahora mismo"),
    ("es", "no he recibido mi reembolso todavía"),
    ("fr", "Bonjour, je voudrais parler à un conseiller"),
    ("fr", "ma carte bancaire a été refusée au magasin"),
    ("fr", "je n'ai toujours pas reçu mon colis"),
    ("de", "Ich möchte mein Konto kündigen"),
    ("de", "meine Karte wurde gestohlen, bitte sperren"),
    ("de", "wann kommt meine neue Kreditkarte an"),
    ("it", "vorrei bloccare la mia carta di credito"),
    ("it", "non ho ancora ricevuto il rimborso"),
    ("pt", "Eu perdi meu cartão de crédito ontem"),
    ("pt", "quero falar com um atendente por favor"),
    ("nl", "ik wil mijn rekening opzeggen alstublieft"),
    ("nl", "mijn pas is gestolen wat moet ik doen"),
    ("pl", "chciałbym zablokować moją kartę kredytową"),
    ("tr", "kredi kartımı kaybettim ne yapmalıyım"),
    ("ru", "я потерял свою кредитную карту вчера"),
    ("zh", "我的信用卡丢了，请帮我冻结"),
    ("ja", "クレジットカードをなくしてしまいました"),
    ("ar", "لقد فقدت بطاقتي الائتمانية أمس"),
    ("hi", "मेरा क्रेडिट कार्ड खो गया है"),
)


def non_lexical_turns(n: int, seed: int) -> list[str]:
    """Turns with no lexical content as speech-to-text output spells them: tags, fillers, digits."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(1, 4)):
            kind = rng.random()
            if kind < 0.25:
                parts.append(rng.choice(TAGS))
            elif kind < 0.5:
                parts.append(rng.choice(FILLERS))
            elif kind < 0.65:
                parts.append(rng.choice(BACKCHANNELS))
            elif kind < 0.9:
                parts.append(" ".join(rng.choice(DIGITS) for _ in range(rng.randint(2, 8))))
            else:
                parts.append(rng.choice(NUMBERS))
            if rng.random() < 0.2:
                parts.append(rng.choice(("and", "uh", ",", "ca~")))
        out.append(" ".join(parts))
    return out


def _quiet(p: TextPrediction) -> bool:
    return p.sentiment.label == "neutral" and not p.emotion.labels


def _vector(p: TextPrediction) -> np.ndarray:
    values = [
        *p.sentiment.probs.values(),
        *p.emotion.scores.values(),
        p.intent.confidence,
        *p.act.probs.values(),
    ]
    return np.array(values, dtype=np.float64)


def invariance(runtime: Runtime, texts: list[str], seed: int) -> dict[str, Any]:
    """Each text alone vs inside batches of 8 and 32 random neighbours: label changes and max |dp|."""
    rng = random.Random(seed)
    alone = [runtime.predict([t])[0] for t in texts]
    out: dict[str, Any] = {"texts": len(texts)}
    for size in (8, 32):
        flips, worst = 0, 0.0
        for i, text in enumerate(texts):
            neighbours = rng.sample(texts, size - 1)
            batch = runtime.predict([text, *neighbours])
            mine = batch[0]
            flips += int(
                mine.sentiment.label != alone[i].sentiment.label
                or mine.emotion.labels != alone[i].emotion.labels
                or mine.intent.label != alone[i].intent.label
                or mine.act.label != alone[i].act.label
            )
            worst = max(worst, float(np.abs(_vector(mine) - _vector(alone[i])).max()))
        out[f"batch_{size}"] = {"label_changes": flips, "max_abs_prob_diff": worst}
    return out


def runtime_checks(pack_dir: Path, val: dict[str, list[Sample]], seed: int) -> dict[str, Any]:
    """Non-lexical quietness, language ID on short turns and batch invariance, through ``Runtime``."""
    runtime = Runtime.load(pack_dir, RuntimeConfig(max_batch_size=32))
    turns = non_lexical_turns(600, seed)
    quiet = [_quiet(p) for p in runtime.predict(turns)]
    sgd = [s.text for s in val.get("sgd", [])][:3000]
    sgd_pred = runtime.predict(sgd)
    judged = [p for p in sgd_pred if p.language.code != "und"]
    foreign = runtime.predict([text for _, text in FOREIGN])
    rng = random.Random(seed)
    pool = [s.text for items in val.values() for s in items]
    sample = rng.sample(pool, min(256, len(pool)))
    loose = Runtime.load(pack_dir, RuntimeConfig(max_batch_size=32, invariant=False))
    return {
        "non_lexical": {
            "turns": len(turns),
            "quiet_rate": float(np.mean(quiet)),
            "calm_turns_taken_for_non_lexical": float(np.mean([not p.lexical for p in sgd_pred])),
        },
        "language": {
            "short_english_turns": len(sgd),
            "judged_rate": len(judged) / max(1, len(sgd)),
            "english_when_judged": float(np.mean([p.language.code == "en" for p in judged]))
            if judged
            else 0.0,
            "wrongly_unsupported_rate": float(np.mean([not p.language.supported for p in sgd_pred])),
            "foreign_turns": len(FOREIGN),
            "foreign_flagged_unsupported": float(np.mean([not p.language.supported for p in foreign])),
            "foreign_code_correct": float(
                np.mean([p.language.code == code for p, (code, _) in zip(foreign, FOREIGN, strict=True)])
            ),
        },
        "invariance": invariance(runtime, sample, seed),
        "invariance_without_per_text_runs": invariance(loose, sample[:64], seed),
    }
