"""Language of a turn, offline: py3langid's bundled model (no download, ~0.1 ms a turn).

Short turns are where language ID fails ("ok" scores Serbian, "yes" Walloon),
and a contact centre's turns are short. So a turn is only *judged* when it has
enough letters (``MIN_LETTERS``) and enough words (``MIN_WORDS``); otherwise its
language is ``und`` (undetermined) and it counts neither way. The candidate
set is restricted to widely spoken languages, which removes the exotic
near-ties (Nigerian Pidgin for a plain English sentence) that an unrestricted
97-language model produces on a few words. A judged turn is *unsupported*
only when a language outside the pack's list wins with at least
``MIN_CONFIDENCE``: when in doubt we keep the customer's turn in play rather
than throw away its scores.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

import msgspec

if TYPE_CHECKING:
    from models.langid import CompactIdentifier

UNDETERMINED = "und"
MIN_LETTERS = 12
MIN_WORDS = 3
MIN_CONFIDENCE = 0.75
# Widely spoken languages py3langid knows; the restriction is what makes short turns usable.
CANDIDATES: tuple[str, ...] = (
    "en", "es", "fr", "de", "it", "pt", "nl", "pl", "ro", "sv", "da", "no", "fi", "cs", "hu", "el",
    "tr", "ru", "uk", "ar", "he", "fa", "hi", "bn", "ur", "zh", "ja", "ko", "vi", "th", "id", "ms", "tl",
)  # fmt: skip
_LETTERS = re.compile(r"[^\W\d_]", re.UNICODE)
_WORDS = re.compile(r"[^\W\d_]{2,}", re.UNICODE)
# Scripts where words are not separated by spaces: count characters instead.
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af\u0e00-\u0e7f]")


class LanguageResult(msgspec.Struct, frozen=True):
    """Language of one text.

    ``code`` is an ISO 639-1 code or ``und``; ``confidence`` the model's
    probability for it among ``CANDIDATES`` (0 when undetermined); ``supported``
    is False only for a confident language the pack does not support.
    """

    code: str
    confidence: float
    supported: bool


@functools.cache
def _identifier(languages: tuple[str, ...]) -> CompactIdentifier:
    # One per process, built on first use (about 1 s, 31 MB; see ``models.langid``): every engine of
    # the process shares it, since nothing in it changes after it is built.
    from models.langid import CompactIdentifier

    return CompactIdentifier.bundled(list(languages))


class LanguageDetector:
    """Thread-safe language detection with py3langid's identifier restricted to ``CANDIDATES``.

    Every detector of a process shares one identifier (``models.langid``): its walk
    and scores live in each call's own variables, so calls need no lock.
    """

    def __init__(self, supported: Iterable[str]) -> None:
        self.supported = frozenset(supported)
        self._identifier = _identifier(CANDIDATES)

    def detect(self, text: str) -> LanguageResult:
        """The language of ``text``; ``und`` (supported) when it is too short to tell."""
        cjk = len(_CJK.findall(text))  # one ideogram carries about a word
        letters = len(_LETTERS.findall(text)) + 2 * cjk
        words = len(_WORDS.findall(text)) + cjk
        if letters < MIN_LETTERS or words < MIN_WORDS:
            return LanguageResult(UNDETERMINED, 0.0, True)
        code, confidence = self._identifier.classify(text)
        confidence = float(confidence)
        supported = code in self.supported or confidence < MIN_CONFIDENCE
        return LanguageResult(str(code), round(confidence, 4), supported)

    def detect_many(self, texts: Iterable[str]) -> list[LanguageResult]:
        """``detect`` for each text, in order."""
        return [self.detect(text) for text in texts]
