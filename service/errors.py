"""The service layer's one error hierarchy.

Every failure the HTTP layer reports is a :class:`ServiceError` (or is turned
into one by ``service/problems.py``, the single place that maps exceptions to
RFC 9457 ``application/problem+json``). Each class fixes its HTTP status and a
short stable title; ``detail`` is the human-readable explanation and must never
contain transcript text. Adapter code raises these too (``Unauthorized``,
``Forbidden``, ``ValidationFailed`` ...).
"""

from __future__ import annotations

from typing import Any, ClassVar


class ServiceError(Exception):
    """Base of every error the service reports to a client.

    ``errors`` lists field-level problems (``{"field": ..., "message": ...}``);
    ``headers`` are extra response headers (``Retry-After``, ``WWW-Authenticate``);
    ``extra`` are further RFC 9457 extension members.
    """

    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal error"
    slug: ClassVar[str] = "internal"

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.detail = detail or self.title
        self.errors = errors or []
        self.headers = headers or {}
        self.extra = extra or {}
        super().__init__(self.detail)


class BadRequest(ServiceError):
    """The request could not be parsed at all (malformed JSON, missing body)."""

    status = 400
    title = "Bad request"
    slug = "bad-request"


class Unauthorized(ServiceError):
    """No credentials, or credentials that do not verify."""

    status = 401
    title = "Unauthorized"
    slug = "unauthorized"

    def __init__(self, detail: str | None = None, **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)
        self.headers.setdefault("WWW-Authenticate", 'Bearer realm="switchboard"')


class Forbidden(ServiceError):
    """Credentials verified but do not allow this (e.g. a replayed webhook)."""

    status = 403
    title = "Forbidden"
    slug = "forbidden"


class NotFound(ServiceError):
    """The addressed resource does not exist (or has expired)."""

    status = 404
    title = "Not found"
    slug = "not-found"


class MethodNotAllowed(ServiceError):
    """The path exists but not with this method."""

    status = 405
    title = "Method not allowed"
    slug = "method-not-allowed"


class Conflict(ServiceError):
    """The request conflicts with the resource's state (e.g. appending to a closed conversation)."""

    status = 409
    title = "Conflict"
    slug = "conflict"


class Gone(ServiceError):
    """The conversation was erased on request; events for its id are refused while its tombstone lives."""

    status = 410
    title = "Gone"
    slug = "gone"


class PayloadTooLarge(ServiceError):
    """The request body exceeds ``SWITCHBOARD_MAX_BODY_BYTES``."""

    status = 413
    title = "Payload too large"
    slug = "payload-too-large"


class UnsupportedMediaType(ServiceError):
    """The body is not in a media type this endpoint reads."""

    status = 415
    title = "Unsupported media type"
    slug = "unsupported-media-type"


class ValidationFailed(ServiceError):
    """The body parsed but a field is invalid; ``errors`` names each field."""

    status = 422
    title = "Validation failed"
    slug = "validation-failed"


class LimitExceeded(ValidationFailed):
    """A configured size limit (turns per request, text length ...) was exceeded.

    ``extra`` carries ``limit`` (the setting's name) and ``max`` (its value).
    """

    title = "Limit exceeded"
    slug = "limit-exceeded"


class RateLimited(ServiceError):
    """This API key exceeded its request rate; retry after ``retry_after`` seconds."""

    status = 429
    title = "Too many requests"
    slug = "rate-limited"

    def __init__(self, retry_after: float, detail: str | None = None, **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)
        self.retry_after = retry_after
        self.headers.setdefault("Retry-After", _retry_after_header(retry_after))


class Overloaded(ServiceError):
    """The inference queue is full: fail fast instead of queueing without bound."""

    status = 429
    title = "Overloaded"
    slug = "overloaded"

    def __init__(self, retry_after: float, detail: str | None = None, **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)
        self.retry_after = retry_after
        self.headers.setdefault("Retry-After", _retry_after_header(retry_after))


class InternalError(ServiceError):
    """A bug or an unexpected failure; the body never says more than this."""


class Unavailable(ServiceError):
    """A dependency (store, inference) failed or timed out; safe to retry."""

    status = 503
    title = "Service unavailable"
    slug = "unavailable"

    def __init__(self, detail: str | None = None, **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)
        self.headers.setdefault("Retry-After", "1")


class NotReady(Unavailable):
    """The model pack is not loaded and warm yet (or is draining)."""

    title = "Not ready"
    slug = "not-ready"


class SettingsError(ValueError):
    """Invalid configuration; raised at startup, never mapped to HTTP."""


def _retry_after_header(seconds: float) -> str:
    """RFC 9110 Retry-After is whole seconds; round up so clients never retry early."""
    whole = int(seconds) if float(seconds).is_integer() else int(seconds) + 1
    return str(max(1, whole))
