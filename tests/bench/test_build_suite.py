"""``python -m bench suite``: the policy suite builder (on a tiny stand-in for the data)."""

from __future__ import annotations

from pathlib import Path

from bench.build_suite import build, main, read_data, to_toml
from routing.policy import default_policy
from routing.suite import check_suite, expected_coverage, parse_suite


def test_the_builder_is_deterministic_and_writes_a_valid_suite(tiny_data: Path, tmp_path: Path) -> None:
    data = read_data(tiny_data)
    text = to_toml(build(data))
    assert text == to_toml(build(read_data(tiny_data)))  # same data, same seed: same file
    assert text != to_toml(build(data, seed=1))
    suite = parse_suite(text)
    policy = default_policy()
    assert check_suite(suite, policy) == []
    assert expected_coverage(suite, policy) == ([], [])
    ids = [case.id for case in suite.cases]
    assert len(ids) == len(set(ids))
    # Every case says where its turns come from; the complaint tweets lose their handles and links.
    assert all(case.source for case in suite.cases)
    openings = [c for c in suite.cases if "complaint_opening" in c.tags]
    assert openings and all("@" not in c.turns[1].text and "http" not in c.turns[1].text for c in openings)
    # A calm Tier-1 opening expects the bot; a complaint opening expects a person.
    tier1 = next(c for c in suite.cases if c.id.startswith("tier1-"))
    assert (tier1.expect[0].route, tier1.expect[0].rule) == ("self_serve_bot", ("tier1-bot",))
    assert openings[0].expect[0].route == "human"


def test_main_writes_then_checks_the_file(tiny_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "suite.toml"
    assert main(["--data", str(tiny_data), "--out", str(out)]) == 0
    assert main(["--data", str(tiny_data), "--out", str(out), "--check"]) == 0
    out.write_text(out.read_text() + "\n# edited\n")
    assert main(["--data", str(tiny_data), "--out", str(out), "--check"]) == 1
