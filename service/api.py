"""The ``/v1`` API: analyze, live conversations, policy, custom contact reasons.

Handlers are thin: decode (Litestar + msgspec), call the analyzer or the
conversation service, return a Struct. Every error propagates to
``service.problems``. All routes here sit behind the API-key guard; the
platform webhooks (``service.adapters.routes``) authenticate by signature.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from litestar import Router, delete, get, post
from litestar.params import JSONBody, Parameter
from litestar.types import Guard

from routing.errors import PolicyError
from service.analysis import Analyzer
from service.body_guard import check_toml_depth
from service.conversations import DEFAULT_PAGE, MAX_PAGE, ConversationService, ExportRecord
from service.errors import NotFound
from service.openapi import guarded_strict, problem_responses
from service.policy_source import PolicySource, validate_policy_text
from service.reasons import ReasonSource
from service.schemas import (
    AnalysisResponse,
    AnalyzeRequest,
    AppendRequest,
    DeletedResponse,
    PolicyCheck,
    PolicyInfo,
    PolicyValidateRequest,
    ReasonsInfo,
    ReasonSummary,
)

ConversationIdParam = Annotated[
    str, Parameter(description="Conversation id: 1-128 of letters, digits and ._:@-", max_length=128)
]
TurnsParam = Annotated[
    Literal["all", "new"],
    Parameter(description="`new`: only the turns this request added (default); `all`: every stored turn."),
]
AfterParam = Annotated[
    int,
    Parameter(
        description="Page of turns with index greater than this (-1: from the first).", ge=-1, le=2**31 - 1
    ),
]
LimitParam = Annotated[
    int,
    Parameter(
        description=f"Turns per page (1-{MAX_PAGE}); the response's `next_after` continues.",
        ge=1,
        le=MAX_PAGE,
    ),
]


def _policy_info(policies: PolicySource) -> PolicyInfo:
    active = policies.active
    policy = active.policy
    return PolicyInfo(
        version=policy.version,
        hash=policy.hash,
        source=active.source,
        loaded_at=active.loaded_at,
        rules=msgspec.to_builtins(policy.rules),
        policy=msgspec.to_builtins(policy),
    )


def _reasons_info(source: ReasonSource) -> ReasonsInfo:
    active = source.active
    reasons = active.reasons
    return ReasonsInfo(
        status=active.status,
        source=active.source,
        hash=reasons.hash,
        loaded_at=active.loaded_at,
        reasons=[
            ReasonSummary(
                id=r.id,
                category=r.category,
                description=r.description,
                examples=len(r.examples),
                replaces=r.replaces,
            )
            for r in reasons.reasons
        ],
        matching=msgspec.to_builtins(reasons.matching),
        new_categories=list(reasons.new_categories),
        version=reasons.version,
        detail=active.detail,
    )


def _check(text: str, policies: PolicySource) -> PolicyCheck:
    try:
        policy = validate_policy_text(text, policies.reasons)
    except PolicyError as exc:
        return PolicyCheck(valid=False, errors=list(exc.errors))
    return PolicyCheck(valid=True, version=policy.version, hash=policy.hash, rules=len(policy.rules))


def build_api_router(
    analyzer: Analyzer, conversations: ConversationService, policies: PolicySource, guard: Guard
) -> Router:
    """The authenticated ``/v1`` router, closed over the app's services (no globals)."""

    @post("/analyze", status_code=200, summary="Analyze a whole transcript (stateless)", tags=["analyze"])
    async def analyze(data: JSONBody[AnalyzeRequest]) -> AnalysisResponse:
        """Score every turn, decide a route, explain it and build the handoff context. Stores nothing."""
        return await analyzer.analyze(data)

    @post(
        "/conversations/{conversation_id:str}/turns",
        status_code=200,
        summary="Append turns to a live conversation",
        tags=["conversations"],
        responses=problem_responses(409, 410),
    )
    async def append_turns(
        conversation_id: ConversationIdParam, data: JSONBody[AppendRequest], turns: TurnsParam = "new"
    ) -> AnalysisResponse:
        """Idempotent on turn `id`; only new turns are scored. Concurrent appends lose and reorder nothing.
        A stored turn id re-sent with different content is a 409; an erased conversation's id a 410."""
        return await conversations.append(
            conversation_id,
            data.turns,
            customer=data.customer,
            channel=data.channel,
            source=data.source,
            language=data.language,
            include_all_turns=turns == "all",
        )

    @get(
        "/conversations/{conversation_id:str}",
        summary="Current state of a live conversation",
        tags=["conversations"],
        responses=problem_responses(400, 404),
    )
    async def get_conversation(
        conversation_id: ConversationIdParam, after: AfterParam = -1, limit: LimitParam = DEFAULT_PAGE
    ) -> AnalysisResponse:
        """The stored analysis with one page of turns (`after`, `limit`; `next_after` continues);
        404 when unknown, erased or expired."""
        return await conversations.get(conversation_id, after=after, limit=limit)

    @delete(
        "/conversations/{conversation_id:str}",
        status_code=200,
        summary="Erase everything stored about a conversation",
        tags=["conversations"],
        responses=problem_responses(400),
    )
    async def delete_conversation(conversation_id: ConversationIdParam) -> DeletedResponse:
        """Erases the state, its turns, queued decision callbacks and replay-guard entries. Idempotent.
        Events for the id are then refused (410) for `SWITCHBOARD_ERASE_TOMBSTONE_S`."""
        deleted = await conversations.delete(conversation_id)
        return DeletedResponse(conversation_id=conversation_id, deleted=deleted)

    @post(
        "/conversations/{conversation_id:str}/close",
        status_code=200,
        summary="Close a live conversation",
        tags=["conversations"],
        responses=problem_responses(400, 404, 409),
    )
    async def close_conversation(conversation_id: ConversationIdParam) -> AnalysisResponse:
        """No more turns are accepted (409); it stays readable and exportable until its TTL."""
        return await conversations.close(conversation_id)

    @get(
        "/conversations/{conversation_id:str}/export",
        summary="Export everything stored about a conversation",
        tags=["conversations"],
        responses=problem_responses(400, 404),
    )
    async def export_conversation(conversation_id: ConversationIdParam) -> ExportRecord:
        """The stored record: turns (redacted), signals, last decision, customer, sources."""
        return await conversations.export(conversation_id)

    @get("/policy", summary="The active routing policy", tags=["policy"])
    async def get_policy() -> PolicyInfo:
        """Version, content hash, rules and the whole validated policy."""
        return _policy_info(policies)

    @post(
        "/policy/validate",
        status_code=200,
        summary="Validate a policy without activating it",
        tags=["policy"],
    )
    async def validate_policy(data: JSONBody[PolicyValidateRequest]) -> PolicyCheck:
        """Body `{"policy": "<TOML text>"}`. 200 with `valid` and, when invalid, the validator's `errors`;
        400 when the TOML nests deeper than the parser can take (the limit is named)."""
        check_toml_depth(data.policy, "policy")
        return _check(data.policy, policies)

    @post(
        "/policy/reload",
        status_code=200,
        summary="Reload the policy file now",
        tags=["policy"],
        responses=problem_responses(422),
    )
    async def reload_policy() -> PolicyInfo:
        """Re-read SWITCHBOARD_POLICY; 422 with the validator's errors (old policy kept) if it is invalid."""
        policies.reload()
        return _policy_info(policies)

    def _reasons() -> ReasonSource:
        if analyzer.reasons is None:
            raise NotFound("custom contact reasons are not configured in this service")
        return analyzer.reasons

    @get(
        "/reasons",
        summary="The active custom contact reasons",
        tags=["reasons"],
        responses=problem_responses(404),
    )
    async def get_reasons() -> ReasonsInfo:
        """Status (active, pending, unavailable without a pack embedding, disabled), source, hash, reasons."""
        return _reasons_info(_reasons())

    @post(
        "/reasons/reload",
        status_code=200,
        summary="Reload the reasons file now",
        tags=["reasons"],
        responses=problem_responses(404, 422),
    )
    async def reload_reasons() -> ReasonsInfo:
        """Re-read SWITCHBOARD_REASONS and embed new examples; 422 with the errors (old reasons kept) if the
        file is invalid or the active policy rejects it."""
        source = _reasons()
        await source.reload_async()
        return _reasons_info(source)

    return Router(
        path="/v1",
        route_handlers=[
            analyze,
            append_turns,
            get_conversation,
            delete_conversation,
            close_conversation,
            export_conversation,
            get_policy,
            validate_policy,
            reload_policy,
            get_reasons,
            reload_reasons,
        ],
        guards=guarded_strict(guard),
        security=[{"bearer": []}],
    )
