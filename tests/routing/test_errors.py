"""The routing error hierarchy."""

from __future__ import annotations

from routing.errors import PolicyError, RoutingError, TurnError


def test_hierarchy() -> None:
    assert issubclass(PolicyError, RoutingError)
    assert issubclass(TurnError, RoutingError)
    assert issubclass(RoutingError, ValueError)


def test_policy_error_lists_every_problem() -> None:
    error = PolicyError(["rule 'a', field 'id': x", "field 'queues': y"])
    assert error.errors == ["rule 'a', field 'id': x", "field 'queues': y"]
    assert str(error) == "invalid routing policy (2 errors):\n- rule 'a', field 'id': x\n- field 'queues': y"
    assert str(PolicyError(["one"])).startswith("invalid routing policy (1 error):")


def test_single_message_errors() -> None:
    error = TurnError("turn 0: bad")
    assert error.errors == ["turn 0: bad"]
    assert str(error) == "turn 0: bad"
