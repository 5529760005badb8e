"""Custom contact reasons: the reasons file, the open-set merge with the intent head, and the
policy and signals knowing custom intents and categories."""

from __future__ import annotations

from importlib import resources

import msgspec
import pytest

from routing.churn import assess_churn
from routing.context import build_context
from routing.decision import decide
from routing.errors import PolicyError, ReasonsError
from routing.facts import observe
from routing.policy import default_policy_text, load_policy
from routing.reasons import (
    CONFIDENCE_AT_THRESHOLD,
    MatchSettings,
    ReasonMatch,
    accepted,
    best_share,
    load_reasons,
    match_confidence,
    merge_intents,
)
from routing.signals import new_signals, update_signals
from routing.taxonomy import CATEGORIES
from routing.types import CustomerInfo, TurnScores

EXAMPLES = '["one way", "another way", "a third way", "a fourth way", "a fifth way"]'


def reasons_text(*bodies: str, matching: str = "") -> str:
    """Reasons with five distinct examples each (the first reason gets ``EXAMPLES``)."""
    out = []
    for number, body in enumerate(bodies):
        examples = EXAMPLES if number == 0 else str([f"way {number}.{n}" for n in range(5)]).replace("'", '"')
        out.append(f"[[reasons]]\n{body}\nexamples = {examples}\n")
    return matching + "\n".join(out)


# The default similarity threshold: a match's confidence is 0.6 there and rises one for one above it.
T = MatchSettings().similarity_threshold
SETTINGS_GAP = MatchSettings().ambiguity_margin

BRANCHES = reasons_text(
    'id = "branch_hours"\ncategory = "branches"',
    'id = "reschedule_appointment"\ncategory = "appointments"',
)


def errors_of(text: str) -> list[str]:
    with pytest.raises(ReasonsError) as info:
        load_reasons(text)
    return info.value.errors


# --- the file ----------------------------------------------------------------


def test_default_reasons_file_is_valid_and_routed_by_the_default_policy() -> None:
    text = resources.files("routing").joinpath("default_reasons.toml").read_text(encoding="utf-8")
    reasons = load_reasons(text)
    assert {"branch_hours_and_locations", "reschedule_appointment", "cancel_appointment"} <= set(reasons.ids)
    assert all(len(r.examples) >= 8 for r in reasons.reasons)
    assert reasons.categories["branch_hours_and_locations"] == "general_information"
    assert reasons.categories["cancel_appointment"] == "appointments"
    policy = load_policy(default_policy_text(), reasons.categories)
    assert set(reasons.ids) <= set(policy.extra_intents)


def test_hash_ignores_comments_and_layout() -> None:
    a = load_reasons(BRANCHES)
    b = load_reasons("# a comment\n" + BRANCHES.replace('category = "branches"', 'category  =  "branches"'))
    assert a.hash == b.hash and a.hash != load_reasons(BRANCHES.replace("branches", "shops")).hash


def test_every_error_names_the_reason_and_field() -> None:
    text = """
colour = "blue"
[matching]
similarity_threshold = 1.5
ambiguity_margin = "wide"
[[reasons]]
id = "parcel"
category = "deliveries"
examples = ["where is it", "WHERE  is it", ""]
[[reasons]]
id = "parcel"
category = "out_of_scope"
examples = ["a", "b", "c", "d", "where is it"]
[[reasons]]
id = "track_order"
category = "orders_and_delivery"
examples = ["1", "2", "3", "4", "5"]
[[reasons]]
category = "x"
examples = ["1", "2", "3", "4", "5"]
[[reasons]]
id = "moved"
category = "Appointments"
replaces = "book_apointment"
exmaples = []
"""
    assert errors_of(text) == [
        "field 'colour': unknown field",
        "field 'matching.ambiguity_margin': must be a number, got a string",
        "field 'matching.similarity_threshold': must be between 0 and 1, got 1.5",
        "reason 'parcel', field 'examples[1]': repeats examples[0]",
        "reason 'parcel', field 'examples[2]': must not be empty",
        "reason 'parcel', field 'examples': needs at least 5 examples, got 3",
        "reason 'parcel', field 'id': duplicate reason id (first used by reason #1)",
        "reason 'parcel', field 'category': out_of_scope is what an unclear reason gets; "
        "choose a real category",
        "reason 'track_order', field 'id': collides with the built-in intent 'track_order': "
        'choose another id, or add replaces = "track_order" to take its place',
        "reason #4, field 'id': missing required field",
        "reason 'moved', field 'exmaples': unknown field (did you mean 'examples'?)",
        "reason 'moved', field 'category': must be lower-case letters, digits and '_', "
        "starting with a letter (at most 64), got 'Appointments'",
        "reason 'moved', field 'replaces': must name a built-in intent, got 'book_apointment' "
        "(did you mean 'book_appointment'?)",
        "reason 'moved', field 'examples': missing required field: at least 5 example utterances",
    ]


def test_an_example_belongs_to_one_reason_only() -> None:
    text = f'[[reasons]]\nid = "a"\ncategory = "x"\nexamples = {EXAMPLES}\n' * 1 + (
        f'[[reasons]]\nid = "b"\ncategory = "y"\nexamples = {EXAMPLES}\n'
    )
    assert errors_of(text) == [
        f"reason 'b', field 'examples[{n}]': is also an example of reason 'a'" for n in range(5)
    ]


def test_syntax_errors_and_replacing_twice() -> None:
    assert errors_of("[[reasons]\n")[0].startswith("not valid TOML")
    twice = reasons_text(
        'id = "book_appointment"\ncategory = "appointments"\nreplaces = "book_appointment"',
        'id = "other"\ncategory = "appointments"\nreplaces = "book_appointment"',
    ).replace(EXAMPLES, '["x1", "x2", "x3", "x4", "x5"]', 1)
    assert errors_of(twice) == [
        "reason 'other', field 'replaces': "
        "'book_appointment' is already replaced by reason 'book_appointment'"
    ]


def test_a_reason_may_take_the_place_of_a_built_in_intent() -> None:
    reasons = load_reasons(
        reasons_text('id = "book_appointment"\ncategory = "branches"\nreplaces = "book_appointment"')
    )
    assert reasons.replaced == {"book_appointment": "book_appointment"}
    assert reasons.categories == {"book_appointment": "branches"}


# --- the open-set merge ------------------------------------------------------

SETTINGS = MatchSettings(similarity_threshold=0.55, ambiguity_margin=0.02, override_margin=0.1)


def merged(
    head: list[tuple[str, float]], match: ReasonMatch | None, text: str = BRANCHES
) -> list[tuple[str, float]]:
    return merge_intents(head, match, load_reasons(text)).intents


def test_open_set_threshold() -> None:
    assert not accepted(None, SETTINGS)
    assert not accepted(ReasonMatch("a", 0.549), SETTINGS)  # below the threshold
    assert accepted(ReasonMatch("a", 0.55), SETTINGS)
    assert accepted(ReasonMatch("a", 0.70, "b", 0.6999), SETTINGS)  # a near-tie is still a match...
    assert match_confidence(0.55, SETTINGS) == pytest.approx(CONFIDENCE_AT_THRESHOLD)
    assert match_confidence(0.75, SETTINGS) == pytest.approx(0.8)
    assert match_confidence(0.99, SETTINGS) == pytest.approx(0.95)  # capped


def test_the_ambiguity_margin_shares_the_confidence_with_the_runner_up() -> None:
    assert best_share(ReasonMatch("a", 0.70, "b", 0.70), SETTINGS) == pytest.approx(0.5)  # ...of two
    assert best_share(ReasonMatch("a", 0.70, "b", 0.69), SETTINGS) == pytest.approx(0.75)
    assert best_share(ReasonMatch("a", 0.70, "b", 0.68), SETTINGS) == 1.0  # clear by the margin
    assert best_share(ReasonMatch("a", 0.70), SETTINGS) == 1.0  # no runner-up
    no_margin = MatchSettings(similarity_threshold=0.55, ambiguity_margin=0.0)
    assert best_share(ReasonMatch("a", 0.70, "b", 0.70), no_margin) == 1.0


def test_an_ambiguous_match_takes_the_turn_not_sure_between_two_reasons() -> None:
    head = [("out_of_scope", 0.8), ("balance", 0.2)]
    match = ReasonMatch("branch_hours", T + 0.1, "reschedule_appointment", T + 0.1 - SETTINGS_GAP / 2)
    result = merge_intents(head, match, load_reasons(BRANCHES))
    (first, p1), (second, p2), (third, p3) = result.intents
    assert (first, second, third) == ("branch_hours", "reschedule_appointment", "balance")
    assert p1 == pytest.approx(0.7 * 0.75) and p2 == pytest.approx(0.7 * 0.25)
    assert p3 == pytest.approx(0.2 * 0.3)
    assert result.categories == {"branch_hours": "branches", "reschedule_appointment": "appointments"}
    # A confident built-in intent still keeps the turn; the ambiguous reason is only an alternative.
    kept = merge_intents([("balance", 0.7), ("apr", 0.1)], match, load_reasons(BRANCHES))
    assert kept.intents[0] == ("balance", 0.7) and kept.source == "model"


def test_a_match_below_the_threshold_changes_nothing() -> None:
    head = [("out_of_scope", 0.9), ("balance", 0.05)]
    result = merge_intents(head, ReasonMatch("branch_hours", 0.5), load_reasons(BRANCHES))
    assert result.intents == head and result.categories == {} and result.matched is None


def test_a_match_takes_an_out_of_scope_turn() -> None:
    head = [("out_of_scope", 0.9), ("balance", 0.05), ("apr", 0.03)]
    result = merge_intents(
        head, ReasonMatch("branch_hours", T + 0.1, "reschedule_appointment", 0.2), load_reasons(BRANCHES)
    )
    assert result.intents[0] == ("branch_hours", pytest.approx(0.7))
    assert [label for label, _ in result.intents] == [
        "branch_hours",
        "balance",
        "apr",
    ]  # out_of_scope dropped
    assert result.intents[1][1] == pytest.approx(0.05 * 0.3)
    assert result.categories == {"branch_hours": "branches"} and result.source == "reasons"


def test_a_confident_built_in_intent_keeps_the_turn() -> None:
    head = [("transfer_timing", 0.95), ("balance", 0.03)]
    result = merge_intents(head, ReasonMatch("branch_hours", T + 0.15), load_reasons(BRANCHES))
    assert result.intents[0] == ("transfer_timing", 0.95) and result.source == "model"
    # ... the match is only an alternative, with at most what the head left over
    assert dict(result.intents)["branch_hours"] == pytest.approx(0.75 * 0.05)
    assert result.matched == "branch_hours"


def test_an_unsure_head_or_a_clearly_stronger_match_yields() -> None:
    unsure = [("transfer_timing", 0.45), ("balance", 0.3)]
    assert merged(unsure, ReasonMatch("branch_hours", T + 0.01))[0][0] == "branch_hours"
    strong = [("transfer_timing", 0.7), ("balance", 0.2)]
    assert merged(strong, ReasonMatch("branch_hours", T + 0.25))[0][0] == "branch_hours"  # 0.85 >= 0.7 + 0.1
    assert merged(strong, ReasonMatch("branch_hours", T + 0.15))[0][0] == "transfer_timing"  # 0.75 < 0.8


def test_a_confident_head_yields_when_the_turn_is_closer_to_the_reason_than_to_its_intent() -> None:
    head = [("card_about_to_expire", 0.9), ("balance", 0.05)]
    gap = MatchSettings().prototype_margin
    closer = ReasonMatch("branch_hours", T + 0.1, head_similarity=T + 0.1 - gap)
    result = merge_intents(head, closer, load_reasons(BRANCHES))
    assert result.intents[0] == ("branch_hours", pytest.approx(0.7)) and result.source == "reasons"
    within = ReasonMatch("branch_hours", T + 0.1, head_similarity=T + 0.1 - gap / 2)
    assert merged(head, within)[0][0] == "card_about_to_expire"
    # without prototypes (a pack that has none) the head's confidence alone decides, as before
    assert merged(head, ReasonMatch("branch_hours", T + 0.1))[0][0] == "card_about_to_expire"
    # a match under the threshold stays out whatever the prototypes say
    assert (
        merged(head, ReasonMatch("branch_hours", T - 0.01, head_similarity=0.1))[0][0]
        == "card_about_to_expire"
    )


def test_closer_to_the_reason_compares_plain_cosines_not_the_atypicality_penalty() -> None:
    """The intent prototypes have no discriminant, so the head's intent is weighed against the
    reason's blended cosine (similarity + atypicality), not against the penalised score."""
    head = [("card_about_to_expire", 0.9), ("balance", 0.05)]
    gap = MatchSettings().prototype_margin
    atypical = ReasonMatch("branch_hours", T + 0.02, head_similarity=T + 0.07 - gap, atypicality=0.05)
    assert merged(head, atypical)[0][0] == "branch_hours"
    further = ReasonMatch("branch_hours", T + 0.02, head_similarity=T + 0.07 - gap / 2, atypicality=0.05)
    assert merged(head, further)[0][0] == "card_about_to_expire"
    # the threshold reads the penalised score: an atypical turn under it stays out
    assert merged(head, ReasonMatch("branch_hours", T - 0.01, head_similarity=0.1, atypicality=0.2))[0][
        0
    ] == ("card_about_to_expire")


def test_carrier_pairs_must_be_a_whole_number_in_range() -> None:
    for value, problem in (("6.5", "whole number"), ("-1", "between 0 and 5000")):
        errors = errors_of(
            reasons_text('id = "x"\ncategory = "branches"', matching=f"[matching]\ncarrier_pairs = {value}\n")
        )
        assert any("carrier_pairs" in error and problem in error for error in errors), errors
    text = reasons_text('id = "x"\ncategory = "branches"', matching="[matching]\ncarrier_pairs = 64\n")
    assert load_reasons(text).matching.carrier_pairs == 64


def test_the_atypicality_weight_is_validated() -> None:
    errors = errors_of(
        reasons_text('id = "x"\ncategory = "branches"', matching="[matching]\natypicality_weight = -1\n")
    )
    assert any("atypicality_weight" in error and "between 0 and 5" in error for error in errors)


def test_the_prototype_margin_is_validated() -> None:
    errors = errors_of(
        reasons_text('id = "x"\ncategory = "branches"', matching="[matching]\nprototype_margin = 1.5\n")
    )
    assert any("prototype_margin" in error and "below 1" in error for error in errors)


def test_a_replaced_intent_yields_to_a_closer_sibling_reason() -> None:
    text = reasons_text(
        'id = "book"\ncategory = "appointments"\nreplaces = "book_appointment"',
        'id = "reschedule"\ncategory = "appointments"',
    )
    head = [("book_appointment", 0.9), ("balance", 0.1)]
    # The best reason is the sibling, so the turn is closer to its examples than to the replacing one's.
    result = merge_intents(head, ReasonMatch("reschedule", T + 0.05, "book", T), load_reasons(text))
    assert result.intents[0] == ("reschedule", pytest.approx(0.65))
    assert [label for label, _ in result.intents][1:] == ["book", "balance"]
    assert result.intents[1][1] == pytest.approx(0.9 * 0.35)
    # A built-in intent nobody replaced keeps the turn (0.65 < 0.9 + 0.1).
    plain = reasons_text('id = "reschedule"\ncategory = "appointments"')
    kept = merge_intents(head, ReasonMatch("reschedule", T + 0.05), load_reasons(plain))
    assert kept.intents[0] == ("book_appointment", 0.9)


def test_replaced_intents_are_renamed_even_without_a_match() -> None:
    text = reasons_text('id = "appointments_desk"\ncategory = "branches"\nreplaces = "book_appointment"')
    result = merge_intents([("book_appointment", 0.8), ("balance", 0.1)], None, load_reasons(text))
    assert result.intents == [("appointments_desk", 0.8), ("balance", 0.1)]
    assert result.categories == {"appointments_desk": "branches"} and result.source == "reasons"


def test_a_turn_without_intents_states_nothing() -> None:
    assert merged([], ReasonMatch("branch_hours", 0.99)) == []


# --- the policy knows custom reasons -----------------------------------------

POLICY_RULE = """
[[rules]]
id = "branch-bot"
route = "self_serve_bot"
queue = "bot"
priority = 10
when = { all = [
  { signal = "reason.intent", eq = "branch_hours" },
  { signal = "reason.category", in = ["branches", "appointments"] },
] }
"""


def policy_with(rule: str) -> str:
    """The default policy with ``rule`` tried first."""
    return default_policy_text().replace("[[rules]]", rule.strip() + "\n\n[[rules]]", 1)


def test_policy_validates_custom_intents_and_categories_only_when_given() -> None:
    text = policy_with(POLICY_RULE)
    with pytest.raises(PolicyError) as info:
        load_policy(text)
    assert any("unknown value 'branch_hours' for reason.intent" in e for e in info.value.errors)
    policy = load_policy(text, load_reasons(BRANCHES).categories)
    assert policy.rule("branch-bot") is not None
    assert policy.reason_queues["branches"] == "general"


def test_a_new_category_needs_a_queue_when_the_policy_routes_by_reason() -> None:
    served = {c for queue in load_policy(default_policy_text()).queues.values() for c in queue.categories}
    rest = sorted(set(CATEGORIES) - served)
    text = default_policy_text().replace('categories = ["*"]', f"categories = {rest}".replace("'", '"'))
    assert load_policy(text).reason_queues  # every taxonomy category still has a queue
    with pytest.raises(PolicyError) as info:
        load_policy(text, load_reasons(BRANCHES).categories)
    assert any("these categories have no queue" in e and "branches" in e for e in info.value.errors)
    fixed = text.replace('categories = ["cards"]', 'categories = ["cards", "branches"]')
    assert load_policy(fixed, load_reasons(BRANCHES).categories).reason_queues["branches"] == "cards"


def test_a_replaced_intent_is_no_longer_a_label() -> None:
    rule = POLICY_RULE.replace('eq = "branch_hours"', 'eq = "book_appointment"')
    reasons = load_reasons(reasons_text('id = "desk"\ncategory = "branches"\nreplaces = "book_appointment"'))
    with pytest.raises(PolicyError) as info:
        load_policy(policy_with(rule), reasons.categories, replaced=tuple(reasons.replaced))
    assert any("unknown value 'book_appointment'" in e for e in info.value.errors)


# --- signals, context, facts and decisions ------------------------------------


def customer_turn(
    index: int,
    intents: list[tuple[str, float]],
    custom: dict[str, str],
    example: tuple[str, str, float] | None = None,
) -> TurnScores:
    return TurnScores(
        index=index,
        speaker="customer",
        text="when are you open on saturday",
        ts=None,
        sentiment_label="neutral",
        sentiment_score=0.0,
        emotions={},
        emotion_labels=[],
        intent=intents,
        act="question",
        custom_categories=custom,
        custom_example=example,
    )


def test_a_custom_reason_flows_through_signals_context_and_decision() -> None:
    reasons = load_reasons(BRANCHES)
    policy = load_policy(default_policy_text(), reasons.categories)
    result = merge_intents(
        [("out_of_scope", 0.9), ("balance", 0.05)], ReasonMatch("branch_hours", 0.8), reasons
    )
    signals = update_signals(
        new_signals(), customer_turn(0, result.intents, result.categories), policy.signals
    )
    assert signals.reason.intent == "branch_hours" and signals.reason.category == "branches"
    assert signals.reason.status == "confident"
    # The state round-trips with the custom category.
    again = msgspec.json.decode(msgspec.json.encode(signals), type=type(signals))
    assert again.evidence["branch_hours"].category == "branches"
    facts = observe(
        again,
        CustomerInfo(),
        assess_churn(again, CustomerInfo(), policy.churn, policy.signals.peak_emotions),
        policy.signals,
    )
    assert facts["intent.current"] == "branch_hours" and facts["intent.current_category"] == "branches"
    assert facts["reason.category"] == "branches"
    decision = decide(again, CustomerInfo(), policy, "c-1")
    assert decision.queue == "general"  # "@reason": the new category is served by the "*" queue
    context = build_context(again, CustomerInfo(), decision, models_info={})
    assert context.contact_reason.source == "reasons"
    assert context.contact_reason.category == "branches"


def test_the_explanation_quotes_the_closest_example_of_a_custom_reason() -> None:
    reasons = load_reasons(BRANCHES)
    policy = load_policy(default_policy_text(), reasons.categories)
    match = ReasonMatch("branch_hours", T + 0.2, example="a third way", example_similarity=0.83)
    merged = merge_intents([("out_of_scope", 0.9)], match, reasons)
    assert (merged.example, merged.example_similarity) == ("a third way", 0.83)
    signals = new_signals()
    for index, quoted in enumerate((("a third way", 0.83), ("one way", 0.91), ("another way", 0.88))):
        turn = customer_turn(index, merged.intents, merged.categories, ("branch_hours", *quoted))
        signals = update_signals(signals, turn, policy.signals)
    evidence = signals.evidence["branch_hours"]
    assert (evidence.example, evidence.example_similarity) == ("one way", 0.91)  # the closest of the turns
    decision = decide(signals, CustomerInfo(), policy, "c-3")
    assert any("closest example: 'one way' (0.91)" in item.text for item in decision.explanation)
    built_in = update_signals(new_signals(), customer_turn(0, [("balance", 0.9)], {}), policy.signals)
    plain = decide(built_in, CustomerInfo(), policy, "c-4")
    assert not any("closest example" in item.text for item in plain.explanation)


def test_built_in_intents_report_source_model() -> None:
    policy = load_policy(default_policy_text())
    signals = update_signals(new_signals(), customer_turn(0, [("balance", 0.9)], {}), policy.signals)
    decision = decide(signals, CustomerInfo(), policy, "c-2")
    reason = build_context(signals, CustomerInfo(), decision, models_info={}).contact_reason
    assert reason.intent == "balance" and reason.source == "model" and reason.category == "billing_and_fees"


def test_reasons_toml_nested_too_deeply_is_a_reasons_error() -> None:
    from routing.reasons import load_reasons

    with pytest.raises(ReasonsError, match="nested too deeply"):
        load_reasons("x = " + "{a = " * 3000 + "1" + "}" * 3000)
