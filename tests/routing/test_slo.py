"""Friction SLOs, pure: declarations in the policy, burn-rate tiers, the state machine, alert rules."""

from __future__ import annotations

import pytest
import yaml

from routing.errors import PolicyError
from routing.insights import BUCKET_S, RATES
from routing.policy import default_policy, default_policy_text, load_policy
from routing.slo import (
    BUCKET_S as SLO_BUCKET_S,
)
from routing.slo import (
    EVENT_BREACHED,
    EVENT_RECOVERED,
    METRICS,
    SLO,
    SloState,
    Tier,
    alert_rules_yaml,
    evaluate,
    next_state,
    tiers,
    windows,
)

HOUR = 3600
DAY = 86400


def policy_with(slos: str) -> str:
    return default_policy_text() + "\n" + slos


def errors_of(slos: str) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        load_policy(policy_with(slos))
    return [str(e) for e in caught.value.errors]


def test_metric_names_follow_the_insights_rates() -> None:
    assert {f"{name}_rate": counters for name, counters in RATES.items()} == METRICS
    assert SLO_BUCKET_S == BUCKET_S


def test_default_policy_declares_no_slos() -> None:
    assert default_policy().slos == ()


def test_both_declaration_forms_load() -> None:
    policy = load_policy(
        policy_with(
            """
[[slos]]
id = "negative-exits"
objective = "negative_exits <= 0.15"
window = "1h"

[[slos]]
id = "containment"
metric = "containment_rate"
min = 0.50
window = "24h"
description = "Half the contacts stay with the bot"

[[slos]]
id = "repeat"
objective = "repeat_contact >= 90%"
window = "7d"
min_events = 50
"""
        )
    )
    assert policy.slos == (
        SLO("negative-exits", "negative_exit_rate", "max", 0.15, HOUR),
        SLO(
            "containment",
            "containment_rate",
            "min",
            0.5,
            DAY,
            description="Half the contacts stay with the bot",
        ),
        SLO("repeat", "repeat_contact_rate", "min", 0.9, 7 * DAY, min_events=50),
    )
    assert policy.slos[1].budget == pytest.approx(0.5)
    assert policy.slos[0].objective == "negative_exit_rate <= 0.15"


def test_errors_name_the_slo_and_the_field() -> None:
    errors = errors_of(
        """
[[slos]]
id = "loops"
metric = "bot_loops"
max = 0.03
window = "1h"
colour = "red"

[[slos]]
id = "loops"
metric = "happiness"
max = 1.5
window = "1w"

[[slos]]
id = "both"
objective = "negative_exits <= 0.1"
max = 0.1
window = "1h"

[[slos]]
objective = "negative_exits < 0.1"
window = "100d"
min_events = 0
"""
    )
    assert errors == [
        "slo 'loops', field 'colour': unknown field (expected one of id, description, objective, metric, "
        "max, min, window, min_events)",
        "slo 'loops', field 'id': duplicate SLO id",
        "slo 'loops', field 'metric': unknown metric 'happiness' (known: abandonment_rate, "
        "bot_loop_rate, churn_rate, containment_rate, escalation_rate, negative_exit_rate, recontact_rate, "
        "repeat_contact_rate, resolution_rate, transfer_rate)",
        "slo 'loops', field 'max': must be a number strictly between 0 and 1, got 1.5",
        "slo 'loops', field 'window': must be <n>h or <n>d, at most 90d, got '1w'",
        "slo 'both', field 'objective': give either objective or metric with max/min, not both",
        "slo #4, field 'id': missing required field",
        "slo #4, field 'objective': must read '<metric> <= <number>' or '>=', got 'negative_exits < 0.1'",
        "slo #4, field 'window': must be <n>h or <n>d, at most 90d, got '100d'",
        "slo #4, field 'min_events': must be an integer from 1 to 1000000, got 0",
    ]


def test_slos_must_be_an_array_of_tables() -> None:
    with pytest.raises(PolicyError) as caught:
        load_policy('slos = "none"\n' + default_policy_text())
    (error,) = caught.value.errors
    assert str(error).startswith("field 'slos': must be an array of tables ([[slos]]), got ")


def test_tiers_scale_the_workbook_to_the_slo_window() -> None:
    month = SLO("loops", "bot_loop_rate", "max", 0.01, 30 * DAY)
    assert tiers(month) == (
        Tier("page", HOUR, HOUR, 14.4),  # 1h/5m in the workbook: windows are whole hours here
        Tier("page", 6 * HOUR, HOUR, 6.0),
        Tier("ticket", 3 * DAY, 6 * HOUR, 1.0),
    )
    # A 15% budget burns at most 1/0.15 = 6.7x: the 14.4x tier could never fire and is left out.
    hour = SLO("neg", "negative_exit_rate", "max", 0.15, HOUR)
    assert tiers(hour) == (Tier("page", HOUR, HOUR, 6.0), Tier("ticket", HOUR, HOUR, 1.0))
    contained = SLO("contained", "containment_rate", "min", 0.5, DAY)
    assert tiers(contained) == (Tier("ticket", 3 * HOUR, HOUR, 1.0),)
    assert windows([hour, contained]) == [HOUR, 3 * HOUR]


def counts(conversations: int, bad: int, metric: str = "negative_exit") -> dict[str, int]:
    return {"conversations": conversations, metric: bad}


def test_burn_rates_and_severity() -> None:
    slo = SLO("neg", "negative_exit_rate", "max", 0.15, HOUR)
    ticket = evaluate(slo, {HOUR: counts(20, 6)})
    assert ticket.burns["1h"].burn_rate == pytest.approx(0.3 / 0.15)
    assert ticket.firing and ticket.severity == "ticket"
    page = evaluate(slo, {HOUR: counts(20, 19)})
    assert page.severity == "page"
    fine = evaluate(slo, {HOUR: counts(20, 3)})
    assert not fine.firing and fine.severity is None
    # Under min_events conversations nothing fires, whatever the rate.
    assert not evaluate(slo, {HOUR: counts(9, 9)}).firing
    # A minimum: bad conversations are those *not* contained.
    contained = SLO("contained", "containment_rate", "min", 0.5, DAY)
    low = evaluate(contained, {3 * HOUR: counts(40, 10, "contained"), HOUR: counts(12, 2, "contained")})
    assert low.burns["3h"].burn_rate == pytest.approx(0.75 / 0.5)
    assert low.firing
    # Both windows must burn: an old problem no longer visible in the short window does not fire.
    over = evaluate(contained, {3 * HOUR: counts(40, 10, "contained"), HOUR: counts(12, 12, "contained")})
    assert not over.firing


def test_one_breach_one_recovery_with_hysteresis() -> None:
    slo = SLO("neg", "negative_exit_rate", "max", 0.15, HOUR)
    state = SloState()
    events = []
    # 50% -> breach; 14.3% (burn 0.95, within 90% of the factor) holds; 12.5% recovers; a second
    # breach is a new event with the next number.
    for now, (total, bad) in enumerate([(20, 2), (20, 10), (40, 10), (70, 10), (70, 10), (80, 10), (80, 10)]):
        state, transition = next_state(state, evaluate(slo, {HOUR: counts(total, bad)}), float(now))
        if transition is not None:
            events.append((transition.event, transition.seq, transition.at, transition.severity))
    assert events == [(EVENT_BREACHED, 1, 1.0, "ticket"), (EVENT_RECOVERED, 2, 5.0, None)]
    assert state == SloState(state="ok", seq=2, since=5.0)
    state, transition = next_state(state, evaluate(slo, {HOUR: counts(20, 19)}), 9.0)
    assert transition is not None and (transition.event, transition.seq, transition.severity) == (
        EVENT_BREACHED,
        3,
        "page",
    )


def test_alert_rules_parse_as_prometheus_rule_yaml() -> None:
    slos = load_policy(
        policy_with(
            """
[[slos]]
id = "neg"
objective = "negative_exits <= 0.15"
window = "1h"
[[slos]]
id = "loops"
metric = "bot_loop_rate"
max = 0.01
window = "30d"
description = 'Customers stuck with the bot: see "loops" panel'
"""
        )
    ).slos
    document = yaml.safe_load(alert_rules_yaml(slos, for_="5m"))
    (group,) = document["groups"]
    rules = group["rules"]
    assert len(rules) == 2 + 3
    for rule in rules:
        assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}
        assert rule["for"] == "5m" and rule["labels"]["slo"] in ("neg", "loops")
        assert rule["labels"]["severity"] in ("page", "ticket")
        assert set(rule["annotations"]) == {"summary", "description"}
    assert rules[0]["expr"] == 'max by (slo) (switchboard_slo_burn_rate{slo="neg",window="1h"}) > 6'
    assert rules[4]["expr"] == (
        'max by (slo) (switchboard_slo_burn_rate{slo="loops",window="3d"}) > 1 and '
        'max by (slo) (switchboard_slo_burn_rate{slo="loops",window="6h"}) > 1'
    )
    assert rules[4]["annotations"]["description"].endswith('see "loops" panel')
    assert yaml.safe_load(alert_rules_yaml(())) == {"groups": [{"name": "switchboard-slos", "rules": []}]}
