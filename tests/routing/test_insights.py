"""Insights, pure: contributions and their deltas, intervals, tests and the experiment answer."""

from __future__ import annotations

import random

import msgspec
import pytest

from routing.decision import Decision
from routing.experiments import bucket
from routing.insights import (
    Facts,
    Outcome,
    add_counts,
    cells,
    choose_control,
    delta,
    experiment_reports,
    facts_from,
    mean_interval,
    proportion_sample_size,
    summarize,
    t_cdf,
    t_quantile,
    two_proportion_test,
    welch_test,
    wilson,
)
from routing.signals import ConversationSignals, CustomerSentiment, FlagHit, ReasonState


def facts(**changes: object) -> Facts:
    base = Facts(
        bucket=7200, queue="bot", category="billing_and_fees", variant="exp/a", route="self_serve_bot"
    )
    return msgspec.structs.replace(base, **changes)


def decision(**changes: object) -> Decision:
    base = Decision(
        route="self_serve_bot",
        queue="bot",
        priority=0,
        rule="faq-bot",
        explanation=[],
        guardrail=None,
        policy_version="v1",
        policy_hash="h",
        variant=None,
        fallback=None,
    )
    return msgspec.structs.replace(base, **changes)


# -- contributions -----------------------------------------------------------------------------


def test_facts_from_decision_and_signals() -> None:
    signals = ConversationSignals(
        reason=ReasonState(category="billing_and_fees"),
        customer=CustomerSentiment(last_label="negative"),
        flags={"bot_loop": FlagHit(turn=3, source="pattern", evidence="x")},
    )
    escalated = decision(
        route="specialist", queue="billing", rule="faq-bot", guardrail="human_request",
        flags=["repeat_contact"], experiment="exp", variant="b",
    )  # fmt: skip
    got = facts_from(escalated, signals, created_at=7300.5, closed=True)
    assert got == Facts(
        bucket=7200, queue="billing", category="billing_and_fees", variant="exp/b", route="specialist",
        cause="guardrail:human_request", resolved=False, bot_loop=True, repeat_contact=True,
        negative_last=True, closed=True,
    )  # fmt: skip
    ruled = facts_from(decision(route="specialist", rule="vip"), ConversationSignals(), 0.0, False)
    assert ruled is not None and ruled.cause == "rule:vip" and ruled.variant == "none"
    assert facts_from(None, signals, 0.0, False) is None


def test_cells_count_each_metric_in_every_dimension() -> None:
    got = cells(facts(resolved=True), None)
    assert got[("all", "*", "conversations")] == 1
    assert got[("queue", "bot", "contained")] == 1
    assert got[("category", "billing_and_fees", "reason:billing_and_fees")] == 1
    assert got[("variant", "exp/a", "bot")] == 1
    assert ("all", "*", "negative_exit") not in got  # not ended
    assert cells(None, Outcome(resolved=True)) == {}


def test_outcome_decides_containment_and_adds_outcome_metrics() -> None:
    transferred = cells(
        facts(resolved=True), Outcome(resolved=True, transferred=True, csat=4, handle_time_s=61.6)
    )
    assert ("all", "*", "contained") not in transferred
    assert transferred[("all", "*", "csat_sum")] == 4 and transferred[("all", "*", "csat_sq")] == 16
    assert transferred[("all", "*", "handle_sum")] == 62
    contained = cells(facts(negative_last=True), Outcome(resolved=True, recontact_within_days=3))
    assert contained[("all", "*", "contained")] == 1
    assert contained[("all", "*", "negative_exit")] == 1  # an outcome ends the conversation
    assert contained[("all", "*", "recontact")] == 1


def test_delta_moves_a_conversation_between_queues() -> None:
    before = cells(facts(), None)
    after = cells(facts(queue="billing", route="specialist", cause="rule:vip"), Outcome(churned=True))
    moved = delta(before, after)
    assert moved[("queue", "bot", "conversations")] == -1
    assert moved[("queue", "billing", "conversations")] == 1
    assert moved[("all", "*", "escalated")] == 1 and moved[("all", "*", "bot")] == -1
    assert ("all", "*", "conversations") not in moved  # unchanged cells are left out
    assert delta(after, after) == {}
    total: dict[tuple[str, str, str], int] = dict(before)
    for cell, n in moved.items():
        total[cell] = total.get(cell, 0) + n
    assert {c: n for c, n in total.items() if n} == after


def test_outcome_body_is_validated() -> None:
    decoder = msgspec.json.Decoder(Outcome)
    assert decoder.decode(b'{"resolved": true, "csat": 5, "labels": ["x"]}') == Outcome(
        resolved=True, csat=5, labels=["x"]
    )
    for bad in (b'{"csat": 6}', b'{"csat": 0}', b'{"surprise": 1}', b'{"handle_time_s": -1}'):
        with pytest.raises(msgspec.ValidationError):
            decoder.decode(bad)


# -- statistics ----------------------------------------------------------------------------------


def test_wilson_matches_published_values() -> None:
    half = wilson(5, 10)
    assert half.value == 0.5 and half.low == pytest.approx(0.2366, abs=1e-4)
    assert half.high == pytest.approx(0.7634, abs=1e-4)
    none = wilson(0, 10)
    assert none.low == 0.0 and none.high == pytest.approx(0.2775, abs=1e-4)
    assert wilson(0, 0).value is None


def test_student_t() -> None:
    assert t_quantile(0.975, 1) == pytest.approx(12.706, abs=1e-3)
    assert t_quantile(0.975, 10) == pytest.approx(2.228, abs=1e-3)
    assert t_quantile(0.975, 1000) == pytest.approx(1.962, abs=1e-3)
    assert t_cdf(0.0, 5) == pytest.approx(0.5)
    assert t_cdf(-2.0, 7) == pytest.approx(1 - t_cdf(2.0, 7))
    mean = mean_interval(4, 4 + 3 + 5 + 4, 16 + 9 + 25 + 16)
    assert mean.value == 4.0 and mean.sd == pytest.approx(0.8165, abs=1e-4)
    assert mean.low == pytest.approx(4 - 3.182 * 0.8165 / 2, abs=1e-3)
    assert mean_interval(1, 5, 25).low is None


def test_two_proportion_test_and_sample_size() -> None:
    result = two_proportion_test(wilson(400, 1000), wilson(450, 1000))
    assert result.difference == pytest.approx(0.05)
    assert result.p_value == pytest.approx(0.0237, abs=2e-4)  # pooled z = 2.262
    assert result.significant
    assert proportion_sample_size(0.4, 0.5) == 388
    assert result.needed_per_arm == proportion_sample_size(0.4, 0.45)
    same = two_proportion_test(wilson(0, 50), wilson(0, 80))
    assert same.p_value == 1.0 and not same.significant and same.needed_per_arm is None


def test_welch_test() -> None:
    control = mean_interval(100, 300, 100 * 9 + 99)  # mean 3, sd 1
    better = mean_interval(100, 340, 100 * 3.4**2 + 99)  # mean 3.4, sd 1
    result = welch_test(control, better)
    assert result.difference == pytest.approx(0.4)
    assert result.p_value == pytest.approx(0.0055, abs=5e-4)  # t = 2.83, df 198
    assert result.significant and result.needed_per_arm == 99


def test_choose_control() -> None:
    assert choose_control(["eager", "holdout", "control"]) == "holdout"
    assert choose_control(["b", "a"], declared=["b", "a"]) == "b"
    assert choose_control(["b", "a"]) == "a"


# -- the answer an experiment gets ---------------------------------------------------------------


def simulate(seed: int, rates: dict[str, float], n: int = 4000) -> dict[str, dict[str, int]]:
    """``n`` conversations split by the routing hash; containment planted per arm; the variant
    dimension's counters as the store would sum them."""
    rng = random.Random(seed)
    names = list(rates)
    groups: dict[str, dict[str, int]] = {}
    for i in range(n):
        arm = names[int(bucket("exp", f"conv-{seed}-{i}") * len(names))]
        contained = rng.random() < rates[arm]
        conversation = facts(
            variant=f"exp/{arm}",
            route="self_serve_bot" if contained or rng.random() < 0.5 else "specialist",
            cause=None,
        )
        outcome = Outcome(resolved=contained, csat=rng.randint(1, 5))
        rows = [(v, m, k) for (dim, v, m), k in cells(conversation, outcome).items() if dim == "variant"]
        add_counts(groups, rows)
    return groups


def test_planted_ab_difference_is_significant_with_the_right_sign() -> None:
    [report] = experiment_reports(simulate(15, {"control": 0.40, "treatment": 0.50}))
    assert report.control == "control"
    control, treatment = report.variants
    assert control.control and not control.vs_control
    assert control.summary.conversations + treatment.summary.conversations == 4000
    versus = treatment.vs_control["containment"]
    assert versus.significant and versus.p_value is not None and versus.p_value < 1e-6
    assert versus.difference is not None and 0.06 < versus.difference < 0.14
    assert versus.low is not None and versus.high is not None and versus.low < 0.10 < versus.high
    assert versus.needed_per_arm is not None and versus.needed_per_arm < 2000
    rate = treatment.summary.rates["containment"]
    assert rate.low is not None and rate.high is not None and rate.low < 0.5 < rate.high
    assert not treatment.vs_control["csat"].significant  # nothing planted there


def test_aa_split_is_not_significant() -> None:
    [report] = experiment_reports(simulate(15, {"a": 0.45, "b": 0.45}), {"exp": ["a", "b"]})
    assert report.control == "a"
    versus = report.variants[1].vs_control["containment"]
    assert not versus.significant and versus.p_value is not None and versus.p_value > 0.05


def test_aa_false_positive_rate_is_near_alpha() -> None:
    """Across 400 seeded A/A splits the test is significant about 5% of the time (calibration)."""
    rng = random.Random(2024)
    hits = 0
    for _ in range(400):
        a = sum(rng.random() < 0.3 for _ in range(500))
        b = sum(rng.random() < 0.3 for _ in range(500))
        hits += two_proportion_test(wilson(a, 500), wilson(b, 500)).significant
    assert 8 <= hits <= 36  # 2%..9%


def test_summarize_groups_reasons_and_causes() -> None:
    summary = summarize(
        "bot",
        {
            "conversations": 4,
            "contained": 1,
            "reason:billing": 3,
            "reason:tech": 1,
            "cause:rule:vip": 2,
            "outcomes": 0,
        },
    )
    assert summary.conversations == 4 and summary.rates["containment"].value == 0.25
    assert summary.reasons == {"billing": 3, "tech": 1} and summary.escalation_causes == {"rule:vip": 2}
    assert summary.rates["resolution"].value is None and summary.csat.value is None
