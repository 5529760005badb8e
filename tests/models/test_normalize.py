"""Transcript normalisation: tags, cut-offs, fillers, backchannels, spoken numbers, handles."""

from __future__ import annotations

import pytest

from models.normalize import normalize


@pytest.mark.parametrize(
    "text",
    [
        "[noise]",
        "<unk>",
        "[laughter] [noise]",
        "((inaudible))",
        "(inaudible)",
        "um",
        "uh uh um",
        "mm hmm",
        "uh-huh",
        "uh-hum",
        "um hum",
        "mhmm",
        "mm-hm",
        "all right",
        "okay all right",
        "okay",
        "yeah yeah okay",
        "four one one one",
        "seven oh two",
        "and uh seven zero zero",
        "eighty one",
        "a hundred",
        "ca~",
        "sorry?",
        "I'm sorry",
        "oh sorry about that",
        "excuse me?",
        "pardon me",
        "um sorry uh",
        "sorry, can you repeat that?",
        "I’m sorry, I didn't catch that",
        "what was that?",
        "could you say that again please",
        "oh sorry I can't hear you",
        "",
        "   ",
        ", , .",
    ],
)
def test_turns_without_lexical_content(text: str) -> None:
    assert normalize(text).lexical is False


@pytest.mark.parametrize(
    ("text", "asks"),
    [
        ("sorry, can you repeat that?", True),
        ("I’m sorry, I didn't catch that", True),
        ("um what was that", True),
        ("could you say that again please", True),
        ("oh sorry I can't hear you", True),
        ("you're breaking up", True),
        ("sorry?", False),  # as often an apology as a request: not counted
        ("I'm sorry", False),
        ("[noise]", False),
        ("okay", False),
        ("can you repeat my balance", False),  # a request, and lexical
    ],
)
def test_requests_to_repeat_are_marked(text: str, asks: bool) -> None:
    normalized = normalize(text)
    assert normalized.repeat_request is asks
    if asks:
        assert normalized.lexical is False


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("and the zip code is seven zero zero", "and the zip code is 700"),
        ("the amount is eighty one dollars", "the amount is 81 dollars"),
        ("two hundred and fifty dollars", "250 dollars"),
        ("my card ends in four one one one", "my card ends in 4111"),
        ("seven oh two", "702"),
        ("double five", "55"),
    ],
)
def test_spoken_numbers_become_digits(text: str, expected: str) -> None:
    assert normalize(text).text == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ca~ can I get uh my balance", "can I get my balance"),
        ("it was th- the second time [noise]", "it was the second time"),
        ("um, I lost my card", "I lost my card"),
        ("@FC_Help my e-mail never came https://t.co/x", "@user my e-mail never came http"),
        ("I want the new one", "I want the new one"),  # a lone "one" is a pronoun, not a digit
        ("oh no my card", "oh no my card"),
        ("is it all right to pay late", "is it all right to pay late"),
        ("mhmm I need a new card", "I need a new card"),
    ],
)
def test_lexical_turns_keep_their_words(text: str, expected: str) -> None:
    result = normalize(text)
    assert result.lexical is True
    assert result.text == expected


@pytest.mark.parametrize(
    "text",
    [
        "oh sorry, go ahead",
        "excuse me, I was charged twice",
        "one second, sorry",
        "I lost my card, sorry to say, on the bus",
        "can you repeat my balance",  # a repeat of something named is a request
        "I didn't get it",  # ... and not getting something is a problem
        "what was that charge",
    ],
)
def test_an_apology_or_repeat_in_a_turn_that_says_more_keeps_the_turn_and_its_words(text: str) -> None:
    result = normalize(text)
    assert result.lexical is True
    assert result.text == text


def test_greetings_are_marked_only_when_nothing_else_is_said() -> None:
    assert normalize("hi there").greeting is True
    assert normalize("Good morning!").greeting is True
    assert normalize("hello, I lost my card").greeting is False
    assert normalize("[noise]").greeting is False


def test_normalize_is_idempotent_on_clean_text() -> None:
    text = "How do I track my card?"
    assert normalize(normalize(text).text) == normalize(text)


@pytest.mark.parametrize(
    ("text", "holds"),
    [
        ("hold on let me grab my card", True),
        ("okay hold on, let me grab my wallet.", True),
        ("uh one second", True),
        ("give me a second please", True),
        ("hold on let me find my account number", True),
        ("hello are you there", True),
        ("sorry about that i'm back", True),
        ("let me check my balance", False),  # a request
        ("hold on my card was stolen", False),
        ("wait a minute that's not right", False),
        ("let me get a new card", False),
        ("i want to hold my card", False),
        ("hello", False),  # a greeting
    ],
)
def test_turns_that_only_ask_to_wait_or_check_the_line_are_marked(text: str, holds: bool) -> None:
    normalized = normalize(text)
    assert normalized.hold is holds and normalized.lexical
