"""The closed word lists of transcript normalisation: the first names are names only, never everyday words."""

from __future__ import annotations

from models.lexicon import FIRST_NAMES


def test_names_are_lower_case_single_words() -> None:
    assert all(name.isalpha() and name == name.lower() for name in FIRST_NAMES)
    assert {"sarah", "john", "rob", "karen"} <= FIRST_NAMES


def test_names_that_are_also_everyday_words_are_left_out() -> None:
    # "this is bill related", "I'm frank with you", "it's may already": these must keep their words
    assert not {"bill", "will", "mark", "grace", "frank", "may", "hope", "jack", "joy", "rose"} & FIRST_NAMES
