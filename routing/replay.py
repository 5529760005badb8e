"""Replay: fold a transcript of scored turns and decide after each turn, as a live conversation does.

Used by the policy test suites (``routing.suite``). The service itself updates
the stored signals as turns arrive and passes each decision on to the next,
which ``replay_steps`` reproduces turn by turn.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import msgspec

from routing.decision import Decision, decide
from routing.policy import Policy
from routing.signals import ConversationSignals, new_signals, update_signals
from routing.types import CustomerInfo, TurnScores


class Step(msgspec.Struct, frozen=True):
    """The signals and the decision right after one turn (``index`` is the turn's)."""

    index: int
    signals: ConversationSignals
    decision: Decision


def replay_steps(
    turns: Iterable[TurnScores],
    customer: CustomerInfo,
    policy: Policy,
    conversation_id: str,
    previous: Decision | None = None,
) -> Iterator[Step]:
    """Yield the signals and the decision after each turn, each decision made with the one before.

    This is a live conversation that receives its turns one at a time: the
    decision after turn ``k`` sees the decision after turn ``k - 1`` (or
    ``previous`` for the first turn), so stability (hysteresis, no return to the
    bot, ``route = "@previous"`` rules) plays out exactly as in the service.
    Pure and deterministic; raises ``TurnError`` as ``update_signals`` does.
    """
    signals = new_signals()
    for turn in turns:
        signals = update_signals(signals, turn, policy.signals)
        previous = decide(signals, customer, policy, conversation_id, previous)
        yield Step(index=turn.index, signals=signals, decision=previous)
