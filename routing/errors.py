"""The one error hierarchy of the routing layer.

Routing is pure: errors here mean the *input* is unusable (a policy that does
not validate, a turn whose scores are not numbers). The service maps them to
HTTP statuses in one place; nothing here knows about HTTP.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence


class RoutingError(ValueError):
    """Base of every error raised by ``routing``.

    ``errors`` lists every problem found (one line each), so a caller can show
    them all at once instead of making the user fix them one by one.
    """

    def __init__(self, message: str, errors: list[str] | None = None) -> None:
        super().__init__(message)
        self.errors: list[str] = list(errors) if errors is not None else [message]


class PolicyError(RoutingError):
    """A routing policy failed to parse or validate.

    Each entry of ``errors`` names where the problem is: ``rule '<id>', field
    '<path>': <problem>`` for rules, ``field '<path>': <problem>`` elsewhere.
    """

    def __init__(self, errors: list[str]) -> None:
        count = len(errors)
        head = f"invalid routing policy ({count} error{'s' if count != 1 else ''})"
        super().__init__(head + ":\n" + "\n".join(f"- {e}" for e in errors), errors)


class TurnError(RoutingError):
    """A scored turn cannot be used: unknown speaker or sentiment label, or a
    score that is not a finite number in its range. Model output never does
    this; it means the caller built a ``TurnScores`` by hand and got it wrong."""


class ReasonsError(RoutingError):
    """A reasons file (custom contact reasons) failed to parse or validate.

    Each entry of ``errors`` names where the problem is: ``reason '<id>', field
    '<path>': <problem>`` (``reason #<n>`` when the id itself is missing or
    bad), ``field '<path>': <problem>`` elsewhere.
    """

    def __init__(self, errors: list[str]) -> None:
        count = len(errors)
        head = f"invalid reasons file ({count} error{'s' if count != 1 else ''})"
        super().__init__(head + ":\n" + "\n".join(f"- {e}" for e in errors), errors)


def did_you_mean(word: str, options: Sequence[str], aliases: Mapping[str, str] | None = None) -> str:
    """Return `` (did you mean 'x'?)`` naming the option closest to ``word``, or ``""``.

    The one spelling-suggestion helper of every validation message in ``routing``.
    ``aliases`` maps spellings people reach for first (``equals`` for ``eq``) to an
    option: an alias whose option is among ``options`` wins over the closest spelling.
    """
    if aliases and word in aliases and aliases[word] in options:
        return f" (did you mean {aliases[word]!r}?)"
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
