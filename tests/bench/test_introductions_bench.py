"""``python -m bench introductions``: the openings it measures and its before/after switch."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.introductions import introductions_kept, measure, spoken
from models.normalize import normalize
from models.packs import DEFAULT_PACK
from models.runtime import Runtime


def test_spoken_form_is_lower_case_without_end_punctuation() -> None:
    assert spoken("How do I top up my card?") == "how do i top up my card"


def test_the_comparison_switch_restores_the_normalisation() -> None:
    turn = "hi my name is rob and i lost my card"
    with introductions_kept():
        assert normalize(turn).text == turn
    assert normalize(turn).text == "i lost my card"


@pytest.mark.parametrize("pack", [DEFAULT_PACK])
def test_measure_reports_each_opening_with_and_without_the_rule(pack: Path) -> None:
    runtime = Runtime.load(pack)
    texts = ["I lost my card", "How do I order checks?", "What is my balance?"]
    labels = ["lost_or_stolen_card", "order_checks", "balance"]
    result = measure(runtime, texts, labels)
    assert set(result) == {
        f"{opening} ({mode})"
        for opening in (
            "bare",
            "hi and",
            "hi my name is <name> and",
            "yes hi this is <name>",
            "hi how are you doing today",
            "i'm good thanks how are you",
        )
        for mode in ("dropped", "kept")
    }
    assert result["bare (dropped)"] == {"accuracy": 1.0, "same_intent_as_bare": 1.0}
    assert result["hi my name is <name> and (dropped)"]["same_intent_as_bare"] == 1.0
