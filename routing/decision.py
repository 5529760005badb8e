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
7. weigh the result against the conversation's previous decision, if the
   caller passes one (the policy's ``[stability]``): a person's conversation is
   not handed back to the bot, a move that is not more urgent must be chosen on
   ``confirm_turns`` customer turns in a row, and the priority neither falls
   nor creeps up while the route and queue stay. ``changed`` says whether the
   decision differs from the previous one (route, queue or priority);
8. mark the decision ``resolved`` when the customer's last turn closes the
   conversation calmly ("thanks, that's all"). A rule with
   ``route = "@previous"`` (the default policy's ``resolved``) then keeps the
   conversation where the previous decision sent it.

The explanation lists the variant, the matched rule and each of its conditions
with the observed value and whether it held, the level at which the contact
reason is confident (intent, family or category), the guardrails, the priority
boosts, how the previous decision shaped this one and, when it applies, that
the conversation looks resolved. ``decide`` is deterministic and total: any
signals, customer, validated policy and previous decision give exactly one
decision. It stays pure: the previous decision is an input, kept by the caller
(the service stores it with the conversation; ``routing.replay`` threads it
through a transcript turn by turn).
"""

from __future__ import annotations

import msgspec

from routing.churn import assess_churn
from routing.conditions import ExplanationItem, describe_leaf, evaluate, explain, show
from routing.experiments import assign_variant, bucket
from routing.facts import Value, observe
from routing.policy import DEFAULT_RULE_ID, PREVIOUS_ROUTE, REASON_QUEUE, Policy, Rule, Stability, Target
from routing.signals import ConversationSignals, family_index
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
    fact ``conversation.closing``); a ``route = "@previous"`` rule keeps the
    previous decision for it. ``summary`` is the one line a supervisor reads first.

    Against the previous decision (``decide(..., previous=...)``): ``changed`` is
    True when route, queue or priority differ from it (always True without one);
    ``held`` is True when the stability rules kept the previous route and queue
    although the rules chose another place (``rule`` is then the rule behind the
    kept route; the explanation names the one that chose the other place).
    ``pending_*`` remember a move that waits for confirmation (``pending_since``:
    the count of lexical customer turns when the rules first chose it).
    ``reason_level`` is the level at which the contact reason is confident:
    ``intent``, ``family``, ``category`` or ``""``. ``customer_turns`` counts the
    lexical customer turns the decision saw: a decision made before the customer
    said anything (a bot greeting appended first) binds nothing, so the next one
    is free of the stability rules.
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
    changed: bool = True
    held: bool = False
    reason_level: str = ""
    pending_route: Route | None = None
    pending_queue: str | None = None
    pending_priority: int | None = None
    pending_rule: str | None = None
    pending_since: int | None = None
    customer_turns: int = 0


class _Outcome(msgspec.Struct, frozen=True):
    """Where the rules (and guardrails) send the conversation before stability is applied."""

    route: Route
    queue: str
    priority: int
    rule: str
    fallback: Route | None
    fallback_queue: str | None
    guardrail: str | None


def decide(
    signals: ConversationSignals,
    customer: CustomerInfo,
    policy: Policy,
    conversation_id: str,
    previous: Decision | None = None,
) -> Decision:
    """The decision alone; see ``decide_with_facts``."""
    return decide_with_facts(signals, customer, policy, conversation_id, previous)[0]


def decide_with_facts(
    signals: ConversationSignals,
    customer: CustomerInfo,
    policy: Policy,
    conversation_id: str,
    previous: Decision | None = None,
) -> tuple[Decision, dict[str, Value]]:
    """Return the routing decision for a conversation (see the module doc for the order of steps).

    ``previous`` is the decision this conversation got before the latest turns
    (``None`` for a first decision, or a stateless analysis of a whole
    transcript). Deterministic: the same arguments always give the same
    decision. Never raises for a policy from ``load_policy``, signals from
    ``update_signals`` and a previous decision from ``decide``. The second value
    is every signal's value exactly as the policy's conditions saw it (what the
    response shows as ``signals``), so callers need not compute it again.
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
    matched, skipped = _match(rules, default, facts, previous)
    explanation += skipped
    explanation += _explain_rule(matched, rules, facts)
    explanation.append(_explain_reason(signals, policy))

    # A "@previous" rule only matches with a previous decision (``_match``): it keeps that one.
    kept = previous if matched.target is None else None
    if kept is not None:
        target = Target(route=kept.route, queue=kept.queue, priority=kept.priority)
        fallback = (
            Target(route=kept.fallback, queue=kept.fallback_queue, priority=kept.priority)
            if kept.fallback is not None and kept.fallback_queue is not None
            else None
        )
        explanation.append(
            ExplanationItem(
                kind="stability",
                text=f"rule '{matched.id}' keeps the previous decision: {kept.route} → {kept.queue} "
                f"(priority {kept.priority}, rule '{kept.rule}')",
                signal="previous.route",
                observed=kept.route,
                held=True,
            )
        )
    else:
        target = matched.target or default.target or Target(route="specialist", queue=REASON_QUEUE)
        fallback = matched.fallback
    fired = None
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
    if kept is not None and fired is None:
        priority = target.priority  # kept as it was: the boosts are in it already
    else:
        priority, boost_items = _priority(target, policy, facts)
        explanation += boost_items
    proposed = _Outcome(
        route=target.route,
        queue=queue,
        priority=priority,
        rule=matched.id,
        fallback=fallback.route if fallback is not None else None,
        fallback_queue=fallback_queue,
        guardrail=fired,
    )
    lexical_turns = signals.turns.customer - signals.turns.customer_non_lexical
    outcome, stable = _stabilise(proposed, previous, policy.stability, lexical_turns, explanation)
    if outcome.fallback == BOT_ROUTE and active:
        outcome = msgspec.structs.replace(outcome, fallback=None, fallback_queue=None)
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

    summary = f"{outcome.route} → {outcome.queue} (priority {outcome.priority}): rule '{outcome.rule}'"
    if outcome.guardrail:
        summary += f", guardrail {outcome.guardrail} overrode the bot"
    if stable.held:
        summary += f", held (rule '{proposed.rule}' chose {proposed.route} → {proposed.queue})"
    if variant_id is not None:
        summary += f", variant '{variant_id}'"
    if resolved:
        summary += ", resolved"
    decision = Decision(
        route=outcome.route,
        queue=outcome.queue,
        priority=outcome.priority,
        rule=outcome.rule,
        explanation=explanation,
        guardrail=outcome.guardrail,
        policy_version=policy.version,
        policy_hash=policy.hash,
        variant=variant_id,
        fallback=outcome.fallback,
        fallback_queue=outcome.fallback_queue if outcome.fallback is not None else None,
        experiment=experiment_id,
        churn_risk=churn.score,
        churn_drivers=churn.drivers,
        flags=_as_list(facts["escalation.flags"]),
        guardrails_active=[name for name, _ in active],
        summary=summary,
        resolved=resolved,
        changed=stable.changed,
        held=stable.held,
        reason_level=signals.reason.level,
        pending_route=stable.pending.route if stable.pending is not None else None,
        pending_queue=stable.pending.queue if stable.pending is not None else None,
        pending_priority=stable.pending.priority if stable.pending is not None else None,
        pending_rule=stable.pending.rule if stable.pending is not None else None,
        pending_since=stable.pending_since,
        customer_turns=lexical_turns,
    )
    return decision, facts


class _Stable(msgspec.Struct, frozen=True):
    changed: bool
    held: bool = False
    pending: _Outcome | None = None
    pending_since: int | None = None


def _place(route: str, queue: str) -> str:
    return f"{route} → {queue}"


def _stabilise(
    proposed: _Outcome,
    previous: Decision | None,
    stability: Stability,
    lexical_turns: int,
    explanation: list[ExplanationItem],
) -> tuple[_Outcome, _Stable]:
    """Weigh what the rules chose against the previous decision (see ``Stability``).

    Moves to a person and to a higher priority happen at once; a person's
    conversation goes back to the bot only if ``return_to_bot``; other moves wait
    until the rules chose them on ``confirm_turns`` customer turns in a row.
    Appends what it did to ``explanation``. A previous decision made before any
    lexical customer turn holds nothing back."""
    if previous is None:
        return proposed, _Stable(changed=True)
    if previous.customer_turns == 0 and lexical_turns > 0:
        moved = (proposed.route, proposed.queue, proposed.priority) != (
            previous.route,
            previous.queue,
            previous.priority,
        )
        if moved:
            explanation.append(
                ExplanationItem(
                    kind="stability",
                    text=f"changed from {_place(previous.route, previous.queue)} "
                    f"(priority {previous.priority}), decided before the customer said anything, to "
                    f"{_place(proposed.route, proposed.queue)} (priority {proposed.priority})",
                    signal="previous.route",
                    observed=previous.route,
                    held=False,
                )
            )
        return proposed, _Stable(changed=moved)
    before = _Outcome(
        route=previous.route,
        queue=previous.queue,
        priority=previous.priority,
        rule=previous.rule,
        fallback=previous.fallback,
        fallback_queue=previous.fallback_queue,
        guardrail=previous.guardrail,
    )
    was = f"{_place(before.route, before.queue)} (priority {before.priority})"

    def note(text: str, held: bool) -> None:
        explanation.append(
            ExplanationItem(
                kind="stability", text=text, signal="previous.route", observed=before.route, held=held
            )
        )

    if (proposed.route, proposed.queue) == (before.route, before.queue):
        priority = proposed.priority
        if priority < before.priority:
            note(
                f"priority stays {before.priority} (the rules gave {priority}): it never falls while "
                "the route and queue stay",
                True,
            )
            priority = before.priority
        elif 0 < priority - before.priority < stability.priority_step:
            note(
                f"priority stays {before.priority} (the rules gave {priority}): rises below "
                f"{stability.priority_step} are ignored",
                True,
            )
            priority = before.priority
        changed = priority != before.priority
        if changed:
            note(f"priority raised from {before.priority} to {priority}; route and queue unchanged", False)
        return msgspec.structs.replace(proposed, priority=priority), _Stable(changed=changed)

    chosen = f"{_place(proposed.route, proposed.queue)} (priority {proposed.priority})"
    if proposed.route == BOT_ROUTE and before.route != BOT_ROUTE and not stability.return_to_bot:
        note(
            f"kept {was}: rule '{proposed.rule}' chose the bot, but a person already has this "
            "conversation and the policy does not hand it back ([stability] return_to_bot = false)",
            True,
        )
        return before, _Stable(changed=False, held=True)
    if before.route == BOT_ROUTE and proposed.route != BOT_ROUTE:
        note(f"changed from {was} to {chosen}: away from the bot at once", False)
        return proposed, _Stable(changed=True)
    if proposed.priority > before.priority:
        note(f"changed from {was} to {chosen}: more urgent, at once", False)
        return proposed, _Stable(changed=True)
    same = (previous.pending_route, previous.pending_queue) == (proposed.route, proposed.queue)
    since = previous.pending_since if same and previous.pending_since is not None else lexical_turns
    seen = lexical_turns - since + 1
    if seen >= stability.confirm_turns:
        note(
            f"changed from {was} to {chosen}: chosen on {seen} customer turn{'s' if seen != 1 else ''} "
            f"in a row (confirm_turns = {stability.confirm_turns})",
            False,
        )
        return proposed, _Stable(changed=True)
    note(
        f"kept {was}: rule '{proposed.rule}' chose {chosen}, which is not more urgent; such a move needs "
        f"{stability.confirm_turns} customer turns in a row choosing it ({seen} so far)",
        True,
    )
    return before, _Stable(changed=False, held=True, pending=proposed, pending_since=since)


def _match(
    rules: tuple[Rule, ...], default: Rule, facts: dict[str, Value], previous: Decision | None
) -> tuple[Rule, list[ExplanationItem]]:
    """The first rule whose condition holds; a ``route = "@previous"`` rule only with a previous decision."""
    skipped: list[ExplanationItem] = []
    for rule in rules:
        if not evaluate(rule.when, facts):
            continue
        if rule.keeps_previous and previous is None:
            skipped.append(
                ExplanationItem(
                    kind="rule",
                    text=f"rule '{rule.id}' held but was skipped: it keeps the previous decision "
                    f"(route = '{PREVIOUS_ROUTE}') and there is none",
                    path=rule.id,
                    held=False,
                )
            )
            continue
        return rule, skipped
    return default, skipped


def _explain_reason(signals: ConversationSignals, policy: Policy) -> ExplanationItem:
    """Which level the contact reason is confident at (intent, family or category), with its share."""
    reason = signals.reason
    share = show(reason.confidence)
    if reason.status != "confident":
        top = ", ".join(f"{intent} {show(p)}" for intent, p in reason.ranked[:3]) or "none"
        text = (
            f"contact reason not confident ({reason.status.replace('_', ' ')}); "
            f"no intent, family or category passed the threshold and gap (top intents: {top})"
        )
    elif reason.level == "family":
        members = family_index(policy.families)
        split = ", ".join(f"{i} {show(p)}" for i, p in reason.ranked if members.get(i) == reason.family)
        text = (
            f"contact reason decided at the family level: family '{reason.family}' (category "
            f"{reason.category}) holds {share} of the evidence ({split}); no single intent did"
        )
    elif reason.level == "category":
        text = (
            f"contact reason decided at the category level: category '{reason.category}' holds {share} of "
            "the evidence; no single intent or family did"
        )
    else:
        family = f", family '{reason.family}'" if reason.family else ""
        text = (
            f"contact reason decided at the intent level: intent '{reason.intent}' (category "
            f"{reason.category}{family}) holds {share} of the evidence"
        )
        evidence = signals.evidence.get(reason.intent)
        if evidence is not None and evidence.example is not None:
            text += f"; closest example: '{evidence.example}' ({evidence.example_similarity:.2f})"
    return ExplanationItem(
        kind="reason",
        text=text,
        signal="reason.level",
        observed=reason.level or "none",
        held=reason.status == "confident",
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
    if matched.id == DEFAULT_RULE_ID and matched.target is not None:
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
    fallback = policy.default.target.queue if policy.default.target is not None else REASON_QUEUE
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
