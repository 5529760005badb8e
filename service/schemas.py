"""Request and response bodies of the HTTP API, as msgspec Structs.

Requests forbid unknown fields, so a typo (``"speeker"``) is a 422 naming the
field instead of a silently ignored value. Static constraints (enums, patterns,
lengths) live here and appear in the OpenAPI schema; limits that come from
configuration are checked in ``service/validation.py``. Responses may grow new
fields; the ones in the issue's API contract are never renamed.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from routing.context import ContactReason, HandoffContext
from routing.types import Route, Speaker
from service.validation import (
    CONVERSATION_ID_PATTERN,
    RFC3339_PATTERN,
    SOURCE_PATTERN,
    VISIBLE_TEXT_PATTERN,
)

Channel = Literal["voice", "chat", "email", "sms"]
ConversationId = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=128,
        pattern=CONVERSATION_ID_PATTERN,
        description="Letters, digits and ._:@- (1-128, starting alphanumeric).",
    ),
]
Timestamp = Annotated[str, Meta(pattern=RFC3339_PATTERN, description="RFC 3339 date-time with offset.")]
Text = Annotated[
    str,
    Meta(
        min_length=1,
        pattern=VISIBLE_TEXT_PATTERN,
        description="What was said; must contain a visible character (not only whitespace or zero-width).",
    ),
]
TurnId = Annotated[
    str, Meta(min_length=1, max_length=128, description="Caller's turn id; appends are idempotent on it.")
]
Source = Annotated[
    str,
    Meta(
        pattern=SOURCE_PATTERN,
        description="Where the turns come from (e.g. `crm`); selects the decision callback URL.",
    ),
]
# An untagged union: the OpenAPI document says ``anyOf`` (service.openapi), since an integer is
# also a JSON Schema number and ``oneOf`` would reject it for matching two branches.
AttributeValue = str | int | float | bool
Language = Annotated[
    str,
    Meta(
        max_length=35,
        description="BCP 47 language hint from the platform (stored; routing uses the detected language).",
    ),
]
Metadata = Annotated[
    dict[str, Any],
    Meta(description="Free-form caller data; stored with the conversation, never interpreted."),
]


class Request(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Base of request bodies: unknown fields are an error."""


class TurnIn(Request):
    """One turn as a client sends it: who spoke, what was said, and optionally when and its id."""

    speaker: Annotated[Speaker, Meta(description="customer, agent, bot or system.")]
    text: Text
    ts: Timestamp | None = None
    id: TurnId | None = None


class CustomerIn(Request):
    """What the platform knows about the customer (all optional); the policy reads it as ``customer.*``."""

    id: Annotated[str, Meta(max_length=128, description="The platform's customer id.")] | None = None
    tier: Annotated[str, Meta(max_length=64, description="Service tier, e.g. `gold`.")] | None = None
    tenure_months: Annotated[int, Meta(ge=0, le=1200, description="Months as a customer.")] | None = None
    lifetime_value: (
        Annotated[float, Meta(ge=0, le=1e12, description="Lifetime value in the account currency.")] | None
    ) = None
    contacts_last_30d: (
        Annotated[int, Meta(ge=0, le=100_000, description="Contacts in the last 30 days.")] | None
    ) = None
    attributes: Annotated[
        dict[Annotated[str, Meta(max_length=64)], AttributeValue],
        Meta(max_length=64, description="Up to 64 further scalar attributes the policy can match on."),
    ] = {}


TurnsIn = Annotated[list[TurnIn], Meta(min_length=1, description="The turns, oldest first.")]
ChannelIn = Annotated[Channel, Meta(description="voice, chat, email or sms.")]


class AnalyzeRequest(Request):
    """``POST /v1/analyze``: a whole transcript, analysed statelessly."""

    turns: TurnsIn
    conversation_id: ConversationId | None = None
    channel: ChannelIn | None = None
    language: Language | None = None
    customer: CustomerIn | None = None
    metadata: Metadata | None = None


class AppendRequest(Request):
    """``POST /v1/conversations/{id}/turns``: new turns of a live conversation."""

    turns: TurnsIn
    channel: ChannelIn | None = None
    language: Language | None = None
    customer: CustomerIn | None = None
    source: Source | None = None
    metadata: Metadata | None = None


class PolicyValidateRequest(Request):
    """``POST /v1/policy/validate`` with a JSON body (TOML text in ``policy``)."""

    policy: Annotated[str, Meta(max_length=1_000_000, description="The policy file's TOML text.")]


# ---- responses ----------------------------------------------------------------------------------


class Response(msgspec.Struct):
    """Base of response bodies."""


class TurnSentiment(Response):
    """Sentiment of one turn; ``score`` = p(positive) - p(negative)."""

    label: str
    score: float
    probs: dict[str, float]


class TurnIntent(Response):
    """Intent of one customer turn and its contact-reason category.

    ``unknown`` (confidence 0, category ``out_of_scope``) when the turn has no
    lexical content or is in a language the model pack does not support.
    ``source`` is ``reasons`` when the intent is a custom contact reason from
    the reasons file (``similarity``: the turn's cosine similarity to its
    examples' centroid), ``model`` for the intent head's own labels.
    """

    label: str
    confidence: float
    category: str
    source: Literal["model", "reasons"] = "model"
    similarity: float | None = None


class TurnAct(Response):
    """Conversation act of one turn.

    ``label``: ``reason``, ``inform``, ``question``, ``affirm``, ``deny``,
    ``thanks_or_closing`` (the pack's act head), ``greeting`` or ``non_lexical``
    (decided from the transcript), or ``unknown`` (a pack without an act head,
    a language the pack does not support, or a bot/agent/system turn: the act
    head is trained on customer turns only).
    """

    label: str
    confidence: float


class TurnLanguage(Response):
    """Language of one turn: ISO 639-1 ``code`` (``und`` when the turn is too short to judge),
    the detector's ``confidence``, and ``supported`` (False only for a confidently detected
    language the model pack does not support: the turn then has no sentiment, emotion or intent)."""

    code: str
    confidence: float
    supported: bool


class TurnOut(Response):
    """One scored turn. ``text`` is PII-redacted (unless redaction is switched off).

    ``lexical`` is False for a turn with no lexical content (``[noise]``, "um",
    "okay", spoken digits): it is reported neutral, with no emotions, intent
    ``unknown`` and act ``non_lexical``, and weighs nothing in the conversation's
    signals. ``act`` and ``language`` are null only on turns stored before they existed.
    """

    index: int
    speaker: Speaker
    text: str
    sentiment: TurnSentiment
    emotions: list[str]
    emotion_scores: dict[str, float]
    intent: TurnIntent | None = None
    ts: str | None = None
    id: str | None = None
    act: TurnAct | None = None
    language: TurnLanguage | None = None
    lexical: bool = True


class PolicyRef(Response):
    """Which policy made a decision."""

    version: str
    hash: str


class ExplanationLine(Response, omit_defaults=True):
    """One line of a decision's explanation (mirrors ``routing.conditions.ExplanationItem``).

    ``kind``: rule, default, condition, group, guardrail, priority, variant or resolved;
    ``text`` is what a supervisor reads; ``signal``/``op``/``expected``/``observed``/``held``
    carry the same facts for machines. (Own type because routing's ``expected`` union of two
    list types cannot be described by msgspec's schema generator.)
    """

    kind: str
    text: str
    path: str | None = None
    signal: str | None = None
    op: str | None = None
    expected: Any = None
    observed: Any = None
    held: bool | None = None


class DecisionOut(Response):
    """The routing decision and why.

    ``summary`` is the line a supervisor reads first; ``explanation`` lists the
    matched rule's conditions with observed values, guardrails, priority boosts
    and the experiment variant. ``guardrail`` names a guardrail that overrode a
    bot route; ``flags`` are the escalation flags raised so far. ``resolved`` is
    True when the customer's last turn closes the conversation calmly ("thanks,
    that's all", without negative sentiment, anger or frustration); the policy
    then keeps the conversation where it is, and no callback fires for it.
    ``changed`` is True when route, queue or priority differ from the
    conversation's previous decision (routing's stability rules ignore noise);
    always True for ``/v1/analyze``, which has no previous decision.
    """

    route: Route
    queue: str
    priority: int
    rule: str
    explanation: list[ExplanationLine]
    policy: PolicyRef
    variant: str | None = None
    guardrail: str | None = None
    fallback: Route | None = None
    fallback_queue: str | None = None
    experiment: str | None = None
    summary: str = ""
    churn_risk: float = 0.0
    flags: list[str] = []
    guardrails_active: list[str] = []
    resolved: bool = False
    changed: bool = True


class ConversationLanguage(Response):
    """The conversation's language as the policy sees it (``language.code``/``language.supported``):
    the language with the most letters over the customer's judged turns (``und`` until one is long
    enough to judge), and whether the model pack supports it. A conversation in an unsupported
    language never stays with the bot."""

    code: str
    supported: bool


class ConversationSentiment(Response):
    """The customer's sentiment: last customer turn's ``label`` and ``score`` (what the policy's
    ``sentiment.label``/``sentiment.score`` see), the exponentially weighted ``level`` and the
    ``trend`` band (unknown until enough customer turns). Null before any customer turn."""

    label: str | None
    score: float | None
    trend: str
    level: float | None = None


class AnalysisResponse(Response):
    """The analysis of a conversation (stateless or live): same shape for every endpoint.

    ``version`` is the live conversation's store version (None for ``/v1/analyze``);
    ``appended`` the indices scored by this request; ``duplicates`` the turns
    skipped because their ``id`` was already stored. ``turn_count`` is how many
    turns a live conversation holds; ``next_after`` (on a paged ``GET``) is the
    ``after`` to pass for the next page, null when there is none. ``language`` is the language
    detected from the customer's turns (the request's own ``language`` is a hint
    that is stored, not used for routing); ``decision.resolved`` says whether the
    customer closed the conversation calmly.
    """

    conversation_id: str
    decision: DecisionOut
    contact_reason: ContactReason
    sentiment: ConversationSentiment
    emotions: list[str]
    signals: dict[str, Any]
    context: HandoffContext
    turns: list[TurnOut]
    models: dict[str, Any]
    timing_ms: dict[str, float]
    language: ConversationLanguage | None = None
    channel: str | None = None
    version: int | None = None
    closed: bool = False
    appended: list[int] = []
    duplicates: int = 0
    turn_count: int | None = None
    next_after: int | None = None


class DeletedResponse(Response):
    """``DELETE /v1/conversations/{id}``: ``deleted`` is False when nothing was stored under the id."""

    conversation_id: str
    deleted: bool


class PolicyInfo(Response):
    """The active policy: version, content hash, where it was loaded from and when, its rules and
    the whole validated policy."""

    version: str
    hash: str
    source: str
    loaded_at: str
    rules: list[Any]
    policy: dict[str, Any]


class PolicyCheck(Response):
    """Result of validating a policy without activating it: ``valid`` and, when invalid, every
    error naming rule and field; when valid, its version, hash and number of rules."""

    valid: bool
    version: str | None = None
    hash: str | None = None
    rules: int | None = None
    errors: list[str] = []


class Health(Response):
    """Liveness/readiness body: ``status``, ``ready`` and, on ``/readyz``, one line per check."""

    status: str
    ready: bool
    checks: dict[str, str] = {}


class ReasonSummary(Response):
    """One custom contact reason as the service holds it (``examples`` is how many it has)."""

    id: str
    category: str
    description: str
    examples: int
    replaces: str | None = None


class ReasonsInfo(Response):
    """The active custom contact reasons (``GET /v1/reasons``).

    ``status``: ``active`` (matched), ``pending`` (the pack is still loading),
    ``unavailable`` (the pack has no sentence embedding: the reasons are known
    to the policy but not matched; ``detail`` says so), ``disabled``
    (``SWITCHBOARD_REASONS=none``). ``source`` is the file, ``default`` (the
    bundled file) or ``disabled``.
    """

    status: str
    source: str
    hash: str
    loaded_at: str
    reasons: list[ReasonSummary]
    matching: dict[str, float]
    new_categories: list[str]
    version: str = ""
    detail: str = ""


class FieldProblem(Response):
    """One invalid part of a request: ``field`` is a path into the body (``turns[0].text``), a
    parameter, header or setting name; ``message`` says what is wrong with it."""

    field: str
    message: str


class Problem(Response):
    """An RFC 9457 problem (``application/problem+json``): every error the service returns.

    ``type`` is ``urn:switchboard:problem:<slug>`` (stable, for machines), ``title`` the slug's
    fixed text, ``detail`` this occurrence (a 5xx never carries more than the title),
    ``instance`` the request path, ``request_id`` the ``X-Request-ID`` the logs carry.
    ``errors`` names each invalid field. Further extension members may appear, such as ``limit``
    (the setting's name) and ``max`` (its value) on a ``limit-exceeded`` problem.
    """

    type: Annotated[str, Meta(description="`urn:switchboard:problem:<slug>`.")]
    title: Annotated[str, Meta(description="Short fixed summary of the problem type.")]
    status: Annotated[int, Meta(ge=400, le=599, description="The HTTP status code.")]
    detail: Annotated[str, Meta(description="What went wrong in this request.")]
    instance: Annotated[str, Meta(description="The request path.")] | None = None
    request_id: Annotated[str, Meta(description="Also in the X-Request-ID header and the logs.")] | None = (
        None
    )
    errors: Annotated[list[FieldProblem], Meta(description="Each invalid field, when known.")] = []
