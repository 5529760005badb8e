"""``python -m bench reasons``: its reasons file and the merged labels it scores."""

from __future__ import annotations

from bench.reasons import reasons_toml
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
