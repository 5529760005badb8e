"""The compiled routing policy: the immutable Structs ``load_policy`` builds.

Data only: the names the policy language reserves (``"@reason"``,
``"@previous"``, the guardrails, the ``default`` rule id) and the frozen
Structs every decision reads. Parsing and validation live in
``routing.policy_loader``; callers import both through ``routing.policy``.
"""

from __future__ import annotations

import msgspec

from routing.churn import ChurnConfig
from routing.conditions import Condition
from routing.signals import SignalConfig
from routing.slo import SLO
from routing.types import Route

__all__ = [
    "DEFAULT_RULE_ID",
    "GUARDRAILS",
    "PREVIOUS_ROUTE",
    "REASON_QUEUE",
    "Boost",
    "Experiment",
    "Guardrail",
    "Policy",
    "Queue",
    "Rule",
    "Stability",
    "Target",
    "Variant",
]

REASON_QUEUE = "@reason"
# A rule with this route keeps the conversation where the previous decision sent it.
PREVIOUS_ROUTE = "@previous"
# In order of precedence: the first active one overrides a bot route.
GUARDRAILS: tuple[str, ...] = ("human_request", "unsupported_language", "low_confidence")
# The id of the [default] target, as a rule.
DEFAULT_RULE_ID = "default"


class Target(msgspec.Struct, frozen=True):
    """Where to send a conversation. ``queue`` may be ``"@reason"``: the queue
    serving the contact reason's category."""

    route: Route
    queue: str
    priority: int = 0


class Rule(msgspec.Struct, frozen=True):
    """One ordered rule: when ``when`` holds, send to ``target``; ``fallback``
    is where to go if the target cannot take the conversation.

    ``target`` is ``None`` for a rule with ``route = "@previous"``: it keeps the
    route, queue and priority of the conversation's previous decision, and only
    applies when there is one (``keeps_previous``)."""

    id: str
    when: Condition
    target: Target | None
    fallback: Target | None = None
    description: str = ""

    @property
    def keeps_previous(self) -> bool:
        """True for a ``route = "@previous"`` rule."""
        return self.target is None


class Stability(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How a decision may change from one turn to the next (the policy's ``[stability]``).

    ``return_to_bot``: a conversation a previous decision gave to a person may
    go back to the bot (off by default: a human route is never taken back).
    ``confirm_turns``: a move to a place that is not more urgent (a lower or
    equal priority, between human queues) happens only once the rules chose it
    on this many customer turns in a row; moves to a person, and to a higher
    priority, happen at once. ``priority_step``: while the route and queue stay,
    the priority never falls, and rises by less than this are ignored.
    """

    return_to_bot: bool = False
    confirm_turns: int = 2
    priority_step: int = 10

    def problems(self) -> list[tuple[str, str]]:
        """Return ``(field, problem)`` for every out-of-range value."""
        out: list[tuple[str, str]] = []
        if not 1 <= self.confirm_turns <= 20:
            out.append(("confirm_turns", f"must be from 1 to 20, got {self.confirm_turns}"))
        if not 0 <= self.priority_step <= 100:
            out.append(("priority_step", f"must be from 0 to 100, got {self.priority_step}"))
        return out


class Boost(msgspec.Struct, frozen=True):
    """Add ``add`` to the priority when ``when`` holds (applied after routing)."""

    id: str
    when: Condition
    add: int
    description: str = ""


class Guardrail(msgspec.Struct, frozen=True):
    """A guardrail and the non-bot target it sends a conversation to when it overrides the bot."""

    name: str
    target: Target
    description: str


class Queue(msgspec.Struct, frozen=True):
    """A declared queue and the contact-reason categories it serves."""

    name: str
    description: str = ""
    categories: tuple[str, ...] = ()


class Variant(msgspec.Struct, frozen=True):
    """One experiment arm with its traffic ``share`` and its effective rules and default."""

    id: str
    share: float
    rules: tuple[Rule, ...]
    default: Rule
    description: str = ""


class Experiment(msgspec.Struct, frozen=True):
    """Traffic split: variants in file order, assignment by a stable hash of the conversation id."""

    id: str
    variants: tuple[Variant, ...]
    description: str = ""


class Policy(msgspec.Struct, frozen=True):
    """A validated routing policy. Build it with ``load_policy``.

    ``version`` is the author's label, ``hash`` the sha256 of the canonical
    content; both go into every decision. ``default`` is the ``[default]``
    target as a rule (id ``default``) whose condition always holds.
    ``reason_queues`` maps contact-reason categories to queues (all of them
    when the policy uses ``"@reason"``). ``extra_intents`` maps the custom
    contact reasons the policy was validated with (``routing.reasons``) to
    their categories.
    """

    version: str
    hash: str
    rules: tuple[Rule, ...]
    default: Rule
    guardrails: dict[str, Guardrail]
    queues: dict[str, Queue]
    reason_queues: dict[str, str]
    boosts: tuple[Boost, ...] = ()
    experiment: Experiment | None = None
    signals: SignalConfig = msgspec.field(default_factory=SignalConfig)
    churn: ChurnConfig = msgspec.field(default_factory=ChurnConfig)
    description: str = ""
    stability: Stability = msgspec.field(default_factory=Stability)
    extra_intents: dict[str, str] = {}
    slos: tuple[SLO, ...] = ()  # friction SLOs ([[slos]], routing.slo), evaluated by the service

    @property
    def families(self) -> dict[str, tuple[str, ...]]:
        """The intent families (``[families]``): name -> intents."""
        return self.signals.families

    @property
    def variants(self) -> tuple[Variant, ...]:
        """The experiment's variants (empty without an experiment)."""
        return self.experiment.variants if self.experiment is not None else ()

    def rule(self, rule_id: str) -> Rule | None:
        """Return the base rule ``rule_id`` (``None`` if there is none)."""
        return next((r for r in self.rules if r.id == rule_id), None)
