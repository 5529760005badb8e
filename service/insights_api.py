"""The insights routes: outcomes in, aggregates and experiment answers out.

``POST /v1/conversations/{id}/outcome`` stores what the contact centre learnt afterwards;
``GET /v1/insights?window=24h&by=queue`` sums the hourly counters of one dimension;
``GET /v1/insights/experiments?window=7d`` compares every experiment arm with its control.
All sit behind the same API-key guard as the rest of ``/v1``.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from litestar import Router, get, post
from litestar.params import JSONBody, Parameter
from litestar.types import Guard

from routing.insights import Outcome
from service.api import ConversationIdParam
from service.conversations import ConversationService
from service.errors import NotFound, ValidationFailed
from service.insights import ExperimentsOverview, Insights, InsightsOverview, OutcomeRecorded
from service.openapi import guarded_strict, problem_responses
from service.policy_source import PolicySource

__all__ = ["MAX_WINDOW_S", "build_insights_router", "parse_window"]

MAX_WINDOW_S = 90 * 86400
_WINDOW = re.compile(r"^([1-9][0-9]{0,4})([hd])$")

WindowParam = Annotated[
    str,
    Parameter(description="How far back: `<n>h` or `<n>d` (whole hours, at most 90d).", max_length=8),
]
ByParam = Annotated[
    Literal["all", "queue", "category", "variant"],
    Parameter(
        description="Group by queue, contact-reason category or experiment variant (`all`: one group)."
    ),
]


def parse_window(window: str) -> int:
    """Seconds in ``window`` (``24h``, ``7d``); ``ValidationFailed`` (422) for anything else."""
    match = _WINDOW.match(window)
    seconds = int(match.group(1)) * (3600 if match.group(2) == "h" else 86400) if match else 0
    if not match or seconds > MAX_WINDOW_S:
        raise ValidationFailed(
            f"window must be <n>h or <n>d, at most 90d; got {window!r}",
            errors=[{"field": "window", "message": "expected e.g. 24h or 7d, at most 90d"}],
        )
    return seconds


def build_insights_router(
    insights: Insights, conversations: ConversationService, policies: PolicySource, guard: Guard
) -> Router:
    """The authenticated insights routes under ``/v1``."""

    @post(
        "/conversations/{conversation_id:str}/outcome",
        status_code=200,
        summary="Record a conversation's outcome",
        tags=["insights"],
        responses=problem_responses(404, 410, 422),
    )
    async def post_outcome(conversation_id: ConversationIdParam, data: JSONBody[Outcome]) -> OutcomeRecorded:
        """Idempotent: the same outcome again changes nothing; a different one replaces it and the
        aggregates move with it. 404 for an unknown conversation, 410 for one erased on request.
        The outcome is erased with the conversation."""
        return await insights.record_outcome(conversations, conversation_id, data)

    @get(
        "/conversations/{conversation_id:str}/outcome",
        summary="A conversation's recorded outcome",
        tags=["insights"],
        responses=problem_responses(404),
    )
    async def get_outcome(conversation_id: ConversationIdParam) -> Outcome:
        """The outcome last posted; 404 when none is stored."""
        found = await insights.outcome(conversation_id)
        if found is None:
            raise NotFound(f"no outcome recorded for conversation {conversation_id}")
        return found

    @get(
        "/insights",
        summary="Journey aggregates over a window",
        tags=["insights"],
        responses=problem_responses(422),
    )
    async def get_insights(window: WindowParam = "24h", by: ByParam = "all") -> InsightsOverview:
        """Per group: conversations, contact-reason mix, containment, escalations and causes, bot
        loops, repeat contacts, negative exits, outcome rates (95% Wilson intervals) and CSAT
        (95% t interval), summed from hourly counters (conversations count in the hour they began)."""
        return await insights.overview(window, parse_window(window), by)

    @get(
        "/insights/experiments",
        summary="Experiment arms against their control",
        tags=["insights"],
        responses=problem_responses(422),
    )
    async def get_experiments(window: WindowParam = "7d") -> ExperimentsOverview:
        """Per experiment and arm: outcome rates with 95% intervals; against the control (an arm
        named control or holdout, else the policy's first): difference, p-value, significance at
        0.05 and the per-arm sample size the observed effect needs for 80% power."""
        policy = policies.policy
        declared = {}
        if policy.experiment is not None:
            declared[policy.experiment.id] = [v.id for v in policy.experiment.variants]
        return await insights.experiments(window, parse_window(window), declared)

    return Router(
        path="/v1",
        route_handlers=[post_outcome, get_outcome, get_insights, get_experiments],
        guards=guarded_strict(guard),
        security=[{"bearer": []}],
    )
