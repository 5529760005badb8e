"""``python -m bench reasons``: its reasons file and the merged labels it scores."""

from __future__ import annotations

import pytest

from bench.reasons import main, reasons_toml
from routing.reasons import load_reasons
from routing.taxonomy import INTENT_LABELS


def test_the_benchmark_file_loads_and_replaces_the_ids_that_are_built_in() -> None:
    built_in = next(label for label in INTENT_LABELS if label != "out_of_scope")
    shots = {
        "lost_luggage": [f"my bag {n} never arrived" for n in range(5)],
        built_in: [f"question {n} about {built_in}" for n in range(5)],
    }
    text = reasons_toml(shots, "clinc_custom", {"similarity_threshold": 0.7, "ambiguity_margin": 0.0})
    reasons = load_reasons(text)
    assert reasons.ids == ("lost_luggage", built_in)
    assert reasons.replaced == {built_in: built_in}
    assert reasons.matching.similarity_threshold == 0.7 and reasons.matching.ambiguity_margin == 0.0
    assert set(reasons.categories.values()) == {"clinc_custom"}


def test_domains_outside_the_few_shot_set_are_refused_before_the_pack_loads(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--accuracy-only", "--domains", "banking,travel", "--pack", "/nonexistent"])
    assert exit_info.value.code == 2
    assert "--domains: banking; choose from travel" in capsys.readouterr().err


def test_spoken_form_puts_each_utterance_behind_an_opening_the_index_never_saw() -> None:
    from bench.reasons import SPOKEN_OPENINGS, spoken_form
    from service.reasons import CARRIER_PHRASES

    assert spoken_form(["what are your hours", "is it open"]) == [
        f"{SPOKEN_OPENINGS[0]} what are your hours",
        f"{SPOKEN_OPENINGS[1]} is it open",
    ]
    assert not set(SPOKEN_OPENINGS) & set(CARRIER_PHRASES)  # the spoken figures must not flatter
