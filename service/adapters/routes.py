"""HTTP routes of the platform webhooks: verify → decode → ``ConversationService.append``.

Mounted at ``/v1/webhooks/…``. These routes are authenticated by each platform's
signature, NOT by the ``/v1`` bearer API key (Twilio and Chatwoot cannot send one): the
API-key guard sits only on the ``/v1`` API router, never on this one. Every check happens
before anything is stored; a request that fails one stores nothing.

=============================================  ======================================
``POST /v1/webhooks/twilio/voice``             real-time transcription events (204)
``POST /v1/webhooks/twilio/conversations``     Conversations ``onMessageAdded`` (204)
``POST /v1/webhooks/chatwoot``                 ``message_created`` (200 + ack)
``POST /v1/webhooks/generic``                  signed JSON turns (200 + analysis)
=============================================  ======================================
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Literal

import msgspec
from litestar import Request, Response, Router, post
from litestar.datastructures import State
from litestar.openapi.datastructures import ResponseSpec
from prometheus_client import CollectorRegistry, Counter

from routing.insights import Outcome as ConversationOutcome
from service.adapters.backend import BackendError
from service.adapters.chatwoot import decode_message_created
from service.adapters.generic import decode_generic
from service.adapters.inbound import Decoded, Ignored, Inbound, parse_form
from service.adapters.signatures import (
    TWILIO_SIGNATURE_HEADER,
    TWILIO_SIGNATURE_SETTINGS_HEADER,
    StaleTimestamp,
    tokens_match,
    twilio_replay_key,
    verify_timestamped,
    verify_twilio,
)
from service.adapters.twilio_conversations import decode_message_added
from service.adapters.twilio_voice import decode_voice_event
from service.errors import Forbidden, ServiceError, Unauthorized, UnsupportedMediaType, ValidationFailed
from service.schemas import AnalysisResponse, DecisionOut

if TYPE_CHECKING:
    from service.adapters.replay_guard import NonceStore
    from service.conversations import ConversationService
    from service.settings import Settings

log = logging.getLogger("switchboard.adapters.routes")

WEBHOOK_PREFIX = "/v1/webhooks"
# Stores an outcome the generic webhook carried (``Insights.record_outcome`` bound to the service).
RecordOutcome = Callable[[str, ConversationOutcome], Awaitable[Any]]
# How long a Twilio delivery being processed is held against copies of it: longer than any append.
TWILIO_CLAIM_S = 60.0
CHATWOOT_SIGNATURE = "X-Chatwoot-Signature"
CHATWOOT_TIMESTAMP = "X-Chatwoot-Timestamp"
SWITCHBOARD_SIGNATURE = "X-Switchboard-Signature"
SWITCHBOARD_TIMESTAMP = "X-Switchboard-Timestamp"
# Shared-token fallback for Chatwoot versions that cannot sign: ?token=… (Chatwoot's
# webhook settings take only a URL) or this header from a proxy in front.
TOKEN_QUERY = "token"
TOKEN_HEADER = "X-Switchboard-Token"

Platform = Literal["twilio_voice", "twilio_conversations", "chatwoot", "generic"]
Outcome = Literal["accepted", "ignored", "duplicate"]

# How long a processed Twilio event is remembered. Twilio signs no timestamp, so this, not
# a signature window, is what refuses a captured request; it must outlast Twilio's own
# retries of one event (seconds to minutes) with a wide margin.
DEFAULT_TWILIO_DEDUP_TTL_S = 24 * 3600.0
OUTCOME_HEADER = "X-Switchboard-Outcome"


class WebhookAck(msgspec.Struct):
    """Answer to a chat-platform webhook: what was done with the event."""

    status: Literal["accepted", "ignored"]
    conversation_id: str | None = None
    reason: str | None = None
    appended: int = 0
    duplicates: int = 0
    decision: DecisionOut | None = None


_REJECTIONS = {
    401: ResponseSpec(data_container=None, description="Signature, token or timestamp missing or invalid."),
    403: ResponseSpec(data_container=None, description="Replayed delivery, or another Twilio account."),
    422: ResponseSpec(data_container=None, description="Verified but malformed event (names the field)."),
}


class _WebhookMetrics:
    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.events = Counter(
            "switchboard_webhook_events_total",
            "Platform webhook events by outcome (accepted, ignored, duplicate, rejected, invalid, failed).",
            ("platform", "outcome"),
            registry=registry if registry is not None else CollectorRegistry(auto_describe=True),
        )


class WebhookHandlers:
    """The verification and decoding steps of every platform, sharing one conversation service."""

    def __init__(
        self,
        conversations: ConversationService,
        settings: Settings,
        nonces: NonceStore,
        *,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.time,
        twilio_dedup_ttl_s: float = DEFAULT_TWILIO_DEDUP_TTL_S,
        record_outcome: RecordOutcome | None = None,
    ) -> None:
        self.conversations = conversations
        self.record_outcome = record_outcome
        self.config = settings.adapters
        self.max_text_chars = settings.limits.max_text_chars
        self.nonces = nonces
        self.metrics = _WebhookMetrics(registry)
        self.clock = clock
        # A nonce must outlive every timestamp that could still pass the window (either side).
        self.nonce_ttl_s = 2 * self.config.signature_max_age_s + 60.0
        self.twilio_dedup_ttl_s = twilio_dedup_ttl_s

    # -- shared steps --------------------------------------------------------------------------

    async def count(self, platform: Platform, step: Callable[[], Awaitable[Response[Any]]]) -> Response[Any]:
        """Run a handler body, counting its outcome; errors propagate to service.problems."""
        try:
            response = await step()
        except ServiceError as exc:
            outcome = _outcome_of(exc.status)
            self.metrics.events.labels(platform, outcome).inc()
            if outcome == "rejected":
                # Details name the failed check (never the expected signature or any text): the
                # first thing an operator needs when a platform's webhooks start failing.
                log.info(
                    "webhook rejected",
                    extra={"platform": platform, "status": exc.status, "detail": exc.detail},
                )
            raise
        except Exception:
            self.metrics.events.labels(platform, "failed").inc()
            raise
        self.metrics.events.labels(platform, response.headers.get(OUTCOME_HEADER, "accepted")).inc()
        return response

    async def append(self, inbound: Inbound, *, all_turns: bool = False) -> AnalysisResponse:
        """The shared path: ``ConversationService.append`` with the adapter's source and channel.

        Platforms that ignore our answer get only the new turns back (``all_turns=False``):
        re-rendering a long call's every turn for each transcript segment would be wasted work.
        """
        result: AnalysisResponse = await self.conversations.append(
            inbound.conversation_id,
            inbound.turns,
            customer=inbound.customer,
            channel=inbound.channel,
            source=inbound.source,
            include_all_turns=all_turns,
        )
        return result

    async def claim_nonce(self, key: str, conversation_id: str | None) -> None:
        """Refuse a delivery already accepted inside the window (403)."""
        if not await self.nonces.claim(key, self.nonce_ttl_s, conversation_id):
            raise Forbidden("replayed webhook delivery")

    # -- Twilio ----------------------------------------------------------------------------------

    async def twilio_params(self, request: Request[Any, Any, State]) -> tuple[dict[str, str], str]:
        """Verify ``X-Twilio-Signature`` over the public URL and the form.

        Returns the fields and the delivery's replay key (``twilio:`` + the digest of what
        the signature covers, see ``signatures.twilio_replay_key``).
        """
        signature = request.headers.get(TWILIO_SIGNATURE_HEADER)
        if not signature:
            raise Unauthorized(
                f"missing {TWILIO_SIGNATURE_HEADER} header",
                headers={"WWW-Authenticate": 'Signature realm="twilio"'},
            )
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type not in ("", "application/x-www-form-urlencoded"):
            raise UnsupportedMediaType("Twilio webhooks are application/x-www-form-urlencoded")
        body = await request.body()
        pairs = parse_form(body)
        url = public_url(request, self.config.public_base_url)
        verify_twilio(
            url=url,
            params=pairs,
            raw_body=body,
            signature=signature,
            settings_header=request.headers.get(TWILIO_SIGNATURE_SETTINGS_HEADER),
            auth_token=self.config.twilio_auth_token,
            shared_key_secret=self.config.twilio_shared_key_secret,
        )
        return dict(pairs), "twilio:" + twilio_replay_key(url, pairs)

    async def twilio(
        self, request: Request[Any, Any, State], decode: Callable[..., Decoded]
    ) -> Response[Any]:
        """Twilio wants a fast 2xx and ignores the body: answer 204 in every success case.

        A delivery already processed or being processed (same signed URL and form) is answered
        204 and not processed again. The key is claimed for ``TWILIO_CLAIM_S`` before the event
        is processed (so copies arriving at once are processed once), released if processing
        fails (Twilio retries the delivery that failed, and that retry is processed), and kept
        for ``twilio_dedup_ttl_s`` once the event is stored.
        """
        params, replay_key = await self.twilio_params(request)
        decoded = decode(params, self.config, self.max_text_chars)
        owner = None if isinstance(decoded, Ignored) else decoded.conversation_id
        if not await self.nonces.claim(replay_key, TWILIO_CLAIM_S, owner):
            return _no_content("duplicate")
        try:
            if not isinstance(decoded, Ignored):
                await self.append(decoded)
        except BaseException:
            await self.nonces.release(replay_key, owner)
            raise
        try:
            # Keeps nothing when an erase of the conversation (here or in another process) landed
            # while the event was processed: its claim went with the erase.
            await self.nonces.record(replay_key, self.twilio_dedup_ttl_s, owner)
        except BackendError:
            # The event is stored; failing now would only make Twilio send it again.
            log.warning("could not record a processed Twilio delivery; a replay of it is not refused")
        return _no_content("ignored" if isinstance(decoded, Ignored) else "accepted")

    # -- Chatwoot --------------------------------------------------------------------------------

    def verify_chatwoot(self, request: Request[Any, Any, State], body: bytes) -> str | None:
        """Signature (with timestamp window) or shared token; return the replay key, if any.

        A valid signature with a stale timestamp is refused even when a token is also
        configured: the window is the point. A signature that does not verify falls back
        to the token, since some Chatwoot versions show a secret that is not their signing key.
        """
        signature = request.headers.get(CHATWOOT_SIGNATURE)
        signature_error: Unauthorized | None = None
        if signature and self.config.chatwoot_secret:
            try:
                stamp = verify_timestamped(
                    secrets=[self.config.chatwoot_secret],
                    timestamp=request.headers.get(CHATWOOT_TIMESTAMP),
                    signature=signature,
                    body=body,
                    now=self.clock(),
                    max_age_s=self.config.signature_max_age_s,
                    timestamp_header=CHATWOOT_TIMESTAMP,
                    signature_header=CHATWOOT_SIGNATURE,
                    realm="chatwoot",
                )
            except StaleTimestamp:
                raise
            except Unauthorized as exc:
                signature_error = exc
            else:
                # Not X-Chatwoot-Delivery: it is unsigned, so a replay could just change it.
                return "chatwoot:" + signed_content_key(stamp, body)
        token = request.query_params.get(TOKEN_QUERY) or request.headers.get(TOKEN_HEADER)
        if tokens_match(token, self.config.chatwoot_token):
            return None
        if signature_error is not None:
            raise signature_error
        if not self.config.chatwoot_secret and not self.config.chatwoot_token:
            detail = (
                "Chatwoot webhooks are not configured: "
                "set SWITCHBOARD_CHATWOOT_SECRET or SWITCHBOARD_CHATWOOT_TOKEN"
            )
        elif token:
            detail = "invalid token"
        else:
            detail = f"missing {CHATWOOT_SIGNATURE} (or ?{TOKEN_QUERY}= when the shared token is configured)"
        raise Unauthorized(detail, headers={"WWW-Authenticate": 'Signature realm="chatwoot"'})

    async def chatwoot(self, request: Request[Any, Any, State]) -> Response[Any]:
        """Verify, decode, refuse replays, append; answer with a small ack."""
        body = await request.body()
        replay_key = self.verify_chatwoot(request, body)
        decoded = decode_message_created(body, self.max_text_chars)
        if replay_key is not None:
            await self.claim_nonce(
                replay_key, None if isinstance(decoded, Ignored) else decoded.conversation_id
            )
        if isinstance(decoded, Ignored):
            return _json(WebhookAck(status="ignored", reason=decoded.reason), ignored=True)
        try:
            result = await self.append(decoded)
        except BaseException:
            if replay_key is not None:
                await self.nonces.release(replay_key, decoded.conversation_id)  # let Chatwoot's retry through
            raise
        ack = WebhookAck(
            status="accepted",
            conversation_id=decoded.conversation_id,
            appended=len(result.appended),
            duplicates=result.duplicates,
            decision=result.decision,
        )
        return _json(ack, ignored=False)

    # -- generic ---------------------------------------------------------------------------------

    async def generic(self, request: Request[Any, Any, State]) -> Response[Any]:
        """Verify the timestamped HMAC, refuse replays, append; answer with the analysis."""
        body = await request.body()
        stamp = verify_timestamped(
            secrets=self.config.webhook_secrets,
            timestamp=request.headers.get(SWITCHBOARD_TIMESTAMP),
            signature=request.headers.get(SWITCHBOARD_SIGNATURE),
            body=body,
            now=self.clock(),
            max_age_s=self.config.signature_max_age_s,
            timestamp_header=SWITCHBOARD_TIMESTAMP,
            signature_header=SWITCHBOARD_SIGNATURE,
            realm="switchboard",
        )
        inbound = decode_generic(body)
        if inbound.outcome is not None and self.record_outcome is None:
            raise ValidationFailed(
                "outcomes are not recorded by this service",
                errors=[{"field": "outcome", "message": "not accepted here"}],
            )
        replay_key = "generic:" + signed_content_key(stamp, body)
        await self.claim_nonce(replay_key, inbound.conversation_id)
        try:
            # Same answer as POST /v1/conversations/{id}/turns: the analysis with the new turns.
            if inbound.turns:
                result = await self.append(inbound)
            if inbound.outcome is not None and self.record_outcome is not None:
                await self.record_outcome(inbound.conversation_id, inbound.outcome)
            if not inbound.turns:
                result = await self.conversations.get(inbound.conversation_id, limit=1)
        except BaseException:
            await self.nonces.release(replay_key, inbound.conversation_id)
            raise
        return _json(result, ignored=False)


def signed_content_key(timestamp: int, body: bytes) -> str:
    """Replay key of a timestamped-HMAC delivery: a digest of exactly what is signed.

    Keying on the signed content rather than the signature means the same delivery signed
    with another of the rotating secrets, or any unsigned header changed, is still a replay.
    """
    return hashlib.sha256(f"{timestamp}.".encode() + body).hexdigest()


def _outcome_of(status: int) -> str:
    """Metric outcome of an error status: failed checks, bad input, or our own trouble (retryable)."""
    if status in (401, 403):
        return "rejected"
    if status in (429, 503) or status >= 500:
        return "failed"
    return "invalid"


def public_url(request: Request[Any, Any, State], public_base_url: str | None) -> str:
    """The URL the platform requested, as it signed it.

    Behind a proxy the service sees another scheme/host; ``SWITCHBOARD_PUBLIC_BASE_URL``
    (including any path prefix the proxy strips) replaces everything before the path.
    Without it, the request's own URL (scheme, Host header, path, query) is used.
    """
    if public_base_url is None:
        return str(request.url)
    path = request.scope.get("raw_path") or request.scope["path"].encode()
    query = request.scope.get("query_string", b"")
    url = public_base_url + path.decode("latin-1")
    return url + "?" + query.decode("latin-1") if query else url


def _no_content(outcome: Outcome) -> Response[Any]:
    return Response(content=None, status_code=204, headers={OUTCOME_HEADER: outcome})


def _json(value: Any, *, ignored: bool) -> Response[Any]:
    return Response(
        content=msgspec.json.encode(value),
        status_code=200,
        media_type="application/json",
        headers={OUTCOME_HEADER: "ignored" if ignored else "accepted"},
    )


def build_adapter_routers(
    conversations: ConversationService,
    settings: Settings,
    *,
    nonces: NonceStore,
    registry: CollectorRegistry | None = None,
    clock: Callable[[], float] = time.time,
    twilio_dedup_ttl_s: float = DEFAULT_TWILIO_DEDUP_TTL_S,
    record_outcome: RecordOutcome | None = None,
) -> list[Router]:
    """The webhook routers, excluded from bearer auth (see module docstring).

    ``nonces`` is the replay guard (the app passes its outbox's, on the same backend). ``registry`` is
    the app's Prometheus registry; ``twilio_dedup_ttl_s`` how long a processed Twilio
    delivery is refused as a duplicate.
    """
    h = WebhookHandlers(
        conversations,
        settings,
        nonces,
        registry=registry,
        clock=clock,
        twilio_dedup_ttl_s=twilio_dedup_ttl_s,
        record_outcome=record_outcome,
    )

    @post(
        "/twilio/voice",
        status_code=204,
        summary="Twilio real-time transcription events",
        description="Point `<Start><Transcription statusCallbackUrl>` here. Final `transcription-content` "
        "events become turns of conversation `CallSid`; partials and status events are acknowledged "
        "and ignored.",
        responses=_REJECTIONS,
    )
    async def twilio_voice(request: Request[Any, Any, State]) -> Response[None]:
        return await h.count("twilio_voice", lambda: h.twilio(request, decode_voice_event))

    @post(
        "/twilio/conversations",
        status_code=204,
        summary="Twilio Conversations onMessageAdded",
        description="Post-event webhook of a Conversations service; each message becomes a turn of "
        "conversation `ConversationSid`.",
        responses=_REJECTIONS,
    )
    async def twilio_conversations(request: Request[Any, Any, State]) -> Response[None]:
        return await h.count("twilio_conversations", lambda: h.twilio(request, decode_message_added))

    @post(
        "/chatwoot",
        status_code=200,
        summary="Chatwoot message_created",
        description="Incoming, non-private messages become customer turns of "
        "`chatwoot:{account}:{conversation}`.",
        responses=_REJECTIONS,
    )
    async def chatwoot(request: Request[Any, Any, State]) -> Response[Any]:
        return await h.count("chatwoot", lambda: h.chatwoot(request))

    @post(
        "/generic",
        status_code=200,
        summary="Generic signed JSON webhook",
        description="`{conversation_id, turns, source?, channel?, customer?}` signed with "
        "`X-Switchboard-Timestamp` and `X-Switchboard-Signature: sha256=<hex>`; returns the analysis.",
        responses=_REJECTIONS,
    )
    async def generic(request: Request[Any, Any, State]) -> Response[Any]:
        return await h.count("generic", lambda: h.generic(request))

    router = Router(
        path=WEBHOOK_PREFIX,
        route_handlers=[twilio_voice, twilio_conversations, chatwoot, generic],
        tags=["webhooks"],
        security=[],
    )
    return [router]
