"""``/v1/admin``: the decision-callback outbox for operators (dead letters: list, inspect, send again).

Behind the same API-key guard as the rest of ``/v1``. Callback bodies carry the (redacted)
handoff context, so responses hold metadata only (key, conversation, source, URL, state,
attempts, last error, times) unless ``?body=true`` asks for the body. Callback URLs are shown
with any password and query values masked: they may hold a receiver's credentials. Errors are
RFC 9457 problem+json (``service.problems``): 404 for an unknown key, 422 for a bad body.

``switchboard callbacks`` (``service.callbacks_cli``) is the command-line twin and shares
``callback_info`` so both show the same fields.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import msgspec
from litestar import Router, get, post
from litestar.params import JSONBody, Parameter, QueryParameter
from litestar.types import Guard

from service.adapters.outbox import Outbox
from service.adapters.outbox_store import MessageRecord, State
from service.errors import NotFound, ValidationFailed
from service.openapi import guarded_strict, problem_responses

MAX_LIST = 1000
MAX_REDRIVE_KEYS = 1000
_MASK = "***"

StateParam = Annotated[
    Literal["pending", "delivered", "dead"],
    # ``state`` and ``body`` are reserved handler argument names in Litestar: the query names are set here.
    QueryParameter(name="state", description="Callbacks in this state (default `dead`: the dead letters)."),
]
ListLimitParam = Annotated[
    int, Parameter(description=f"Most callbacks returned (1-{MAX_LIST}).", ge=1, le=MAX_LIST)
]
BodyParam = Annotated[
    bool,
    QueryParameter(
        name="body", description="Include each callback's JSON body (it holds the redacted handoff context)."
    ),
]
KeyParam = Annotated[
    str,
    Parameter(
        description="The callback's idempotency key (`Idempotency-Key`, `webhook-id`).", max_length=128
    ),
]


def _doc(text: str) -> msgspec.Meta:
    return msgspec.Meta(description=text)


class CallbackInfo(msgspec.Struct, frozen=True, omit_defaults=True):
    """One decision callback in the outbox; ``body`` only when asked for."""

    key: Annotated[str, _doc("Idempotency key: the `Idempotency-Key` and `webhook-id` of every attempt.")]
    conversation_id: Annotated[str, _doc("The conversation whose decision changed.")]
    source: Annotated[str | None, _doc("The platform or client source that picked the URL.")]
    url: Annotated[str, _doc("Target URL, with any password and query values masked as `***`.")]
    state: Annotated[State, _doc("`pending` (waiting or retrying), `delivered` or `dead` (dead-lettered).")]
    attempts: Annotated[int, _doc("Delivery attempts so far (reset to 0 by a redrive).")]
    last_error: Annotated[
        str | None, _doc("The last failure: `HTTP <status>`, `timeout` or a transport error.")
    ]
    created_at: Annotated[str, _doc("When the callback was stored (RFC 3339, UTC).")]
    finished_at: Annotated[str | None, _doc("When it was delivered or dead-lettered (RFC 3339, UTC).")]
    body: Annotated[Any, _doc("The JSON body as sent (only with `body=true`).")] = None


class CallbackList(msgspec.Struct, frozen=True):
    """A page of callbacks in one state, and how many there are in each state."""

    state: Annotated[State, _doc("The state listed.")]
    counts: Annotated[dict[str, int], _doc("Callbacks in the outbox per state (pending, delivered, dead).")]
    callbacks: Annotated[list[CallbackInfo], _doc("Pending in enqueue order; finished ones newest first.")]


RedriveKeys = Annotated[
    list[Annotated[str, msgspec.Meta(min_length=1, max_length=128)]],
    msgspec.Meta(max_length=MAX_REDRIVE_KEYS, description="Idempotency keys of dead callbacks."),
]


class RedriveRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Either ``keys`` (dead callbacks to send again) or ``all: true`` (every dead callback)."""

    keys: RedriveKeys | None = None
    all: Annotated[bool, _doc("`true`: send every dead callback again.")] = False


class RedriveResult(msgspec.Struct, frozen=True):
    """How many callbacks were sent again; with ``keys``, which ones, and the named ones not dead."""

    redriven: Annotated[int, _doc("How many callbacks will be sent again.")]
    keys: Annotated[list[str] | None, _doc("The named keys sent again (`null` for `all`).")] = None
    not_dead: Annotated[list[str] | None, _doc("Named keys left alone: pending or delivered.")] = None


def _iso(stamp: float | None) -> str | None:
    if stamp is None:
        return None
    return datetime.fromtimestamp(stamp, UTC).isoformat().replace("+00:00", "Z")


def mask_url(url: str) -> str:
    """``url`` with a password in its user info and every query value replaced by ``***``."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        userinfo, _, host = netloc.rpartition("@")
        netloc = f"{userinfo.partition(':')[0]}:{_MASK}@{host}"
    query = parts.query
    if query:
        query = urlencode([(name, _MASK) for name, _ in parse_qsl(query, keep_blank_values=True)], safe="*")
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def callback_info(record: MessageRecord, *, body: bool = False) -> CallbackInfo:
    """The operator's view of one callback: metadata, and the decoded JSON body when ``body``."""
    return CallbackInfo(
        key=record.key,
        conversation_id=record.conversation_id,
        source=record.source,
        url=mask_url(record.url),
        state=record.state,
        attempts=record.attempts,
        last_error=record.last_error,
        created_at=_iso(record.created_at) or "",
        finished_at=_iso(record.finished_at),
        body=_decoded(record.body) if body else None,
    )


def _decoded(body: bytes) -> Any:
    # Callback bodies are JSON; anything else (a platform action's payload) is shown as text.
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError:
        return body.decode("utf-8", "replace")


async def redrive(outbox: Outbox, request: RedriveRequest) -> RedriveResult:
    """Send again every dead callback (``all``) or the named ones.

    Raises ``ValidationFailed`` unless exactly one of ``keys`` (non-empty) and ``all`` is
    given, and ``NotFound`` naming the unknown keys (then nothing is sent again). Named
    keys that exist but are not dead are returned in ``not_dead``.
    """
    if request.all == bool(request.keys):
        raise ValidationFailed(
            'give either "keys" (a non-empty list) or "all": true',
            errors=[{"field": "keys", "message": 'exactly one of "keys" and "all" is required'}],
        )
    if request.all:
        return RedriveResult(redriven=await outbox.redrive())
    keys = list(dict.fromkeys(request.keys or []))
    records = {key: await outbox.get(key) for key in keys}
    unknown = [key for key, record in records.items() if record is None]
    if unknown:
        raise NotFound(
            f"{len(unknown)} unknown callback key(s); nothing was sent again",
            errors=[{"field": "keys", "message": f"unknown callback key {key!r}"} for key in unknown],
        )
    redriven = await outbox.redrive_keys(keys)
    return RedriveResult(
        redriven=len(redriven), keys=redriven, not_dead=[key for key in keys if key not in redriven]
    )


def build_admin_router(outbox: Outbox, guard: Guard) -> Router:
    """The authenticated ``/v1/admin`` router over the app's callback outbox."""

    @get(
        "/callbacks",
        summary="List decision callbacks (dead letters by default)",
        tags=["admin"],
        responses=problem_responses(400),
    )
    async def list_callbacks(
        wanted: StateParam = "dead", limit: ListLimitParam = 100, with_body: BodyParam = False
    ) -> CallbackList:
        """Pending callbacks in enqueue order; delivered and dead ones most recently finished first."""
        records = await outbox.list_messages(wanted, limit)
        return CallbackList(
            state=wanted,
            counts=await outbox.counts(),
            callbacks=[callback_info(record, body=with_body) for record in records],
        )

    @get(
        "/callbacks/{key:str}",
        summary="One decision callback",
        tags=["admin"],
        responses=problem_responses(400, 404),
    )
    async def get_callback(key: KeyParam, with_body: BodyParam = False) -> CallbackInfo:
        """Its state, attempts and last error; 404 when the key is unknown (or purged, or erased)."""
        record = await outbox.get(key)
        if record is None:
            raise NotFound(f"no callback with key {key!r}")
        return callback_info(record, body=with_body)

    @post(
        "/callbacks/redrive",
        status_code=200,
        summary="Send dead callbacks again",
        tags=["admin"],
        responses=problem_responses(404, 422),
    )
    async def redrive_callbacks(data: JSONBody[RedriveRequest]) -> RedriveResult:
        """Body `{"keys": [...]}` or `{"all": true}`. Redriven callbacks get a fresh attempt budget and
        the same idempotency key; 404 (nothing sent) if a key is unknown."""
        return await redrive(outbox, data)

    return Router(
        path="/v1/admin",
        route_handlers=[list_callbacks, get_callback, redrive_callbacks],
        guards=guarded_strict(guard),
        security=[{"bearer": []}],
    )
