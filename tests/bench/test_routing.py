"""``python -m bench routing``: decision-quality figures from a suite run."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.routing import Rate, format_quality, main, quality
from routing.suite import CaseResult, StepView, SuiteReport

ROOT = Path(__file__).resolve().parents[2]


def _step(
    index: int, speaker: str, route: str, queue: str, status: str = "none", changed: bool = False
) -> StepView:
    return StepView(
        index=index,
        speaker=speaker,
        route=route,
        queue=queue,
        priority=10,
        rule="r",
        guardrail=None,
        changed=changed,
        held=False,
        resolved=False,
        reason_status=status,
        reason_level="intent" if status == "confident" else "",
        flags=(),
        summary="",
    )


def _case(name: str, tags: tuple[str, ...], *steps: StepView) -> CaseResult:
    return CaseResult(case=name, tags=tags, steps=steps, checks=())


BOT, PERSON = ("self_serve_bot", "bot"), ("specialist", "cards")


def _report() -> SuiteReport:
    results = (
        # Contained: the bot has it at the first confident reason.
        _case("a", ("calm_simple",), _step(0, "bot", *BOT), _step(1, "customer", *BOT, "confident", True)),
        # Not contained: a person at the first confident reason.
        _case("b", ("calm_simple",), _step(0, "customer", *PERSON, "confident")),
        # Never confident: not contained either.
        _case("c", ("calm_simple",), _step(0, "customer", *BOT)),
        # A complaint opening the bot keeps, and one it does not.
        _case("d", ("negative", "complaint_opening"), _step(0, "bot", *BOT), _step(1, "customer", *BOT)),
        _case("e", ("negative", "complaint_opening"), _step(0, "customer", *PERSON, changed=True)),
        # Asked for a person: never kept.
        _case(
            "f", ("human_request",), _step(0, "customer", *BOT), _step(1, "customer", *PERSON, changed=True)
        ),
        # A flip-flop: bot, person, bot.
        _case(
            "g",
            (),
            _step(0, "customer", *BOT),
            _step(1, "customer", *PERSON, changed=True),
            _step(2, "customer", *BOT, changed=True),
        ),
    )
    return SuiteReport(results=results, policy_version="t", policy_hash="h", rule_ids=("default",))


def test_quality_figures() -> None:
    q = quality(_report())
    assert q.containment == Rate(1, 3)
    assert q.escalation_recall == Rate(1, 2)
    assert q.complaint_openings_kept_by_bot == Rate(1, 2)
    assert q.human_requests_kept_by_bot == Rate(0, 1)
    assert q.flip_flops == Rate(1, 7)
    assert q.changes_per_conversation == pytest.approx(3 / 7)  # f: 1, g: 2 after the first customer turn
    assert Rate(0, 0).value is None
    text = format_quality(q, "header")
    assert text.startswith("header\n\n| figure | value | target |")
    assert "| 33.3% (1/3) | >= 70%: NOT met |" in text
    assert "| 0.0% (0/1) | <= 0%: met |" in text
    assert "| 14.3% (1/7) |" in text


def test_bench_routing_runs_the_committed_suite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SWITCHBOARD_DATA_DIR", str(tmp_path / "var"))  # the reasons' embedding cache
    import json

    from models.packs import DEFAULT_PACK

    if not (DEFAULT_PACK / "manifest.json").is_file():
        pytest.skip(f"default model pack not present at {DEFAULT_PACK}")
    out = tmp_path / "routing.json"
    assert main(["--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Decision quality on" in printed and "| containment:" in printed
    figures = json.loads(out.read_text())
    assert figures["conversations"] >= 150
    assert set(figures["figures"]) == {
        "containment",
        "escalation_recall",
        "complaint_openings_kept_by_bot",
        "human_requests_kept_by_bot",
        "flip_flops",
    }
    # Whatever the pack: a request for a person is never kept by the bot.
    assert figures["figures"]["human_requests_kept_by_bot"]["hits"] == 0
