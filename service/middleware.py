"""Request-scoped plumbing: request id, admission control, access log and latency metrics.

A plain ASGI middleware (cheaper than a Litestar ``AbstractMiddleware`` with
its request object): it reads or makes the ``X-Request-ID``, puts it in a
context variable for every log line of the request, echoes it in the response,
and after the response records the latency per route template and one access
log line. It never reads the body, so transcript text cannot reach the log.

Admission control, before the body is even read (so refusing costs almost nothing):

* at most ``max_inflight`` ``/v1`` requests are processed at once per worker; the
  next one gets 429 + Retry-After. Why: when the event loop itself (HTTP parsing,
  JSON, routing) is the bottleneck, the inference queue never fills, and excess
  load would otherwise wait in socket buffers with unbounded latency;
* while the inference queue is predicted to take longer than the deadline allows
  (``pressure()`` returns a Retry-After), new scoring requests (``POST /v1/...``
  except the policy endpoints) get 429 at once instead of being parsed, loaded
  and queued only to be refused or to time out later.

Body checks: ``receive`` is wrapped by ``service.body_guard.BodyGuard``, so a body that is not
JSON where JSON is read (415), or that nests deeper than the decoders can take (400), is refused
as the handler reads it, before anything decodes it.
"""

from __future__ import annotations

import logging
import random
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from service.body_guard import BodyGuard
from service.errors import Overloaded
from service.logs import REQUEST_ID
from service.metrics import Metrics
from service.problems import problem_message

_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_access_log = logging.getLogger("switchboard.access")


def request_id_from(scope: Scope) -> str:
    """The caller's X-Request-ID if it is a sane token, else a fresh one."""
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            if _VALID_REQUEST_ID.fullmatch(candidate):
                return candidate
            break
    # random, not uuid4: os.urandom releases the GIL, and with the model in this process the
    # event loop then waits for a batch worker's Python to hand it back.
    return uuid.UUID(int=random.getrandbits(128), version=4).hex


class RequestContextMiddleware:
    """ASGI middleware factory bound to one app's metrics and in-flight limit (see ``create_app``)."""

    def __init__(
        self,
        metrics: Metrics,
        max_inflight: int = 0,
        pressure: Callable[[], float | None] | None = None,
        body_guard: BodyGuard | None = None,
    ) -> None:
        self.metrics = metrics
        self.max_inflight = max_inflight  # 0 = no limit
        self.pressure = pressure
        self.body_guard = body_guard or BodyGuard()
        self.inflight = 0

    def _refusal(self, scope: Scope) -> Overloaded | None:
        """Why this request is refused (None: admitted, with an in-flight slot if /v1)."""
        path = scope["path"]
        if not path.startswith("/v1/"):
            return None
        needs_model = scope.get("method") == "POST" and not path.startswith(("/v1/policy", "/v1/admin"))
        if self.pressure is not None and needs_model:
            retry_after = self.pressure()
            if retry_after is not None:
                return Overloaded(
                    retry_after=retry_after, detail="the inference queue is too long; retry later"
                )
        if self.max_inflight > 0:
            if self.inflight >= self.max_inflight:
                return Overloaded(retry_after=1.0, detail="too many requests in flight; retry shortly")
            self.inflight += 1
            scope["state"]["inflight_slot"] = True
        return None

    def __call__(self, app: ASGIApp) -> ASGIApp:
        metrics = self.metrics

        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            state: dict[str, Any] = scope.setdefault("state", {})
            request_id = state.get("request_id") or request_id_from(scope)
            state["request_id"] = request_id
            token = REQUEST_ID.set(request_id)
            started = time.perf_counter()
            status = 500
            header = (b"x-request-id", request_id.encode("latin-1"))

            async def send_with_id(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                    headers = [h for h in message.get("headers", []) if h[0].lower() != b"x-request-id"]
                    message["headers"] = [*headers, header]
                await send(message)

            try:
                error = self._refusal(scope)
                if error is None:
                    await app(scope, self.body_guard.wrap(scope, receive), send_with_id)
                else:
                    state["error_type"] = error.slug
                    metrics.errors.labels(type=error.slug, status=str(error.status)).inc()
                    for message in problem_message(error, scope["path"], request_id):
                        await send_with_id(message)  # type: ignore[arg-type]
            finally:
                if state.pop("inflight_slot", False):
                    self.inflight -= 1
                elapsed = time.perf_counter() - started
                route = scope.get("path_template") or "unmatched"
                method = scope.get("method", "")
                metrics.request_seconds.labels(route=route, method=method, status=str(status)).observe(
                    elapsed
                )
                _access_log.info(
                    "request",
                    extra={
                        "method": method,
                        "route": route,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 3),
                        "api_key": state.get("api_key"),
                        "error": state.get("error_type"),
                    },
                )
                REQUEST_ID.reset(token)

        return middleware
