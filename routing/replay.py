"""Replay: fold a whole transcript of scored turns and decide, in one call.

For tests, policy dry-runs ("what would the new policy have done with
yesterday's conversations?") and the CLI. The service itself updates the
stored signals turn by turn instead, which gives the same result.
"""

from __future__ import annotations

from collections.abc import Iterable

from routing.decision import Decision, decide
from routing.policy import Policy
from routing.signals import ConversationSignals, new_signals, update_signals
from routing.types import CustomerInfo, TurnScores


def replay(
    turns: Iterable[TurnScores], customer: CustomerInfo, policy: Policy, conversation_id: str
) -> tuple[ConversationSignals, Decision]:
    """Return the signals after every turn (in order) and the decision for them.

    Uses the policy's ``[signals]`` settings. Raises ``TurnError`` for an
    unusable turn, exactly as ``update_signals`` does.
    """
    signals = new_signals()
    for turn in turns:
        signals = update_signals(signals, turn, policy.signals)
    return signals, decide(signals, customer, policy, conversation_id)
