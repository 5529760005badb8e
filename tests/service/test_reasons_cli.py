"""``switchboard reasons check`` and ``reasons suggest`` on the committed fixtures with the tiny packs,
and ``policy check`` knowing the custom reasons."""

from __future__ import annotations

import importlib.util
import json
import tomllib
from pathlib import Path

import numpy as np
import pytest

from routing.policy import default_policy_text
from routing.reasons import ReasonSet, load_reasons
from service.cli import main

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "service" / "fixtures"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("SWITCHBOARD_REASONS", "SWITCHBOARD_PACK", "SWITCHBOARD_POLICY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SWITCHBOARD_DATA_DIR", str(tmp_path / "var"))


def test_check_prints_the_table_and_the_confusable_pairs(
    packs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["reasons", "check", str(FIXTURES / "reasons_ok.toml"), "--pack", str(packs["v2"]), "--no-progress"]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "valid (3 reasons" in out
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("reason"))
    assert header.split()[:7] == [
        "reason",
        "category",
        "examples",
        "held_out",
        "matched",
        "own_sim",
        "variety",
    ]
    for reason_id in ("parcel_status", "login_help", "refund_status"):
        row = next(line for line in lines if line.startswith(reason_id))
        assert float(row.split()[3]) >= 0.5  # held-out accuracy on the tiny pack's embedding
    assert "Confusable custom reasons:" in out and "Confusable with built-in intents:" in out
    assert "only 6 examples (8+ recommended)" in out


def test_check_reports_confusable_reasons_and_strict_fails_on_them(
    packs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (FIXTURES / "reasons_ok.toml").read_text()
    twin = text.split("[[reasons]]")[1].replace('"parcel_status"', '"parcel_twin"')
    for word in ("order", "package"):  # same words, another order: a near-copy of parcel_status
        twin = twin.replace(f"where is my {word}", f"my {word} where is")
    twin = twin.replace("where is the order now", "the order now where is").replace(
        "order package where today", "today where package order"
    )
    twin = twin.replace("my package is not here today", "today my package is not here")
    twin = twin.replace("where is my order today", "today where is my order")
    path = tmp_path / "twins.toml"
    path.write_text(text + "\n[[reasons]]" + twin)
    assert load_reasons(path.read_text()).ids[-1] == "parcel_twin"
    args = ["reasons", "check", str(path), "--pack", str(packs["v2"]), "--no-progress"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "parcel_status <-> parcel_twin" in out
    assert main([*args, "--strict"]) == 1


def test_check_lists_every_error_and_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["reasons", "check", str(FIXTURES / "reasons_bad.toml")]) == 1
    err = capsys.readouterr().err
    assert "invalid reasons file" in err
    for expected in (
        "field 'colour': unknown field",
        "field 'matching.similarity_threshold': must be between 0 and 1, got 1.5",
        "reason 'parcel_status', field 'examples[2]': repeats examples[0]",
        "reason 'parcel_status', field 'examples': needs at least 5 examples, got 3",
        "reason 'parcel_status', field 'id': duplicate reason id (first used by reason #1)",
        "reason 'track_order', field 'id': collides with the built-in intent 'track_order'",
        "reason #4, field 'id': must be lower-case letters",
        "reason 'moved_appointment', field 'exmaples': unknown field (did you mean 'examples'?)",
        "reason 'moved_appointment', field 'replaces': must name a built-in intent, got 'book_apointment' "
        "(did you mean 'book_appointment'?)",
    ):
        assert expected in err


def test_check_without_a_pack_embedding_is_a_clear_error(
    packs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["reasons", "check", str(FIXTURES / "reasons_ok.toml"), "--pack", str(packs["v1"]), "--no-progress"]
    )
    assert code == 2
    assert "has no sentence embedding (a v1 pack)" in capsys.readouterr().err


def test_suggest_clusters_the_unclear_turns_into_pasteable_reasons(
    packs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("sklearn")
    export = FIXTURES / "export_unclear.jsonl"
    args = ["reasons", "suggest", str(export), "--pack", str(packs["v2"]), "--reasons", "none"]
    code = main([*args, "--min-turns", "3", "--no-progress"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert ":13: not an exported conversation; skipped" in captured.err  # the line number, never the text
    out = captured.out
    assert "12 conversations, 48 customer turns, 12 stated a reason the pack could not name" in out
    document = tomllib.loads(out)
    candidates = document["reasons"]
    assert candidates, out
    suggested = {text for c in candidates for text in c["examples"]}
    assert suggested <= {
        "where is my order",
        "where is my package",
        "my package is not here today",
        "where is the order now",
        "where is my order today",
        "order package where today",
        "where is my package now",
        "i want a refund",
        "refund please today",
        "refund now",
        "i want my refund again",
        "my refund please",
    }
    for candidate in candidates:
        assert candidate["id"].startswith("suggested_") and candidate["category"] == "general_information"
    # Confident, informing, agent, custom-reason and non-lexical turns are never suggested.
    assert "reset my password now" not in out and "let me check" not in out and "login not working" not in out


def test_suggest_leaves_out_turns_the_active_reasons_already_match(
    packs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("sklearn")
    export = FIXTURES / "export_unclear.jsonl"
    args = [
        "reasons",
        "suggest",
        str(export),
        "--pack",
        str(packs["v2"]),
        "--min-turns",
        "1",
        "--no-progress",
    ]
    assert main([*args, "--reasons", str(FIXTURES / "reasons_ok.toml")]) == 0
    out = capsys.readouterr().out
    covered = int(out.split("; ")[1].split(" of those")[0])
    assert covered > 0


def test_suggest_without_scikit_learn_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "sklearn" else real(name, *a)
    )
    assert main(["reasons", "suggest", str(FIXTURES / "export_unclear.jsonl")]) == 2
    assert "pip install 'switchboard[suggest]'" in capsys.readouterr().err


def test_policy_check_knows_the_custom_reasons(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(
        default_policy_text().replace(
            "[[rules]]",
            '[[rules]]\nid = "parcels"\nroute = "specialist"\nqueue = "orders"\npriority = 40\n'
            'when = { signal = "reason.intent", eq = "parcel_status" }\n\n[[rules]]',
            1,
        )
    )
    monkeypatch.setenv("SWITCHBOARD_REASONS", "none")
    assert main(["policy", "check", str(policy)]) == 1
    assert "unknown value 'parcel_status' for reason.intent" in capsys.readouterr().err
    monkeypatch.setenv("SWITCHBOARD_REASONS", str(FIXTURES / "reasons_ok.toml"))
    assert main(["policy", "check", str(policy)]) == 0


def alpha_and_beta() -> ReasonSet:
    """Two reasons, five examples each ("alphaa" ... "betae"), for checks on hand-made vectors."""
    return load_reasons(
        "\n".join(
            f'[[reasons]]\nid = "{rid}"\ncategory = "c"\nexamples = {json.dumps([rid + n for n in "abcde"])}'
            for rid in ("alpha", "beta")
        )
    )


def test_check_leaves_each_example_out_of_its_centroid_and_its_nearest_example() -> None:
    from service.reasons import blended, unit_rows
    from service.reasons_tools import analyse

    rng = np.random.default_rng(5)
    reasons = alpha_and_beta()
    vectors = unit_rows(rng.normal(size=(10, 6)))
    vectors[5:] += 2.0  # beta's examples point elsewhere
    vectors = unit_rows(vectors)
    report = analyse(reasons, vectors, [[("out_of_scope", 0.9)]] * 10)
    alpha = vectors[:5]
    expected = []
    for row in range(5):
        others = np.delete(alpha, row, axis=0)
        centroid = unit_rows(others.sum(axis=0)[None, :])[0]
        nearest = float((others @ alpha[row]).max())
        expected.append(blended(np.array(centroid @ alpha[row]), np.array(nearest), 0.3))
    assert report.reasons[0].id == "alpha"
    assert report.reasons[0].own_similarity == pytest.approx(float(np.mean(expected)), abs=1e-5)


def test_check_picks_each_example_with_a_discriminant_fitted_without_it() -> None:
    from service.reasons import Discriminant, unit_rows
    from service.reasons_tools import HELD_OUT_FOLDS, held_out_picks

    rng = np.random.default_rng(7)
    groups = [unit_rows(rng.normal(size=(6, 5)) * 0.3 + centre) for centre in np.eye(5)[:3] * 2]
    units = np.concatenate(groups)
    owners = np.repeat(np.arange(3), 6)
    picks = held_out_picks(units, owners, 3)
    assert picks.shape == (18, 3) and (picks[:, 0] == owners).all()  # well apart: every one right
    # Each row's order is the one a fit without its fold gives: rows 0 and 5 share fold 0.
    fold = np.arange(18) % 6 % HELD_OUT_FOLDS == 0
    fitted = Discriminant.fit([units[(owners == k) & ~fold] for k in range(3)])
    assert (picks[0] == np.argsort(fitted.distances(units[0]))).all()
    # A reason with a single example has nothing to hold out: it is picked by a fit with it.
    lone = held_out_picks(units[:7], np.array([0] * 6 + [1]), 2)
    assert lone[6, 0] == 1


def test_check_weighs_the_heads_intent_with_the_packs_prototypes_and_points_to_replaces() -> None:
    """``reasons check`` reports what serving would do: with intent prototypes far from the examples,
    the reason keeps the examples a sure head calls a built-in intent; without them the head does."""
    from models.prototypes import IntentPrototypes
    from service.reasons import unit_rows
    from service.reasons_tools import analyse

    rng = np.random.default_rng(7)
    reasons = alpha_and_beta()
    centre = unit_rows(rng.normal(size=(2, 6)))
    vectors = unit_rows(np.repeat(centre, 5, axis=0) + 0.05 * rng.normal(size=(10, 6)))
    heads = [[("book_appointment", 0.95)]] * 5 + [[("out_of_scope", 0.9)]] * 5
    far = unit_rows(-centre[:1])
    prototypes = IntentPrototypes(("book_appointment",), far, far[:, None, :])
    alone = analyse(reasons, vectors, heads)
    assert alone.reasons[0].matched == 0.0
    assert any('replaces = "book_appointment"' in note for note in alone.reasons[0].notes)
    weighed = analyse(reasons, vectors, heads, prototypes)
    assert weighed.reasons[0].matched == 1.0 and weighed.reasons[1].matched == 1.0
