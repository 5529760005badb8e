"""Conditions: parsing with precise errors, evaluation semantics, explanation."""

from __future__ import annotations

from typing import Any

import pytest

from routing.conditions import AllOf, AnyOf, Leaf, Not, evaluate, explain, leaf_holds, parse_condition, show
from routing.facts import Value


def parse(raw: Any) -> Any:
    errors: list[str] = []
    cond = parse_condition(raw, "when", "rule 'r'", errors)
    return cond, errors


def leaf(signal: str, op: str, value: Any) -> Leaf:
    cond, errors = parse({"signal": signal, op: value})
    assert errors == [] and isinstance(cond, Leaf)
    return cond


def test_parses_nested_groups_with_paths() -> None:
    cond, errors = parse(
        {
            "all": [
                {"signal": "sentiment.label", "eq": "negative"},
                {
                    "any": [
                        {"signal": "churn_risk", "ge": 0.5},
                        {"not": {"signal": "customer.tier", "eq": "vip"}},
                    ]
                },
            ]
        }
    )
    assert errors == []
    assert isinstance(cond, AllOf) and cond.path == "when.all"
    inner = cond.items[1]
    assert isinstance(inner, AnyOf) and inner.path == "when.all[1].any"
    negated = inner.items[1]
    assert isinstance(negated, Not) and negated.item.path == "when.all[1].any[1].not"


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ("negative", "field 'when': a condition must be a table, got a string"),
        ({"signal": 3, "eq": 1}, "field 'when.signal': must be a string, got a number"),
        ({"signal": "churn_risk"}, "field 'when': a condition needs exactly one operator"),
        ({"signal": "churn_risk", "equals": 1}, "field 'when.equals': unknown field (did you mean 'eq'?)"),
        ({"signal": "churn_risk", "in": []}, "field 'when.in': 'in' needs a non-empty list, got a list"),
        ({"signal": "churn_risk", "in": [0.1, "x"]}, "field 'when.in': churn_risk is a number, got a string"),
        (
            {"signal": "escalation.human_request", "eq": 1},
            "field 'when.eq': escalation.human_request is true or false",
        ),
        (
            {"signal": "emotion.current", "eq": "anger"},
            "field 'when.eq': emotion.current is a list of labels",
        ),
        (
            {"signal": "reason.intent", "contains": "x"},
            "field 'when.contains': 'contains' tests a list signal",
        ),
        (
            {"signal": "emotion.current", "contains": 1},
            "field 'when.contains': 'contains' needs a string, got a number",
        ),
        ({"signal": "churn_risk", "present": "yes"}, "field 'when.present': 'present' takes true or false"),
        ({"signal": "churn_risk", "gt": float("nan")}, "field 'when.gt': 'gt' needs a number, got a number"),
        (
            {"not": [{"signal": "churn_risk", "gt": 0}]},
            "field 'when.not': a condition must be a table, got a list",
        ),
        ({"all": {"signal": "churn_risk", "gt": 0}}, "field 'when.all': 'all' needs a non-empty list"),
        (
            {"signal": "customer.attributes.plan", "in": [["a"]]},
            "field 'when.in': needs a string, number or boolean",
        ),
        (
            {"signal": "customer.attributes.", "eq": 1},
            "field 'when.signal': unknown signal 'customer.attributes.'",
        ),
    ],
)
def test_parse_errors(raw: Any, error: str) -> None:
    cond, errors = parse(raw)
    assert cond is None
    assert len(errors) == 1
    assert errors[0].startswith(f"rule 'r', {error}"), errors[0]


def test_errors_in_several_branches_are_all_reported() -> None:
    _, errors = parse({"any": [{"signal": "nope", "eq": 1}, {"signal": "churn_risk", "ge": "x"}]})
    assert errors == [
        "rule 'r', field 'when.any[0].signal': unknown signal 'nope'",
        "rule 'r', field 'when.any[1].ge': 'ge' needs a number, got a string",
    ]


@pytest.mark.parametrize(
    ("signal", "op", "value", "observed", "held"),
    [
        ("churn_risk", "ge", 0.5, 0.5, True),
        ("churn_risk", "gt", 0.5, 0.5, False),
        ("churn_risk", "lt", 1, 0.2, True),
        ("churn_risk", "le", 0.2, 0.2, True),
        ("churn_risk", "eq", 1, 1.0, True),  # int and float compare as numbers
        ("sentiment.label", "eq", "negative", "negative", True),
        ("sentiment.label", "ne", "negative", "neutral", True),
        ("sentiment.label", "in", ["neutral", "positive"], "neutral", True),
        ("sentiment.label", "not_in", ["neutral", "positive"], "negative", True),
        ("emotion.current", "contains", "anger", ["anger", "sadness"], True),
        ("emotion.current", "contains", "joy", [], False),
        ("escalation.human_request", "eq", True, True, True),
        ("customer.attributes.vip", "eq", True, 1, False),  # a boolean only equals a boolean
        ("customer.attributes.plan", "contains", "gold", "gold-2024", True),
        ("customer.attributes.plan", "gt", 3, "5", False),  # no string/number coercion
        # missing values: every operator is false except present = false
        ("customer.tenure_months", "lt", 6, None, False),
        ("customer.tenure_months", "ne", 6, None, False),
        ("customer.tenure_months", "not_in", [6], None, False),
        ("customer.tenure_months", "present", False, None, True),
        ("customer.tenure_months", "present", True, 12, True),
    ],
)
def test_leaf_semantics(signal: str, op: str, value: Any, observed: Value, held: bool) -> None:
    assert leaf_holds(leaf(signal, op, value), observed) is held


def test_not_flips_a_missing_value() -> None:
    cond, _ = parse({"not": {"signal": "customer.tenure_months", "lt": 6}})
    assert evaluate(cond, {"customer.tenure_months": None}) is True


def test_evaluate_and_explain_agree() -> None:
    cond, _ = parse(
        {
            "any": [
                {
                    "all": [
                        {"signal": "churn_risk", "ge": 0.5},
                        {"signal": "sentiment.label", "eq": "negative"},
                    ]
                },
                {"not": {"signal": "emotion.current", "contains": "anger"}},
            ]
        }
    )
    cases: tuple[dict[str, Value], ...] = (
        {"churn_risk": 0.7, "sentiment.label": "negative", "emotion.current": ["anger"]},
        {"churn_risk": 0.1, "sentiment.label": "negative", "emotion.current": ["anger"]},
        {"churn_risk": 0.1, "sentiment.label": None, "emotion.current": []},
    )
    for facts in cases:
        held, items = explain(cond, facts)
        assert held is evaluate(cond, facts)
        # explain never short-circuits: every leaf is reported
        assert sum(item.kind == "condition" for item in items) == 3
        assert items[0].kind == "group" and items[0].held is held


def test_explanation_text() -> None:
    cond, _ = parse(
        {"all": [{"signal": "churn_risk", "ge": 0.6}, {"signal": "customer.tier", "in": ["gold", "vip"]}]}
    )
    _, items = explain(cond, {"churn_risk": 0.72345, "customer.tier": None})
    assert [item.text for item in items] == [
        "✗ all of 2 (1 held)",
        "  ✓ churn_risk >= 0.6 (observed 0.723)",
        "  ✗ customer.tier in ['gold', 'vip'] (observed missing)",
    ]


def test_show() -> None:
    assert show(None) == "missing"
    assert show(True) == "true"
    assert show(0.5) == "0.5"
    assert show(2.0) == "2"
    assert show([1, "a"]) == "[1, 'a']"
