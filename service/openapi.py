"""The OpenAPI document and the API docs page, complete and served without any other host.

``/schema`` (and ``/schema/swagger``) render Swagger UI whose JavaScript, CSS and icon come
from the installed ``swagger-ui-bundle-v2`` wheel, served by the app under ``/schema/assets``:
the page works on an air-gapped network. ``/schema/openapi.json`` is the document.

The document says everything a client needs:

- every component schema carries its type's docstring as ``description`` (Litestar's own
  schema generation drops class docstrings; :class:`DescribedStructs` puts them back);
- every error response is ``application/problem+json`` with the :class:`~service.schemas.Problem`
  schema (``problem_responses`` for the routes, :func:`finish_document` for the rest);
- every request body has an example (``/v1/analyze``'s is the README's request);
- the webhook bodies Switchboard reads (Twilio form fields, Chatwoot ``message_created``, the
  generic JSON body) are documented although their handlers read the raw request to verify
  its signature first;
- untagged unions are ``anyOf``: Litestar writes ``oneOf``, which rejects an integer for a
  ``str | int | float | bool`` value because an integer is also a JSON Schema number.

And the service holds requests to it: :func:`strict_json_body` (a guard on the ``/v1`` routers)
decodes each JSON body with msgspec's strict rules, where Litestar's own conversion would accept
``"40"`` for an integer. ``tests/service/test_schemathesis.py`` checks both with schemathesis.
"""

from __future__ import annotations

import copy
import inspect
from dataclasses import fields
from typing import Annotated, Any, Final

import msgspec
import swagger_ui_bundle
from litestar import Request, Router
from litestar._openapi.schema_generation.plugins.struct import StructSchemaPlugin
from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import Components, Example, OpenAPI, Schema, SecurityScheme
from litestar.static_files import create_static_files_router
from litestar.types import Guard
from litestar.typing import FieldDefinition
from msgspec import Meta

from service import errors
from service.problems import PROBLEM_JSON, TYPE_PREFIX
from service.schemas import Problem

DOCS_PATH: Final = "/schema"
ASSETS_PATH: Final = f"{DOCS_PATH}/assets"
# The files of the installed Swagger UI the page loads (the folder also holds source maps).
ASSETS: Final = (
    "swagger-ui-bundle.js",
    "swagger-ui-standalone-preset.js",
    "swagger-ui.css",
    "favicon-32x32.png",
)
PROBLEM_REF: Final = {"$ref": "#/components/schemas/Problem"}
WEBHOOK_PREFIX: Final = "/v1/webhooks"

# The README's example request ("Try it: one request"); tests/service/test_openapi.py keeps them equal.
README_REQUEST: Final[dict[str, Any]] = {
    "conversation_id": "call-42",
    "channel": "voice",
    "customer": {"tier": "gold", "tenure_months": 40},
    "turns": [
        {"speaker": "bot", "text": "Hi, how can I help you today?"},
        {"speaker": "customer", "text": "I was charged twice this month, my card is 4111 1111 1111 1111"},
        {"speaker": "bot", "text": "I can help with billing. Could you describe the charge?"},
        {"speaker": "customer", "text": "This is ridiculous, I want to cancel my account"},
    ],
}
_APPEND_REQUEST: Final[dict[str, Any]] = {
    "source": "crm",
    "channel": "voice",
    "customer": {"tier": "gold", "tenure_months": 40},
    "turns": [
        {**turn, "id": f"t{index}", "ts": f"2025-03-04T10:15:{10 * index:02d}Z"}
        for index, turn in enumerate(README_REQUEST["turns"])
    ],
}
_POLICY_TOML: Final = """version = "2025.3"

[[rules]]
name = "cancellation"
route = "retention_human"
queue = "retention"
priority = 90
when = { any = [{ signal = "escalation.churn_intent", op = "eq", value = true }] }

[default]
route = "self_serve_bot"
queue = "bot"
priority = 10
"""
_GENERIC_REQUEST: Final[dict[str, Any]] = {
    "conversation_id": "crm-7781",
    "source": "crm",
    "channel": "chat",
    "turns": [{"speaker": "customer", "text": "I was charged twice this month", "id": "m-1"}],
}
_TWILIO_VOICE_EVENT: Final[dict[str, str]] = {
    "AccountSid": "AC00000000000000000000000000000000",
    "CallSid": "CA00000000000000000000000000000000",
    "TranscriptionSid": "GT00000000000000000000000000000000",
    "TranscriptionEvent": "transcription-content",
    "TranscriptionData": '{"transcript": "I was charged twice this month", "confidence": 0.95}',
    "Track": "inbound_track",
    "Final": "true",
    "SequenceId": "3",
    "Timestamp": "2025-03-04T10:15:21.000Z",
}
_TWILIO_MESSAGE_ADDED: Final[dict[str, str]] = {
    "AccountSid": "AC00000000000000000000000000000000",
    "EventType": "onMessageAdded",
    "ConversationSid": "CH00000000000000000000000000000000",
    "MessageSid": "IM00000000000000000000000000000000",
    "Index": "4",
    "Author": "+15555550100",
    "Body": "I was charged twice this month",
    "Source": "SMS",
    "DateCreated": "2025-03-04T10:15:21Z",
}
_CHATWOOT_MESSAGE: Final[dict[str, Any]] = {
    "event": "message_created",
    "id": 4711,
    "content": "I was charged twice this month",
    "message_type": "incoming",
    "private": False,
    "created_at": "2025-03-04T10:15:21Z",
    "account": {"id": 1},
    "conversation": {"id": 42, "account_id": 1, "channel": "Channel::WebWidget"},
}


# ---- webhook bodies (documentation only: the handlers verify the raw body, then decode it) ------


class TwilioTranscriptionEvent(msgspec.Struct, omit_defaults=True):
    """A Twilio Voice real-time transcription event (form-encoded, signed with ``X-Twilio-Signature``).

    Only final ``transcription-content`` events become turns of conversation ``CallSid``; partial
    results and ``transcription-started``/``-stopped``/``-error`` events are acknowledged (204) and
    ignored.
    """

    CallSid: Annotated[str, Meta(description="The call; it is the Switchboard conversation id.")]
    TranscriptionEvent: Annotated[
        str, Meta(description="transcription-started, transcription-content, transcription-stopped, ...")
    ]
    AccountSid: Annotated[
        str, Meta(description="Checked against SWITCHBOARD_TWILIO_ACCOUNT_SID when that is set.")
    ] = ""
    TranscriptionSid: Annotated[
        str, Meta(description="The transcription; scopes SequenceId (a call may start several).")
    ] = ""
    TranscriptionData: Annotated[
        str, Meta(description='JSON text: {"transcript": "...", "confidence": 0.95}.')
    ] = ""
    Track: Annotated[str, Meta(description="inbound_track or outbound_track; selects the speaker.")] = ""
    Final: Annotated[str, Meta(description="`true` on a final result; partial results are ignored.")] = ""
    SequenceId: Annotated[
        str, Meta(description="Orders the events of a transcription; part of the turn id.")
    ] = ""
    Timestamp: Annotated[str, Meta(description="When the words were spoken (ISO 8601).")] = ""


class TwilioMessageAdded(msgspec.Struct, omit_defaults=True):
    """A Twilio Conversations ``onMessageAdded`` post-event webhook (form-encoded, signed with
    ``X-Twilio-Signature``); each message becomes a turn of conversation ``ConversationSid``."""

    EventType: Annotated[
        str, Meta(description="Only `onMessageAdded` is read; other events are acknowledged and ignored.")
    ]
    ConversationSid: Annotated[
        str, Meta(description="The conversation; it is the Switchboard conversation id.")
    ]
    AccountSid: Annotated[
        str, Meta(description="Checked against SWITCHBOARD_TWILIO_ACCOUNT_SID when that is set.")
    ] = ""
    MessageSid: Annotated[str, Meta(description="The message; it is the turn id.")] = ""
    Index: Annotated[
        str, Meta(description="The message's index; the turn id when MessageSid is missing.")
    ] = ""
    Author: Annotated[
        str, Meta(description="Classified as bot, agent or customer by the configured author patterns.")
    ] = ""
    Body: Annotated[str, Meta(description="The text; a media-only message is ignored.")] = ""
    Source: Annotated[str, Meta(description="SMS, MMS, EMAIL, WHATSAPP, CHAT ...; selects the channel.")] = ""
    DateCreated: Annotated[str, Meta(description="When the message was sent (ISO 8601).")] = ""


class ChatwootAccount(msgspec.Struct):
    """The Chatwoot account of a webhook event."""

    id: Annotated[int, Meta(description="Part of the Switchboard conversation id.")]


class ChatwootConversation(msgspec.Struct):
    """The conversation of a Chatwoot ``message_created`` event."""

    id: Annotated[int, Meta(description="Chatwoot's per-account display id (what agents see).")]
    account_id: Annotated[int | None, Meta(description="Used when the event has no `account`.")] = None
    channel: Annotated[
        str | None, Meta(description="Inbox channel class, e.g. Channel::Email; selects the channel.")
    ] = None


class ChatwootMessageCreated(msgspec.Struct):
    """A Chatwoot ``message_created`` webhook (signed with ``X-Chatwoot-Signature`` or authorised by
    the configured token). Incoming, non-private messages become customer turns of conversation
    ``chatwoot:{account}:{conversation}``; everything else is acknowledged and ignored."""

    event: Annotated[str, Meta(description="Only `message_created` is read.")]
    id: Annotated[int, Meta(description="The message id; it is the turn id.")]
    conversation: ChatwootConversation
    content: Annotated[str | None, Meta(description="The message text.")] = None
    message_type: Annotated[str | int, Meta(description="`incoming` (or 0) is a customer turn.")] = "incoming"
    private: Annotated[bool, Meta(description="Private notes are ignored.")] = False
    created_at: Annotated[str | None, Meta(description="When the message was sent.")] = None
    account: Annotated[
        ChatwootAccount | None, Meta(description="The account; its id is part of the conversation id.")
    ] = None


def _webhook_bodies() -> dict[str, tuple[str, type[msgspec.Struct], Any]]:
    """Path -> (media type, body type, example)."""
    from service.adapters.generic import GenericWebhook  # the adapters import service.schemas

    return {
        f"{WEBHOOK_PREFIX}/twilio/voice": (
            "application/x-www-form-urlencoded",
            TwilioTranscriptionEvent,
            _TWILIO_VOICE_EVENT,
        ),
        f"{WEBHOOK_PREFIX}/twilio/conversations": (
            "application/x-www-form-urlencoded",
            TwilioMessageAdded,
            _TWILIO_MESSAGE_ADDED,
        ),
        f"{WEBHOOK_PREFIX}/chatwoot": ("application/json", ChatwootMessageCreated, _CHATWOOT_MESSAGE),
        f"{WEBHOOK_PREFIX}/generic": ("application/json", GenericWebhook, _GENERIC_REQUEST),
    }


# The /v1 request body examples, by path: a new route with a body adds its example here
# (tests/service/test_openapi.py fails for a body without one).
REQUEST_EXAMPLES: Final[dict[str, Any]] = {
    "/v1/analyze": README_REQUEST,
    "/v1/conversations/{conversation_id}/turns": _APPEND_REQUEST,
    "/v1/policy/validate": {"policy": _POLICY_TOML},
    "/v1/admin/callbacks/redrive": {"all": True},
    "/v1/conversations/{conversation_id}/outcome": {
        "resolved": True,
        "csat": 4,
        "handle_time_s": 312.5,
        "labels": ["refund-issued"],
    },
}


# ---- problem responses ---------------------------------------------------------------------------

# Status -> (error class, when it happens, an example detail).
_PROBLEMS: Final[dict[int, tuple[type[errors.ServiceError], str, str]]] = {
    400: (
        errors.BadRequest,
        "Malformed JSON, a missing body, or an invalid path or query parameter.",
        "malformed JSON",
    ),
    401: (
        errors.Unauthorized,
        "Missing or unknown API key (`Authorization: Bearer <key>`).",
        "missing API key",
    ),
    404: (
        errors.NotFound,
        "Unknown, erased or expired conversation (or custom reasons not configured).",
        "no such resource",
    ),
    409: (
        errors.Conflict,
        "A stored turn id re-sent with different content, or the conversation is closed.",
        "turn t1 is stored with different content",
    ),
    410: (
        errors.Gone,
        "The conversation was erased; its id is refused for SWITCHBOARD_ERASE_TOMBSTONE_S.",
        "the conversation was erased",
    ),
    413: (
        errors.PayloadTooLarge,
        "The body exceeds SWITCHBOARD_MAX_BODY_BYTES.",
        "the request body exceeds SWITCHBOARD_MAX_BODY_BYTES",
    ),
    415: (
        errors.UnsupportedMediaType,
        "The body is not `application/json`.",
        "expected application/json",
    ),
    422: (
        errors.ValidationFailed,
        "The body parsed but a field is invalid or unknown (`errors` names each), or a configured "
        "limit was exceeded (`limit-exceeded`, with `limit` and `max`).",
        "Validation failed",
    ),
    429: (
        errors.RateLimited,
        "This API key exceeded SWITCHBOARD_RATE_LIMIT, or the inference queue is full "
        "(`overloaded`); retry after `Retry-After` seconds.",
        "rate limit exceeded",
    ),
    503: (
        errors.Unavailable,
        "The model pack is not loaded yet, the store failed, or inference missed its deadline; "
        "retry after `Retry-After` seconds.",
        "the model pack is not loaded and warm yet",
    ),
}


def problem_example(status: int, path: str = "/v1/analyze") -> dict[str, Any]:
    """A realistic problem body for ``status`` (as ``service.problems`` renders it)."""
    cls, _, detail = _PROBLEMS[status]
    body: dict[str, Any] = {
        "type": TYPE_PREFIX + cls.slug,
        "title": cls.title,
        "status": status,
        "detail": detail,
        "instance": path,
        "request_id": "4c7e1f0a9b2d4e6f8a1b3c5d7e9f0a1b",
    }
    if status == 422:
        body["errors"] = [{"field": "turns[0].speaker", "message": "Invalid enum value 'caller'"}]
    return body


def problem_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """``responses=`` for a route: each status documented as problem+json with the Problem schema."""
    return {
        status: ResponseSpec(
            data_container=Problem,
            description=_PROBLEMS[status][1],
            media_type=PROBLEM_JSON,
            generate_examples=False,
            examples=[Example(summary=_PROBLEMS[status][0].title, value=problem_example(status))],
        )
        for status in statuses
    }


# Every authenticated /v1 route can answer these; routes with a body also 400, 413, 415 and 422.
GUARDED: Final = (401, 429, 503)
WITH_BODY: Final = (400, 413, 415, 422)


# ---- requests held to the documented schema -------------------------------------------------------


async def strict_json_body(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """Guard: decode a handler's JSON body with msgspec's strict rules before Litestar converts it.

    Litestar turns the parsed body into the handler's ``data`` type with ``strict=False`` (the
    mode its query and path parameters need), which accepts ``"40"`` for an integer and ``0``
    for a boolean: requests the document says are invalid. Decoding the raw body here first
    refuses them with the 422 naming the field (``msgspec.ValidationError`` in
    ``service.problems``), or the 400 for malformed JSON. Runs after authentication (list it
    after the API-key guard); an empty body is left to Litestar (400, body required).
    """
    data = handler.parsed_fn_signature.parameters.get("data")
    if data is None or not isinstance(connection, Request) or not data.is_subclass_of(msgspec.Struct):
        return
    body = await connection.body()  # cached: the handler's own read gets the same bytes
    if not body.strip():
        return
    try:
        msgspec.json.decode(body, type=data.annotation)
    except msgspec.ValidationError:
        # msgspec validates while it parses: JSON that is malformed after the first invalid field,
        # or holds a number no float can represent, is still the 400 it is without a type.
        try:
            msgspec.json.decode(body)
        except msgspec.MsgspecError as exc:
            raise errors.BadRequest(f"malformed JSON: {str(exc).split(' - at ')[0]}") from None
        raise


def guarded_strict(guard: Guard) -> list[Guard]:
    """The guards of a ``/v1`` router: ``guard`` (authentication), then ``strict_json_body``, as one.

    Litestar copies the route handler for every guard it runs on every request; one guard
    is one copy instead of two.
    """

    async def both(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
        outcome = guard(connection, handler)
        if inspect.isawaitable(outcome):
            await outcome
        await strict_json_body(connection, handler)

    return [both]


# ---- schema generation -----------------------------------------------------------------------


class DescribedStructs(StructSchemaPlugin):
    """Litestar's msgspec Struct schemas, plus the class docstring as the schema's description."""

    def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator: Any) -> Schema:
        """The component schema of a Struct, described by its own docstring (not a base class's)."""
        schema = super().to_openapi_schema(field_definition, schema_creator)
        own = field_definition.type_.__dict__.get("__doc__")
        if own and not schema.description:
            schema.description = inspect.cleandoc(own)
        return schema


class Document(OpenAPI):
    """The generated document, finished by :func:`finish_document` when rendered."""

    def to_schema(self) -> dict[str, Any]:
        """The JSON document (Litestar renders ``/schema/openapi.json`` from this)."""
        return finish_document(super().to_schema())


class SwitchboardOpenAPIConfig(OpenAPIConfig):
    """``OpenAPIConfig`` whose document is a :class:`Document`."""

    def to_openapi_schema(self) -> OpenAPI:
        """Litestar fills ``paths`` and ``components.schemas`` of the returned object afterwards."""
        base = super().to_openapi_schema()
        return Document(**{f.name: getattr(base, f.name) for f in fields(base)})


def _any_of(node: Any) -> Any:
    if isinstance(node, dict):
        return {("anyOf" if key == "oneOf" else key): _any_of(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_any_of(value) for value in node]
    return node


def _problem_content(response: dict[str, Any], status: int) -> None:
    content = response.setdefault("content", {})
    if PROBLEM_JSON in content:
        return
    content.clear()  # Litestar's own 400 shape is not what the service sends
    media: dict[str, Any] = {"schema": PROBLEM_REF}
    if status in _PROBLEMS:
        response["description"] = _PROBLEMS[status][1]
        media["example"] = problem_example(status)
    content[PROBLEM_JSON] = media


def _default_problems(path: str, operation: dict[str, Any]) -> None:
    """The problems any authenticated ``/v1`` route can answer, added where a route did not
    document them itself (so a new route is complete without repeating them)."""
    if path.startswith(WEBHOOK_PREFIX):
        statuses = [400, 413]  # signatures, not API keys, and no rate limit
    elif path.startswith("/v1/"):
        statuses = list(GUARDED)
    else:
        return
    if "requestBody" in operation and not path.startswith(WEBHOOK_PREFIX):
        statuses += WITH_BODY
    responses = operation["responses"]
    for status in statuses:
        responses.setdefault(str(status), {"description": _PROBLEMS[status][1]})


def finish_document(document: dict[str, Any]) -> dict[str, Any]:
    """The document Litestar generated, completed (see the module docstring). Pure: returns a copy."""
    document = _any_of(copy.deepcopy(document))
    components = document.setdefault("components", {}).setdefault("schemas", {})
    bodies = _webhook_bodies()
    _, extra = msgspec.json.schema_components(
        [Problem, *(body for _, body, _ in bodies.values())], ref_template="#/components/schemas/{name}"
    )
    for name, schema in extra.items():
        components.setdefault(name, schema)  # Litestar's own versions of shared types win
    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            _default_problems(path, operation)
            for status, response in operation["responses"].items():
                if status.isdigit() and int(status) >= 400:
                    _problem_content(response, int(status))
            if path in bodies and method == "post":
                media_type, body, example = bodies[path]
                operation["requestBody"] = {
                    "required": True,
                    "description": inspect.cleandoc(body.__doc__ or ""),
                    "content": {
                        media_type: {
                            "schema": {"$ref": f"#/components/schemas/{body.__name__}"},
                            "example": example,
                        }
                    },
                }
            body_content = operation.get("requestBody", {}).get("content", {})
            if path in REQUEST_EXAMPLES and "application/json" in body_content:
                body_content["application/json"].setdefault("example", REQUEST_EXAMPLES[path])
    return document


def openapi_config(version: str) -> OpenAPIConfig:
    """The app's OpenAPI configuration: the document at ``/schema/openapi.json`` and Swagger UI at
    ``/schema`` with its assets served from the installed package."""
    assets = create_static_files_router(
        path="/assets",
        directories=[swagger_ui_bundle.swagger_ui_path],
        include_in_schema=False,
        name="docs-assets",
    )
    router = Router(DOCS_PATH, route_handlers=[assets], include_in_schema=False)
    return SwitchboardOpenAPIConfig(
        title="Switchboard",
        version=version,
        description=(
            "Per-turn sentiment, emotion and intent on CPU, and an explainable routing decision.\n\n"
            "Every `/v1` route takes `Authorization: Bearer <API key>`; the webhooks authenticate by "
            "their platform's signature. Every error is an RFC 9457 `application/problem+json` body "
            "(the `Problem` schema)."
        ),
        path=DOCS_PATH,
        openapi_router=router,
        render_plugins=[
            SwaggerRenderPlugin(
                js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
                css_url=f"{ASSETS_PATH}/swagger-ui.css",
                standalone_preset_js_url=f"{ASSETS_PATH}/swagger-ui-standalone-preset.js",
                favicon=f"<link rel='icon' type='image/png' href='{ASSETS_PATH}/favicon-32x32.png'>",
                path=["/", "/swagger"],
            )
        ],
        components=Components(
            security_schemes={
                "bearer": SecurityScheme(
                    type="http", scheme="bearer", description="API key (see SWITCHBOARD_API_KEYS)"
                )
            }
        ),
    )


def openapi_plugins() -> list[DescribedStructs]:
    """Plugins for ``Litestar(plugins=...)``: consulted before Litestar's own schema plugins."""
    return [DescribedStructs()]
