"""The one error hierarchy of the models layer.

The service maps these to HTTP statuses in one place; nothing here knows about
HTTP. Every message names the problem (file, graph, head, tensor) so that an
operator can fix a pack without reading code.
"""

from __future__ import annotations


class ModelError(Exception):
    """Base of every error raised by ``models``."""


class PackError(ModelError):
    """The pack on disk is unusable: missing/corrupt file, bad manifest, or a
    manifest that does not match its graphs. Raised at load time, never later."""


class OverloadedError(ModelError):
    """The request queue is full; the caller should retry after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class DeadlineExceededError(ModelError):
    """The request's deadline passed before its result was ready."""


class InferenceError(ModelError):
    """Running the model failed; every request of the failed batch gets this error."""


class NotReadyError(ModelError):
    """The runtime is not started (or already closed) and cannot take async requests."""
