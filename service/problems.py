"""The ONE place where exceptions become HTTP responses: RFC 9457 problem+json.

Everything that can go wrong while serving a request ends here: our own
``ServiceError`` hierarchy, the models layer's errors, routing's ``PolicyError``,
msgspec decode/validation errors and Litestar's own HTTP exceptions (routing,
body size, request validation). ``to_service_error`` translates any of them to
a ``ServiceError``; ``problem_response`` renders it.

Rules enforced here: bad input is always 4xx naming the field; a 5xx body never
contains exception text (only the generic title and the request id), and the
log line for a 5xx carries the exception type and location, not its message.
"""

from __future__ import annotations

import logging
import math
import re
import uuid
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import (
    HTTPException,
    MethodNotAllowedException,
    NotAuthorizedException,
    NotFoundException,
    PermissionDeniedException,
    TooManyRequestsException,
    ValidationException,
)
from litestar.exceptions.http_exceptions import RequestEntityTooLarge

from models.errors import DeadlineExceededError, ModelError, NotReadyError, OverloadedError
from routing.errors import PolicyError, ReasonsError, RoutingError
from service import errors as e
from service.logs import REQUEST_ID
from service.store.base import StoreError

PROBLEM_JSON = "application/problem+json"
TYPE_PREFIX = "urn:switchboard:problem:"
# msgspec names the offending member inside its message for these two problems.
_UNKNOWN_FIELD = re.compile(r"(?:unknown|missing required) field `([^`]*)`")
_log = logging.getLogger("switchboard.errors")

_LITESTAR_STATUS: dict[int, type[e.ServiceError]] = {
    400: e.BadRequest,
    401: e.Unauthorized,
    403: e.Forbidden,
    404: e.NotFound,
    405: e.MethodNotAllowed,
    409: e.Conflict,
    413: e.PayloadTooLarge,
    415: e.UnsupportedMediaType,
    422: e.ValidationFailed,
    503: e.Unavailable,
}


def to_service_error(exc: Exception) -> e.ServiceError:
    """Translate any exception raised while serving into the service hierarchy."""
    if isinstance(exc, e.ServiceError):
        return exc
    if isinstance(exc, ModelError):
        return _from_model_error(exc)
    if isinstance(exc, StoreError):
        # The message names the backend and the exception type, never conversation content.
        unavailable = e.Unavailable(str(exc) or "the conversation store failed; retry")
        if exc.retry_after_s > 0:
            unavailable.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after_s)))
        return unavailable
    if isinstance(exc, PolicyError):
        return e.ValidationFailed(
            "the policy is invalid", errors=[{"field": "policy", "message": m} for m in _policy_messages(exc)]
        )
    if isinstance(exc, ReasonsError):
        return e.ValidationFailed(
            "the reasons file is invalid",
            errors=[{"field": "reasons", "message": m} for m in _policy_messages(exc)],
        )
    if isinstance(exc, e.SettingsError):
        # Raised while serving only by a reload whose file cannot be read (missing, not UTF-8):
        # the old configuration stays, and the caller gets the reason like any invalid file.
        return e.ValidationFailed(
            "the configuration file cannot be used", errors=[_settings_field_error(str(exc))]
        )
    if isinstance(exc, RoutingError):
        # Any other routing error means we built its input wrongly: a bug, not bad input.
        return e.InternalError()
    if isinstance(exc, msgspec.ValidationError):
        return e.ValidationFailed(errors=[_msgspec_field_error(str(exc))])
    if isinstance(exc, msgspec.DecodeError):
        return e.BadRequest("malformed JSON")
    if isinstance(exc, ValidationException):
        return _from_litestar_validation(exc)
    if isinstance(exc, HTTPException):
        return _from_litestar_http(exc)
    return e.InternalError()


def _from_model_error(exc: ModelError) -> e.ServiceError:
    if isinstance(exc, OverloadedError):
        return e.Overloaded(
            retry_after=exc.retry_after, detail="the inference queue is full; retry after the indicated delay"
        )
    if isinstance(exc, NotReadyError):
        return e.NotReady("the model pack is not loaded and warm yet")
    if isinstance(exc, DeadlineExceededError):
        return e.Unavailable("inference did not finish within the deadline; retry")
    return e.InternalError()


def _policy_messages(exc: PolicyError | ReasonsError) -> list[str]:
    messages = [str(m) for m in getattr(exc, "errors", [])]
    return messages or [str(exc)]


def _settings_field_error(message: str) -> dict[str, str]:
    """``"SWITCHBOARD_POLICY: cannot read ..."`` -> field ``policy`` (as an invalid policy names it)."""
    setting, sep, rest = message.partition(": ")
    if sep and setting.startswith("SWITCHBOARD_") and setting.isupper():
        return {"field": setting.removeprefix("SWITCHBOARD_").lower(), "message": rest}
    return {"field": "settings", "message": message}


def _msgspec_field_error(message: str) -> dict[str, str]:
    """Split msgspec's ``"<problem> - at `$.a.b[0]`"`` into a field path and the problem."""
    problem, _, where = message.partition(" - at `")
    field = where.rstrip("`").removeprefix("$").removeprefix(".")
    field = field.removeprefix("data.").removeprefix("data")
    named = _UNKNOWN_FIELD.search(problem)
    if named:
        field = f"{field}.{named.group(1)}" if field else named.group(1)
    return {"field": field or "body", "message": problem}


def _from_litestar_validation(exc: ValidationException) -> e.ServiceError:
    """Litestar's request validation: body problems are 422, path/query/header problems 400."""
    items: list[dict[str, Any]] = exc.extra if isinstance(exc.extra, list) else []
    body_errors: list[dict[str, str]] = []
    other_errors: list[dict[str, str]] = []
    for item in items:
        key = str(item.get("key", "") or "")
        message = str(item.get("message", "invalid value"))
        if item.get("source") == "body" or key == "data":
            if key == "data" and message == "'data'":
                return e.BadRequest(
                    "a JSON request body is required", errors=[{"field": "body", "message": "missing"}]
                )
            unknown = _UNKNOWN_FIELD.search(message)
            if unknown:
                key = f"{key}.{unknown.group(1)}" if key and key != "data" else unknown.group(1)
            body_errors.append({"field": "body" if key in ("", "data") else key, "message": message})
        else:
            other_errors.append({"field": key or "request", "message": message})
    if other_errors:
        return e.BadRequest("invalid request parameters", errors=other_errors + body_errors)
    if body_errors:
        return e.ValidationFailed(errors=body_errors)
    return e.BadRequest(str(exc.detail))


def _from_litestar_http(exc: HTTPException) -> e.ServiceError:
    if isinstance(exc, RequestEntityTooLarge):
        return e.PayloadTooLarge("the request body exceeds SWITCHBOARD_MAX_BODY_BYTES")
    if isinstance(exc, NotFoundException):
        return e.NotFound("no such resource")
    if isinstance(exc, MethodNotAllowedException):
        return e.MethodNotAllowed(headers=dict(exc.headers or {}))
    if isinstance(exc, NotAuthorizedException):
        return e.Unauthorized(str(exc.detail))
    if isinstance(exc, PermissionDeniedException):
        return e.Forbidden(str(exc.detail))
    if isinstance(exc, TooManyRequestsException):
        return e.RateLimited(retry_after=1.0)
    status = exc.status_code
    if 400 <= status < 500:
        cls = _LITESTAR_STATUS.get(status, e.BadRequest)
        # Litestar's client-error details describe the request's shape (e.g. "JSON is malformed:
        # ... (byte 12)"), never echo body content.
        return cls(str(exc.detail))
    return e.InternalError()


def problem_body(error: e.ServiceError, *, instance: str | None, request_id: str | None) -> dict[str, Any]:
    """The RFC 9457 members plus our extensions (``errors``, ``request_id``, ...)."""
    body: dict[str, Any] = {
        "type": TYPE_PREFIX + error.slug,
        "title": error.title,
        "status": error.status,
        # An internal error says nothing but its title; other 5xx carry our own fixed messages only.
        "detail": error.title if isinstance(error, e.InternalError) else error.detail,
    }
    if instance:
        body["instance"] = instance
    if request_id:
        body["request_id"] = request_id
    if error.errors:
        body["errors"] = error.errors
    for key, value in error.extra.items():
        body.setdefault(key, value)
    return body


def problem_message(error: e.ServiceError, instance: str, request_id: str) -> list[dict[str, Any]]:
    """The same problem as raw ASGI messages, for middleware that answers before routing."""
    body = msgspec.json.encode(problem_body(error, instance=instance, request_id=request_id))
    headers = [(b"content-type", PROBLEM_JSON.encode()), (b"content-length", str(len(body)).encode())]
    headers += [
        (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in error.headers.items()
    ]
    return [
        {"type": "http.response.start", "status": error.status, "headers": headers},
        {"type": "http.response.body", "body": body, "more_body": False},
    ]


def problem_response(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Litestar exception handler for ``Exception``: log, count, render problem+json."""
    error = to_service_error(exc)
    state = request.scope.setdefault("state", {})
    request_id = state.get("request_id") or REQUEST_ID.get() or uuid.uuid4().hex
    state["error_type"] = error.slug
    if error.status >= 500:
        # exc_info gives the formatter the type and raising frame; it never prints the message.
        _log.error(
            "request failed",
            exc_info=(type(exc), exc, exc.__traceback__),
            extra={"error": error.slug, "status": error.status, "request_id": request_id},
        )
    metrics = getattr(request.app.state, "metrics", None)
    if metrics is not None:
        metrics.errors.labels(type=error.slug, status=str(error.status)).inc()
    headers = {**error.headers, "X-Request-ID": request_id}
    return Response(
        content=problem_body(error, instance=request.url.path, request_id=request_id),
        status_code=error.status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )
