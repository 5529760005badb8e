"""The opening of a caller's turn: self-introductions and pleasantries before the request.

Most calls open with a name or a pleasantry ("hi, my name is Rob Smith and I ...", "this is Sue
calling about ...", "good thanks, how are you? I ..."). ``drop_opening`` removes it, with the
greetings around it, from the tokens the classifiers read (``models.normalize``), when a request
follows. Pure Python, no dependencies.
"""

from __future__ import annotations

from models.lexicon import BACKCHANNELS, FIRST_NAMES, GLUE, GREETINGS

# An opening states no need and no mood, yet every head reads it (``python -m bench introductions``:
# behind one the intent head changed its answer for 5-8% of Banking77's held-out requests). Only
# unambiguous forms are dropped, only at the start of a turn and only when a request follows: "my
# name is"/"my name's" <name>; "this is", "I'm", "it's" followed by a word that can only be a first
# name (``models.lexicon.FIRST_NAMES``) or by <name> calling/speaking/here ("this is ridiculous",
# "I'm frank with you" stay); the pleasantries in ``_PLEASANTRIES`` when the next word starts a new
# sentence ("how are you going to fix this" stays).
_NAMED_BY = (("this", "is"), ("i'm",), ("im",), ("i", "am"), ("it's",), ("its",))
_INTRO_LEADS = GREETINGS | BACKCHANNELS | frozenset(["yes", "and", "well", "so"])


def _pleasantries() -> frozenset[tuple[str, ...]]:
    asks = [("how", "are", "you"), ("how", "are", "ya"), ("how're", "you"), ("how", "you"),
            ("how's", "it", "going"), ("hows", "it", "going"), ("how", "is", "it", "going")]  # fmt: skip
    when = [(), ("doing",), ("today",), ("doing", "today"), ("this", "morning"), ("doing", "this", "morning"),
            ("this", "afternoon"), ("doing", "this", "afternoon"), ("this", "evening"),
            ("doing", "this", "evening")]  # fmt: skip
    how = [a + w for a in asks for w in when]
    well = [("good",), ("fine",), ("great",), ("well",), ("okay",), ("ok",), ("alright",), ("all", "right"),
            ("not", "bad"), ("doing", "good"), ("doing", "well"), ("doing", "fine")]  # fmt: skip
    thanks = [("thanks",), ("thank", "you"), ("thank", "you", "very", "much")]
    back = [(), ("and", "you"), ("how", "about", "you"), ("yourself",), *how]
    answers = [
        i + w + t + b
        for i in [(), ("i'm",), ("im",), ("i", "am")]
        for w in well
        for t in thanks
        for b in back
    ]
    calls = [("for", "taking", "my", "call"), ("for", "taking", "the", "call"), ("for", "picking", "up")]
    return frozenset(how + answers + [t + c for t in thanks for c in calls])


_PLEASANTRIES = _pleasantries()
_LONGEST_PLEASANTRY = max(len(phrase) for phrase in _PLEASANTRIES)
# What may follow a pleasantry: the start of the caller's next sentence.
_AFTER_PLEASANTRY = frozenset(
    """i i'm im i've ive i'd id i'll my we we're our so and but yeah yes yep well listen look hey okay ok
    um uh can could would is are do does did what what's when when's where where's why why's how how's
    who who's there there's just anyway please need got have has you your the a an some any""".split()  # noqa: SIM905
)
_CALLING = frozenset(["calling", "speaking", "here"])
_NOT_CONTENT = _INTRO_LEADS | _CALLING | GLUE | FIRST_NAMES | frozenset(["not", "no"])
# Dropped with the opening they follow ("I'm fine thanks, but my card ...").
_AFTER_OPENING = _INTRO_LEADS | frozenset(["but", "anyway"])
# Words that cannot be (part of) the name: where the name must end or the phrase is not an introduction
# ("my name is spelled wrong", "my name is on the account").
_NOT_NAMES = frozenset(
    """i i'm im i've ive i'd id i'll me my mine we we're our you your it it's its this that these those
    and but so or because calling call called from speaking here there is are was were am be been
    being do does did have has had can could would will should may might must need needs want wanted
    like just also the a an to with about for on in at of by as um uh please thanks thank hi hello
    hey yes yeah no not never okay ok regarding wrong spelled misspelled incorrect different changed
    missing showing listed still already now incorrectly correct right""".split()  # noqa: SIM905
)


def _is_name_word(word: str) -> bool:
    """Whether a lower-cased word can be (part of) a name."""
    return word.isalpha() and word not in _NOT_NAMES


# The words an introduction or a pleasantry can start with: any other word ends the search at once.
_OPENERS = frozenset(["my"] + [lead[0] for lead in _NAMED_BY] + [phrase[0] for phrase in _PLEASANTRIES])


def _introduction_end(lowered: list[str], start: int) -> int:
    """Where a self-introduction starting at ``start`` ends (``start`` when there is none)."""
    if lowered[start : start + 3] == ["my", "name", "is"] or lowered[start : start + 2] == ["my", "name's"]:
        name = start + (3 if lowered[start + 1] == "name" else 2)
        if name < len(lowered) and _is_name_word(lowered[name]):
            end = name + 1
            return end + 1 if end < len(lowered) and _is_name_word(lowered[end]) else end  # a surname
        return start
    for lead in _NAMED_BY:
        name = start + len(lead)
        if tuple(lowered[start:name]) != lead or name >= len(lowered) or not _is_name_word(lowered[name]):
            continue
        if lowered[name] in FIRST_NAMES:
            end = name + 1
            surname = end < len(lowered) and _is_name_word(lowered[end]) and lowered[end] not in FIRST_NAMES
            return end + 1 if surname else end
        if name + 1 < len(lowered) and lowered[name + 1] in _CALLING:
            return name + 1
        return start
    return start


def _pleasantry_end(lowered: list[str], start: int) -> int:
    """Where the longest pleasantry starting at ``start`` ends (``start`` when there is none, or
    when the words after it continue the same sentence)."""
    for end in range(min(len(lowered), start + _LONGEST_PLEASANTRY), start, -1):
        if tuple(lowered[start:end]) in _PLEASANTRIES:
            after = lowered[end] if end < len(lowered) else ""
            if not after.isalpha() or after in _AFTER_PLEASANTRY:
                return end
    return start


def drop_opening(tokens: list[str]) -> list[str]:
    """``tokens`` without the opening of the turn: its self-introductions and pleasantries (see
    above) and the greetings around them; unchanged when there are none or when too little would be
    left (the turn *is* one)."""
    lowered = [t.lower().replace("’", "'") for t in tokens]
    found = False
    end = at = 0
    while at < len(lowered):
        word = lowered[at]
        after = max(_introduction_end(lowered, at), _pleasantry_end(lowered, at)) if word in _OPENERS else at
        if after > at:
            found, end, at = True, after, after
        elif word in _INTRO_LEADS or not word[:1].isalnum():
            at += 1  # "hi", "yeah", "good", a comma: part of the opening if one follows
        else:
            break
    if not found:
        return tokens
    while end < len(lowered) and (lowered[end] in _AFTER_OPENING or not lowered[end][:1].isalnum()):
        end += 1
    # A request is a few words, not a vocative or a correction of the name ("how is it going my
    # friend", "my name is Stu, not Sue!"): those turns keep their opening.
    content = [w for w in lowered[end:] if w.isalpha() and w not in _NOT_CONTENT]
    if len(content) < 3:
        return tokens
    return tokens[end:]  # the greeting before the opening goes with it ("yes hi, this is Rob")
