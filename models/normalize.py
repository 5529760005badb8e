"""Transcript normalisation: one function, used identically when training and serving.

Speech-to-text bridges and chat widgets send text the classifiers were never
meant to read literally: tags such as ``[noise]`` or ``<unk>``, cut-off words
(``ca~``, ``th-``), fillers (``um``, ``uh``), backchannels (``mm hmm``,
``okay``), spoken digit runs ("seven zero zero"), tweet handles and links;
a turn that only apologises or asks to repeat (``sorry?``, ``excuse me``, ``sorry, could you
repeat that?``) is not lexical either; a caller's self-introduction or pleasantry before a request
("hi, my name is Rob and I ...", "this is Sue calling about ...", "good thanks, how are you? I
...") is left out of what the classifiers read.
``normalize`` removes or canonicalises all of them and says whether anything
lexical is left. A turn with no lexical content (``lexical=False``) carries no
sentiment, no emotion and no contact-reason evidence: the runtime reports it
as neutral and quiet, and routing gives it zero weight.

Pure Python, no dependencies: ``export/`` trains on exactly this text and the
runtime feeds exactly this text to the graph.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from models.lexicon import BACKCHANNELS, FILLERS, GLUE, GREETINGS
from models.openings import drop_opening

# [noise] [laughter] <unk> <noise> ((inaudible)) {breath} and a closed list of
# parenthesised stage directions; never ordinary parentheses.
_TAGS = re.compile(
    r"\[[^\]]{0,40}\]|<[^<>\s]{1,20}>|\(\([^)]{0,40}\)\)|\{[^}]{0,40}\}"
    r"|\((?:inaudible|unintelligible|laughs?|laughter|noise|crosstalk|silence|cough(?:s|ing)?|"
    r"sighs?|music|pause|static|background noise|indiscernible|foreign)\)",
    re.IGNORECASE,
)
_URL = re.compile(r"https?://\S+|www\.\S+", re.IGNORECASE)
_HANDLE = re.compile(r"(?<![\w@])@\w{1,30}")
# A word cut off mid-way: "ca~", "~ay", "th-" (a trailing hyphen before a space or the end).
_CUTOFF = re.compile(r"\S*~\S*|\b[A-Za-z]{1,12}-(?=\s|$)")
_WORD = re.compile(r"@user|[A-Za-z]+(?:['’-][A-Za-z]+)*|\d+(?:[.,:]\d+)*|\S")
_SPACES = re.compile(r"\s+")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([.,!?;:%)])")

# Two-word fillers / backchannels, as transcribers spell them with a space or a hyphen.
# "m+h+m+" covers mhm, mhmm, mmhm, mm-hm, mm hmm, m hm; "u[hm] hu[hm]" uh-huh, uh hum, um-hum.
_PAIRS = re.compile(r"\b(?:m+[\s-]*h+m+|u[hm][\s-]+hu[hm]|uh[\s-]+uh)\b", re.IGNORECASE)
# Apologies and open repair requests ("sorry?", "excuse me", "pardon"): on the phone they ask the
# agent to repeat or soften a correction, and say nothing about how the customer feels, but emotion
# corpora read "sorry" as remorse (sadness). A turn of nothing else is not lexical. The words stay in
# a turn that says more ("sorry, can you repeat that"): dropping them there also dropped the remorse
# GoEmotions labels as sadness, and its macro-F1 fell below the pack's bar.
_APOLOGIES = (
    ("i'm", "so", "sorry"),
    ("i", "am", "sorry"),
    ("i'm", "sorry"),
    ("im", "sorry"),
    ("so", "sorry"),
    ("sorry",),
    ("excuse", "me"),
    ("pardon", "me"),
    ("pardon",),
    ("my", "apologies"),
    ("apologies",),
)
# Requests to repeat, with or without an apology around them ("sorry, can you repeat that?"): the
# line or the agent was not heard. They manage the call, state no need and no feeling; read as text
# they come back negative ("sorry" again, "didn't catch").
_REPAIR = re.compile(
    r"^(?:(?:can|could|would) you )?(?:please )?"
    r"(?:repeat(?: that| it| yourself| the question)?|say (?:that|it) again|come again"
    r"|what (?:was that|did you say)"
    r"|(?:i )?(?:didn't|did not|couldn't|could not) (?:catch|hear) (?:that|you|it)"
    r"|(?:i )?(?:can't|cannot) hear you|you're breaking up)"
    r"(?: please| again| sorry)*$"
)
# Turns that only manage the call while the customer fetches something or checks the line ("hold
# on, let me grab my card", "one second", "are you still there?"): they state no need, but the act
# head, which never saw them (SGD is typed), calls most of them a reason, and the intent head gives
# some a confident intent ("let me grab my card" -> a card intent), which made them contact-reason
# evidence in the middle of a call.
_MOMENT = r"(?:a |one )?(?:sec|second|moment|minute|min)s?"
_THINGS = (
    r"(?:my |the )?(?:card|cards|wallet|purse|bag|account number|card number|number|statement|"
    r"details|info|information|glasses|phone|checkbook|check book|id|license|licence|paperwork|"
    r"pen|bank card|debit card|credit card)"
)
_STALL = (
    rf"(?:(?:can|could) you |please )?(?:hold on|hang on|hold|wait)(?: a| one)?(?: {_MOMENT})?(?: please)?"
    r"|(?:just |give me |gimme )?(?:a |one )(?:sec|second|moment|minute|min)s?(?: please)?"
    r"|bear with me|let me (?:see|check|think|look)|i'll wait|i can wait|take your time"
    rf"|let me (?:grab|get|find|look for|pull up|dig out|get out) (?:it|that|them|{_THINGS})"
    r"(?: out| real quick| quickly)?"
    r"|i'm (?:back|still here)|(?:hello )?(?:are you|you) still there|(?:hello )?are you there"
    r"|(?:hello )?can you (?:still )?hear me"
)
_HOLD = re.compile(rf"^(?:{_STALL})(?: (?:and |so |just )?(?:{_STALL}))*$")
_UNITS = {
    "zero": 0, "oh": 0, "o": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}  # fmt: skip
_TENS = {
    "twenty": 20, "thirty": 30, "forty": 40, "fourty": 40, "fifty": 50, "sixty": 60,
    "seventy": 70, "eighty": 80, "ninety": 90,
}  # fmt: skip
_SCALES = {"hundred": 100, "thousand": 1000, "million": 1_000_000}
NUMBER_WORDS = frozenset(_UNITS) | frozenset(_TENS) | frozenset(_SCALES) | {"double", "triple"}


@dataclass(frozen=True)
class Normalized:
    """The text the classifiers read, and what kind of turn it is.

    ``lexical`` is False when nothing but tags, fillers, backchannels, numbers,
    glue words, apologies and requests to repeat was said. ``greeting`` is True when
    the turn is only a greeting; ``repeat_request`` when it only asks the other side
    to repeat itself ("sorry, can you say that again?"; a bare "sorry" is not one:
    it is as often an apology); ``hold`` when it only asks the other side to wait or
    checks the line ("hold on, let me grab my card", "are you still there?").
    """

    text: str
    lexical: bool
    greeting: bool = False
    repeat_request: bool = False
    hold: bool = False


def _number_run(words: list[str]) -> str:
    """Digits for a run of number words: "seven zero zero" -> 700, "eighty one" -> 81.

    Each spoken group (a unit, a tens word with an optional unit, "x hundred y")
    becomes its digits and the groups are concatenated, which is how people read
    out card, account and zip numbers ("one twenty" -> 120).
    """
    chunks: list[str] = []
    value: int | None = None
    last = ""  # kind of the last word: unit, tens, scale
    repeat = 1
    for word in words:
        if word in ("double", "triple"):
            repeat = 2 if word == "double" else 3
            continue
        if word in _SCALES:
            value = (value or 1) * _SCALES[word]
            last = "scale"
            continue
        if word in _TENS:
            if value is not None and last != "scale":
                chunks.append(str(value))
                value = None
            value = (value or 0) + _TENS[word]
            last = "tens"
            continue
        unit = _UNITS[word]
        if value is not None and (last == "scale" or (last == "tens" and unit < 10 and value % 10 == 0)):
            value += unit
        else:
            if value is not None:
                chunks.append(str(value))
            value = unit
            if repeat > 1:
                chunks.append(str(unit) * (repeat - 1))
                repeat = 1
        last = "unit"
    if value is not None:
        chunks.append(str(value))
    return "".join(chunks)


def _is_number_word(token: str, neighbours: tuple[str, str]) -> bool:
    """A number word; "oh"/"o" only between other number words ("seven oh two")."""
    if token in ("oh", "o"):
        return all(n in NUMBER_WORDS and n not in ("oh", "o") for n in neighbours)
    return (token in NUMBER_WORDS and token not in ("double", "triple")) or (
        token in ("double", "triple") and neighbours[1] in _UNITS
    )


def _spoken_numbers(tokens: list[str]) -> list[str]:
    lowered = [t.lower() for t in tokens]
    out: list[str] = []
    i = 0
    while i < len(tokens):
        prev = lowered[i - 1] if i else ""
        nxt = lowered[i + 1] if i + 1 < len(tokens) else ""
        if _is_number_word(lowered[i], (prev, nxt)):
            run = [lowered[i]]
            j = i + 1
            while j < len(tokens):
                after = lowered[j + 1] if j + 1 < len(tokens) else ""
                if _is_number_word(lowered[j], (lowered[j - 1], after)):
                    run.append(lowered[j])
                elif lowered[j] == "and" and run[-1] in _SCALES and after in NUMBER_WORDS:
                    pass  # "two hundred and fifty"
                else:
                    break
                j += 1
            # A lone "one" is usually a pronoun ("the new one"): only runs or clear numbers convert.
            if len(run) == 1 and run[0] in ("one", "double", "triple"):
                out.append(tokens[i])
            else:
                out.append(_number_run(run))
            i = j
            continue
        out.append(tokens[i])
        i += 1
    return out


def _join(tokens: list[str]) -> str:
    return _SPACE_BEFORE_PUNCT.sub(r"\1", " ".join(tokens)).strip()


def _apology_at(words: list[str], start: int) -> int:
    """Length of the apology starting at ``words[start]`` (0 when none does)."""
    for phrase in _APOLOGIES:
        if tuple(words[start : start + len(phrase)]) == phrase:
            return len(phrase)
    return 0


def _drop_apologies(words: list[str]) -> list[str]:
    """Lower-case ``words`` without the apologies at the start and the end of the turn (see
    ``_APOLOGIES``); ``normalize`` reads what is left to decide whether the turn is lexical.

    Leading backchannels stay ("oh sorry go ahead" -> "oh go ahead"); "about that" after a
    leading apology goes with it.
    """
    start = 0
    while start < len(words) and words[start] in BACKCHANNELS:
        start += 1
    while length := _apology_at(words, start):
        end = start + length
        if words[end : end + 2] == ["about", "that"]:
            end += 2
        words = words[:start] + words[end:]
    for phrase in _APOLOGIES:
        if tuple(words[len(words) - len(phrase) :]) == phrase:
            return words[: len(words) - len(phrase)]
    return words


def normalize(text: str) -> Normalized:
    """Canonical text for the classifiers plus whether the turn has lexical content.

    Removes speech-to-text tags, cut-off words and fillers; replaces links with
    ``http`` and handles with ``@user`` (as the tweet corpora do); turns spoken
    number runs into digits. Everything else, case and punctuation included,
    is kept (the tokenizer is uncased). Never raises; the result may be empty.
    """
    cleaned = _TAGS.sub(" ", text)
    cleaned = _URL.sub(" http ", cleaned)
    cleaned = _HANDLE.sub("@user", cleaned)
    cleaned = _PAIRS.sub(" ", cleaned)
    cleaned = _CUTOFF.sub(" ", cleaned)
    tokens = [t for t in _WORD.findall(cleaned) if t.lower() not in FILLERS]
    tokens = _spoken_numbers(tokens)
    # Drop stray punctuation left where a filler stood ("um, I", ", ,").
    compact: list[str] = []
    for token in tokens:
        if token in ",;" and (not compact or compact[-1] in ",;"):
            continue
        compact.append(token)
    while compact and compact[0] in ",;.":
        compact.pop(0)
    compact = drop_opening(compact)
    words = _drop_apologies([t.lower().replace("’", "'") for t in compact if t[0].isalnum()])
    said = " ".join(w for w in words if w not in BACKCHANNELS)
    repeat_request = bool(said) and _REPAIR.match(said) is not None
    lexical = not repeat_request and any(
        not (w.isdigit() or w.replace(",", "").replace(".", "").isdigit())
        and w not in BACKCHANNELS
        and w not in GLUE
        for w in words
    )
    greeting = lexical and all(w in GREETINGS for w in words)
    hold = lexical and _HOLD.match(said) is not None
    return Normalized(_SPACES.sub(" ", _join(compact)), lexical, greeting, repeat_request, hold)
