"""The compact automaton scores every text exactly as py3langid's own identifier does."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from py3langid.langid import MODEL_DIR, MODEL_FILE, LanguageIdentifier

from models.langid import FAR, CompactIdentifier
from models.language import CANDIDATES

# Letters of several scripts, digits, punctuation and spaces: random strings over them reach deep
# states of the automaton (and its far entries) that ordinary English turns never visit.
ALPHABET = (
    "abcdefghijklmnopqrstuvwxyz ABCXYZ 0123456789 .,!?'- éèüößñçãõ "
    "абвгдежзийклмнопрстуфхцчшщыэюя 日本語中文한국어 ابتثجحخدذرزسشصضطظعغفقكلمنهوي αβγδεζηθ שלום हिंदी"
)
TURNS = [
    "I was charged twice for my subscription this month and nobody called me back",
    "hi um yeah I'm calling about my bill it's way higher than last month",
    "Hola, perdí mi tarjeta de crédito ayer y necesito bloquearla",
    "Je voudrais annuler mon abonnement, le service est vraiment mauvais",
    "Ich möchte meine Adresse ändern, bitte",
    "Здравствуйте, у меня не работает интернет уже третий день",
    "我的账户被锁定了，请帮我解锁",
    "ok",
    "",
    "4111 1111 1111 1111",
    "THIS IS THE THIRD TIME I AM CALLING ABOUT THIS",
]


@pytest.fixture(scope="module")
def identifiers() -> tuple[LanguageIdentifier, CompactIdentifier]:
    stock = LanguageIdentifier.from_modelpath(Path(MODEL_DIR) / MODEL_FILE, norm_probs=True)
    stock.set_languages(list(CANDIDATES))
    return stock, CompactIdentifier.bundled(list(CANDIDATES))


def corpus() -> list[str]:
    rng = random.Random(7)
    noise = ["".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 240))) for _ in range(1500)]
    return TURNS + noise


def test_every_score_is_py3langids(identifiers: tuple[LanguageIdentifier, CompactIdentifier]) -> None:
    stock, compact = identifiers
    for text in corpus():
        assert compact.classify(text) == stock.classify(text), text
        assert compact._decide(text).tobytes() == stock._decide(text).tobytes(), text


def test_far_entries_are_reached_and_scored_alike(
    identifiers: tuple[LanguageIdentifier, CompactIdentifier],
) -> None:
    """The corpus walks through far entries, so the comparison above covers them."""
    _, compact = identifiers
    visited_far = 0
    for text in corpus():
        state = compact._start
        for byte in compact._encode(text):
            at = compact._bases[state] + byte
            state = compact._moves[at]
            if state == FAR:
                visited_far += 1
                state = compact._far[at]
    assert visited_far > 0


def test_the_automaton_is_16_bit_and_py3langids_tables_are_gone(
    identifiers: tuple[LanguageIdentifier, CompactIdentifier],
) -> None:
    stock, compact = identifiers
    entries = len(stock.tk_nextmove)
    assert compact._moves.itemsize == 2 and len(compact._moves) == entries
    assert len(compact._far) < entries // 100
    assert len(compact.tk_nextmove) == len(compact.tk_output) == len(compact._rowbase) == 0
    assert compact._full_model is None


def test_an_unknown_language_is_refused() -> None:
    with pytest.raises(ValueError, match="Unknown language"):
        CompactIdentifier.bundled(["en", "xx"])
