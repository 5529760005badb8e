"""Escalation phrasing: clear words that mean "a person", "I'm leaving", "I'll sue".

The intent head already catches most of these; phrasing is the safety net for
what a classifier trained on chat misses, above all voice transcripts ("a gent",
"representative", "operator") and terse IVR-style turns ("agent!"). Patterns
are deliberately narrow: a false "human request" costs an agent minute, but a
false "legal threat" or "churn" mislabels a customer in front of a supervisor.

A phrase preceded by a negation in the same clause ("I don't need an agent")
does not count. Every function returns the matched phrase (for the
explanation) or ``None``. Pure functions, no I/O.
"""

from __future__ import annotations

import re

# "a person" nouns that are clear enough after "talk to" and similar verbs.
_PERSON_STRONG = (
    r"(?:human(?:\s+beings?)?|(?:real|live|actual|proper)\s+(?:human|person|people|agent|operator|rep)"
    r"|(?:customer\s+(?:service|support|care)\s+)?(?:agent|a\s+gent|representative|represent\s?a\s?tive"
    r"|representive|rep|operator)|manager|supervisor)"
)
# Weaker nouns: fine after "talk to", not after "I need" ("I need someone to fix this").
_PERSON_WEAK = r"(?:someone|somebody|some\s+one|a\s+person|anyone|anybody)"
_DET = r"(?:(?:a|an|the|your|some|one\s+of\s+your|to\s+a|with\s+a)\s+)?"

_HUMAN_PATTERNS = (
    # "speak to a real person", "put me through to an operator", "transfer me to someone"
    re.compile(
        r"\b(?:speak|talk|chat|connect|transfer|put|patch|get)(?:ing)?\s+(?:me\s+)?"
        r"(?:to|with|through\s+to|through)\s+" + _DET + r"(?:" + _PERSON_STRONG + "|" + _PERSON_WEAK + r")\b",
        re.IGNORECASE,
    ),
    # "I want a human", "need an agent", "give me a representative", "can I get an operator"
    re.compile(
        r"\b(?:want|need|like|give\s+me|get\s+me|can\s+i\s+(?:get|have)|may\s+i\s+have|let\s+me\s+have)\s+"
        r"(?:to\s+(?:speak|talk)\s+(?:to|with)\s+)?" + _DET + _PERSON_STRONG + r"\b",
        re.IGNORECASE,
    ),
    # the whole turn is the request: "Agent!", "representative please", "a gent", "operator operator"
    re.compile(
        r"^\W*(?:(?:um+|uh+|yes|yeah|ok(?:ay)?|please|hello|hi)\W+)*(?:" + _PERSON_STRONG + r"\W*)+"
        r"(?:\W*(?:please|now|pls|plz))*\W*$",
        re.IGNORECASE,
    ),
    # "are you a real person?" on its own is a question, but "is there a human" asks for one
    re.compile(r"\b(?:is\s+there|are\s+there)\s+" + _DET + _PERSON_STRONG + r"\b", re.IGNORECASE),
)
# "I don't want a bot", "stop the robot", "no more chatbot": carries its own negation.
_NOT_A_BOT = re.compile(
    r"\b(?:(?:don'?t|do\s+not)\s+(?:want|need|like)\s+(?:to\s+(?:talk|speak|chat)\s+(?:to|with)\s+)?"
    r"|no\s+more\s+|stop\s+)(?:a\s+|an\s+|the\s+|this\s+|your\s+)?"
    r"(?:bot|robot|machine|automated\s+(?:system|assistant)|chatbot|ai)\b",
    re.IGNORECASE,
)

_CHURN_PATTERNS = (
    re.compile(
        r"\b(?:cancel|close|terminate|delete|shut\s+down|end|quit)(?:ing)?\s+(?:my|the|our|this)\s+"
        r"(?:\w+\s+)?(?:account|membership|subscription|contract|relationship|plan)\b",
        re.IGNORECASE,
    ),
    re.compile(
        r"\b(?:switch(?:ing)?|mov(?:e|ing)|tak(?:e|ing)\s+my\s+(?:money|business))\s+(?:\w+\s+)?"
        r"(?:to|over\s+to)\s+(?:a\s+)?(?:another|different|other|competitor|your\s+competitor)\b",
        re.IGNORECASE,
    ),
    re.compile(
        r"\b(?:leav(?:e|ing)\s+(?:you|your\s+(?:bank|company|service))|done\s+with\s+(?:you|your)"
        r"|(?:find|going\s+to)\s+(?:a|another)\s+(?:bank|provider))\b",
        re.IGNORECASE,
    ),
)

_LEGAL_PATTERNS = (
    re.compile(
        r"\b(?:lawyers?|attorneys?|solicitors?|lawsuits?|legal\s+action|small\s+claims|(?:to|in)\s+court|"
        r"ombudsman|regulators?|cfpb|fca|bbb|better\s+business\s+bureau|ftc|trading\s+standards|"
        r"attorney\s+general|class\s+action|suing)\b",
        re.IGNORECASE,
    ),
    # "sue" alone is also a name; only count it as a verb with a subject or object.
    re.compile(
        r"\b(?:i(?:'ll|\s+will|\s+am\s+going\s+to|'m\s+going\s+to|'m\s+gonna)?|we(?:'ll|\s+will)?|gonna|going\s+to)"
        r"\s+sue\b|\bsue\s+(?:you|your|the|this|them)\b",
        re.IGNORECASE,
    ),
    re.compile(
        r"\breport(?:ing)?\s+(?:you|this|your\s+\w+)\s+to\s+(?:the\s+)?(?:authorities|police|regulator)",
        re.IGNORECASE,
    ),
)

_COMPLAINT_PATTERNS = (
    re.compile(
        r"\b(?:(?:formal|official|written)\s+complaint|(?:make|file|lodge|raise|submit)\s+a\s+complaint"
        r"|complain(?:ing)?\s+(?:about|to))\b",
        re.IGNORECASE,
    ),
)

_NEGATION = re.compile(
    r"(?<!why\s)\b(?:don'?t|do\s+not|doesn'?t|didn'?t|no\s+need|never|not|won'?t|wouldn'?t|without)\b[^.,;!?]*$",
    re.IGNORECASE,
)


# Cheap substring pre-checks: the regexes only run on text that mentions one of these
# (lower-case) words, which keeps the common turn ("where is my order") at a few microseconds.
_HUMAN_TRIGGERS = (
    "human", "person", "people", "agent", "gent", "rep", "operator", "manager", "supervisor",
    "someone", "somebody", "some one", "anyone", "anybody", "bot", "machine", "automated", "ai",
)  # fmt: skip
_CHURN_TRIGGERS = (
    "cancel", "close", "terminat", "delete", "shut", "end", "quit", "switch", "mov", "tak", "leav", "done",
    "find", "going",
)  # fmt: skip
_LEGAL_TRIGGERS = (
    "lawyer", "attorney", "solicitor", "lawsuit", "legal", "claims", "court", "ombudsman", "regulator",
    "cfpb", "fca", "bbb", "better business", "ftc", "trading standards", "attorney general", "class action",
    "su", "report",
)  # fmt: skip
_COMPLAINT_TRIGGERS = ("complain",)


def _mentions(text: str, triggers: tuple[str, ...]) -> bool:
    low = text.lower()
    return any(t in low for t in triggers)


def _first_unnegated(
    patterns: tuple[re.Pattern[str], ...], text: str, *, negatable: bool = True
) -> str | None:
    for pattern in patterns:
        for m in pattern.finditer(text):
            clause = text[max(0, m.start() - 40) : m.start()]
            if negatable and _NEGATION.search(clause):
                continue
            return m.group(0).strip()
    return None


def human_request_phrase(text: str) -> str | None:
    """Return the phrase by which ``text`` asks for a person, or ``None``.

    Covers "speak to a real person", "talk to someone", "I want an agent",
    voice spellings ("a gent", "represent a tive"), bare "agent!"/"operator",
    and "I don't want a bot". "I don't need an agent" is not a request.
    """
    if not _mentions(text, _HUMAN_TRIGGERS):
        return None
    return _first_unnegated(_HUMAN_PATTERNS, text) or _first_unnegated((_NOT_A_BOT,), text, negatable=False)


def churn_phrase(text: str) -> str | None:
    """Return the phrase by which ``text`` says the customer means to leave, or ``None``.

    "close my account", "cancel my subscription", "switching to another bank",
    "I'm done with you". "cancel my card/order/transfer" is not churn.
    """
    return _first_unnegated(_CHURN_PATTERNS, text) if _mentions(text, _CHURN_TRIGGERS) else None


def legal_threat_phrase(text: str) -> str | None:
    """Return the phrase by which ``text`` threatens legal or regulator action, or ``None``.

    Lawyers, suing, court, ombudsman, CFPB, FCA, BBB, regulators. Negation is
    ignored here on purpose: "I don't want to get lawyers involved" is still a
    warning a supervisor wants to see.
    """
    if not _mentions(text, _LEGAL_TRIGGERS):
        return None
    return _first_unnegated(_LEGAL_PATTERNS, text, negatable=False)


def complaint_phrase(text: str) -> str | None:
    """Return the phrase by which ``text`` announces a formal complaint, or ``None``."""
    return _first_unnegated(_COMPLAINT_PATTERNS, text) if _mentions(text, _COMPLAINT_TRIGGERS) else None


# --- calm closings -------------------------------------------------------------------------------

# A turn closes the conversation when it is made only of these phrases ("thanks, that's all") and
# the filler words below ("ok", "great", "no"). Anything else in the turn ("thanks, and what is my
# balance", "thanks but it still doesn't work") means the customer is not done.
_CLOSING_PHRASES = re.compile(
    r"\b(?:"
    r"(?:thank(?:s|\s+you|\s+u|s\s+you)?|than\s+you)(?:\s+(?:so|very)\s+much|\s+a\s+(?:lot|bunch|ton|million)|\s+again|\s+kindly)*"
    r"|thx|ty|cheers|(?:much|greatly|really)\s+appreciated|many\s+thanks"
    r"|(?:i\s+)?(?:really\s+|truly\s+)?appreciate\s+(?:it|that|(?:all\s+)?(?:the|your|you)\s+"
    r"(?:help|assistance|support|work|time))(?:\s+(?:very|so)\s+much)?"
    r"|(?:for|with)\s+(?:all\s+)?(?:of\s+)?(?:the\s+|your\s+|you\s+|ur\s+|this\s+|that\s+)?(?:kind\s+|great\s+)?"
    r"(?:help|assistance|assist|support|work|time|info|information)"
    r"|for\s+(?:helping|assisting)(?:\s+me)?(?:\s+out)?|for\s+everything|for\s+that|for\s+this"
    r"|that(?:'s|s|\s+is|\s+was|\s+will\s+be|\s+would\s+be|'ll\s+be)?\s+(?:all|everything)"
    r"(?:\s+(?:that\s+)?i\s+(?:need|needed|wanted)(?:\s+(?:to\s+know|help\s+with))?)?"
    r"(?:\s+for\s+(?:now|today))?"
    r"(?:\s+(?:at|for)\s+this\s+time)?"
    r"|that(?:'s|s|\s+is|'ll\s+do|\s+will\s+do|\s+will\s+be)\s+it(?:\s+for\s+(?:now|today))?"
    r"|that(?:'ll|\s+will)\s+do(?:\s+it)?"
    r"|(?:i\s+)?(?:don't|do\s+not)\s+need\s+any(?:thing|\s+more|\s+further)\s*(?:else|more|help|assistance)?"
    r"(?:\s+(?:right\s+now|now|today|for\s+now))?"
    r"|i\s+need\s+nothing\s+(?:else|more)|nothing\s+(?:else|more)(?:\s+for\s+now|\s+today)?"
    r"|i\s+have\s+everything\s+(?:that\s+)?i\s+need|no\s+more\s+questions"
    r"|(?:i'm|i\s+am|we're|we\s+are)\s+(?:all\s+)?(?:set|done|good)(?:\s+now|\s+for\s+now)?|all\s+set|all\s+done"
    r"|(?:good\s*)?bye(?:\s+for\s+now)?|see\s+you|take\s+care"
    r"|have\s+a\s+(?:nice|good|great|lovely)\s+(?:day|one|evening|night|weekend)|you\s+too"
    r"|you\s+were\s+(?:very\s+|so\s+|really\s+)?helpful"
    r"|you(?:'ve|\s+have)\s+been\s+(?:very\s+|so\s+|really\s+)?(?:a\s+(?:great\s+|big\s+)?help|helpful)"
    r"|(?:that|this)\s+(?:was|is|has\s+been)\s+(?:very\s+|so\s+|really\s+)?helpful|that\s+helps|you\s+rock"
    r")(?=\s|$)"
)
_CLOSING_FILLERS = frozenset(
    {
        "ok", "okay", "alright", "all", "right", "great", "perfect", "awesome", "excellent", "wonderful",
        "lovely", "brilliant", "cool", "nice", "good", "fine", "fantastic", "super", "no", "nope", "oh",
        "well", "so", "and", "then", "now", "today", "again", "really", "very", "much", "sir", "madam",
    }
)  # fmt: skip
# A turn that starts by agreeing ("yes, thanks") answers a question; it closes only with a closing
# core beyond the thanks ("yes, that's all, thank you").
_AFFIRM_START = frozenset({"yes", "yeah", "yep", "yup", "sure", "correct"})
_BEYOND_THANKS = re.compile(r"\b(?:all|everything|nothing|set|done|bye|see\s+you|take\s+care|have\s+a)\b")
_CLOSING_TRIGGERS = ("thank", "thx", "ty", "cheers", "apprecia", "all", "everything", "else", "more",
                     "set", "done", "bye", "see you", "take care", "have a", "helpful", "helps", "rock",
                     "do it", "need any", "that's it", "thats it", "that is it", "will be it")  # fmt: skip


def closing_phrase(text: str) -> str | None:
    """Return ``text`` (trimmed) when the whole turn is a calm closing, else ``None``.

    "Thanks, that's all", "Perfect, thank you so much!", "No, that will be all. Bye!",
    "I'm all set, thanks". A turn that says anything more is not a closing: "thanks,
    what is my balance?", "thanks but it still doesn't work", "thanks for nothing";
    nor is an agreement that only thanks ("yes, thank you" answers a question).
    Sentiment is the caller's business (``routing.signals`` also requires it calm).
    """
    low = text.lower().replace("\u2019", "'")
    if not _mentions(low, _CLOSING_TRIGGERS):
        return None
    words = re.sub(r"[^a-z' ]+", " ", low).split()
    flat = " ".join(words)
    rest, found = _CLOSING_PHRASES.subn(" ", flat)
    if not found or any(word not in _CLOSING_FILLERS for word in rest.split()):
        return None
    if words[0] in _AFFIRM_START and not _BEYOND_THANKS.search(flat):
        return None
    return text.strip()
