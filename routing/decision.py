"""The routing decision: one answer per conversation, with the reasons why.

``decide`` runs in a fixed order:

1. compute the churn risk and every signal's value (``routing.facts``);
2. pick the experiment variant, if the policy has an experiment;
3. check the guardrails: ``human_request`` (the customer asked for a person),
   ``unsupported_language`` (the customer speaks a language the model pack
   does not support) and ``low_confidence`` (the contact reason is not
   confident);
4. take the first rule whose condition holds, else the default target;
5. if that sends the conversation to the bot while a guardrail is active,
   the guardrail overrides it with its own target (and a bot fallback is
   dropped): the bot never keeps a customer who asked for a person, whom the
   models cannot understand, or whose reason we do not know;
6. resolve ``"@reason"`` to the contact reason's queue and add priority boosts;
7. mark the decision ``resolved`` when the customer's last turn closes the
   conversation calmly ("thanks, that's all"); the route is left as it is.

The explanation lists the variant, the matched rule and each of its conditions
with the observed value and whether it held, the guardrails, the priority
boosts and, when it applies, that the conversation looks resolved. ``decide``
is deterministic and total: any signals, customer and validated policy give
exactly one decision.
"""

from __future__ import annotations

import msgspec

from routing.churn import assess_churn
from routing.conditions import ExplanationItem, describe_leaf, evaluate, explain, show
from routing.experiments import assign_variant, bucket
from routing.facts import Value, observe
from routing.policy import DEFAULT_RULE_ID, REASON_QUEUE, Policy, Rule, Target
from routing.signals import ConversationSignals
from routing.types import BOT_ROUTE, CustomerInfo, Route

__all__ = ["Decision", "ExplanationItem", "decide", "describe_leaf"]


class Decision(msgspec.Struct, frozen=True):
    """Where the conversation goes and why.

    ``rule`` is the matched rule id (``default`` when none matched);
    ``guardrail`` names the guardrail that overrode a bot route, if any;
    ``fallback``/``fallback_queue`` is where to go if the target cannot take
    the conversation. ``guardrails_active`` lists every guardrail whose
    condition held (whether or not it had to override anything); ``flags``
    the escalation flags raised; ``churn_risk`` and ``churn_drivers`` the
    churn heuristic's score and its contributing inputs. ``resolved`` is True
    when the customer's last turn closes the conversation calmly (the policy
    fact ``conversation.closing``); it never changes the route.
    ``summary`` is the one line a supervisor reads first.
    """

    route: Route
    queue: str
    priority: int
    rule: str
    explanation: list[ExplanationItem]
    guardrail: str | None
    policy_version: str
    policy_hash: str
    variant: str | None
    fallback: Route | None
    fallback_queue: str | None = None
    experiment: str | None = None
    churn_risk: float = 0.0
    churn_drivers: list[tuple[str, float]] = []
    flags: list[str] = []
    guardrails_active: list[str] = []
    summary: str = ""
    resolved: bool = False


def decide(
    signals: ConversationSignals, customer: CustomerInfo, policy: Policy, conversation_id: str
) -> Decision:
    """Return the routing decision for a conversation (see the module doc for the order of steps).

    Deterministic: the same arguments always give the same decision. Never
    raises for a policy from ``load_policy`` and signals from ``update_signals``.
    """
    churn = assess_churn(signals, customer, policy.churn, policy.signals.peak_emotions)
    facts = observe(signals, customer, churn, policy.signals)
    explanation: list[ExplanationItem] = []

    rules, default, variant_id, experiment_id = policy.rules, policy.default, None, None
    if policy.experiment is not None:
        variant = assign_variant(policy.experiment, conversation_id)
        rules, default, variant_id, experiment_id = (
            variant.rules,
            variant.default,
            variant.id,
            policy.experiment.id,
        )
        position = bucket(policy.experiment.id, conversation_id)
        explanation.append(
            ExplanationItem(
                kind="variant",
                text=f"experiment '{experiment_id}': variant '{variant_id}' (bucket {position:.4f})",
                observed=variant_id,
            )
        )

    active = _active_guardrails(signals, facts)
    matched = next((rule for rule in rules if evaluate(rule.when, facts)), default)
    explanation += _explain_rule(matched, rules, facts)

    target, fallback, fired = matched.target, matched.fallback, None
    if target.route == BOT_ROUTE and active:
        fired, evidence = active[0]
        original = target
        target = policy.guardrails[fired].target
        explanation.append(
            ExplanationItem(
                kind="guardrail",
                text=f"guardrail {fired} fired ({evidence}): {policy.guardrails[fired].description}; "
                f"rule '{matched.id}' chose {original.route}, sent to {target.route} instead",
                signal=fired,
                held=True,
            )
        )
    if fallback is not None and fallback.route == BOT_ROUTE and active:
        fallback = None  # falling back to the bot would undo the guardrail
    for name, evidence in active:
        if name != fired:
            explanation.append(
                ExplanationItem(
                    kind="guardrail", text=f"guardrail {name} active ({evidence})", signal=name, held=True
                )
            )

    queue = _resolve_queue(target.queue, facts, policy)
    fallback_queue = _resolve_queue(fallback.queue, facts, policy) if fallback is not None else None
    if fallback is not None and (fallback.route, fallback_queue) == (target.route, queue):
        fallback, fallback_queue = None, None  # a fallback to the same place is no fallback
    priority, boost_items = _priority(target, policy, facts)
    explanation += boost_items
    resolved = facts["conversation.closing"] is True
    if resolved:
        last = signals.last_customer
        explanation.append(
            ExplanationItem(
                kind="resolved",
                text="conversation looks resolved: the customer's last turn"
                + (f" (turn {last.index})" if last is not None else "")
                + " closes it calmly; route unchanged",
                signal="conversation.closing",
                observed=True,
                held=True,
            )
        )

    summary = f"{target.route} → {queue} (priority {priority}): rule '{matched.id}'"
    if fired:
        summary += f", guardrail {fired} overrode the bot"
    if variant_id is not None:
        summary += f", variant '{variant_id}'"
    if resolved:
        summary += ", resolved"
    return Decision(
        route=target.route,
        queue=queue,
        priority=priority,
        rule=matched.id,
        explanation=explanation,
        guardrail=fired,
        policy_version=policy.version,
        policy_hash=policy.hash,
        variant=variant_id,
        fallback=fallback.route if fallback is not None else None,
        fallback_queue=fallback_queue,
        experiment=experiment_id,
        churn_risk=churn.score,
        churn_drivers=churn.drivers,
        flags=_as_list(facts["escalation.flags"]),
        guardrails_active=[name for name, _ in active],
        summary=summary,
        resolved=resolved,
    )


def _as_list(value: Value) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def _active_guardrails(signals: ConversationSignals, facts: dict[str, Value]) -> list[tuple[str, str]]:
    """Return ``(guardrail, evidence)`` for each guardrail whose condition holds, in precedence order."""
    active: list[tuple[str, str]] = []
    hit = signals.flags.get("human_request")
    if hit is not None:
        active.append(("human_request", f"customer asked for a person at turn {hit.turn}: {hit.evidence}"))
    if facts["language.supported"] is False:
        code = signals.language
        tally = signals.languages.get(code)
        turns = (
            f" ({tally.turns} customer turn{'s' if tally.turns != 1 else ''})" if tally is not None else ""
        )
        active.append(
            (
                "unsupported_language",
                f"conversation language '{code}'{turns} is not supported by the model pack",
            )
        )
    # The customer's opening turn with no reason in it ("hi") is not an unclear
    # reason yet: the bot's job at that point is to ask what they need. From
    # the second customer turn on, no reason means out of scope.
    opening = signals.reason.status == "none" and signals.customer.turns <= 1
    if facts["reason.confident"] is not True and not opening:
        reason = signals.reason
        active.append(
            (
                "low_confidence",
                f"contact reason {reason.status.replace('_', ' ')}, top share {show(reason.confidence)}",
            )
        )
    return active


def _explain_rule(matched: Rule, rules: tuple[Rule, ...], facts: dict[str, Value]) -> list[ExplanationItem]:
    if matched.id == DEFAULT_RULE_ID:
        return [
            ExplanationItem(
                kind="default",
                text=f"no rule matched ({len(rules)} checked): default target "
                f"{matched.target.route} → {matched.target.queue}",
                held=True,
            )
        ]
    position = rules.index(matched) + 1
    head = ExplanationItem(
        kind="rule",
        text=f"rule '{matched.id}' matched (rule {position} of {len(rules)}; first match wins)"
        + (f": {matched.description}" if matched.description else ""),
        path=matched.id,
        held=True,
    )
    _, items = explain(matched.when, facts)
    return [head, *items]


def _resolve_queue(queue: str, facts: dict[str, Value], policy: Policy) -> str:
    if queue != REASON_QUEUE:
        return queue
    category = facts["reason.category"]
    resolved = policy.reason_queues.get(category) if isinstance(category, str) else None
    if resolved is not None:
        return resolved
    # load_policy guarantees every category has a queue when "@reason" is used; stay total anyway.
    fallback = policy.default.target.queue
    return fallback if fallback != REASON_QUEUE else next(iter(policy.queues))


def _priority(target: Target, policy: Policy, facts: dict[str, Value]) -> tuple[int, list[ExplanationItem]]:
    priority = target.priority
    items: list[ExplanationItem] = []
    for boost in policy.boosts:
        if evaluate(boost.when, facts):
            priority += boost.add
            items.append(
                ExplanationItem(
                    kind="priority",
                    text=f"priority {boost.add:+d} by boost '{boost.id}'"
                    + (f": {boost.description}" if boost.description else ""),
                    path=boost.id,
                    held=True,
                )
            )
    clamped = min(100, max(0, priority))
    if clamped != priority:
        items.append(
            ExplanationItem(kind="priority", text=f"priority {priority} clamped to {clamped} (0..100)")
        )
    return clamped, items
