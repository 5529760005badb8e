"""Decision callbacks: a durable outbox that POSTs routing-decision changes to each source's URL.

Flow: ``ConversationService`` calls ``Outbox.on_decision`` after an append that changed the
route, queue or priority. The callback body is built once, stored with a fresh idempotency
key, and a worker delivers it:

* signed per ``callback_signature_scheme``: ``standard-webhooks`` (default) sends
  ``webhook-id`` / ``webhook-timestamp`` / ``webhook-signature`` (https://www.standardwebhooks.com/,
  so off-the-shelf verifiers accept it) *and* the original scheme's headers, so receivers
  written for the latter keep working; ``switchboard`` sends only the original scheme,
  ``X-Switchboard-Timestamp`` + ``X-Switchboard-Signature: sha256=<hex HMAC-SHA256 over
  "{timestamp}.{body}">`` (as the generic webhook). Re-signed on every attempt so a
  receiver's freshness window holds for late retries; the body bytes never change;
* ``Idempotency-Key`` (also ``webhook-id`` and ``X-Switchboard-Delivery``) is the same on every
  attempt, so the receiver can drop duplicates: delivery is at-least-once;
* any non-2xx answer or transport error is retried with exponential backoff and jitter
  (honouring ``Retry-After``) until ``callback_max_attempts``; then the message is
  dead-lettered (kept, counted, re-sendable with ``redrive``);
* FIFO per conversation and URL (see ``outbox_store``), leases so several workers share one
  backend, and everything pending survives a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import httpx
import msgspec
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from service.adapters.backend import Backend, BackendError, open_backend, resolve_backend_url
from service.adapters.config import AdapterConfig
from service.adapters.outbox_store import MessageRecord, MessageStatus, NewMessage, OutboxMessage, State
from service.adapters.signatures import (
    WEBHOOK_ID_HEADER,
    WEBHOOK_SIGNATURE_HEADER,
    WEBHOOK_TIMESTAMP_HEADER,
    sign_standard_webhooks,
    sign_timestamped,
    standard_webhooks_key,
)
from service.errors import SettingsError
from service.logs import exception_location

if TYPE_CHECKING:
    from service.adapters.replay_guard import NonceStore
    from service.conversations import ConversationService
    from service.settings import Settings

log = logging.getLogger("switchboard.adapters.outbox")

EVENT_DECISION_CHANGED = "decision.changed"
USER_AGENT = "switchboard-callbacks/1"
# Fields of the analysis a routing receiver needs; per-turn detail and timings stay out.
PAYLOAD_FIELDS = ("decision", "contact_reason", "sentiment", "emotions", "context")
_ABSENT = object()

_POLL_S = 1.0  # picks up work enqueued by other processes sharing the backend
_MIN_SLEEP_S = 0.005  # never spin, even if the clock and the store disagree slightly
_PURGE_EVERY_S = 600.0
_GAUGE_EVERY_S = 10.0
_DELIVERY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_LAG_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 21600.0, 86400.0)


class OutboxMetrics:
    """Delivery metrics on the app's registry (a private one if none is given)."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        r = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.registry = r
        self.enqueued = Counter(
            "switchboard_callbacks_enqueued_total",
            "Decision callbacks stored for delivery.",
            ("source",),
            registry=r,
        )
        self.enqueue_failures = Counter(
            "switchboard_callbacks_enqueue_failures_total",
            "Decision callbacks that could not be stored (backend down): lost.",
            ("source",),
            registry=r,
        )
        self.attempts = Counter(
            "switchboard_callback_attempts_total",
            "Delivery attempts by outcome (2xx, 4xx, 5xx, timeout, error).",
            ("source", "outcome"),
            registry=r,
        )
        self.finished = Counter(
            "switchboard_callbacks_finished_total",
            "Callbacks that left the outbox, by result (delivered, dead).",
            ("source", "result"),
            registry=r,
        )
        self.attempt_seconds = Histogram(
            "switchboard_callback_attempt_duration_seconds",
            "Duration of one delivery attempt (HTTP POST).",
            ("source",),
            buckets=_DELIVERY_BUCKETS,
            registry=r,
        )
        self.lag_seconds = Histogram(
            "switchboard_callback_delivery_lag_seconds",
            "From enqueue to successful delivery (includes retries and restarts).",
            ("source",),
            buckets=_LAG_BUCKETS,
            registry=r,
        )
        self.outbox_messages = Gauge(
            "switchboard_callback_outbox_messages",
            "Messages in the outbox by state.",
            ("state",),
            registry=r,
            multiprocess_mode="livemostrecent",  # every worker counts the same shared outbox
        )


class AttemptResult(NamedTuple):
    """How one delivery attempt went: ``outcome`` is 2xx/4xx/5xx/timeout/error (a metric label)."""

    ok: bool
    outcome: str
    error: str | None
    retry_after: float | None


class ActionRunner(Protocol):
    """Performs the outbox messages that are platform API calls (``service.adapters.actions``).

    A message whose ``url`` the runner ``handles`` is passed to ``perform`` instead of being
    POSTed; retries, dead-lettering, FIFO, leases and erase are the outbox's, unchanged.
    """

    def handles(self, url: str) -> bool:
        """True for the messages this runner performs."""
        ...

    async def perform(self, message: OutboxMessage) -> AttemptResult:
        """One attempt; never raises for a failed API call (return ``ok=False``)."""
        ...

    async def aclose(self) -> None:
        """Release clients; called by ``Outbox.stop``."""
        ...


def _failure(exc: BaseException) -> dict[str, Any]:
    return {"exc_type": type(exc).__name__, "where": exception_location(exc.__traceback__)}


def backoff_delay(
    attempt: int, base_s: float, max_s: float, rng: Callable[[], float] = random.random
) -> float:
    """Delay before retry number ``attempt`` (1-based): exponential, capped, with "equal jitter".

    Half the exponential delay is kept and half is random, so retries spread out (no
    thundering herd when a receiver comes back) yet never come sooner than half the schedule.
    """
    ceiling = min(max_s, base_s * (2.0 ** (attempt - 1)))
    return ceiling / 2.0 + rng() * ceiling / 2.0


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds from a ``Retry-After`` header (delta seconds or HTTP date); None if absent or bad."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


class _Typed(msgspec.Struct):
    type: str = EVENT_DECISION_CHANGED


_typed = msgspec.json.Decoder(_Typed)


def _event_type(body: bytes) -> str:
    """The ``type`` of a stored body (decision changes and other events share the outbox)."""
    try:
        return _typed.decode(body).type
    except msgspec.DecodeError:
        return EVENT_DECISION_CHANGED  # platform-action bodies need not be JSON events


def build_callback_body(
    key: str, conversation_id: str, source: str | None, analysis: Any, created_at: float
) -> bytes:
    """The JSON a callback receiver gets: the decision, contact reason, sentiment and handoff context.

    ``analysis`` is the service's ``AnalysisResponse`` (any msgspec-encodable object); the
    fields in ``PAYLOAD_FIELDS`` are copied when present, so the callback mirrors what the
    API returns (already redacted by the service).
    """
    payload: dict[str, Any] = {
        "type": EVENT_DECISION_CHANGED,
        "id": key,
        "created_at": datetime.fromtimestamp(created_at, UTC).isoformat().replace("+00:00", "Z"),
        "conversation_id": conversation_id,
        "source": source,
    }
    # Only the named fields are encoded: the analysis may carry many turns the receiver does not get.
    for name in PAYLOAD_FIELDS:
        value = (
            analysis.get(name, _ABSENT) if isinstance(analysis, dict) else getattr(analysis, name, _ABSENT)
        )
        if value is not _ABSENT:
            payload[name] = value
    return msgspec.json.encode(payload)


class Outbox:
    """Durable, retried, signed delivery of decision changes. Start it with the app, stop it with the app.

    ``on_decision`` is the listener registered with ``ConversationService``; ``nonces`` is the
    replay guard store the webhook routes share (same backend).
    """

    def __init__(
        self,
        config: AdapterConfig,
        backend: Backend,
        *,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if config.callback_urls and not config.signing_secret:
            raise SettingsError(
                "callback URLs are configured but no SWITCHBOARD_CALLBACK_SECRET to sign with"
            )
        self._webhooks_key: bytes | None = None
        if config.signing_secret and config.callback_signature_scheme == "standard-webhooks":
            try:
                self._webhooks_key = standard_webhooks_key(config.signing_secret)
            except ValueError as exc:
                raise SettingsError(f"SWITCHBOARD_CALLBACK_SECRET: {exc}") from exc
        self.config = config
        self.backend = backend
        self.metrics = OutboxMetrics(registry)
        self._clock = clock
        self._store = backend.outbox
        # A lease outlives one attempt (timeout) with margin; after it, another worker may retry.
        self._lease_s = config.callback_timeout_s * 2 + 5.0
        self._wake = asyncio.Event()
        self._stopping = False
        self._worker: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None
        self._last_purge = 0.0
        self._last_gauge = 0.0
        self._actions: ActionRunner | None = None

    @classmethod
    def from_settings(cls, settings: Settings, *, registry: CollectorRegistry | None = None) -> Outbox:
        """Open the backend named by the settings (``SWITCHBOARD_OUTBOX`` or the store URL)."""
        return cls(settings.adapters, open_backend(resolve_backend_url(settings)), registry=registry)

    @property
    def nonces(self) -> NonceStore:
        """The replay-guard store on the same backend."""
        return self.backend.nonces

    def use_actions(self, runner: ActionRunner) -> None:
        """Perform the messages ``runner`` handles through it (platform actions) instead of POSTing them."""
        self._actions = runner

    async def add(self, messages: list[NewMessage]) -> int:
        """Store messages made elsewhere (platform actions) and wake the worker; return how many were new.

        A message whose key is already known (pending, delivered or dead) is skipped, so a
        producer with deterministic keys enqueues each step once.
        """
        added = 0
        for message in messages:
            if await self._store.status(message.key) is None:
                await self._store.add(message)
                added += 1
        if added:
            self._wake.set()
        return added

    def attach(self, conversations: ConversationService) -> None:
        """Register ``on_decision`` as a decision listener of the conversation service."""
        conversations.add_decision_listener(self.on_decision)

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the delivery worker (idempotent). Pending messages from before a restart go out first."""
        if self._worker is not None:
            return
        self._stopping = False
        self._client = httpx.AsyncClient(
            timeout=self.config.callback_timeout_s,
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT},
        )
        self._worker = asyncio.create_task(self._run(), name="switchboard-outbox")

    async def stop(self) -> None:
        """Stop claiming, let in-flight attempts finish (bounded), then close the backend.

        An attempt cut off here keeps its lease and is retried after a restart: at-least-once.
        """
        self._stopping = True
        self._wake.set()
        if self._worker is not None:
            await self._worker
            self._worker = None
        if self._inflight:
            _, still = await asyncio.wait(self._inflight, timeout=self.config.callback_timeout_s + 1.0)
            for task in still:
                task.cancel()
            if still:
                await asyncio.gather(*still, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        if self._actions is not None:
            await self._actions.aclose()
        await self.backend.close()

    # -- producer side -------------------------------------------------------------------------

    async def on_decision(self, conversation_id: str, analysis: Any, source: str | None) -> bool:
        """Decision listener: store a callback for ``source``'s URL, if one is configured.

        Returns False when no URL is configured for ``source`` (nothing stored), else True.
        Never raises into the append that triggered it: the turns are already stored and
        failing the request would not bring the callback back. A backend failure is logged
        and counted (``switchboard_callbacks_enqueue_failures_total``).
        """
        try:
            return await self.enqueue(conversation_id, analysis, source) is not None
        except BackendError:
            self.metrics.enqueue_failures.labels(source or "").inc()
            log.error(
                "callback could not be stored; it is lost",
                extra={"conversation_id": conversation_id, "source": source},
            )
        return True

    async def enqueue(self, conversation_id: str, analysis: Any, source: str | None) -> str | None:
        """Store the callback and wake the worker; return its idempotency key (None: no URL configured)."""
        url = self.config.callback_url_for(source)
        if url is None:
            return None
        key = uuid.uuid4().hex
        now = self._clock()
        body = build_callback_body(key, conversation_id, source, analysis, now)
        await self._store.add(NewMessage(key, conversation_id, source, url, body, now))
        self.metrics.enqueued.labels(source or "").inc()
        self._wake.set()
        return key

    async def enqueue_event(
        self, event_type: str, key: str, payload: dict[str, Any], source: str | None, *, stream: str
    ) -> bool | None:
        """Store an event other than a decision change (``slo.breached``…) for ``source``'s URL.

        The body is ``{"type", "id": key, "created_at", **payload}``, signed and retried like a
        decision callback; ``stream`` takes the place of the conversation id (FIFO per stream and
        URL). ``key`` is the idempotency key: an event whose key is already known is not stored
        again, so a producer with deterministic keys announces each event once. Returns True when
        stored, False when the key was known, None when no URL is configured. Raises
        ``BackendError``."""
        url = self.config.callback_url_for(source)
        if url is None:
            return None
        now = self._clock()
        created = datetime.fromtimestamp(now, UTC).isoformat().replace("+00:00", "Z")
        body = msgspec.json.encode({"type": event_type, "id": key, "created_at": created, **payload})
        added = await self.add([NewMessage(key, stream, source, url, body, now)])
        if added:
            self.metrics.enqueued.labels(source or "").inc()
        return bool(added)

    # -- admin -----------------------------------------------------------------------------------

    async def status(self, key: str) -> MessageStatus | None:
        """State of one callback by idempotency key."""
        return await self._store.status(key)

    async def counts(self) -> dict[str, int]:
        """Messages per state (pending, delivered, dead)."""
        return await self._store.counts()

    async def erase(self, conversation_id: str) -> int:
        """Delete every callback of a conversation (call from the erase endpoint)."""
        return await self._store.erase(conversation_id)

    async def redrive(self) -> int:
        """Send every dead-lettered callback again, with a fresh attempt budget."""
        count = await self._store.redrive(self._clock())
        self._wake.set()
        return count

    async def redrive_keys(self, keys: list[str]) -> list[str]:
        """Send the named dead-lettered callbacks again; return the keys redriven (not-dead ones are left).

        A worker of another process on the same backend picks them up within a second.
        """
        redriven = await self._store.redrive_keys(keys, self._clock())
        if redriven:
            self._wake.set()
        return redriven

    async def list_messages(self, state: State, limit: int) -> list[MessageRecord]:
        """Up to ``limit`` callbacks in ``state``: pending in enqueue order, finished newest first."""
        return await self._store.list_messages(state, limit)

    async def get(self, key: str) -> MessageRecord | None:
        """One callback with its body, or None."""
        return await self._store.get(key)

    # -- worker ------------------------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self._tick()
                delay = await self._sleep_time()
            except BackendError:
                log.warning("callback outbox backend unavailable; retrying")
                delay = _POLL_S
            except Exception as exc:
                # A bug must not stop deliveries for good; type and place only (no message text in logs).
                log.error("callback outbox worker failed", extra=_failure(exc))
                delay = _POLL_S
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay)
            self._wake.clear()

    async def _tick(self) -> None:
        free = self.config.callback_concurrency - len(self._inflight)
        if free > 0:
            now = self._clock()
            for message in await self._store.claim(now, now + self._lease_s, free):
                task = asyncio.create_task(self._deliver(message))
                self._inflight.add(task)
                task.add_done_callback(self._inflight.discard)
        now = self._clock()
        if now - self._last_purge >= _PURGE_EVERY_S:
            self._last_purge = now
            purged = await self._store.purge(now - self.config.callback_retention_s)
            if purged:
                log.info("purged finished callbacks", extra={"count": purged})
        if now - self._last_gauge >= _GAUGE_EVERY_S:
            # Counting scans the table: do it every few seconds, not on every wake-up.
            self._last_gauge = now
            for state, count in (await self._store.counts()).items():
                self.metrics.outbox_messages.labels(state).set(count)

    async def _sleep_time(self) -> float:
        if len(self._inflight) >= self.config.callback_concurrency:
            return _POLL_S  # a finishing delivery sets _wake
        due = await self._store.next_due()
        if due is None:
            return _POLL_S
        return min(_POLL_S, max(_MIN_SLEEP_S, due - self._clock()))

    async def _deliver(self, message: OutboxMessage) -> None:
        try:
            await self._attempt(message)
        except BackendError:
            # The lease expires and the message is claimed again: nothing is lost.
            log.warning("could not record a callback attempt", extra={"key": message.key})
        except Exception as exc:
            log.error("callback attempt failed unexpectedly", extra={"key": message.key, **_failure(exc)})
        finally:
            self._wake.set()

    async def _attempt(self, message: OutboxMessage) -> None:
        if self._actions is not None and self._actions.handles(message.url):
            started = time.perf_counter()
            result = await self._actions.perform(message)
            await self._settle(message, started, *result)
            return
        assert self._client is not None
        secret = self.config.signing_secret
        assert secret is not None  # enforced in __init__ whenever a URL exists
        timestamp = int(self._clock())
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": message.key,
            "X-Switchboard-Delivery": message.key,
            "X-Switchboard-Event": _event_type(message.body),
            "X-Switchboard-Attempt": str(message.attempts),
            "X-Switchboard-Timestamp": str(timestamp),
            "X-Switchboard-Signature": sign_timestamped(secret, timestamp, message.body),
        }
        if self._webhooks_key is not None:
            # Both signatures may share a key; their signed strings differ in shape (the id comes
            # first here, and the old scheme's timestamp must be digits), so neither forges the other.
            headers[WEBHOOK_ID_HEADER] = message.key
            headers[WEBHOOK_TIMESTAMP_HEADER] = str(timestamp)
            headers[WEBHOOK_SIGNATURE_HEADER] = sign_standard_webhooks(
                self._webhooks_key, message.key, timestamp, message.body
            )
        started = time.perf_counter()
        retry_after: float | None = None
        try:
            response = await self._client.post(message.url, content=message.body, headers=headers)
            ok = 200 <= response.status_code < 300
            outcome = f"{response.status_code // 100}xx"
            error = None if ok else f"HTTP {response.status_code}"
            retry_after = parse_retry_after(response.headers.get("retry-after"), self._clock())
        except httpx.TimeoutException:
            ok, outcome, error = False, "timeout", "timeout"
        except httpx.HTTPError as exc:
            ok, outcome, error = False, "error", type(exc).__name__
        await self._settle(message, started, ok, outcome, error, retry_after)

    async def _settle(
        self,
        message: OutboxMessage,
        started: float,
        ok: bool,
        outcome: str,
        error: str | None,
        retry_after: float | None,
    ) -> None:
        """Count the attempt, then mark the message delivered, dead, or due again after a backoff."""
        source = message.source or ""
        self.metrics.attempt_seconds.labels(source).observe(time.perf_counter() - started)
        self.metrics.attempts.labels(source, outcome).inc()
        now = self._clock()
        if ok:
            await self._store.finish(message.key, "delivered", now, None)
            self.metrics.finished.labels(source, "delivered").inc()
            self.metrics.lag_seconds.labels(source).observe(max(0.0, now - message.created_at))
            return
        assert error is not None
        if message.attempts >= self.config.callback_max_attempts:
            await self._store.finish(message.key, "dead", now, error)
            self.metrics.finished.labels(source, "dead").inc()
            log.warning(
                "callback dead-lettered after %d attempts (%s)",
                message.attempts,
                error,
                extra={"key": message.key, "conversation_id": message.conversation_id},
            )
            return
        delay = backoff_delay(
            message.attempts, self.config.callback_backoff_base_s, self.config.callback_backoff_max_s
        )
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.config.callback_backoff_max_s))
        await self._store.retry(message.key, now + delay, error)
