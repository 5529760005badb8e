"""The one exception -> problem+json mapping (service/problems.py)."""

from __future__ import annotations

import msgspec
import pytest
from litestar.exceptions import NotFoundException, ValidationException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge

from models.errors import DeadlineExceededError, InferenceError, NotReadyError, OverloadedError, PackError
from routing.errors import PolicyError, TurnError
from service import errors as e
from service.problems import problem_body, to_service_error


@pytest.mark.parametrize(
    ("exc", "cls", "status"),
    [
        (OverloadedError("full", retry_after=2.5), e.Overloaded, 429),
        (NotReadyError("warming"), e.NotReady, 503),
        (DeadlineExceededError("late"), e.Unavailable, 503),
        (InferenceError("onnx said no"), e.InternalError, 500),
        (PackError("bad pack"), e.InternalError, 500),
        (PolicyError(["rule 'x', field 'route': unknown route"]), e.ValidationFailed, 422),
        (TurnError("bad score"), e.InternalError, 500),
        (RequestEntityTooLarge(), e.PayloadTooLarge, 413),
        (NotFoundException(), e.NotFound, 404),
        (RuntimeError("anything"), e.InternalError, 500),
        (e.Conflict("closed"), e.Conflict, 409),
    ],
)
def test_mapping(exc: Exception, cls: type[e.ServiceError], status: int) -> None:
    error = to_service_error(exc)
    assert type(error) is cls and error.status == status


def test_overload_carries_retry_after() -> None:
    error = to_service_error(OverloadedError("full", retry_after=2.5))
    assert error.headers["Retry-After"] == "3"


def test_policy_errors_are_listed() -> None:
    error = to_service_error(PolicyError(["first problem", "second problem"]))
    assert [x["message"] for x in error.errors] == ["first problem", "second problem"]


def test_msgspec_errors_name_the_field() -> None:
    class Body(msgspec.Struct):
        a: list[int]

    try:
        msgspec.json.decode(b'{"a": [1, "x"]}', type=Body)
    except msgspec.ValidationError as exc:
        error = to_service_error(exc)
    assert error.status == 422 and error.errors == [{"field": "a[1]", "message": "Expected `int`, got `str`"}]
    assert to_service_error(msgspec.DecodeError("truncated")).status == 400


def test_litestar_validation_body_vs_parameters() -> None:
    body = ValidationException(
        extra=[{"message": "Object contains unknown field `x`", "key": "turns[0]", "source": "body"}]
    )
    assert to_service_error(body).errors == [
        {"field": "turns[0].x", "message": "Object contains unknown field `x`"}
    ]
    query = ValidationException(
        extra=[{"message": "Invalid enum value 'z'", "key": "turns", "source": "query"}]
    )
    assert to_service_error(query).status == 400
    missing = ValidationException(extra=[{"message": "'data'", "key": "data", "source": "body"}])
    assert to_service_error(missing).status == 400


def test_internal_error_body_says_nothing_more() -> None:
    error = to_service_error(RuntimeError("customer said: my card is 4111..."))
    body = problem_body(error, instance="/v1/analyze", request_id="r1")
    assert body == {
        "type": "urn:switchboard:problem:internal",
        "title": "Internal error",
        "status": 500,
        "detail": "Internal error",
        "instance": "/v1/analyze",
        "request_id": "r1",
    }


def test_limit_extension_members() -> None:
    error = e.LimitExceeded("too many", extra={"limit": "SWITCHBOARD_MAX_TURNS", "max": 3})
    body = problem_body(error, instance=None, request_id=None)
    assert body["limit"] == "SWITCHBOARD_MAX_TURNS" and body["max"] == 3 and body["status"] == 422


class _Turn(msgspec.Struct):
    text: str


class _Body(msgspec.Struct):
    turns: list[_Turn]


def test_missing_required_fields_are_named() -> None:
    for raw, field in ((b"{}", "turns"), (b'{"turns": [{}]}', "turns[0].text")):
        try:
            msgspec.json.decode(raw, type=_Body)
        except msgspec.ValidationError as exc:
            error = to_service_error(exc)
        assert error.status == 422 and [x["field"] for x in error.errors] == [field]
    litestar = ValidationException(
        extra=[{"message": "Object missing required field `turns`", "key": "data", "source": "body"}]
    )
    assert [x["field"] for x in to_service_error(litestar).errors] == ["turns"]


@pytest.mark.parametrize(
    ("message", "field", "reason"),
    [
        ("SWITCHBOARD_POLICY: cannot read /p.toml (FileNotFoundError)", "policy", "cannot read /p.toml"),
        ("SWITCHBOARD_REASONS: cannot read /r.toml (UnicodeDecodeError)", "reasons", "UnicodeDecodeError"),
        ("something else went wrong: here", "settings", "something else went wrong: here"),
    ],
)
def test_unreadable_config_files_are_422_naming_the_file(message: str, field: str, reason: str) -> None:
    error = to_service_error(e.SettingsError(message))
    assert type(error) is e.ValidationFailed and error.status == 422
    assert error.errors[0]["field"] == field and reason in error.errors[0]["message"]
