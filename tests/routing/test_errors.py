"""The routing errors: what callers catch, and the problems they carry and print."""

from __future__ import annotations

import pytest

from routing.errors import PolicyError, ReasonsError, RoutingError, TurnError, did_you_mean
from routing.policy import load_policy
from routing.reasons import load_reasons


@pytest.mark.parametrize(
    ("error", "head"),
    [
        (PolicyError(["rule 'a', field 'id': x", "field 'queues': y"]), "invalid routing policy (2 errors)"),
        (
            ReasonsError(["reason 'a', field 'id': x", "field 'matching': y"]),
            "invalid reasons file (2 errors)",
        ),
    ],
)
def test_file_errors_list_every_problem_under_a_counted_head(error: RoutingError, head: str) -> None:
    # The CLI prints ``errors`` one per line; logs and HTTP problems print str(error).
    assert str(error) == f"{head}:\n- {error.errors[0]}\n- {error.errors[1]}"
    assert len(error.errors) == 2


def test_one_problem_is_counted_in_the_singular() -> None:
    assert str(PolicyError(["field 'version': missing required field"])) == (
        "invalid routing policy (1 error):\n- field 'version': missing required field"
    )
    assert str(ReasonsError(["x"])).startswith("invalid reasons file (1 error):\n")


def test_a_single_message_error_is_its_own_only_problem() -> None:
    error = TurnError("turn 0: bad")
    assert error.errors == ["turn 0: bad"]
    assert str(error) == "turn 0: bad"


def test_errors_is_a_copy_of_the_list_given() -> None:
    problems = ["field 'queues': y"]
    error = PolicyError(problems)
    problems.append("added later")
    assert error.errors == ["field 'queues': y"]


def test_invalid_files_are_caught_as_value_errors_carrying_every_problem() -> None:
    # service/ and the CLI catch ValueError (or RoutingError) and show ``errors``.
    with pytest.raises(ValueError) as policy_info:
        load_policy('version = "x"')
    with pytest.raises(RoutingError) as reasons_info:
        load_reasons("[[reasons]]\nnonsense = 1")
    assert isinstance(policy_info.value, PolicyError) and len(policy_info.value.errors) > 1
    assert isinstance(reasons_info.value, ReasonsError) and reasons_info.value.errors


def test_did_you_mean_names_the_closest_option_or_nothing() -> None:
    assert did_you_mean("queus", ["queues", "rules"]) == " (did you mean 'queues'?)"
    assert did_you_mean("zzz", ["queues", "rules"]) == ""
    assert did_you_mean("x", []) == ""


def test_did_you_mean_prefers_an_alias_that_is_an_option() -> None:
    aliases = {"equals": "eq"}
    assert did_you_mean("equals", ["eq", "equal"], aliases) == " (did you mean 'eq'?)"
    # An alias whose target is not an option falls back to spelling.
    assert did_you_mean("equals", ["equal"], aliases) == " (did you mean 'equal'?)"
