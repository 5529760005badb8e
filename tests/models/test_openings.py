"""A caller's opening (self-introductions, pleasantries) is dropped before a request, and only then."""

from __future__ import annotations

import pytest

from models.normalize import normalize
from models.openings import drop_opening


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("hi my name is rob and i lost my card", "i lost my card"),
        ("Hello, my name is Rob Smith. I lost my card", "I lost my card"),
        ("um hi my name is [noise] sarah and uh i need to order checks", "i need to order checks"),
        ("my name's bob and my card is blocked", "my card is blocked"),
        ("yes hi this is sue calling about my loan", "calling about my loan"),
        ("hi this is rob i lost my card", "i lost my card"),
        ("yes hi this is sarah jones and i need to order checks", "i need to order checks"),
        ("hi i'm sarah and i need a new card", "i need a new card"),
        ("it's karen, where is my refund", "where is my refund"),
        ("hi how are you doing today i need to check my balance", "i need to check my balance"),
        ("I'm good thanks, how are you? I lost my card", "I lost my card"),
        ("good thanks and you? so i was charged twice", "i was charged twice"),
        ("i'm fine thank you but my card is blocked", "my card is blocked"),
        ("hi thanks for taking my call my card was declined", "my card was declined"),
        ("hi how are you my name is rob and i need to order checks", "i need to order checks"),
    ],
)
def test_an_introduction_or_pleasantry_before_a_request_is_dropped(text: str, expected: str) -> None:
    assert normalize(text).text == expected


@pytest.mark.parametrize(
    "text",
    [
        "my name is spelled wrong on my card",  # the name is the request
        "my name is on the account",
        "how do i change my name",
        "hi this is ridiculous i want a refund",  # "this is" without "calling" is not an introduction
        "i'm frank with you this is terrible service",  # a name that is also a word: not in the list
        "this is bill related i was charged twice",
        "hi i'm calling about my card",
        "hi i'm so angry",
        "this is the third time i call",
        "hi this is rob",
        "how are you going to fix this",  # the same sentence goes on: a question, not a pleasantry
        "how are you able to charge me twice",
        "how are you doing this to me",
        "hello, how are you today?",  # nothing but the pleasantry: it stays
        "i'm good thanks how are you",
        "thank you for your help",
        "my name is stu, not sue!",  # a correction of the name, not a request
        "how is it going my friend",
        "hi my name is rob smith",  # nothing but the introduction: it stays (an inform turn)
        "this is sue speaking",
        "my name is brad",
    ],
)
def test_turns_that_are_not_an_introduction_before_a_request_are_unchanged(text: str) -> None:
    assert normalize(text).text == text


def test_drop_opening_works_on_tokens_and_keeps_their_case() -> None:
    assert drop_opening(["Hi", ",", "I'm", "Sarah", ".", "I", "lost", "my", "card"]) == [
        "I",
        "lost",
        "my",
        "card",
    ]
    assert drop_opening(["I", "lost", "my", "card"]) == ["I", "lost", "my", "card"]
