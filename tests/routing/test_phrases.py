"""Escalation phrasing: what counts as asking for a person, leaving, suing, complaining."""

from __future__ import annotations

import pytest

from routing.phrases import churn_phrase, complaint_phrase, human_request_phrase, legal_threat_phrase

HUMAN_REQUESTS = [
    "I want to speak to a real person",
    "can I talk to someone please",
    "put me through to an operator",
    "transfer me to a representative",
    "connect me with a live agent",
    "I need an agent",
    "give me a human",
    "can I get a rep",
    "let me speak to your manager",
    "agent",
    "Agent!",
    "a gent",  # voice transcript
    "represent a tive please",  # voice transcript
    "operator operator",
    "human being please",
    "uh, representative",
    "speak to someone",
    "is there a human I can talk to?",
    "I don't want a bot",
    "stop the robot",
    "why don't you put me through to a human",
    "I don't know why it failed, I want an agent",
]

NOT_HUMAN_REQUESTS = [
    "my travel agent booked it",
    "the agent was rude yesterday",
    "I talked to someone yesterday about this",
    "I don't need an agent, just tell me the fee",
    "I'm not a bot",
    "my estate agent needs a statement",
    "I need someone to fix this card",
    "where is my order",
    "",
]


@pytest.mark.parametrize("text", HUMAN_REQUESTS)
def test_human_requests(text: str) -> None:
    assert human_request_phrase(text) is not None


@pytest.mark.parametrize("text", NOT_HUMAN_REQUESTS)
def test_not_human_requests(text: str) -> None:
    assert human_request_phrase(text) is None


def test_the_phrase_is_returned_for_the_explanation() -> None:
    assert human_request_phrase("ugh. I want to speak to a real person now") == "speak to a real person"


@pytest.mark.parametrize(
    ("text", "churn"),
    [
        ("I want to close my account", True),
        ("please cancel my subscription", True),
        ("delete my account now", True),
        ("terminate the contract", True),
        ("I'm switching to another bank", True),
        ("I'm leaving you for a better bank", True),
        ("I'm done with you people", True),
        ("cancel my card", False),
        ("cancel my order", False),
        ("cancel the transfer I just made", False),
        ("I don't want to close my account", False),
        ("how do I open an account", False),
    ],
)
def test_churn(text: str, churn: bool) -> None:
    assert (churn_phrase(text) is not None) is churn


@pytest.mark.parametrize(
    ("text", "legal"),
    [
        ("I'll sue you", True),
        ("we will sue", True),
        ("I'm calling my lawyer", True),
        ("my attorney will hear about this", True),
        ("see you in court", True),
        ("I'm reporting you to the CFPB", True),
        ("the FCA will hear about this", True),
        ("I'll go to the ombudsman", True),
        ("I'm filing with the BBB", True),
        ("the regulator should know", True),
        ("I don't want to involve lawyers", True),  # still a warning a supervisor wants to see
        ("my wife Sue paid it", False),
        ("I went to the food court", False),
        ("please reset my password", False),
    ],
)
def test_legal_threats(text: str, legal: bool) -> None:
    assert (legal_threat_phrase(text) is not None) is legal


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("I want to make a formal complaint", True),
        ("I'd like to file a complaint", True),
        ("I'm complaining about the fee", True),
        ("I'm not complaining about you", False),
        ("no complaints, thanks", False),
    ],
)
def test_complaints(text: str, complaint: bool) -> None:
    assert (complaint_phrase(text) is not None) is complaint


# --- calm closings -------------------------------------------------------------------------------

from routing.phrases import closing_phrase  # noqa: E402

CLOSINGS = [
    "thanks, that's all",
    "Perfect, thank you so much!",
    "No, that's all, thank you.",
    "Thank you for your help.",
    "Thanks a lot!",
    "ok bye",
    "That will be all. Thank you!",
    "I'm all set, thanks",
    "Thanks, I don't need anything else.",
    "Great, that's it for now",
    "cheers, have a nice day",
    "Thank you very much. I don't need anything else.",
    "I really appreciate your help",
    "no thank you",
    "That\u2019s all, thanks",
]
NOT_CLOSINGS = [
    "thanks for nothing",
    "thanks, what is my balance?",
    "thanks but it still doesn't work",
    "thanks, can I talk to an agent",
    "yes, thank you",  # agreeing with a question, not closing
    "Yes, that's it.",
    "ok",
    "no",
    "that's it, I'm closing my account",
    "I need help with my card",
    "all my cards are blocked",
    "",
]


@pytest.mark.parametrize("text", CLOSINGS)
def test_closing_phrases(text: str) -> None:
    assert closing_phrase(text) == text.strip()


@pytest.mark.parametrize("text", NOT_CLOSINGS)
def test_not_closing_phrases(text: str) -> None:
    assert closing_phrase(text) is None
