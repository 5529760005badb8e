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

    label: Annotated[str, Meta(description="positive, neutral or negative.")]
    score: Annotated[float, Meta(description="p(positive) - p(negative), from -1 to 1.")]
    probs: Annotated[dict[str, float], Meta(description="Probability of each label.")]


class TurnIntent(Response):
    """Intent of one customer turn and its contact-reason category.

    ``unknown`` (confidence 0, category ``out_of_scope``) when the turn has no
    lexical content or is in a language the model pack does not support.
    ``source`` is ``reasons`` when the intent is a custom contact reason from
    the reasons file (``similarity``: the turn's similarity to the reason, after
    ``atypicality``, the penalty for lying further from the reason than its own
    examples do; ``closest_example``: the example it is closest to, with its cosine),
    ``model`` for the intent head's own labels.
    """

    label: Annotated[
        str, Meta(description="The intent (a model label or a custom reason id); `unknown` when not judged.")
    ]
    confidence: Annotated[float, Meta(description="The intent's probability (0 when `unknown`).")]
    category: Annotated[str, Meta(description="The intent's contact-reason category.")]
    source: Annotated[
        Literal["model", "reasons"],
        Meta(description="`model` (the intent head) or `reasons` (a custom contact reason)."),
    ] = "model"
    similarity: Annotated[
        float | None,
        Meta(
            description="Similarity to the custom reason: cosine to its examples' centroid blended with "
            "the nearest example's, less `atypicality` (source `reasons` only)."
        ),
    ] = None
    atypicality: Annotated[
        float | None,
        Meta(
            description="What `similarity` lost because the turn lies further from the reason, by the "
            "reasons' discriminant, than the reason's own examples typically do (0: typical; "
            "source `reasons` only)."
        ),
    ] = None
    closest_example: Annotated[
        str | None,
        Meta(description="The reasons file's example closest to this turn (source `reasons` only)."),
    ] = None
    closest_example_similarity: Annotated[
        float | None,
        Meta(description="Cosine similarity of the turn to `closest_example`."),
    ] = None


class TurnAct(Response):
    """Conversation act of one turn.

    ``label``: ``reason``, ``inform``, ``question``, ``affirm``, ``deny``,
    ``thanks_or_closing`` (the pack's act head), ``greeting``, ``repeat_request``, ``hold`` or
    ``non_lexical`` (decided from the transcript), or ``unknown`` (a pack without an act head,
    a language the pack does not support, or a bot/agent/system turn: the act
    head is trained on customer turns only).
    """

    label: Annotated[
        str,
        Meta(
            description="reason, inform, question, affirm, deny, thanks_or_closing, greeting, "
            "repeat_request (only asks the other side to repeat itself), hold (only asks to wait or "
            "checks the line), non_lexical or unknown."
        ),
    ]
    confidence: Annotated[float, Meta(description="The act's probability.")]


class TurnLanguage(Response):
    """Language of one turn: ISO 639-1 ``code`` (``und`` when the turn is too short to judge),
    the detector's ``confidence``, and ``supported`` (False only for a confidently detected
    language the model pack does not support: the turn then has no sentiment, emotion or intent)."""

    code: Annotated[str, Meta(description="ISO 639-1 code; `und` when the turn is too short to judge.")]
    confidence: Annotated[float, Meta(description="The detector's confidence.")]
    supported: Annotated[
        bool, Meta(description="False only for a confidently detected language the pack does not support.")
    ]


class TurnOut(Response):
    """One scored turn. ``text`` is PII-redacted (unless redaction is switched off).

    ``lexical`` is False for a turn with no lexical content (``[noise]``, "um",
    "okay", spoken digits, "sorry, say that again?"): it is reported neutral, with no
    emotions, intent ``unknown`` and act ``non_lexical`` (``repeat_request`` for a request
    to repeat), and weighs nothing in the conversation's signals but the bot-loop count.
    ``act`` and ``language`` are null only on turns stored before they existed.
    """

    index: Annotated[int, Meta(description="Position in the conversation, from 0.")]
    speaker: Annotated[Speaker, Meta(description="customer, agent, bot or system.")]
    text: Annotated[str, Meta(description="What was said, PII-redacted (unless redaction is off).")]
    sentiment: TurnSentiment
    emotions: Annotated[
        list[str], Meta(description="Emotions above their thresholds, strongest first (`neutral` when none).")
    ]
    emotion_scores: Annotated[dict[str, float], Meta(description="Probability of each emotion label.")]
    intent: TurnIntent | None = None
    ts: Annotated[str | None, Meta(description="The turn's time as sent (RFC 3339), if any.")] = None
    id: Annotated[str | None, Meta(description="The caller's turn id, if any.")] = None
    act: TurnAct | None = None
    language: TurnLanguage | None = None
    lexical: Annotated[
        bool, Meta(description="False for a turn with no lexical content (noise, fillers, spoken digits).")
    ] = True


class PolicyRef(Response):
    """Which policy made a decision."""

    version: Annotated[str, Meta(description="The policy's `version`.")]
    hash: Annotated[str, Meta(description="Content hash of the policy file.")]


class ExplanationLine(Response, omit_defaults=True):
    """One line of a decision's explanation (mirrors ``routing.conditions.ExplanationItem``).

    ``kind``: rule, default, condition, group, guardrail, priority, variant or resolved;
    ``text`` is what a supervisor reads; ``signal``/``op``/``expected``/``observed``/``held``
    carry the same facts for machines. (Own type because routing's ``expected`` union of two
    list types cannot be described by msgspec's schema generator.)
    """

    kind: Annotated[
        str, Meta(description="rule, default, condition, group, guardrail, priority, variant or resolved.")
    ]
    text: Annotated[str, Meta(description="The line a supervisor reads.")]
    path: Annotated[
        str | None, Meta(description="Where in the policy the line comes from (e.g. `when.any[0]`).")
    ] = None
    signal: Annotated[
        str | None, Meta(description="The signal a condition read (e.g. `sentiment.score`).")
    ] = None
    op: Annotated[
        str | None, Meta(description="The condition's operator (eq, gte, in, ...) or a group's all/any/not.")
    ] = None
    expected: Annotated[Any, Meta(description="The value the condition compares with.")] = None
    observed: Annotated[Any, Meta(description="The signal's value in this conversation.")] = None
    held: Annotated[bool | None, Meta(description="Whether the condition or group held.")] = None


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

    route: Annotated[Route, Meta(description="self_serve_bot, specialist or retention_human.")]
    queue: Annotated[str, Meta(description="The queue the conversation goes to.")]
    priority: Annotated[int, Meta(description="Queue priority (higher first).")]
    rule: Annotated[str, Meta(description="The policy rule that matched (`default` when none).")]
    explanation: Annotated[
        list[ExplanationLine],
        Meta(description="Why: the matched rule's conditions and observed values, guardrails, boosts."),
    ]
    policy: PolicyRef
    variant: Annotated[
        str | None, Meta(description="The experiment variant this conversation is in, if any.")
    ] = None
    guardrail: Annotated[str | None, Meta(description="The guardrail that overrode a bot route, if any.")] = (
        None
    )
    fallback: Annotated[
        Route | None,
        Meta(description="The route to use when the chosen one is unavailable, if the rule names one."),
    ] = None
    fallback_queue: Annotated[str | None, Meta(description="The queue of the fallback route.")] = None
    experiment: Annotated[
        str | None, Meta(description="The experiment that assigned the variant, if any.")
    ] = None
    summary: Annotated[str, Meta(description="One line: route, queue, priority and rule.")] = ""
    churn_risk: Annotated[float, Meta(description="Estimated churn risk, from 0 to 1.")] = 0.0
    flags: Annotated[
        list[str], Meta(description="Escalation flags raised so far (e.g. churn_intent, repeat_contact).")
    ] = []
    guardrails_active: Annotated[list[str], Meta(description="Guardrails whose conditions hold now.")] = []
    resolved: Annotated[
        bool, Meta(description="True when the customer's last turn closes the conversation calmly.")
    ] = False
    changed: Annotated[
        bool, Meta(description="True when route, queue or priority differ from the previous decision.")
    ] = True


class ConversationLanguage(Response):
    """The conversation's language as the policy sees it (``language.code``/``language.supported``):
    the language with the most letters over the customer's judged turns (``und`` until one is long
    enough to judge), and whether the model pack supports it. A conversation in an unsupported
    language never stays with the bot."""

    code: Annotated[str, Meta(description="ISO 639-1 code of the customer's language (`und` until judged).")]
    supported: Annotated[bool, Meta(description="Whether the model pack supports it.")]


class ConversationSentiment(Response):
    """The customer's sentiment: last customer turn's ``label`` and ``score`` (what the policy's
    ``sentiment.label``/``sentiment.score`` see), the exponentially weighted ``level`` and the
    ``trend`` band (unknown until enough customer turns). Null before any customer turn."""

    label: Annotated[
        str | None, Meta(description="The last customer turn's label (null before any customer turn).")
    ]
    score: Annotated[float | None, Meta(description="The last customer turn's score, from -1 to 1.")]
    trend: Annotated[
        str, Meta(description="improving, steady, declining or unknown (too few customer turns).")
    ]
    level: Annotated[
        float | None, Meta(description="Exponentially weighted sentiment level of the customer's turns.")
    ] = None


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

    conversation_id: Annotated[
        str, Meta(description="The conversation (generated for `/v1/analyze` when the request has none).")
    ]
    decision: DecisionOut
    contact_reason: ContactReason
    sentiment: ConversationSentiment
    emotions: Annotated[list[str], Meta(description="The customer's current emotions, strongest first.")]
    signals: Annotated[dict[str, Any], Meta(description="Every signal the policy can read, by name.")]
    context: HandoffContext
    turns: Annotated[
        list[TurnOut],
        Meta(description="The scored turns (the new ones, all, or one page; see the endpoint)."),
    ]
    models: Annotated[dict[str, Any], Meta(description="The model pack that scored the turns.")]
    timing_ms: Annotated[
        dict[str, float],
        Meta(description="Where the time went, in milliseconds (`inference`, `total`, ...)."),
    ]
    language: ConversationLanguage | None = None
    channel: Annotated[str | None, Meta(description="voice, chat, email or sms, as last sent.")] = None
    version: Annotated[
        int | None, Meta(description="The live conversation's store version (null for `/v1/analyze`).")
    ] = None
    closed: Annotated[bool, Meta(description="True once the conversation is closed.")] = False
    appended: Annotated[list[int], Meta(description="Indices of the turns this request scored.")] = []
    duplicates: Annotated[int, Meta(description="Turns skipped because their `id` was already stored.")] = 0
    turn_count: Annotated[int | None, Meta(description="How many turns the live conversation holds.")] = None
    next_after: Annotated[
        int | None,
        Meta(description="The `after` that fetches the next page of turns; null on the last page."),
    ] = None


class DeletedResponse(Response):
    """``DELETE /v1/conversations/{id}``: ``deleted`` is False when nothing was stored under the id."""

    conversation_id: Annotated[str, Meta(description="The conversation erased.")]
    deleted: Annotated[bool, Meta(description="False when nothing was stored under the id.")]


class PolicyInfo(Response):
    """The active policy: version, content hash, where it was loaded from and when, its rules and
    the whole validated policy."""

    version: Annotated[str, Meta(description="The policy's `version`.")]
    hash: Annotated[str, Meta(description="Content hash of the policy file.")]
    source: Annotated[
        str, Meta(description="The file it was loaded from, or `default` (the bundled policy).")
    ]
    loaded_at: Annotated[str, Meta(description="When it was loaded (RFC 3339).")]
    rules: Annotated[list[Any], Meta(description="The rules in order (first match wins).")]
    policy: Annotated[dict[str, Any], Meta(description="The whole validated policy.")]


class PolicyCheck(Response):
    """Result of validating a policy without activating it: ``valid`` and, when invalid, every
    error naming rule and field; when valid, its version, hash and number of rules."""

    valid: Annotated[bool, Meta(description="Whether the policy validates.")]
    version: Annotated[str | None, Meta(description="The policy's `version` (when valid).")] = None
    hash: Annotated[str | None, Meta(description="Content hash (when valid).")] = None
    rules: Annotated[int | None, Meta(description="Number of rules (when valid).")] = None
    errors: Annotated[list[str], Meta(description="Every error, naming rule and field (when invalid).")] = []


class Health(Response):
    """Liveness/readiness body: ``status``, ``ready`` and, on ``/readyz``, one line per check."""

    status: Annotated[
        str, Meta(description="`ok` (liveness), `ready`, or why not: the pack's status or `degraded`.")
    ]
    ready: Annotated[bool, Meta(description="True when the pack is loaded and warm and the store answers.")]
    checks: Annotated[
        dict[str, str], Meta(description="One status per check (`pack`, `store`) on `/readyz`.")
    ] = {}


class ReasonSummary(Response):
    """One custom contact reason as the service holds it (``examples`` is how many it has)."""

    id: Annotated[str, Meta(description="The reason's id (the intent label it produces).")]
    category: Annotated[str, Meta(description="Its contact-reason category.")]
    description: Annotated[str, Meta(description="What the reason means.")]
    examples: Annotated[int, Meta(description="How many example phrases it has.")]
    replaces: Annotated[str | None, Meta(description="The model intent it replaces, if any.")] = None


class ReasonsInfo(Response):
    """The active custom contact reasons (``GET /v1/reasons``).

    ``status``: ``active`` (matched), ``pending`` (the pack is still loading),
    ``unavailable`` (the pack has no sentence embedding: the reasons are known
    to the policy but not matched; ``detail`` says so), ``disabled``
    (``SWITCHBOARD_REASONS=none``). ``source`` is the file, ``default`` (the
    bundled file) or ``disabled``.
    """

    status: Annotated[str, Meta(description="active, pending, unavailable or disabled.")]
    source: Annotated[str, Meta(description="The reasons file, `default` or `disabled`.")]
    hash: Annotated[str, Meta(description="Content hash of the reasons file.")]
    loaded_at: Annotated[str, Meta(description="When it was loaded (RFC 3339).")]
    reasons: Annotated[list[ReasonSummary], Meta(description="The custom contact reasons.")]
    matching: Annotated[dict[str, float], Meta(description="The matching thresholds in force.")]
    new_categories: Annotated[list[str], Meta(description="Categories the file adds to the built-in ones.")]
    version: Annotated[str, Meta(description="The file's `version`.")] = ""
    detail: Annotated[str, Meta(description="Why the reasons are not matched, when they are not.")] = ""


class FieldProblem(Response):
    """One invalid part of a request: ``field`` is a path into the body (``turns[0].text``), a
    parameter, header or setting name; ``message`` says what is wrong with it."""

    field: Annotated[
        str, Meta(description="Path into the body (`turns[0].text`), or a parameter, header or setting name.")
    ]
    message: Annotated[str, Meta(description="What is wrong with it.")]


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
