"""PII redaction with typed placeholders.

What a human or a downstream system sees of a transcript goes through
``redact``. Each detector is tuned to catch the real thing and leave alone the
look-alikes that agents need (order numbers, dates, amounts, times, reference
codes):

* ``[CARD_NUMBER]``: 13-19 digits, optionally grouped by spaces or dashes,
  starting like a payment card (2-6) and passing the Luhn check.
* ``[CVV]``: 3-4 digits next to a card-security word (CVV, CVC, security code...).
* ``[SSN]``: US social security numbers written ``123-45-6789``/``123 45 6789``
  (area/group/serial rules applied), or 9 bare digits right after "SSN"/"social security".
* ``[IBAN]``: country code + check digits + 11-30 characters, mod-97 checked.
* ``[EMAIL]``: e-mail addresses, also as voice transcripts spell them ("jo at example dot com").
* ``[PHONE]``: ``+`` international numbers (8-15 digits) and 10-11 digit numbers,
  unless they look like a date or follow an order/reference word.

Detectors run on the original text; overlapping finds are resolved in favour of
the earliest, then the more specific type. Pure functions, no I/O.
"""

from __future__ import annotations

import re
from typing import Literal

import msgspec

PiiKind = Literal["CARD_NUMBER", "CVV", "SSN", "IBAN", "EMAIL", "PHONE"]
PII_KINDS: tuple[PiiKind, ...] = ("CARD_NUMBER", "CVV", "SSN", "IBAN", "EMAIL", "PHONE")
# Lower wins when two finds start at the same place.
_PRECEDENCE: dict[str, int] = {"EMAIL": 0, "IBAN": 1, "CARD_NUMBER": 2, "SSN": 3, "CVV": 4, "PHONE": 5}


class PiiMatch(msgspec.Struct, frozen=True):
    """One piece of PII found in a text: ``text[start:end]`` is of type ``kind``."""

    kind: PiiKind
    start: int
    end: int


# --- payment cards -----------------------------------------------------------

_CARD = re.compile(r"(?<![\w.,])[2-6](?:[ -]?\d){12,18}(?![\w]|[.,]\d)")


def luhn_valid(digits: str) -> bool:
    """Return whether ``digits`` (only 0-9) passes the Luhn checksum."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _cards(text: str) -> list[PiiMatch]:
    found = []
    for m in _CARD.finditer(text):
        raw = m.group(0)
        # A separator may not be doubled or mixed ("4111-1111 1111-1111" is fine,
        # "12 - 34" is prose), and the digit count must fit a card.
        if "  " in raw or "--" in raw:
            continue
        digits = re.sub(r"\D", "", raw)
        if 13 <= len(digits) <= 19 and luhn_valid(digits):
            found.append(PiiMatch("CARD_NUMBER", m.start(), m.end()))
    return found


# --- card security codes -----------------------------------------------------

_CARD_WORD = (
    r"(?:c\.?\s?v\.?\s?v2?|c\.?\s?v\.?\s?c2?|cvn|csc|cid|security\s+(?:code|number|digits)"
    r"|card\s+verification(?:\s+(?:code|value|number))?|(?:three|3|four|4)[\s-]digit\s+code"
    r"|code\s+on\s+the\s+back)"
)
# Word, then a little filler ("is", ":", "number is"), then the code.
_CVV_AFTER = re.compile(
    _CARD_WORD + r"(?:\s*(?:is|was|number|no\.?|=|:|-|it's|its)){0,3}\s*[:#-]?\s*(?<!\d)(\d{3,4})(?!\d)",
    re.IGNORECASE,
)
# Code first, then the word ("123 is my CVV", "the 3 digits are 123 on the back").
_CVV_BEFORE = re.compile(
    r"(?<![\d.,])(\d{3,4})(?![\d.,])\s+(?:is|being|as)?\s*(?:my|the)?\s*" + _CARD_WORD, re.IGNORECASE
)


def _cvvs(text: str) -> list[PiiMatch]:
    found = [PiiMatch("CVV", m.start(1), m.end(1)) for m in _CVV_AFTER.finditer(text)]
    found += [PiiMatch("CVV", m.start(1), m.end(1)) for m in _CVV_BEFORE.finditer(text)]
    return found


# --- US social security numbers ----------------------------------------------

_SSN_FORMATTED = re.compile(r"(?<![\w-])(?!000|666|9\d\d)(\d{3})([- ])(?!00)\d{2}\2(?!0000)\d{4}(?![\w]|-\d)")
_SSN_BARE = re.compile(
    r"\b(?:ssn|social\s+security(?:\s+(?:number|no\.?|#))?|social)\b[^\d\n]{0,20}"
    r"(?<!\d)((?!000|666|9\d\d)\d{3}(?!00)\d{2}(?!0000)\d{4})(?!\d)",
    re.IGNORECASE,
)


def _ssns(text: str) -> list[PiiMatch]:
    found = [PiiMatch("SSN", m.start(), m.end()) for m in _SSN_FORMATTED.finditer(text)]
    found += [PiiMatch("SSN", m.start(1), m.end(1)) for m in _SSN_BARE.finditer(text)]
    return found


# --- IBANs -------------------------------------------------------------------

_IBAN_START = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2}\d{2}(?=[ ]?[A-Za-z0-9])")


def iban_valid(compact: str) -> bool:
    """Return whether ``compact`` (no spaces) is a structurally valid IBAN (ISO 13616 mod-97)."""
    s = compact.upper()
    if not (15 <= len(s) <= 34) or not s[:2].isalpha() or not s[2:4].isdigit() or not s.isalnum():
        return False
    rearranged = s[4:] + s[:4]
    value = 0
    for ch in rearranged:
        # Digits stay, letters become 10..35; fold as we go so the number stays small.
        part = ch if ch.isdigit() else str(ord(ch) - 55)
        for d in part:
            value = (value * 10 + ord(d) - 48) % 97
    return value == 1


def _ibans(text: str) -> list[PiiMatch]:
    found = []
    for m in _IBAN_START.finditer(text):
        # Walk forward over alphanumerics allowing single spaces, remembering
        # every place a word ends; the longest valid candidate wins. This way a
        # following word ("... 32 thanks") does not spoil the checksum.
        compact = m.group(0).upper()
        pos = m.end()
        ends: list[tuple[int, str]] = []
        while pos < len(text) and len(compact) < 34:
            ch = text[pos]
            if ch.isascii() and ch.isalnum():
                compact += ch.upper()
                pos += 1
                if pos == len(text) or not (text[pos].isascii() and text[pos].isalnum()):
                    ends.append((pos, compact))
            elif ch == " " and pos + 1 < len(text) and text[pos + 1].isascii() and text[pos + 1].isalnum():
                pos += 1
            else:
                break
        for end, candidate in reversed(ends):
            if iban_valid(candidate):
                found.append(PiiMatch("IBAN", m.start(), end))
                break
    return found


# --- e-mail addresses --------------------------------------------------------

_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
_SPOKEN_EMAIL = re.compile(
    r"\b[a-z0-9._%+-]+(?:\s+dot\s+[a-z0-9_%+-]+)*\s+at\s+[a-z0-9-]+(?:\s+dot\s+[a-z0-9-]+)*"
    r"\s+dot\s+(?:com|net|org|edu|gov|io|co|uk|de|fr|es|it|nl|ie|ca|au|info|biz|me|us)\b",
    re.IGNORECASE,
)


def _emails(text: str) -> list[PiiMatch]:
    found = [PiiMatch("EMAIL", m.start(), m.end()) for m in _EMAIL.finditer(text)]
    found += [PiiMatch("EMAIL", m.start(), m.end()) for m in _SPOKEN_EMAIL.finditer(text)]
    return found


# --- phone numbers -----------------------------------------------------------

_PHONE = re.compile(
    r"(?<![\w@$£€¥.,/:#-])(?:\+\d[\d ().-]{6,22}\d|\(?\d[\d ().-]{7,18}\d)(?![\w$£€/:%]|[.,]\d|-\d)"
)
_DATE_LIKE = re.compile(r"\d{4}[./-]\d{1,2}[./-]\d{1,2}|\d{1,2}[./-]\d{1,2}[./-]\d{2,4}")
# Words after which a digit string is an identifier, not a phone number.
_ID_CONTEXT = re.compile(
    r"(?:order|ref|reference|tracking|invoice|confirmation|ticket|case|transaction|booking|receipt"
    r"|account|acct|policy|parcel|shipment|serial|sku|item|no\.)\b[^\n]{0,12}$",
    re.IGNORECASE,
)


def _phones(text: str) -> list[PiiMatch]:
    found = []
    for m in _PHONE.finditer(text):
        raw = m.group(0)
        digits = sum(ch.isdigit() for ch in raw)
        if "  " in raw or "--" in raw or ".." in raw or _DATE_LIKE.search(raw):
            continue
        before = text[max(0, m.start() - 24) : m.start()]
        if raw.startswith("+"):
            ok = 8 <= digits <= 15
        else:
            ok = 10 <= digits <= 11 and not _ID_CONTEXT.search(before)
        if ok:
            found.append(PiiMatch("PHONE", m.start(), m.end()))
    return found


# --- putting it together -----------------------------------------------------


def find_pii(text: str) -> list[PiiMatch]:
    """Return every piece of PII in ``text``, non-overlapping, in text order.

    Overlaps are resolved in favour of the earlier match, then the more
    specific type (e-mail, IBAN, card, SSN, CVV, phone), then the longer one.
    """
    candidates = _emails(text) + _ibans(text) + _cards(text) + _ssns(text) + _cvvs(text) + _phones(text)
    candidates.sort(key=lambda p: (p.start, _PRECEDENCE[p.kind], -(p.end - p.start)))
    chosen: list[PiiMatch] = []
    for cand in candidates:
        if chosen and cand.start < chosen[-1].end:
            continue
        chosen.append(cand)
    return chosen


def redact(text: str) -> str:
    """Return ``text`` with every piece of PII replaced by its typed placeholder.

    Placeholders are ``[CARD_NUMBER]``, ``[CVV]``, ``[SSN]``, ``[IBAN]``,
    ``[EMAIL]`` and ``[PHONE]``. Text without PII comes back unchanged.
    Deterministic and idempotent: ``redact(redact(t)) == redact(t)``.
    """
    matches = find_pii(text)
    if not matches:
        return text
    out: list[str] = []
    pos = 0
    for m in matches:
        out.append(text[pos : m.start])
        out.append(f"[{m.kind}]")
        pos = m.end
    out.append(text[pos:])
    return "".join(out)


def safe_truncate(text: str, limit: int) -> str:
    """Cut ``text`` to at most ``limit`` characters without splitting a piece of PII.

    A cut through the middle of a card number would leave a fragment the
    detectors no longer recognise (and so could not redact later); the cut is
    moved back to the start of any PII it would split. An ellipsis marks a cut.
    """
    if len(text) <= limit:
        return text
    cut = max(0, limit - 1)
    for m in find_pii(text):
        if m.start < cut < m.end:
            cut = m.start
            break
    return text[:cut].rstrip() + "…"
