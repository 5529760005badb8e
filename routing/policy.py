"""The routing policy: a TOML file, validated in full at load time.

``load_policy(text)`` parses and validates the text and returns an immutable
``Policy``; any problem raises ``PolicyError`` listing *every* problem, each
naming the rule (or section) and the field. The policy language is documented
in ``routing/POLICY.md``; in short:

* ``version`` (required) and a content ``hash`` (sha256 of the canonical JSON
  form of the parsed document, so comments and layout do not change it) are
  carried by every decision.
* ``[queues.<name>]`` declares every queue; ``categories`` lists the contact
  reason categories a queue serves, which is what the special queue name
  ``"@reason"`` resolves through (``"*"`` = every category not listed elsewhere).
* ``[guardrails]`` configures where the guardrails send a conversation; they
  cannot be disabled and cannot target the bot. ``human_request`` and
  ``low_confidence`` must be configured; ``unsupported_language`` (added
  later) may be, and otherwise uses the ``low_confidence`` target.
* ``[[rules]]`` ordered, first match wins; ``[default]`` when none matches.
* ``[[priority_boosts]]`` add to the priority when their condition holds.
* ``[experiment]`` splits traffic into variants that may skip rules, add rules
  in front, or override targets.
* ``[signals]`` and ``[churn]`` tune the signal layer and the churn heuristic.

The data (the compiled ``Policy`` and its parts) lives in
``routing.policy_schema``, the parsing and validation in
``routing.policy_loader``; this module is the one callers import, and it
re-exports both. Its only I/O is ``default_policy_text()``, which reads the
committed ``default_policy.toml`` shipped inside the package.
"""

from __future__ import annotations

from importlib import resources

from routing.errors import PolicyError
from routing.policy_loader import canonical_hash, load_policy
from routing.policy_schema import (
    DEFAULT_RULE_ID,
    GUARDRAILS,
    PREVIOUS_ROUTE,
    REASON_QUEUE,
    Boost,
    Experiment,
    Guardrail,
    Policy,
    Queue,
    Rule,
    Stability,
    Target,
    Variant,
)

__all__ = [
    "DEFAULT_RULE_ID",
    "GUARDRAILS",
    "PREVIOUS_ROUTE",
    "REASON_QUEUE",
    "Boost",
    "Experiment",
    "Guardrail",
    "Policy",
    "PolicyError",
    "Queue",
    "Rule",
    "Stability",
    "Target",
    "Variant",
    "canonical_hash",
    "default_policy",
    "default_policy_text",
    "load_policy",
]


def default_policy_text() -> str:
    """Return the text of the committed default policy (``routing/default_policy.toml``).

    The one function in ``routing`` that reads a file: a package resource,
    so it works from a wheel or a zip as well as from a checkout.
    """
    return resources.files("routing").joinpath("default_policy.toml").read_text(encoding="utf-8")


def default_policy() -> Policy:
    """Return the committed default policy, loaded and validated."""
    return load_policy(default_policy_text())
