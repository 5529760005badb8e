"""PII redaction with typed placeholders.

What a human or a downstream system sees of a transcript goes through
``redact``. Each detector is tuned to catch the real thing and leave alone the
look-alikes that agents need (order numbers, dates, amounts, times, reference
codes):

* ``[CARD_NUMBER]``: 13-19 digits starting like a payment card (2-6) and
  passing the Luhn check, grouped by spaces, dashes, dots or slashes (or not);
  a card may be followed by other digits ("... 1111 12/26").
* ``[CVV]``: 3-4 digits next to a card-security word (CVV, CVC, security code...).
* ``[SSN]``: US social security numbers grouped 3-2-4 by one kind of separator
  (``123-45-6789``, ``123.45.6789``, ``123/45/6789``, ``123 45 6789``, or read
  out with pauses there), area/group/serial rules applied. Nine digits in any
  other shape (bare ``123456789``, read out in one go) are an SSN only after a
  social-security word ("SSN", "social", "social security number") earlier in
  the sentence: bare nine-digit order and account numbers are common.
* ``[IBAN]``: a known country code + check digits + that country's length,
  mod-97 checked; grouped by spaces, dashes or dots, or spelt out ("G B eight
  two W E S T ...").
* ``[EMAIL]``: e-mail addresses, also obfuscated (``tom(at)example(dot)com``,
  ``ken @ example . com``) and as voice transcripts spell them ("jo at example
  dot com", "jo underscore smith at gmail dot com"). A spoken "at" before a
  typed domain ("x at example.com") counts only with an address-like name
  (``jo.smith``, ``jo_99``) or a mail provider, as "look at amazon.com" is prose.
* ``[PHONE]``: ``+`` international numbers (8-15 digits) and 10-11 digit numbers
  in any grouping, typed or spoken, unless they look like a date or amount or
  follow an order/reference word; 7 digits only after a phone word ("phone",
  "call me", "my number is"...) earlier in the sentence, or written
  ``NXX-XXXX`` (``555-1234``; not a range such as "pages 200-1000").

Everything is detected on a *normalised view* of the text: full-width and other
Unicode digits become ASCII, Unicode dashes and spaces become ``-`` and `` ``,
and spoken digit runs become digits ("four one one one" -> ``4111``, "double
five" -> ``55``, "oh" -> ``0`` next to another number word, "forty one" ->
``41``, a pause "," between groups -> a space). Finds are mapped back to spans
of the original text, so redaction replaces exactly the PII and keeps
everything else verbatim. Overlapping finds are merged into one, typed after
the earliest, then the more specific type. ``redact_across`` finds PII that a
speaker split over two consecutive turns. Pure functions, no I/O.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Literal, cast

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


# --- normalised view -----------------------------------------------------------


class _Fold(dict[int, str]):
    """``str.translate`` table: one character in, one out, so offsets do not move.

    Filled as characters are met; only the Basic Multilingual Plane is kept,
    so the table stays small whatever text comes in.
    """

    def __missing__(self, cp: int) -> str:
        ch = chr(cp)
        if 0xFF01 <= cp <= 0xFF5E:  # full-width ASCII block
            out = chr(cp - 0xFEE0)
        elif unicodedata.category(ch) == "Nd":
            out = str(unicodedata.decimal(ch))
        elif cp in (0x2010, 0x2011, 0x2012, 0x2013, 0x2014, 0x2015, 0x2212, 0xFE63):
            out = "-"
        elif unicodedata.category(ch) == "Zs":
            out = " "
        else:
            out = ch
        if cp < 0x10000:
            self[cp] = out
        return out


_FOLD = _Fold()

_UNITS = {"zero": 0, "oh": 0, "o": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
          "seven": 7, "eight": 8, "nine": 9, "niner": 9, "ten": 10, "eleven": 11, "twelve": 12,
          "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
          "nineteen": 19}  # fmt: skip
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fourty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
         "eighty": 80, "ninety": 90}  # fmt: skip
_SCALES = {"hundred": 100, "thousand": 1000}
_REPEATS = {"double": 2, "triple": 3}
_NUMBER_WORDS = sorted([*_UNITS, *_TENS, *_SCALES, *_REPEATS], key=len, reverse=True)
_W = "(?:" + "|".join(_NUMBER_WORDS) + r")(?![\w'’])"
# A run of number words separated by spaces, commas, full stops or hyphens
# ("four one one one, one one one one", "forty-one").
_SPOKEN_RUN = re.compile(rf"(?<![\w'’]){_W}(?:[ ,.-]+{_W})*")  # on lower-case text: much faster
_SPOKEN_RUN_ANY_CASE = re.compile(_SPOKEN_RUN.pattern, re.IGNORECASE)
_WORD = re.compile(r"[A-Za-z]+")
_SEPARATORS = " ,./-"


def _chunks(words: list[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
    """Digits for a run of number words, as ``(digits, start, end)`` per spoken group.

    Each group (a digit, "double five", "forty one", "eleven", "two thousand
    five hundred") becomes its digits and groups are concatenated, which is
    how people read out card, phone and account numbers ("forty one eleven"
    -> 4111). A digit right after "hundred" starts a new group, as in phone
    numbers ("eight hundred five five five" -> 800 5 5 5).
    """
    out: list[tuple[str, int, int]] = []
    big: int | None = None  # thousands so far
    small: int | None = None  # below a thousand
    start = end = 0
    last = ""
    repeat, repeat_start = 1, 0

    def flush() -> None:
        nonlocal big, small
        if big is not None or small is not None:
            out.append((str((big or 0) + (small or 0)), start, end))
        big = small = None

    def begin(s: int) -> None:
        nonlocal start
        if big is None and small is None:
            start = s

    for word, s, e in words:
        if word in _REPEATS:
            flush()
            repeat, repeat_start = _REPEATS[word], s
            continue
        if repeat > 1 and (word not in _UNITS or _UNITS[word] > 9):
            repeat = 1  # "double twenty" is not a digit repeat
        if repeat > 1:
            flush()
            out.append((str(_UNITS[word]) * repeat, repeat_start, e))
            repeat, last = 1, ""
            continue
        if word == "hundred":
            if small is not None and small >= 100:
                flush()
            begin(s)
            small = (small or 1) * 100
        elif word == "thousand":
            if big is not None:
                flush()
            begin(s)
            big, small = (small or 1) * 1000, None
        elif word in _TENS:
            t = _TENS[word]
            if small is None and big is not None:
                small = t
            elif small is not None and last == "hundred":
                small += t
            else:
                flush()
                begin(s)
                small = t
        else:
            n = _UNITS[word]
            composes = (
                (small is None and big is not None)
                or (last == "tens" and small is not None and small % 10 == 0 and 0 < n < 10)
                or (last == "hundred" and small is not None and (n >= 10 or big is not None))
            )
            if composes:
                small = (small or 0) + n
            else:
                flush()
                begin(s)
                small = n
        end, last = e, word if word in _SCALES else ("tens" if word in _TENS else "unit")
    flush()
    return out


def _next_to_digit(text: str, start: int, end: int) -> bool:
    i = start - 1
    while i >= 0 and text[i] in _SEPARATORS:
        i -= 1
    j = end
    while j < len(text) and text[j] in _SEPARATORS:
        j += 1
    return (i >= 0 and "0" <= text[i] <= "9") or (j < len(text) and "0" <= text[j] <= "9")


def _spoken(text: str) -> list[tuple[str, int, int]]:
    """Every spoken digit group in ``text`` as ``(digits, start, end)``, in order."""
    found: list[tuple[str, int, int]] = []
    low = text.lower()
    runs = _SPOKEN_RUN.finditer(low) if len(low) == len(text) else _SPOKEN_RUN_ANY_CASE.finditer(text)
    for run in runs:
        word = run.group().lower()
        if word.isalpha():  # a lone word, the common case: cheap checks first
            digit_word = word in _UNITS or word in _TENS
            if digit_word and _next_to_digit(text, run.start(), run.end()):
                found += _chunks([(word, run.start(), run.end())])
            continue
        words = [(w.group(), run.start() + w.start(), run.start() + w.end()) for w in _WORD.finditer(word)]
        # "oh"/"o" is a zero in a run with another number word ("seven oh two")
        # or next to typed digits ("555 12 oh oh"), not on its own ("oh, oh no").
        if all(w in ("oh", "o") for w, _, _ in words) and not _next_to_digit(text, run.start(), run.end()):
            continue
        found += _chunks(words)
    return found


class _View:
    """The normalised text and, where spoken digits changed its length, the way back.

    ``text[i]`` came from ``original[starts[i]:ends[i]]``; without maps the
    offsets are the same in both.
    """

    __slots__ = ("ends", "starts", "text")

    def __init__(self, text: str, starts: list[int] | None = None, ends: list[int] | None = None) -> None:
        self.text = text
        self.starts = starts
        self.ends = ends

    def original(self, m: PiiMatch) -> PiiMatch:
        if self.starts is None or self.ends is None:
            return m
        return PiiMatch(m.kind, self.starts[m.start], self.ends[m.end - 1])


def _view(text: str) -> _View:
    folded = text if text.isascii() else text.translate(_FOLD)
    groups = _spoken(folded)
    if not groups:
        return _View(folded)
    parts: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    pos = 0
    for k, (digits, s, e) in enumerate(groups):
        gap = folded[pos:s]
        if k and groups[k - 1][2] == pos and gap.strip(" ,.-") == "":
            # Within one run, spaces go ("four one" -> "41") and a pause
            # ("four one one one, one one...") becomes one space, a group break.
            if "," in gap or "." in gap:
                parts.append(" ")
                starts.append(pos)
                ends.append(s)
        elif gap:
            parts.append(gap)
            starts.extend(range(pos, s))
            ends.extend(range(pos + 1, s + 1))
        parts.append(digits)
        starts.extend([s] * len(digits))
        ends.extend([e] * len(digits))
        pos = e
    parts.append(folded[pos:])
    starts.extend(range(pos, len(folded)))
    ends.extend(range(pos + 1, len(folded) + 1))
    return _View("".join(parts), starts, ends)


# --- context words -------------------------------------------------------------

# The last of these in the 40 characters before a bare digit run says what it is.
_CONTEXT = re.compile(
    r"\b(?:(?P<ssn>ssn|s\.s\.n|social(?:\s+security)?(?:\s+(?:number|no|#))?)"
    r"|(?P<id>(?:order|ref|reference|tracking|invoice|confirmation|ticket|case|transaction|booking"
    r"|reservation|receipt|account|acct|policy|parcel|shipment|package|serial|sku|item|member|membership"
    r"|customer|claim|loyalty|flight|zip|postcode|postal|routing|model|part|imei|voucher|coupon|promo"
    r"|gift|id|pin|code)s?(?:\s+(?:number|no|#))?)"
    r"|(?P<phone>phone|telephone|tel|cell|cellphone|mobile|landline|whatsapp|number|call|ring|dial|reach|text"
    r"|contact|fax|extension|ext))\b",
    re.IGNORECASE,
)


_SENTENCE_END = re.compile(r"[.?!]\s+(?=[A-Z])|[?!;\n]")


def _context(text: str, start: int) -> str | None:
    """The kind of the last context word in the 40 characters (of this sentence) before ``start``."""
    begin = max(0, start - 40)
    for end in _SENTENCE_END.finditer(text, begin, start):
        begin = end.end()
    last = None
    for m in _CONTEXT.finditer(text, begin, start):
        last = m.lastgroup
    return last


_TOKEN_BEFORE = re.compile(r"[A-Za-z0-9]+ ?$")


def _inside_code(text: str, start: int) -> bool:
    """Whether the digits at ``start`` continue a letters-and-digits code ("DE89 3704...", "1Z99 ...")."""
    m = _TOKEN_BEFORE.search(text, max(0, start - 24), start)
    if m is None:
        return False
    token = m.group().rstrip()
    return not token.isdigit() and not token.isalpha()


# --- payment cards -----------------------------------------------------------

_CARD = re.compile(r"(?<![\w.,])[2-6](?:[ -]?\d){12,18}(?![\w]|[.,]\d)")
_DATE_LIKE = re.compile(r"\d{4}[./-]\d{1,2}[./-]\d{1,2}|\d{1,2}[./-]\d{1,2}[./-]\d{2,4}")


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
        # A separator may not be doubled ("12 - 34" is prose), the digit count
        # must fit a card, and two dates in a row are not one.
        if "  " in raw or "--" in raw or _DATE_LIKE.search(raw) or _inside_code(text, m.start()):
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

_SSN_FORMATTED = re.compile(
    r"(?<![\w-])(?!000|666|9\d\d)(\d{3})([- ])(?!00)\d{2}\2(?!0000)\d{4}(?![\w]|[- ]\d)"
)
_SSN_BARE = re.compile(
    r"\b(?:ssn|social\s+security(?:\s+(?:number|no\.?|#))?|social)\b[^\d\n]{0,20}"
    r"(?<!\d)((?!000|666|9\d\d)\d{3}(?!00)\d{2}(?!0000)\d{4})(?!\d)",
    re.IGNORECASE,
)


def _ssn_valid(digits: str) -> bool:
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def _ssns(text: str, low: str) -> list[PiiMatch]:
    found = [PiiMatch("SSN", m.start(), m.end()) for m in _SSN_FORMATTED.finditer(text)]
    if "ssn" in low or "social" in low:
        found += [PiiMatch("SSN", m.start(1), m.end(1)) for m in _SSN_BARE.finditer(text)]
    return found


# --- IBANs -------------------------------------------------------------------

# ISO 13616 registry: country -> IBAN length.
_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BI": 27,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27,
    "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25,
    "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18,
    "NO": 15, "OM": 23, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33,
    "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip
# Country code and check digits, each character optionally set apart ("G B 8 2", "GB-82").
_IBAN_GAPS = (" ", "-", ".", " - ")  # not ". ": a sentence ends there
_IBAN_TOKEN = re.compile(r"[A-Za-z0-9]+")
_IBAN_START = re.compile(r"(?<![A-Za-z0-9])[A-Za-z][ .-]?[A-Za-z][ .-]?\d[ .-]?\d")


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
    n = len(text)
    for m in _IBAN_START.finditer(text):
        compact = "".join(ch for ch in m.group(0) if ch.isalnum()).upper()
        length = _IBAN_LENGTHS.get(compact[:2])
        if length is None or not compact.isascii():
            continue
        # Walk forward over alphanumerics and single separators (up to " - "),
        # remembering where the country's length is reached at a word end; a
        # following word ("... 32 thanks") is never part of it.
        pos = m.end()
        while pos < n and len(compact) < length:
            token = _IBAN_TOKEN.match(text, pos)
            if token is not None:
                # Letter groups in an IBAN are short ("WEST", "3M02"): a word stops it.
                if token.group().isalpha() and len(token.group()) > 4 and pos != m.end():
                    break
                compact += token.group().upper()
                pos = token.end()
                continue
            gap = pos
            while gap < n and gap - pos < 3 and text[gap] in " .-":
                gap += 1
            if (
                text[pos:gap] not in _IBAN_GAPS
                or gap == n
                or not (text[gap].isascii() and text[gap].isalnum())
            ):
                break
            pos = gap
        ends_word = pos == n or not (text[pos].isascii() and text[pos].isalnum())
        if len(compact) == length and ends_word and iban_valid(compact):
            found.append(PiiMatch("IBAN", m.start(), pos))
    return found


# --- e-mail addresses --------------------------------------------------------

_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
_SPOKEN_SEP = r"\s+(?:dot|period|underscore|dash|hyphen)\s+"
_SPOKEN_EMAIL = re.compile(
    rf"\b[a-z0-9._%+-]+(?:{_SPOKEN_SEP}[a-z0-9_%+-]+)*\s+at\s+[a-z0-9-]+(?:{_SPOKEN_SEP}[a-z0-9-]+)*"
    r"\s+dot\s+(?:com|net|org|edu|gov|io|co|uk|de|fr|es|it|nl|ie|ca|au|info|biz|me|us)\b",
    re.IGNORECASE,
)
# "tom(at)example(dot)com", "tom [at] example [dot] com", "ken @ example . com".
_OBF_AT = r"(?:\s*[\[({<]\s*at\s*[\])}>]\s*|\s*@\s*|(?P<plain>\s+at\s+))"
_OBF_DOT = r"(?:\.|\s\.\s|\s*[\[({<]\s*dot\s*[\])}>]\s*|\s+dot\s+)"
_OBFUSCATED_EMAIL = re.compile(
    rf"(?<![\w.+-])[a-z0-9_%+-]+(?:{_OBF_DOT}[a-z0-9_%+-]+)*{_OBF_AT}[a-z0-9-]+(?:{_OBF_DOT}[a-z0-9-]+)*"
    rf"{_OBF_DOT}[a-z]{{2,24}}\b",
    re.IGNORECASE,
)
# "jo.smith at gmail.com": a spoken "at" before a typed domain is an address only
# when the name part looks like one or the domain is a mail provider ("look at amazon.com" is not).
_AT_DOMAIN = re.compile(
    rf"(?<![\w.+-])(?P<local>[a-z0-9._%+-]+(?:{_SPOKEN_SEP}[a-z0-9_%+-]+)*)\s+at\s+(?P<host>[a-z0-9-]+)"
    r"(?:\.[a-z0-9-]+)*\.[a-z]{2,24}\b",
    re.IGNORECASE,
)
_MAIL_HOSTS = frozenset(
    ["gmail", "googlemail", "yahoo", "hotmail", "outlook", "live", "msn", "icloud", "me", "mac", "aol",
     "proton", "protonmail", "gmx", "mail", "web", "yandex", "zoho", "btinternet", "comcast", "verizon",
     "att", "sky"]
)  # fmt: skip


_BRACKET_WORD = re.compile(r"[\[({<] *(?:at|dot) *[\])}>]")
_BRACKET_DOT = re.compile(r"[\[({<]\s*dot\s*[\])}>]", re.IGNORECASE)
_AT_HOST = re.compile(r" at +[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2}")


def _emails(text: str, low: str) -> list[PiiMatch]:
    # Each pattern only where its tell-tale is present: these regexes are the
    # slowest part of a turn without PII.
    found: list[PiiMatch] = []
    has_at = "@" in text
    if has_at:
        found += [PiiMatch("EMAIL", m.start(), m.end()) for m in _EMAIL.finditer(text)]
    if " dot " in low:
        found += [PiiMatch("EMAIL", m.start(), m.end()) for m in _SPOKEN_EMAIL.finditer(text)]
    if has_at or _BRACKET_WORD.search(low):
        for m in _OBFUSCATED_EMAIL.finditer(text):
            # A spoken "at" counts here only with a bracketed "(dot)" ("tom at example(dot)com").
            if m.group("plain") is None or _BRACKET_DOT.search(m.group()):
                found.append(PiiMatch("EMAIL", m.start(), m.end()))
    if " at " not in low or not _AT_HOST.search(low):
        return found
    for m in _AT_DOMAIN.finditer(text):
        local = m.group("local")
        if re.search(r"[._0-9]", local) or " " in local or m.group("host").lower() in _MAIL_HOSTS:
            found.append(PiiMatch("EMAIL", m.start(), m.end()))
    return found


# --- phone numbers -----------------------------------------------------------

_PHONE = re.compile(
    r"(?<![\w@$£€¥.,/:#-])(?:\+\d[\d ().-]{6,22}\d|\(?\d[\d ().-]{7,18}\d)(?![\w$£€/:%]|[.,]\d|-\d)"
)
# Words after which a digit string is an identifier, not a phone number.
_ID_CONTEXT = re.compile(
    r"(?:order|ref|reference|tracking|invoice|confirmation|ticket|case|transaction|booking|receipt"
    r"|account|acct|policy|parcel|shipment|serial|sku|item|no\.)\b[^\n]{0,12}$",
    re.IGNORECASE,
)


_DIGITS_BEFORE = re.compile(r"[0-9][ .-]?$")


def _phones(text: str) -> list[PiiMatch]:
    found = []
    for m in _PHONE.finditer(text):
        raw = m.group(0)
        digits = sum(ch.isdigit() for ch in raw)
        if "  " in raw or "--" in raw or ".." in raw or ". " in raw or _DATE_LIKE.search(raw):
            continue
        if _DIGITS_BEFORE.search(text, max(0, m.start() - 2), m.start()) or _inside_code(text, m.start()):
            continue  # the tail of a longer number or code
        before = text[max(0, m.start() - 24) : m.start()]
        if raw.startswith("+"):
            ok = 8 <= digits <= 15
        else:
            ok = 10 <= digits <= 11 and not _ID_CONTEXT.search(before)
        if ok:
            found.append(PiiMatch("PHONE", m.start(), m.end()))
    return found


# --- digit chains: any separator, spoken digits, bare runs -----------------------

# Groups of digits joined by one separator: a space, a dot, or a dash or slash
# with optional single spaces around it ("4111.1111", "555 - 1234").
_CHAIN = re.compile(r"(?<![\w$£€¥#@.,/:+-])[0-9]+(?:(?:\.| ?[/-] ?| )[0-9]+)*(?![\w@%]|[.,:/-]?[0-9])")
_GROUP = re.compile(r"[0-9]+")
_RANGE_BEFORE = re.compile(r"\b(?:between|from|range|pages?|pp|items?|rows?|lines?|years?|sizes?)\W*$", re.I)
_UNIT_AFTER = re.compile(
    r"^\W*(?:%|percent|dollars?|euros?|pounds?|cents?|items?|units?|pages?|people|words|km|miles|kg|lbs?|times)\b",
    re.IGNORECASE,
)


def _date_groups(sizes: list[int], seps: list[str]) -> set[int]:
    """Indices of groups that form a date ("25/12/2023", "2023-12-25"): never part of PII."""
    dated: set[int] = set()
    for k in range(len(sizes) - 2):
        sep = seps[k].strip()
        if sep and sep == seps[k + 1].strip():
            a, b, c = sizes[k : k + 3]
            if (a <= 2 and b <= 2 and c in (2, 4)) or (a == 4 and b <= 2 and c <= 2):
                dated.update((k, k + 1, k + 2))
    return dated


def _thousands_like(sizes: list[int], seps: list[str]) -> bool:
    return (
        len(sizes) >= 2
        and sizes[0] <= 3
        and all(s == 3 for s in sizes[1:])
        and len({s.strip() or " " for s in seps}) == 1
        and (seps[0].strip() or " ") in ".,  "
    )


def _classify(
    text: str, start: int, end: int, digits: str, sizes: list[int], seps: list[str]
) -> PiiKind | None:
    """The PII a window of digit groups is (``text[start:end]``), or None."""
    n = len(digits)
    if 13 <= n <= 19:
        return "CARD_NUMBER" if digits[0] in "23456" and luhn_valid(digits) else None
    if n == 9:
        if not _ssn_valid(digits):
            return None
        kinds = {s.strip() or " " for s in seps}
        if sizes == [3, 2, 4] and len(kinds) == 1:
            return "SSN"
        return "SSN" if _context(text, start) == "ssn" else None
    if n not in (7, 10, 11) or _thousands_like(sizes, seps):
        return None
    context = _context(text, start)
    if context == "id" or (n == 7 and _UNIT_AFTER.search(text[end : end + 12])):
        return None
    if n >= 10:
        return "PHONE" if len(sizes) <= 5 or all(s == 1 for s in sizes) else None
    shape_ok = sizes in ([7], [3, 4]) or all(s == 1 for s in sizes)
    if context == "phone" and shape_ok:
        return "PHONE"
    if (
        sizes == [3, 4]
        and seps[0].strip() == "-"
        and digits[0] != "0"
        and digits[0] != "1"
        and not _RANGE_BEFORE.search(text, max(0, start - 12), start)
        and not _UNIT_AFTER.search(text[end : end + 12])
    ):
        return "PHONE"
    return None


def _chains(text: str) -> list[PiiMatch]:
    found = []
    for m in _CHAIN.finditer(text):
        spans = [(g.start() + m.start(), g.end() + m.start()) for g in _GROUP.finditer(m.group())]
        sizes = [e - s for s, e in spans]
        total = sum(sizes)
        if total < 7 or _inside_code(text, m.start()):
            continue
        seps = [text[spans[k][1] : spans[k + 1][0]] for k in range(len(spans) - 1)]
        if _thousands_like(sizes, seps):
            continue  # an amount: "1.234.567", "2 500 000"
        dated = _date_groups(sizes, seps)
        last = len(spans) - 1
        # The whole chain is anything; a card may also leave out groups at one
        # end ("4111 1111 1111 1111 12/26", "... 1111 123" with the CVV).
        # Windows are whole groups and touch an end of the chain: every other
        # window would be one more 1-in-10 chance for a Luhn look-alike.
        prefixes = [(0, j) for j in range(last - 1, -1, -1)]
        suffixes = [(i, last) for i in range(1, last + 1)]
        for i, j in [(0, last), *prefixes, *suffixes]:
            digits = "".join(text[s:e] for s, e in spans[i : j + 1])
            n = len(digits)
            fits = 13 <= n <= 19 or (i == 0 and j == last and n in (7, 9, 10, 11))
            if not fits or any(k in dated for k in range(i, j + 1)):
                continue
            kind = _classify(text, spans[i][0], spans[j][1], digits, sizes[i : j + 1], seps[i:j])
            if kind is not None:
                found.append(PiiMatch(kind, spans[i][0], spans[j][1]))
                break
    return found


# --- putting it together -----------------------------------------------------

_HAS_DIGIT = re.compile(r"[0-9]")
_SEVEN_DIGITS = re.compile(r"(?:[^0-9]*[0-9]){7}")
_CVV_HINTS = ("cv", "c v", "c.", "csc", "cid", "security", "verification", "digit", "back")


def _detect(text: str) -> list[PiiMatch]:
    # Cheap gates first: most turns have no digits and no "@"/"at"/"dot", and
    # redaction runs on every turn.
    found: list[PiiMatch] = []
    low = text.lower()
    if "@" in text or "dot" in low or "at" in low:
        found += _emails(text, low)
    if _SEVEN_DIGITS.match(text):
        found += _ibans(text) + _cards(text) + _ssns(text, low) + _phones(text) + _chains(text)
    if _HAS_DIGIT.search(text) and any(hint in low for hint in _CVV_HINTS):
        found += _cvvs(text)
    # IMEIs are Luhn-checked 15-digit numbers too; they are device ids, not cards.
    return [m for m in found if m.kind != "CARD_NUMBER" or "imei" not in low[max(0, m.start - 40) : m.start]]


def _merge(candidates: list[PiiMatch]) -> list[PiiMatch]:
    """Non-overlapping, in order; an overlap widens the earlier find so no part of either survives."""
    candidates.sort(key=lambda p: (p.start, _PRECEDENCE[p.kind], -(p.end - p.start)))
    chosen: list[PiiMatch] = []
    for cand in candidates:
        if chosen and cand.start < chosen[-1].end:
            if cand.end > chosen[-1].end:
                chosen[-1] = PiiMatch(chosen[-1].kind, chosen[-1].start, cand.end)
            continue
        chosen.append(cand)
    return chosen


def find_pii(text: str) -> list[PiiMatch]:
    """Return every piece of PII in ``text``, non-overlapping, in text order.

    Detection runs on the normalised view (see the module docstring); spans
    are offsets into ``text`` itself. Overlapping finds are merged into one
    span, typed after the earlier one, then the more specific type (e-mail,
    IBAN, card, SSN, CVV, phone), then the longer one.
    """
    view = _view(text)
    return _merge([view.original(m) for m in _detect(view.text)])


def _apply(text: str, matches: list[PiiMatch]) -> str:
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


def redact(text: str) -> str:
    """Return ``text`` with every piece of PII replaced by its typed placeholder.

    Placeholders are ``[CARD_NUMBER]``, ``[CVV]``, ``[SSN]``, ``[IBAN]``,
    ``[EMAIL]`` and ``[PHONE]``; everything else comes back verbatim. Text
    without PII comes back unchanged (the same object). Deterministic and
    idempotent: ``redact(redact(t)) == redact(t)``.
    """
    return redact_found(text)[0]


def redact_found(text: str) -> tuple[str, list[PiiMatch]]:
    """``redact(text)`` and the PII it replaced (``find_pii(text)``), for ``redact_across(own=...)``."""
    found = find_pii(text)
    return _apply(text, found), found


_AFTER_PLACEHOLDER = re.compile(
    r"\[(CARD_NUMBER|IBAN|SSN|PHONE)\]((?:[ ,./-]*(?:[0-9]|" + _W + r"))*[ ,./-]*)$", re.IGNORECASE
)
_BEFORE_PLACEHOLDER = re.compile(r"(?:(?<![\w'’])(?:[0-9]+|" + _W + r")[ ,./-]*)+$", re.IGNORECASE)
_HEAD_DIGITS = re.compile(r"[ ,./-]*([0-9]+(?:(?: ?[./-] ?| |, )[0-9]+)*)(?![\w@%])")


def redact_across(previous: str, current: str, own: list[PiiMatch] | None = None) -> tuple[str | None, str]:
    """Redact a turn together with the same speaker's previous turn.

    Speech-to-text splits turns at pauses, and people pause while reading out
    a number: "my card is 4111 1111" / "1111 1111". ``previous`` is the stored
    text of the previous turn of the same speaker (already redacted on its
    own); ``current`` is the raw text of the new turn. The two are read as one
    text (joined by a space, or directly where the cut fell on a separator
    such as "4111." / "1111"), so PII split between the tail of ``previous``
    and the head of ``current`` is found (a Luhn-valid card, a mod-97-valid
    IBAN, an SSN, a phone number), and so is PII in ``current`` that needs a
    context word from ``previous`` ("my social is" / "123456789").

    Returns ``(new_previous, new_current)``. ``new_previous`` is ``previous``
    with the split PII's part replaced by its placeholder, or ``None`` when
    ``previous`` needs no change; ``new_current`` is ``current`` redacted,
    with the part of split PII it holds also replaced by the placeholder, so
    both turns show where the number was. When ``previous`` already ends in
    a card, IBAN, SSN or phone placeholder (part of the number was PII on its
    own), perhaps with digits around it, digits opening ``current`` are taken
    as the rest of it: they get the same placeholder, and so do the digits
    next to the placeholder in ``previous``. A lone "oh" opening ``current``
    is taken for the exclamation, not a zero. ``new_current`` is never less
    redacted than ``redact(current)``. Pure; call it for consecutive turns of
    one speaker only, in order, storing ``new_current`` as the next call's
    ``previous``. ``own``: ``find_pii(current)`` when the caller has it already
    (``redact_found``), so the turn is not searched twice.
    """
    own = find_pii(current) if own is None else own
    head_text = previous.rstrip()
    skip = len(current) - len(current.lstrip())  # leading blanks of this turn
    if not head_text or skip == len(current):
        return None, _apply(current, own)
    # A space joins the turns unless the cut fell on a separator ("4111." | "1111").
    edges = (head_text[-1] + current[skip]).translate(_FOLD)
    joint = "" if edges[0] in ".-/" or edges[1] in ".-/" else " "
    boundary = len(head_text) + len(joint)  # where this turn starts in the joined text
    new_previous = None
    mine: list[PiiMatch] = list(own)
    # The first part may have been PII on its own ("call me on 555 123 4567" |
    # "89"): its digits are gone from the stored text, so digits opening this
    # turn right after the placeholder are the rest of it. Digits the previous
    # turn kept next to its placeholder (a part of a card can pass Luhn on its
    # own: "4111 [CARD_NUMBER] one" | "eight") belong to it too.
    prev_view = _view(head_text)
    after = _AFTER_PLACEHOLDER.search(prev_view.text)
    if after is not None:
        kind = cast(PiiKind, after.group(1))
        view = _view(current)
        head = _HEAD_DIGITS.match(view.text)
        # A lone number word is a digit here too ("[CARD_NUMBER]" | "eight").
        word = _SPOKEN_RUN_ANY_CASE.match(current, len(current) - len(current[skip:].lstrip(" ,./-")))
        if head is not None:
            mine.append(view.original(PiiMatch(kind, head.start(1), head.end(1))))
        elif word is not None and word.group().lower() not in ("oh", "o"):
            mine.append(PiiMatch(kind, word.start(), word.end()))
        else:
            after = None
    if after is not None:
        before = _BEFORE_PLACEHOLDER.search(prev_view.text, 0, after.start())
        start = after.start() if before is None else before.start()
        if start < after.start() or after.group(2).strip(" ,./-"):
            cut = prev_view.original(PiiMatch("PHONE", start, start + 1)).start
            new_previous = previous[:cut] + f"[{after.group(1)}]"
    for m in find_pii(head_text + joint + current[skip:]):
        if m.end <= boundary:
            continue  # wholly in the previous turn, which was redacted on its own
        if m.start < len(head_text):
            new_previous = previous[: m.start] + f"[{m.kind}]"
        mine.append(PiiMatch(m.kind, max(0, m.start - boundary) + skip, m.end - boundary + skip))
    return new_previous, _apply(current, _merge(mine))


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
