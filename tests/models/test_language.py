"""Language of a turn: short turns are undetermined, confident foreign turns are unsupported."""

from __future__ import annotations

import pytest

from models.language import UNDETERMINED, LanguageDetector


@pytest.fixture(scope="module")
def detector() -> LanguageDetector:
    return LanguageDetector(["en"])


@pytest.mark.parametrize("text", ["hi", "yes", "ok", "no thank you", "I lost my card", "", "4111"])
def test_short_turns_are_undetermined_and_count_as_supported(detector: LanguageDetector, text: str) -> None:
    result = detector.detect(text)
    assert result.code == UNDETERMINED
    assert result.supported is True


@pytest.mark.parametrize(
    "text",
    [
        "how do I check my balance please",
        "my card hasn't arrived yet",
        "can i book an appointment for friday",
    ],
)
def test_english_turns_are_supported(detector: LanguageDetector, text: str) -> None:
    result = detector.detect(text)
    assert result.code == "en"
    assert result.supported is True


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("Hola, perdí mi tarjeta de crédito ayer", "es"),
        ("Je voudrais parler à un conseiller", "fr"),
        ("Ich möchte mein Konto kündigen", "de"),
        ("我的信用卡丢了，请帮我冻结", "zh"),
    ],
)
def test_confident_foreign_turns_are_unsupported(detector: LanguageDetector, text: str, code: str) -> None:
    result = detector.detect(text)
    assert result.code == code
    assert result.supported is False
    assert result.confidence >= 0.75


def test_a_pack_that_supports_the_language_accepts_it() -> None:
    assert LanguageDetector(["en", "es"]).detect("Hola, perdí mi tarjeta de crédito ayer").supported is True
