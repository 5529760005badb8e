"""Policy loading and validation, the default policy, and the broken-policy corpus."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from routing import policy as policy_module
from routing.errors import PolicyError, RoutingError
from routing.policy import REASON_QUEUE, Policy, default_policy, default_policy_text, load_policy
from routing.taxonomy import CATEGORIES

CORPUS = Path(__file__).parent / "scenarios" / "broken_policies.toml"

BASE = """
version = "t1"
[queues.general]
[guardrails]
human_request = { route = "specialist", queue = "general", priority = 50 }
low_confidence = { route = "specialist", queue = "general", priority = 20 }
[default]
route = "specialist"
queue = "general"
priority = 0
"""


def _corpus() -> list[Any]:
    with CORPUS.open("rb") as f:
        return [pytest.param(case, id=case["name"]) for case in tomllib.load(f)["case"]]


@pytest.mark.parametrize("case", _corpus())
def test_broken_policy_is_rejected_with_precise_errors(case: dict[str, Any]) -> None:
    with pytest.raises(PolicyError) as info:
        load_policy(case["text"])
    assert info.value.errors == case["errors"]
    # The message carries every error too, for logs and the CLI.
    for error in case["errors"]:
        assert error in str(info.value)


def test_policy_error_is_a_value_error_in_the_routing_hierarchy() -> None:
    with pytest.raises(ValueError) as info:
        load_policy("")
    assert isinstance(info.value, PolicyError)
    assert isinstance(info.value, RoutingError)
    assert str(info.value).startswith("invalid routing policy (4 errors):\n- ")


def test_minimal_policy_loads() -> None:
    policy = load_policy(BASE)
    assert policy.version == "t1"
    assert policy.rules == ()
    assert policy.default.id == "default"
    assert policy.default.target is not None and policy.default.target.queue == "general"
    assert set(policy.guardrails) == {"human_request", "unsupported_language", "low_confidence"}
    # Not configured: still there, sending where low_confidence sends.
    assert policy.guardrails["unsupported_language"].target == policy.guardrails["low_confidence"].target
    assert policy.experiment is None
    assert policy.variants == ()
    assert policy.reason_queues == {}


def test_default_policy_loads_and_is_what_the_issue_asks_for() -> None:
    policy = default_policy()
    assert policy.version == "2025.2"
    ids = [rule.id for rule in policy.rules]
    assert ids == [
        "resolved",
        "fraud-security",
        "angry-account-threat",
        "cancellation",
        "human-request-churn-risk",
        "complaint",
        "upset-customer",
        "bot-loop",
        "tier1-bot",
        "awaiting-reason",
        "human-request",
        "unclear-reason",
    ]
    resolved = policy.rule("resolved")
    assert resolved is not None and resolved.keeps_previous and resolved.target is None
    routes = {rule.id: rule.target.route for rule in policy.rules if rule.target is not None}
    assert routes["angry-account-threat"] == routes["cancellation"] == "retention_human"
    assert routes["human-request"] == routes["upset-customer"] == routes["bot-loop"] == "specialist"
    assert [r for r, route in routes.items() if route == "self_serve_bot"] == ["tier1-bot", "awaiting-reason"]
    targets = {rule.id: rule.target for rule in policy.rules if rule.target is not None}
    assert (targets["fraud-security"].queue, targets["fraud-security"].priority) == ("security", 85)
    assert targets["complaint"].queue == "complaints"
    assert targets["human-request"].queue == REASON_QUEUE
    assert policy.rule("nope") is None
    # "@reason" is used, so every category has a queue.
    assert set(policy.reason_queues) == set(CATEGORIES)
    boosts = {b.id for b in policy.boosts}
    assert boosts == {"high-value", "churn-risk", "repeat-contact", "asked-for-a-person"}
    # Families: disjoint, and near-synonyms of the issue share one.
    assert policy.families["card_delivery"] == ("card_arrival", "card_delivery_estimate")
    members = [intent for intents in policy.families.values() for intent in intents]
    assert len(members) == len(set(members))
    assert policy.stability.return_to_bot is False


def test_default_policy_text_is_the_packaged_file() -> None:
    packaged = Path(policy_module.__file__).with_name("default_policy.toml").read_text(encoding="utf-8")
    assert default_policy_text() == packaged


def test_hash_ignores_comments_and_layout_but_not_content() -> None:
    base = load_policy(BASE)
    reformatted = load_policy("# a comment\n" + BASE.replace("priority = 0", "priority   =   0  # none"))
    changed = load_policy(BASE.replace("priority = 0", "priority = 1"))
    assert base.hash == reformatted.hash
    assert base.hash != changed.hash
    assert len(base.hash) == 64 and int(base.hash, 16) >= 0
    # Pinned: the canonical form must not drift between versions, or decisions stop being comparable.
    assert base.hash == "42f7503a082fbf0a896c402db208b08455e42c1d13c56a5e31d3ea582b97357f"


def test_version_change_changes_hash() -> None:
    assert load_policy(BASE).hash != load_policy(BASE.replace('"t1"', '"t2"')).hash


def test_variants_get_effective_rules() -> None:
    text = (
        BASE
        + """
[[rules]]
id = "bot"
route = "self_serve_bot"
queue = "general"
priority = 5
when = { signal = "reason.intent", eq = "balance" }
[[rules]]
id = "vip"
route = "specialist"
queue = "general"
priority = 50
when = { signal = "customer.tier", eq = "vip" }
[experiment]
id = "exp"
[[experiment.variants]]
id = "a"
share = 0.25
skip_rules = ["bot"]
[[experiment.variants]]
id = "b"
share = 0.75
targets.vip = { priority = 70, fallback = { route = "retention_human", queue = "general" } }
targets.default = { route = "retention_human" }
[[experiment.variants.rules]]
id = "first"
route = "specialist"
queue = "general"
priority = 1
when = { signal = "turns.total", ge = 10 }
"""
    )
    policy = load_policy(text)
    a, b = policy.variants
    assert [r.id for r in a.rules] == ["vip"]
    assert [r.id for r in b.rules] == ["first", "bot", "vip"]
    vip_b = b.rules[2]
    assert vip_b.target is not None
    assert vip_b.target.priority == 70 and vip_b.target.route == "specialist"
    assert vip_b.fallback is not None and vip_b.fallback.route == "retention_human"
    assert b.default.target is not None
    assert b.default.target.route == "retention_human" and b.default.target.priority == 0
    assert a.default == policy.default
    # Base rules are untouched by variants.
    assert [r.id for r in policy.rules] == ["bot", "vip"]


def test_fallback_must_differ_from_its_target() -> None:
    text = BASE.replace(
        "priority = 0\n", 'priority = 0\nfallback = { route = "specialist", queue = "general" }\n'
    )
    with pytest.raises(PolicyError) as info:
        load_policy(text)
    assert info.value.errors == [
        "field 'default.fallback': the fallback must differ from the target it falls back from"
    ]


def test_fallback_inherits_the_priority() -> None:
    text = BASE.replace(
        "priority = 0\n", 'priority = 7\nfallback = { route = "retention_human", queue = "general" }\n'
    )
    fallback = load_policy(text).default.fallback
    assert fallback is not None and fallback.priority == 7


def test_every_error_is_reported_at_once() -> None:
    text = BASE.replace(
        'route = "specialist"\nqueue = "general"\npriority = 0', 'route = "x"\nqueue = "y"\npriority = -1'
    )
    with pytest.raises(PolicyError) as info:
        load_policy(text)
    assert len(info.value.errors) == 3
    assert all(e.startswith("field 'default.") for e in info.value.errors)


def test_signal_and_churn_settings_reach_the_policy() -> None:
    text = BASE + "[signals]\nconfidence_threshold = 0.7\nmeta_intents = []\n[churn]\nhigh_value = 100\n"
    policy = load_policy(text)
    assert policy.signals.confidence_threshold == 0.7
    assert policy.signals.meta_intents == ()
    assert policy.churn.high_value == 100.0


def test_rules_must_be_an_array_of_tables() -> None:
    with pytest.raises(PolicyError) as info:
        load_policy('rules = "all of them"\n' + BASE)
    assert info.value.errors == ["field 'rules': must be an array of tables ([[rules]]), got a string"]


def test_loaded_policy_is_immutable() -> None:
    policy: Policy = load_policy(BASE)
    with pytest.raises(AttributeError):
        policy.version = "other"  # type: ignore[misc]


def test_policy_md_documents_every_signal_and_setting() -> None:
    from routing.churn import ChurnConfig
    from routing.facts import SIGNALS
    from routing.signals import SignalConfig

    doc = Path(policy_module.__file__).with_name("POLICY.md").read_text(encoding="utf-8")
    for name in SIGNALS:
        documented = f"`{name}`" in doc or (
            name.startswith("emotion.peak.") and f"`{name.split('.')[-1]}`" in doc
        )
        assert documented, name
    for config in (SignalConfig, ChurnConfig):
        for field in config.__struct_fields__:
            assert f"`{field}`" in doc, field


def test_policy_md_experiment_example_is_valid() -> None:
    doc = Path(policy_module.__file__).with_name("POLICY.md").read_text(encoding="utf-8")
    block = next(b for b in doc.split("```toml\n")[1:] if b.startswith("[experiment]")).split("```")[0]
    policy = load_policy(default_policy_text() + "\n" + block)
    control, holdout = policy.variants
    assert holdout.rules[0].id == "holdout-billing"
    assert "tier1-bot" not in [r.id for r in holdout.rules]
    assert holdout.default.target is not None and holdout.default.target.queue == "general"
    assert len(control.rules) == len(policy.rules)


def test_toml_nested_too_deeply_is_a_policy_error_not_a_crash() -> None:
    with pytest.raises(PolicyError, match="nested too deeply"):
        load_policy("x = " + "[" * 5000 + "]" * 5000)
